//! Offline credential lists from the real server to a real agent: each phone gets the
//! badges of its unit's staff (users whose groups include its Device Home), signed and
//! short-lived; a revoked badge leaves the list at the next sync; with the server gone,
//! a listed badge still unlocks the phone and an unlisted one does not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_agent::Event;
use lanyard_e2e::harness::{Admin, Phone, authorize_request, now};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::{BadgeId, DeviceStatus};
use serde_json::{Value, json};

fn listed(phone: &Phone) -> Vec<String> {
    let list = phone
        .agent
        .locker()
        .offline_credentials
        .as_ref()
        .expect("a list");
    let mut users: Vec<String> = list
        .entries
        .iter()
        .map(|e| e.user.username.clone())
        .collect();
    users.sort();
    users
}

/// A badge tapped on the phone while the server cannot be reached.
async fn tap_offline(phone: &mut Phone, badge: &str) {
    let effects = phone
        .agent
        .handle(
            Event::BadgeTapped {
                badge: BadgeId::new(badge),
            },
            now(),
        )
        .unwrap();
    // The first tap after losing the server tries it; once the phone knows the server is
    // out of reach it goes straight to its list.
    if effects
        .iter()
        .any(|e| matches!(e, lanyard_agent::Effect::Authorize(_)))
    {
        let req = authorize_request(&effects);
        phone
            .client
            .authorize(&mut phone.agent, &req, now())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_phone_carries_its_units_badges_offline_and_loses_revoked_ones() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let ok = |r: (u16, Value)| assert!(r.0 < 300, "{r:?}");
    for (user, groups, badge) in [
        ("alice", vec!["4 West", "Float Pool"], "0012345"),
        ("carol", vec!["4 west"], "0054321"),
        ("bob", vec!["5 East"], "0077777"),
    ] {
        ok(admin
            .post(
                "/api/v1/users",
                json!({"username": user, "display_name": user.to_uppercase(), "groups": groups}),
            )
            .await);
        ok(admin
            .post(
                &format!("/api/v1/users/{user}/badges"),
                json!({"badge": badge}),
            )
            .await);
    }
    let (_, token) = admin
        .post(
            "/api/v1/enrollment-tokens",
            json!({"label": "4W", "department": "4 West"}),
        )
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    phone.sync_step().await;
    phone.sync_step().await;
    assert_eq!(
        listed(&phone),
        ["alice", "carol"],
        "the unit's staff, not 5 East's"
    );
    let first = phone
        .agent
        .locker()
        .offline_credentials
        .as_ref()
        .unwrap()
        .clone();
    assert!(first.valid_until.as_millis() <= now().as_millis() + 24 * 3600 * 1000 + 5_000);
    assert_eq!(first.iterations, 1_000);

    // Nothing changed: the next syncs send no new list.
    phone.sync_step().await;
    assert_eq!(
        phone
            .agent
            .locker()
            .offline_credentials
            .as_ref()
            .unwrap()
            .version,
        first.version
    );

    // Carol's badge is reported lost: the next sync takes it off the list.
    let (s, _) = admin
        .post(
            "/api/v1/users/carol/badges/revoke",
            json!({"badge": "0054321"}),
        )
        .await;
    assert_eq!(s, 200);
    // (The server re-reads the audit mark at most once a second.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while listed(&phone) != ["alice"] {
        assert!(std::time::Instant::now() < deadline, "{:?}", listed(&phone));
        phone.sync_step().await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        phone
            .agent
            .locker()
            .offline_credentials
            .as_ref()
            .unwrap()
            .version
            > first.version
    );

    // The server goes away. Carol's old badge and Bob's do not open the phone; Alice's does.
    server.stop().await.unwrap();
    tap_offline(&mut phone, "0054321").await;
    assert_eq!(phone.status(), DeviceStatus::CheckedIn);
    tap_offline(&mut phone, "0077777").await;
    assert_eq!(phone.status(), DeviceStatus::CheckedIn);
    tap_offline(&mut phone, " 0012345 ").await;
    assert_eq!(phone.status(), DeviceStatus::CheckoutPending);
    let holder = phone.agent.locker().user().unwrap();
    assert_eq!(holder.username, "alice");
    assert!(
        phone.agent.store().outbox_len().unwrap() > 0,
        "the offline unlock waits to be reported"
    );
}
