//! Offline credential lists from the real server to a real agent: each phone gets the
//! badges of its unit's staff (users whose groups include its Device Home), signed,
//! short-lived and salted for that phone alone; a revoked badge leaves the list at the
//! next sync; with the server gone, a listed badge still unlocks the phone and an
//! unlisted one does not; a copy of the server's database yields no badge id.
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

/// Syncs until the phone's list names `users`: a new phone's entries are computed in the
/// background, and the sync after that brings them.
async fn sync_until_listed(phone: &mut Phone, users: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        phone.sync_step().await;
        let now_listed = phone
            .agent
            .locker()
            .offline_credentials
            .as_ref()
            .map(|_| listed(phone));
        if now_listed.as_deref()
            == Some(
                users
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .as_slice(),
            )
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{now_listed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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
    // The unit's staff, not 5 East's.
    sync_until_listed(&mut phone, &["alice", "carol"]).await;
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

#[tokio::test]
async fn each_phone_has_its_own_salt_and_a_database_copy_yields_no_badge_id() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let badges = ["80412345", "80454321"];
    for (user, badge) in [("dana", badges[0]), ("erin", badges[1])] {
        admin
            .ok(
                "/api/v1/users",
                json!({"username": user, "display_name": user, "groups": ["ICU"]}),
            )
            .await;
        admin
            .ok(
                &format!("/api/v1/users/{user}/badges"),
                json!({"badge": badge}),
            )
            .await;
    }
    let token = admin
        .ok(
            "/api/v1/enrollment-tokens",
            json!({"label": "ICU", "department": "ICU", "uses": 2}),
        )
        .await;
    let link = token["link"].as_str().unwrap();
    let mut a = Phone::enroll(link).await;
    let mut b = Phone::enroll(link).await;
    sync_until_listed(&mut a, &["dana", "erin"]).await;
    sync_until_listed(&mut b, &["dana", "erin"]).await;
    let la = a.agent.locker().offline_credentials.clone().unwrap();
    let lb = b.agent.locker().offline_credentials.clone().unwrap();

    // Each phone's list is salted for it alone: a badge's entry on one phone is not its
    // entry on the other, so a list lifted from one phone matches nothing on another.
    assert_ne!(la.salt, lb.salt);
    for badge in badges {
        let on_a = lanyard_protocol::kdf::derive(badge.as_bytes(), &la.salt, la.iterations);
        let on_b = lanyard_protocol::kdf::derive(badge.as_bytes(), &lb.salt, lb.iterations);
        assert!(la.entries.iter().any(|e| e.badge_hash == on_a));
        assert!(lb.entries.iter().any(|e| e.badge_hash == on_b));
        assert!(!lb.entries.iter().any(|e| e.badge_hash == on_a));
    }

    // A copy of the database (file and WAL) holds no badge id, no phone's salt, no
    // entry a phone holds, and no site-salted hash (what the earlier design stored and
    // a copy let anyone crack).
    let copy = server.database_copy().unwrap();
    assert!(copy.len() > 4096, "the database was read");
    let site_salt = server.key_material().await.unwrap().offline_salt;
    let contains = |needle: &[u8]| copy.windows(needle.len()).any(|w| w == needle);
    for badge in badges {
        assert!(!contains(badge.as_bytes()), "badge id in the database");
        let site = lanyard_protocol::kdf::derive(badge.as_bytes(), &site_salt, la.iterations);
        assert!(!contains(&site), "a site-salted hash in the database");
    }
    for list in [&la, &lb] {
        assert!(!contains(&list.salt), "a phone's salt in the database");
        for e in &list.entries {
            assert!(!contains(&e.badge_hash), "a phone's entry in the database");
        }
    }
    drop(admin);
    server.stop().await.unwrap();
}
