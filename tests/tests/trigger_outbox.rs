//! Automation triggers are exactly-once: a sync's status changes are written in the
//! sync's own transaction, and each is consumed with the runs it creates. A process
//! that dies between the two leaves them queued; the next start runs each once, and
//! drains racing for the same change create its runs once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use lanyard_e2e::TestServer;
use lanyard_e2e::harness::{Admin, Phone, now};
use lanyard_protocol::events::{Cause, Transition};
use lanyard_protocol::{DeviceStatus, EventRecord, GrantId, UnlockMethod, UserRef};
use lanyard_server::state::system_clock;
use lanyard_server::storage::Storage;
use lanyard_server::{EmbeddedServer, open_state};
use serde_json::{Value, json};

async fn runs(admin: &Admin, device: &str) -> Vec<Value> {
    let (status, body) = admin.get(&format!("/api/v1/devices/{device}/runs")).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_sync_and_its_rules_still_runs_each_trigger_once() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    admin
        .ok(
            "/api/v1/launchpads",
            json!({"id": "cart-1", "name": "Cart 1", "ports": 10}),
        )
        .await;
    admin
        .ok(
            "/api/v1/workflows/install-standard",
            json!({"dep_profile": "St Mary DEP",
            "wifi_ssid": "StMary-Provisioning", "wifi_password": "provision-me"}),
        )
        .await;
    // The offline unlocks below are alice's: the server accepts them only for a user it
    // knows.
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice"}),
        )
        .await;
    let token = admin
        .ok(
            "/api/v1/enrollment-tokens",
            json!({"label": "t", "launchpad_id": "cart-1"}),
        )
        .await;
    // Two phones: one whose change drains race for, one whose change a crash leaves
    // behind. (Each is fresh, so no run of the Express Checkout rule is under way for
    // it: a rule whose run is still active is not started again, by design.)
    let mut raced = Phone::enroll(token["link"].as_str().unwrap()).await;
    raced.dock("cart-1", 1, 90).await;
    let mut left = Phone::enroll(token["link"].as_str().unwrap()).await;
    left.dock("cart-1", 2, 90).await;
    let raced_before = runs(&admin, &raced.id).await.len();
    let left_before = runs(&admin, &left.id).await.len();

    // The server stops. Syncs are committed by the domain with nobody draining them
    // (the process dies right after each commit).
    let server_config = server.config();
    let _data_dir = server.data_dir;
    server.server.stop().await.unwrap();
    let config = server_config;
    let granted = |n: u32| Transition {
        from: DeviceStatus::CheckedIn,
        to: DeviceStatus::CheckoutPending,
        cause: Cause::Granted {
            grant_id: GrantId::new(format!("o-offline-{n}")),
            method: UnlockMethod::OfflineBadge,
        },
    };
    {
        let state = open_state(&config, system_clock()).unwrap();
        let seq = last_seq(&state, &raced.id).await;
        assert_eq!(
            commit_sync(&state, &raced.id, seq + 1, Some(alice()), granted(1)).await,
            1
        );
        // Drains racing for the same change (a sync's own and the job's, or two
        // replicas'): its rule runs once.
        let drains: Vec<_> = (0..4)
            .map(|_| {
                let (st, id) = (state.clone(), raced.id.clone());
                tokio::spawn(async move {
                    lanyard_server::workflows::triggers::drain(&st, &id, None)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut created = 0;
        for d in drains {
            created += d.await.unwrap();
        }
        assert_eq!(created, 1, "one run from four racing drains");
        // The other phone's change stays queued: nobody drains it before the "crash".
        let seq = last_seq(&state, &left.id).await;
        assert_eq!(
            commit_sync(&state, &left.id, seq + 1, Some(alice()), granted(2)).await,
            1
        );
    }

    // The next start drains what the dead process left: its rule runs once.
    let restarted = EmbeddedServer::start(config.clone()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while runs(&admin, &left.id).await.len() == left_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the leftover was drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = runs(&admin, &left.id).await;
    assert_eq!(after.len(), left_before + 1, "{after:#?}");
    assert_eq!(after[0]["rule_id"], "express-checkout", "{:#?}", after[0]);
    let raced_after = runs(&admin, &raced.id).await;
    assert_eq!(raced_after.len(), raced_before + 1, "{raced_after:#?}");
    assert_eq!(raced_after[0]["rule_id"], "express-checkout");

    // A replay of records already applied triggers nothing more.
    let state = open_state(&config, system_clock()).unwrap();
    let seq = last_seq(&state, &raced.id).await;
    assert_eq!(
        commit_sync(&state, &raced.id, seq, Some(alice()), granted(1)).await,
        0,
        "a record already applied is no change"
    );
    assert_eq!(
        lanyard_server::workflows::triggers::drain_leftovers(&state, 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(runs(&admin, &raced.id).await.len(), raced_before + 1);
    assert_eq!(runs(&admin, &left.id).await.len(), left_before + 1);
    restarted.stop().await.unwrap();
}

fn alice() -> UserRef {
    UserRef {
        username: "alice".into(),
        display_name: "Alice".into(),
    }
}

/// Commits one record through the domain's sync; returns how many changes it queued.
async fn commit_sync<S: Storage>(
    state: &lanyard_server::state::AppState<S>,
    id: &str,
    seq: u64,
    user: Option<UserRef>,
    transition: Transition,
) -> usize {
    let record = EventRecord {
        seq,
        at: now(),
        status: transition.to,
        user,
        transition: Some(transition),
        reports: vec![],
    };
    let id = id.to_owned();
    let applied = state
        .storage
        .transact(move |tx| {
            lanyard_server::domain::sync::apply(
                tx,
                &id,
                vec![record],
                &[],
                &Default::default(),
                now(),
            )
        })
        .await
        .unwrap();
    applied.transitions.len()
}

/// The device's last applied sequence, read through the storage seam.
async fn last_seq<S: Storage>(state: &lanyard_server::state::AppState<S>, id: &str) -> u64 {
    state
        .storage
        .get_device(id.to_owned())
        .await
        .unwrap()
        .last_seq
}
