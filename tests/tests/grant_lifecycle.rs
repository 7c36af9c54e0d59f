//! A grant's life with the real core: an answer that arrives after the phone gave up
//! never unlocks it, an answer lost with the server frees the clinician, and a cart
//! grant nobody picks up frees the phone and the clinician.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use lanyard_agent::Event;
use lanyard_e2e::harness::{Admin, Phone, authorize_request, now};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::{BadgeId, DeviceStatus, Timestamp};
use lanyard_server::{ClockOverride, EmbeddedServer};
use serde_json::{Value, json};

/// Cart 1, alice (limit 1) with her badge; returns the cart's enrollment link and its
/// reader credential.
async fn setup(admin: &Admin) -> (String, String) {
    let cart = admin
        .ok(
            "/api/v1/launchpads",
            json!({"id": "cart-1", "name": "Cart 1", "ports": 10}),
        )
        .await;
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice", "device_limit": 1}),
        )
        .await;
    admin
        .ok("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
    let token = admin
        .ok(
            "/api/v1/enrollment-tokens",
            json!({"label": "cart 1", "launchpad_id": "cart-1"}),
        )
        .await;
    (
        token["link"].as_str().unwrap().to_owned(),
        cart["credential"].as_str().unwrap().to_owned(),
    )
}

/// Alice's badge tapped on `phone`: the request the core sends.
fn alice_taps(phone: &mut Phone, at: Timestamp) -> lanyard_protocol::AuthorizeRequest {
    let effects = phone
        .agent
        .handle(
            Event::BadgeTapped {
                badge: BadgeId::new("0012345"),
            },
            at,
        )
        .unwrap();
    authorize_request(&effects)
}

async fn device(admin: &Admin, id: &str) -> Value {
    let (status, body) = admin.get(&format!("/api/v1/devices/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn lapses(admin: &Admin, device_id: &str) -> usize {
    let (_, audit) = admin.get("/api/v1/audit?limit=200").await;
    audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "device.grant_lapsed" && e["target_id"] == device_id)
        .count()
}

#[tokio::test]
async fn a_grant_answering_a_tap_the_phone_gave_up_on_never_unlocks_it() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let (link, _) = setup(&admin).await;
    let mut a = Phone::enroll(&link).await;
    a.dock("cart-1", 1, 90).await;
    let mut b = Phone::enroll(&link).await;
    b.dock("cart-1", 2, 90).await;

    // Alice taps phone A. The server decides and commits, but its answer arrives after
    // the phone's timeout: the phone has told her the tap failed.
    let t0 = now();
    let req = alice_taps(&mut a, t0);
    let late = a.client.send_authorization(&req).await;
    assert!(late.is_ok(), "the server answered: {late:?}");
    assert_eq!(device(&admin, &a.id).await["status"], "checkout_pending");
    let gave_up = Timestamp(t0.as_millis() + 5_500);
    a.agent.handle(Event::Tick, gave_up).unwrap();
    assert_eq!(a.status(), DeviceStatus::CheckedIn);
    assert!(a.notice().is_some(), "the clinician was told");
    // The late answer is refused.
    a.client
        .apply_authorization(&mut a.agent, &req, late, gave_up)
        .unwrap();
    assert_eq!(a.status(), DeviceStatus::CheckedIn, "never unlocks late");

    // The phone's next sync tells the server, which frees the grant at once; the grant
    // is not delivered again.
    a.sync().await;
    assert_eq!(a.status(), DeviceStatus::CheckedIn);
    let d = device(&admin, &a.id).await;
    assert_eq!(d["status"], "checked_in", "{d}");
    assert!(d["device_user"].is_null(), "{d}");
    assert_eq!(lapses(&admin, &a.id).await, 1);
    let (_, commands) = admin
        .get(&format!("/api/v1/devices/{}/commands", a.id))
        .await;
    let grant = commands
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "grant_checkout")
        .cloned()
        .unwrap();
    assert_ne!(grant["state"], "acknowledged", "{grant}");

    // Her next tap works, on another phone.
    b.tap("0012345").await;
    assert_eq!(b.status(), DeviceStatus::CheckoutPending);
    assert_eq!(device(&admin, &b.id).await["device_user"], "alice");
}

#[tokio::test]
async fn an_answer_lost_with_the_server_frees_the_clinician_after_the_restart() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let (link, _) = setup(&admin).await;
    let mut a = Phone::enroll(&link).await;
    a.dock("cart-1", 1, 90).await;

    // The grant is committed; the server dies before the answer reaches the phone.
    let req = alice_taps(&mut a, now());
    let _lost = a.client.send_authorization(&req).await;
    let server_config = server.config();
    let _data_dir = server.data_dir;
    server.server.stop().await.unwrap();
    a.client
        .apply_authorization(
            &mut a.agent,
            &req,
            Err(lanyard_agent::sync::TransportError::Unreachable(
                "connection reset".into(),
            )),
            now(),
        )
        .unwrap();
    assert_eq!(a.status(), DeviceStatus::CheckedIn);

    // Back on the same data directory and port.
    let config = server_config;
    let restarted = EmbeddedServer::start(config).await.unwrap();
    a.agent.handle(Event::SyncSucceeded, now()).unwrap();
    a.sync().await;
    assert_eq!(
        a.status(),
        DeviceStatus::CheckedIn,
        "the grant never applied"
    );
    let d = device(&admin, &a.id).await;
    assert_eq!(d["status"], "checked_in", "{d}");
    assert_eq!(lapses(&admin, &a.id).await, 1);
    // And the same phone unlocks at her next tap.
    a.tap("0012345").await;
    assert_eq!(a.status(), DeviceStatus::CheckoutPending);
    restarted.stop().await.unwrap();
}

#[tokio::test]
async fn a_cart_grant_nobody_picks_up_frees_the_phone_and_the_clinician() {
    let offset = Arc::new(AtomicI64::new(0));
    let clock: lanyard_server::state::Clock = {
        let offset = offset.clone();
        Arc::new(move || Timestamp(now().as_millis() + offset.load(Ordering::SeqCst)))
    };
    let server = TestServer::start_with(|c| c.clock = Some(ClockOverride(clock)))
        .await
        .unwrap();
    let admin = server.admin().await;
    let (link, reader) = setup(&admin).await;
    let mut a = Phone::enroll(&link).await;
    a.dock("cart-1", 1, 90).await;
    let mut b = Phone::enroll(&link).await;
    b.dock("cart-1", 2, 80).await;

    let tap = || async {
        let r = http_client()
            .post(format!("{}/launchpad/v1/tap", admin.base))
            .bearer_auth(&reader)
            .json(&json!({"badge": "0012345"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let first = tap().await;
    assert_eq!(first["beep"], 1, "{first}");
    assert_eq!(first["device_id"], a.id.as_str(), "highest battery");
    // Phone A never syncs (switched off in the cart). Alice holds it until the grant's
    // window ends: a second tap is beep 4 now.
    assert_eq!(tap().await["beep"], 4);

    // Past the window: the sweeper frees phone A without anyone tapping.
    offset.store(66_000, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while device(&admin, &a.id).await["status"] != "checked_in" {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper frees a lapsed grant within its pass"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(device(&admin, &a.id).await["device_user"].is_null());
    assert_eq!(lapses(&admin, &a.id).await, 1);
    // The late sync of phone A does not unlock it for her: the grant expired.
    b.sync().await;
    let third = tap().await;
    assert_eq!(third["beep"], 1, "her next tap works: {third}");
}
