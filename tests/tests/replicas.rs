//! Two replicas on one PostgreSQL database behave like one server: a wake-up raised on
//! one reaches a phone long-polling the other, and a cart tap on one unlocks a phone
//! syncing with the other. Runs in the suite's PostgreSQL pass; on SQLite (one file, one
//! server) there is no second replica to start.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use lanyard_agent::Event;
use lanyard_e2e::harness::{Admin, Phone, now};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::DeviceStatus;
use lanyard_server::EmbeddedServer;
use serde_json::json;

/// The enrollment link of `link` pointed at another replica's address.
fn link_to(link: &str, base: &str) -> String {
    let invite: lanyard_agent::enrollment::EnrollmentInvite = link.parse().unwrap();
    let server = base.replace(':', "%3A").replace('/', "%2F");
    format!("lanyard://enroll?server={server}&token={}", invite.token)
}

/// A second replica beside `a`: the same database and key-encryption key, but a data
/// directory of its own, empty (the keys come sealed from the database), and its own
/// port.
async fn second_replica(a: &TestServer) -> (EmbeddedServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = a.config();
    config.listen = ([127, 0, 0, 1], 0).into();
    config.data_dir = dir.path().join("data");
    (EmbeddedServer::start(config).await.unwrap(), dir)
}

/// Alice, with badge 0012345.
async fn alice_with_badge(admin: &Admin) {
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice"}),
        )
        .await;
    admin
        .ok("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_in_on_one_replica_reaches_a_phone_long_polling_the_other() {
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("not applicable on SQLite: one file takes one server");
        return;
    }
    let a = TestServer::start().await.unwrap();
    let (b, _b_dir) = second_replica(&a).await;
    let admin_a = a.admin().await;
    alice_with_badge(&admin_a).await;
    let token = admin_a
        .ok("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    // The phone knows only replica B.
    let mut phone = Phone::enroll(&link_to(token["link"].as_str().unwrap(), &b.base_url())).await;
    phone.tap("0012345").await;
    phone.agent.handle(Event::Undocked, now()).unwrap();
    phone.sync().await;
    assert_eq!(phone.status(), DeviceStatus::CheckedOut);

    // It long-polls B with nothing queued; the helpdesk checks it in on A.
    let mut req = phone.client.prepare(&phone.agent).unwrap();
    assert!(req.events.is_empty());
    req.wait_secs = 20;
    let helpdesk = Admin {
        base: a.base_url(),
        token: a.token("helpdesk").await.unwrap(),
        http: http_client(),
    };
    let (result, checked_in_at) = tokio::join!(phone.client.send(&req), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let path = format!("/api/v1/devices/{}/check-in", phone.id);
        let (status, body) = helpdesk.post(&path, json!({"reason": "shift end"})).await;
        assert_eq!(status, 202, "{body}");
        Instant::now()
    });
    let delivered = checked_in_at.elapsed();
    let resp = result.unwrap();
    assert_eq!(resp.commands.len(), 1, "the check-in reached B's long-poll");
    assert!(
        delivered < Duration::from_secs(1),
        "delivered {delivered:?} after A answered, not at B's 20 s timeout"
    );
    phone
        .client
        .apply(&mut phone.agent, &req, Ok(resp), now())
        .unwrap();
    phone.sync().await;
    assert_eq!(phone.status(), DeviceStatus::CheckedIn);
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_tap_on_one_replica_unlocks_a_phone_syncing_with_the_other() {
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("not applicable on SQLite: one file takes one server");
        return;
    }
    let a = TestServer::start().await.unwrap();
    let (b, _b_dir) = second_replica(&a).await;
    let admin_a = a.admin().await;
    let cart = admin_a
        .ok(
            "/api/v1/launchpads",
            json!({"id": "cart-1", "name": "Cart 1", "ports": 10}),
        )
        .await;
    alice_with_badge(&admin_a).await;
    let token = admin_a
        .ok(
            "/api/v1/enrollment-tokens",
            json!({"label": "cart 1", "launchpad_id": "cart-1"}),
        )
        .await;
    let mut phone = Phone::enroll(&link_to(token["link"].as_str().unwrap(), &b.base_url())).await;
    phone.dock("cart-1", 4, 90).await;

    // The phone long-polls B; the badge is tapped at the cart, whose hub talks to A.
    let mut req = phone.client.prepare(&phone.agent).unwrap();
    req.wait_secs = 20;
    let http = http_client();
    let (result, tapped_at) = tokio::join!(phone.client.send(&req), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let answer: serde_json::Value = http
            .post(format!("{}/launchpad/v1/tap", a.base_url()))
            .bearer_auth(cart["credential"].as_str().unwrap())
            .json(&json!({"badge": "0012345"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (answer["beep"].as_u64(), answer["port"].as_u64()),
            (Some(1), Some(4)),
            "{answer}"
        );
        Instant::now()
    });
    let delivered = tapped_at.elapsed();
    let resp = result.unwrap();
    assert_eq!(resp.commands.len(), 1, "the grant reached B's long-poll");
    assert!(delivered < Duration::from_secs(1), "{delivered:?}");
    phone
        .client
        .apply(&mut phone.agent, &req, Ok(resp), now())
        .unwrap();
    assert_eq!(phone.status(), DeviceStatus::CheckoutPending);
    assert_eq!(phone.agent.locker().user().unwrap().username, "alice");
    // Unplugged: checked out, and both replicas say so.
    phone.agent.handle(Event::Undocked, now()).unwrap();
    phone.sync().await;
    assert_eq!(phone.status(), DeviceStatus::CheckedOut);
    for base in [a.base_url(), b.base_url()] {
        let admin = Admin {
            base,
            token: admin_a.token.clone(),
            http: http_client(),
        };
        let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
        assert_eq!(device["status"], "checked_out");
        assert_eq!(device["device_user"], "alice");
    }
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_load_balancer_links_name_the_public_url_not_the_replica() {
    let server = TestServer::start_with(|c| {
        c.public_url = Some("https://lanyard.stmary.example/".parse().unwrap());
    })
    .await
    .unwrap();
    let admin = server.admin().await;
    let token = admin
        .ok("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let invite: lanyard_agent::enrollment::EnrollmentInvite =
        token["link"].as_str().unwrap().parse().unwrap();
    assert_eq!(invite.server.as_str(), "https://lanyard.stmary.example/");
    server.stop().await.unwrap();
}
