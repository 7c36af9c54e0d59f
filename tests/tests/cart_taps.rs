//! Badge taps at a cart's reader, over HTTP: beep codes 1–4, the best phone chosen
//! (highest battery above the minimum, then lowest port), the grant reaching the phone,
//! a second tap waiting until the first phone is unplugged, and the external badge
//! lookup service (a small local HTTP fake).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_agent::runtime::Agent;
use lanyard_agent::secrets::MemorySecretStore;
use lanyard_agent::store::Store;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_agent::sync::{SyncClient, SyncConfig, enroll};
use lanyard_agent::{Event, FactsUpdate};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::enroll::DeviceInfo;
use lanyard_protocol::{DeviceStatus, DockLocation, Timestamp};
use serde_json::{Value, json};

fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

/// The hospital's badge lookup service: knows `ext-777` as bob, fails on `ext-broken`.
async fn lookup_service() -> String {
    async fn answer(
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> (StatusCode, String) {
        match q.get("id").map(String::as_str) {
            Some("ext-777") => (StatusCode::OK, r#"{"user": "bob"}"#.into()),
            Some("ext-broken") => (StatusCode::INTERNAL_SERVER_ERROR, "down".into()),
            _ => (StatusCode::NOT_FOUND, "{}".into()),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, Router::new().route("/lookup", get(answer))).await
    });
    format!("http://{addr}/lookup")
}

struct Phone {
    agent: Agent,
    client: SyncClient<HttpTransport>,
    id: String,
}

impl Phone {
    async fn in_cart(link: &str, port: u32, battery: u8) -> Phone {
        let invite: EnrollmentInvite = link.parse().unwrap();
        let transport = HttpTransport::new(invite.server.clone(), Duration::from_secs(5)).unwrap();
        let (mut agent, _) = Agent::open(Store::open_in_memory().unwrap(), now()).unwrap();
        let (cred, _) = enroll(
            &transport,
            &invite,
            DeviceInfo::default(),
            &MemorySecretStore::default(),
            &mut agent,
            now(),
        )
        .await
        .unwrap();
        let id = cred.device_id.to_string();
        let client = SyncClient::new(
            transport,
            cred,
            SyncConfig {
                long_poll_secs: 0,
                ..SyncConfig::default()
            },
            7,
        );
        let mut phone = Phone { agent, client, id };
        phone
            .agent
            .handle(
                Event::Docked {
                    location: DockLocation {
                        launchpad: Some("cart-1".into()),
                        port: Some(port),
                    },
                },
                now(),
            )
            .unwrap();
        phone
            .agent
            .handle(
                Event::PlatformFacts(FactsUpdate {
                    battery_percent: Some(battery),
                    ..Default::default()
                }),
                now(),
            )
            .unwrap();
        phone.sync().await;
        phone
    }

    async fn sync(&mut self) {
        self.client.sync_once(&mut self.agent, now()).await.unwrap();
    }
}

struct Cart {
    base: String,
    credential: String,
    http: reqwest::Client,
}

impl Cart {
    async fn tap(&self, badge: &str) -> Value {
        let resp = self
            .http
            .post(format!("{}/launchpad/v1/tap", self.base))
            .bearer_auth(&self.credential)
            .json(&json!({"badge": badge}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

#[tokio::test]
async fn cart_taps_choose_grant_wait_and_beep() {
    let lookup = lookup_service().await;
    let server = TestServer::start_with(|c| c.badge_lookup_url = Some(lookup.parse().unwrap()))
        .await
        .unwrap();
    let base = server.base_url();
    let admin_token = server.token("admin").await.unwrap();
    let http = http_client();
    let admin = |path: &'static str, body: Value| {
        let req = http
            .post(format!("{base}{path}"))
            .bearer_auth(&admin_token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, cart) = admin(
        "/api/v1/launchpads",
        json!({"id": "cart-1", "name": "Cart 1", "ports": 10}),
    )
    .await;
    assert_eq!(s, 201);
    let cart = Cart {
        base: base.clone(),
        credential: cart["credential"].as_str().unwrap().to_owned(),
        http: http.clone(),
    };
    for (u, name) in [("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")] {
        admin(
            "/api/v1/users",
            json!({"username": u, "display_name": name}),
        )
        .await;
    }
    admin("/api/v1/users/alice/badges", json!({"badge": "0012345"})).await;
    admin("/api/v1/users/carol/badges", json!({"badge": "c-1"})).await;
    let (_, token) = admin(
        "/api/v1/enrollment-tokens",
        json!({"label": "cart 1", "launchpad_id": "cart-1"}),
    )
    .await;
    let link = token["link"].as_str().unwrap();

    let mut low = Phone::in_cart(link, 2, 10).await; // below the 20 % minimum
    let mut p4 = Phone::in_cart(link, 4, 90).await;
    let mut p7 = Phone::in_cart(link, 7, 90).await; // same battery, higher port
    let _ = &mut low;

    // Unknown badges beep 2, locally and at the lookup service; a broken service beeps 3.
    assert_eq!(cart.tap("no-such-badge").await["beep"], 2);
    assert_eq!(cart.tap("ext-unknown").await["beep"], 2);
    assert_eq!(cart.tap("ext-broken").await["beep"], 3);

    // Alice: the best phone is port 4 (90 %, lower port than 7); it flashes, the phone gets it.
    let answer = cart.tap("0012345").await;
    assert_eq!(
        (answer["beep"].as_u64(), answer["port"].as_u64()),
        (Some(1), Some(4)),
        "{answer}"
    );
    assert_eq!(answer["device_id"], p4.id.as_str());
    assert!(
        !answer.to_string().contains("0012345"),
        "the badge id is never echoed"
    );
    p4.sync().await;
    assert_eq!(p4.agent.locker().status(), DeviceStatus::CheckoutPending);
    assert_eq!(p4.agent.locker().user().unwrap().username, "alice");

    // Alice again, while her phone still waits at the cart: she has a device, and hears
    // so at once rather than waiting behind her own grant.
    let started = std::time::Instant::now();
    assert_eq!(cart.tap("0012345").await["beep"], 4);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Bob (known only to the lookup service) taps while port 4 still waits to be
    // unplugged: his tap waits, and completes once alice takes her phone.
    let started = std::time::Instant::now();
    let (bob, ()) = tokio::join!(cart.tap("ext-777"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        p4.agent.handle(Event::Undocked, now()).unwrap();
        p4.sync().await;
    });
    assert_eq!(
        (bob["beep"].as_u64(), bob["port"].as_u64()),
        (Some(1), Some(7)),
        "{bob}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "released by the unplug, not the 60 s window ({:?})",
        started.elapsed()
    );
    assert_eq!(p4.agent.locker().status(), DeviceStatus::CheckedOut);
    p7.sync().await;
    assert_eq!(p7.agent.locker().user().unwrap().username, "bob");
    p7.agent.handle(Event::Undocked, now()).unwrap();
    p7.sync().await;

    // Carol: only the 10 % phone is left, below the minimum: no device (beep 3).
    let answer = cart.tap("c-1").await;
    assert_eq!(answer["beep"], 3, "{answer}");

    // A reader without a valid credential is refused with a JSON 401.
    let resp = http
        .post(format!("{base}/launchpad/v1/tap"))
        .bearer_auth("nope")
        .json(&json!({"badge": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "unauthorized");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_hub_reported_unplug_frees_the_cart_before_the_phone_syncs() {
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let admin_token = server.token("admin").await.unwrap();
    let http = http_client();
    let admin = |path: &'static str, body: Value| {
        let req = http
            .post(format!("{base}{path}"))
            .bearer_auth(&admin_token)
            .json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let cart = admin(
        "/api/v1/launchpads",
        json!({"id": "cart-1", "name": "Cart 1", "ports": 10}),
    )
    .await;
    let cart = Cart {
        base: base.clone(),
        credential: cart["credential"].as_str().unwrap().to_owned(),
        http: http.clone(),
    };
    for (u, b) in [("alice", "a-1"), ("bob", "b-1")] {
        admin("/api/v1/users", json!({"username": u, "display_name": u})).await;
        let path = if u == "alice" {
            "/api/v1/users/alice/badges"
        } else {
            "/api/v1/users/bob/badges"
        };
        admin(path, json!({"badge": b})).await;
    }
    let token = admin(
        "/api/v1/enrollment-tokens",
        json!({"label": "t", "launchpad_id": "cart-1"}),
    )
    .await;
    let link = token["link"].as_str().unwrap();
    let p1 = Phone::in_cart(link, 1, 90).await;
    let _p2 = Phone::in_cart(link, 2, 80).await;

    assert_eq!(cart.tap("a-1").await["port"], 1);
    // The hub sees port 1 emptied; the phone has not synced yet. Bob's tap proceeds.
    let started = std::time::Instant::now();
    let (bob, hub) = tokio::join!(cart.tap("b-1"), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = http
            .post(format!("{base}/launchpad/v1/ports"))
            .bearer_auth(&cart.credential)
            .json(&json!({"port": 1, "docked": false}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(hub.0, 200);
    assert_eq!(
        hub.1["device_id"],
        p1.id.as_str(),
        "matched by the port's last occupant"
    );
    assert_eq!(
        (bob["beep"].as_u64(), bob["port"].as_u64()),
        (Some(1), Some(2)),
        "{bob}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Ports outside the cart are refused; an unknown serial is accepted and matched to nothing.
    let r = http
        .post(format!("{base}/launchpad/v1/ports"))
        .bearer_auth(&cart.credential)
        .json(&json!({"port": 11, "docked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r: Value = http
        .post(format!("{base}/launchpad/v1/ports"))
        .bearer_auth(&cart.credential)
        .json(&json!({"port": 3, "docked": true, "serial": "UNKNOWN"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["device_id"], Value::Null);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_revoked_badge_stops_working_at_once_and_carts_and_users_can_be_changed() {
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let admin_token = server.token("admin").await.unwrap();
    let helpdesk_token = server.token("helpdesk").await.unwrap();
    let http = http_client();
    let call = |method: reqwest::Method, path: String, token: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };
    use reqwest::Method;
    let (_, cart) = call(
        Method::POST,
        "/api/v1/launchpads".into(),
        &admin_token,
        Some(json!({"id": "cart-1", "name": "Cart 1", "ports": 4})),
    )
    .await;
    let cart = Cart {
        base: base.clone(),
        credential: cart["credential"].as_str().unwrap().to_owned(),
        http: http.clone(),
    };
    call(
        Method::POST,
        "/api/v1/users".into(),
        &admin_token,
        Some(json!({"username": "alice", "display_name": "Alice"})),
    )
    .await;
    call(
        Method::POST,
        "/api/v1/users/alice/badges".into(),
        &admin_token,
        Some(json!({"badge": "lost-1"})),
    )
    .await;
    call(
        Method::POST,
        "/api/v1/users/alice/badges".into(),
        &admin_token,
        Some(json!({"badge": "new-2"})),
    )
    .await;
    let (_, token) = call(
        Method::POST,
        "/api/v1/enrollment-tokens".into(),
        &admin_token,
        Some(json!({"label": "t", "launchpad_id": "cart-1"})),
    )
    .await;
    let mut phone = Phone::in_cart(token["link"].as_str().unwrap(), 1, 90).await;

    // The helpdesk revokes the lost badge; a tap with it now beeps 2, the other still works.
    let (s, user) = call(
        Method::POST,
        "/api/v1/users/alice/badges/revoke".into(),
        &helpdesk_token,
        Some(json!({"badge": "lost-1"})),
    )
    .await;
    assert_eq!((s, user["badges"].as_u64()), (200, Some(1)));
    assert_eq!(cart.tap("lost-1").await["beep"], 2);
    let (s, _) = call(
        Method::POST,
        "/api/v1/users/alice/badges/revoke".into(),
        &helpdesk_token,
        Some(json!({"badge": "lost-1"})),
    )
    .await;
    assert_eq!(s, 404, "already revoked");

    // A new display name shows on the next checkout.
    let (s, _) = call(
        Method::PATCH,
        "/api/v1/users/alice".into(),
        &helpdesk_token,
        Some(json!({"display_name": "x"})),
    )
    .await;
    assert_eq!(s, 403, "changing users needs admin");
    let (s, user) = call(
        Method::PATCH,
        "/api/v1/users/alice".into(),
        &admin_token,
        Some(json!({"display_name": "Alice Moreau, RN", "device_limit": 2})),
    )
    .await;
    assert_eq!((s, user["device_limit"].as_u64()), (200, Some(2)));
    assert_eq!(cart.tap("new-2").await["beep"], 1);
    phone.sync().await;
    assert_eq!(
        phone.agent.locker().user().unwrap().display_name,
        "Alice Moreau, RN"
    );

    // Cart attributes change and clear; an unknown zone is refused.
    let (s, c) = call(
        Method::PATCH,
        "/api/v1/launchpads/cart-1".into(),
        &admin_token,
        Some(json!({"department": "4 West", "timezone": "America/Chicago"})),
    )
    .await;
    assert_eq!((s, c["department"].as_str()), (200, Some("4 West")));
    let (s, _) = call(
        Method::PATCH,
        "/api/v1/launchpads/cart-1".into(),
        &admin_token,
        Some(json!({"timezone": "Nowhere/Else"})),
    )
    .await;
    assert_eq!(s, 400);
    let (_, c) = call(
        Method::PATCH,
        "/api/v1/launchpads/cart-1".into(),
        &admin_token,
        Some(json!({"department": ""})),
    )
    .await;
    assert_eq!(c["department"], Value::Null);

    // Deleting the user and the cart: the badge and the reader credential stop working.
    let (s, _) = call(
        Method::DELETE,
        "/api/v1/users/alice".into(),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = call(
        Method::GET,
        "/api/v1/users/alice".into(),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        Method::DELETE,
        "/api/v1/launchpads/cart-1".into(),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(s, 204);
    let r = http
        .post(format!("{base}/launchpad/v1/tap"))
        .bearer_auth(&cart.credential)
        .json(&json!({"badge": "new-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, log) = call(Method::GET, "/api/v1/audit".into(), &admin_token, None).await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "user.badge.revoke",
        "user.update",
        "launchpad.update",
        "user.delete",
        "launchpad.delete",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    assert!(
        !log.to_string().contains("lost-1"),
        "no badge ids in the audit log"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn taps_queued_at_one_cart_are_each_released_by_the_unplug_before_them() {
    // A shift change: several clinicians tap at the same cart at once. Each tap waits
    // behind the grant before it and is released by that phone's unplug, never by the
    // undock window (60 s and more).
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let admin_token = server.token("admin").await.unwrap();
    let http = http_client();
    let admin = |path: String, body: Value| {
        let req = http
            .post(format!("{base}{path}"))
            .bearer_auth(&admin_token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success());
            r.json::<Value>().await.unwrap()
        }
    };
    let cart = admin(
        "/api/v1/launchpads".into(),
        json!({"id": "cart-1", "name": "Cart 1", "ports": 10}),
    )
    .await;
    let cart = Cart {
        base: base.clone(),
        credential: cart["credential"].as_str().unwrap().to_owned(),
        http: http.clone(),
    };
    for u in 0..4 {
        admin(
            "/api/v1/users".into(),
            json!({"username": format!("u{u}"), "display_name": format!("U{u}")}),
        )
        .await;
        admin(
            format!("/api/v1/users/u{u}/badges"),
            json!({"badge": format!("b-{u}")}),
        )
        .await;
    }
    let token = admin(
        "/api/v1/enrollment-tokens".into(),
        json!({"label": "cart 1", "launchpad_id": "cart-1"}),
    )
    .await;
    let link = token["link"].as_str().unwrap();
    let mut phones = Vec::new();
    for port in 1..=4 {
        phones.push(Phone::in_cart(link, port, 90).await);
    }

    // Four taps at once; each clinician takes the phone as soon as it lights up.
    let started = std::time::Instant::now();
    let taps = async {
        let (a, b, c, d) = tokio::join!(
            cart.tap("b-0"),
            cart.tap("b-1"),
            cart.tap("b-2"),
            cart.tap("b-3")
        );
        vec![a, b, c, d]
    };
    let clinicians = async {
        let mut taken = 0;
        while taken < 4 {
            for p in phones.iter_mut() {
                if p.agent.locker().status() == DeviceStatus::CheckedIn {
                    p.sync().await;
                    if p.agent.locker().status() == DeviceStatus::CheckoutPending {
                        p.agent.handle(Event::Undocked, now()).unwrap();
                        p.sync().await;
                        taken += 1;
                    }
                }
            }
            assert!(started.elapsed() < Duration::from_secs(30), "stuck");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (answers, ()) = tokio::join!(taps, clinicians);
    assert!(
        answers.iter().all(|a| a["beep"] == 1),
        "every tap granted: {answers:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "each tap released by the unplug before it, not by the window ({:?})",
        started.elapsed()
    );
    server.stop().await.unwrap();
}
