//! Automation triggers are exactly-once: a sync's status changes are written in the
//! sync's own transaction, and each is consumed with the runs it creates. A process
//! that dies between the two leaves them queued; the next start runs each once, and
//! drains racing for the same change create its runs once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use lanyard_e2e::harness::{Admin, Phone, now};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::events::{Cause, Transition};
use lanyard_protocol::{DeviceStatus, EventRecord, GrantId, UnlockMethod, UserRef};
use lanyard_server::state::system_clock;
use lanyard_server::storage::Storage;
use lanyard_server::{EmbeddedServer, ServerConfig, open_state};
use serde_json::{Value, json};

async fn runs(admin: &Admin, device: &str) -> Vec<Value> {
    let (status, body) = admin.get(&format!("/api/v1/devices/{device}/runs")).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_sync_and_its_rules_still_runs_each_trigger_once() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let ok = |r: (u16, Value)| {
        assert!(r.0 < 300, "{r:?}");
        r.1
    };
    ok(admin
        .post(
            "/api/v1/launchpads",
            json!({"id": "cart-1", "name": "Cart 1", "ports": 10}),
        )
        .await);
    ok(admin
        .post(
            "/api/v1/workflows/install-standard",
            json!({"dep_profile": "St Mary DEP",
            "wifi_ssid": "StMary-Provisioning", "wifi_password": "provision-me"}),
        )
        .await);
    let token = ok(admin
        .post(
            "/api/v1/enrollment-tokens",
            json!({"label": "t", "launchpad_id": "cart-1"}),
        )
        .await);
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    phone.dock("cart-1", 1, 90).await;
    let before = runs(&admin, &phone.id).await.len();

    // The server stops. Two syncs are committed by the domain with nobody draining
    // them (the process dies right after each commit).
    let addr = server.server.addr;
    let data_dir = server.data_dir;
    server.server.stop().await.unwrap();
    let config = ServerConfig::new(addr, data_dir.path().join("data"));
    let alice = UserRef {
        username: "alice".into(),
        display_name: "Alice".into(),
    };
    let granted = Transition {
        from: DeviceStatus::CheckedIn,
        to: DeviceStatus::CheckoutPending,
        cause: Cause::Granted {
            grant_id: GrantId::new("o-offline-1"),
            method: UnlockMethod::OfflineBadge,
        },
    };
    let expired = Transition {
        from: DeviceStatus::CheckoutPending,
        to: DeviceStatus::CheckedIn,
        cause: Cause::GrantExpired,
    };
    {
        let state = open_state(&config, system_clock()).unwrap();
        let seq = last_seq(&state, &phone.id).await;
        let applied = commit_sync(&state, &phone.id, seq + 1, Some(alice), granted).await;
        assert_eq!(applied, 1);
        // Drains racing for the same change (a sync's own and the job's, or two
        // replicas'): its rule runs once.
        let drains: Vec<_> = (0..4)
            .map(|_| {
                let (st, id) = (state.clone(), phone.id.clone());
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
        // The second change stays queued: nobody drains it before the "crash".
        assert_eq!(
            commit_sync(&state, &phone.id, seq + 2, None, expired).await,
            1
        );
    }

    // The next start drains what the dead process left: the check-in rule runs once.
    let restarted = EmbeddedServer::start(config.clone()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while runs(&admin, &phone.id).await.len() < before + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the leftover was drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = runs(&admin, &phone.id).await;
    assert_eq!(after.len(), before + 2, "{after:#?}");
    assert_eq!(after[1]["rule_id"], "express-checkout", "{:#?}", after[1]);
    assert!(
        after[0]["rule_id"].as_str().unwrap().contains("check-in"),
        "{:#?}",
        after[0]
    );
    // A replay of the same records triggers nothing more.
    let state = open_state(&config, system_clock()).unwrap();
    let seq = last_seq(&state, &phone.id).await;
    let replayed = commit_sync(&state, &phone.id, seq, None, expired_again()).await;
    assert_eq!(replayed, 0, "a record already applied is no change");
    assert_eq!(
        lanyard_server::workflows::triggers::drain_leftovers(&state, 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(runs(&admin, &phone.id).await.len(), before + 2);
    restarted.stop().await.unwrap();
}

fn expired_again() -> Transition {
    Transition {
        from: DeviceStatus::CheckoutPending,
        to: DeviceStatus::CheckedIn,
        cause: Cause::GrantExpired,
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
        .transact(move |tx| lanyard_server::domain::sync::apply(tx, &id, vec![record], &[], now()))
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
