//! An idle phone's re-polls cost the server no write: an empty sync within a minute of
//! the last recorded contact is answered from reads alone, while anything that waits for
//! the phone still reaches it and its contact is kept to the minute.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use lanyard_e2e::TestServer;
use lanyard_e2e::harness::{Phone, now};
use lanyard_protocol::{DeviceStatus, Timestamp};
use lanyard_server::ClockOverride;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_re_polls_write_nothing_yet_contact_and_commands_stay_current() {
    // The server's clock runs `offset` ms ahead of the phone's.
    let offset = Arc::new(AtomicI64::new(0));
    let clock: lanyard_server::state::Clock = {
        let offset = offset.clone();
        Arc::new(move || Timestamp(now().as_millis() + offset.load(Ordering::SeqCst)))
    };
    let server = TestServer::start_with(|c| c.clock = Some(ClockOverride(clock)))
        .await
        .unwrap();
    let admin = server.admin().await;
    let token = admin
        .ok("/api/v1/enrollment-tokens", json!({"label": "idle"}))
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    phone.sync().await;
    let contact = |d: &Value| d["last_contact"].as_i64().unwrap();
    let path = format!("/api/v1/devices/{}", phone.id);
    let device = || async { admin.get(&path).await.1 };
    let first = contact(&device().await);

    // Half a minute later: an empty sync changes nothing stored.
    offset.store(30_000, Ordering::SeqCst);
    phone.sync_step().await;
    assert_eq!(
        contact(&device().await),
        first,
        "no write for an idle re-poll"
    );

    // Something waits for the phone: the sync that brings it records the contact.
    let applied_before = phone.agent.locker().applied_commands.len();
    let (s, _) = admin
        .post(
            &format!("/api/v1/devices/{}/lock", phone.id),
            json!({"reason": "left on the ward"}),
        )
        .await;
    assert_eq!(s, 202);
    phone.sync().await;
    let after_lock = device().await;
    assert!(contact(&after_lock) >= first + 30_000, "{after_lock:#}");
    assert_eq!(phone.status(), DeviceStatus::CheckedIn);
    assert_eq!(
        phone.agent.locker().applied_commands.len(),
        applied_before + 1,
        "the lock reached the phone"
    );

    // More than a minute after the last recorded contact, an empty sync records it.
    offset.store(30_000 + 61_000, Ordering::SeqCst);
    phone.sync_step().await;
    let later = contact(&device().await);
    assert!(
        later >= first + 91_000,
        "contact kept to the minute: {later}"
    );
    server.stop().await.unwrap();
}
