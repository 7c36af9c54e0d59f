//! Badge taps at a cart's reader, over HTTP: beep codes 1–4, the best phone chosen
//! (highest battery above the minimum, then lowest port), the grant reaching the phone,
//! a second tap answered at once while the first phone waits to be unplugged, the cart
//! tap log with every answer's reason, and the external badge lookup service (a small
//! local HTTP fake).
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
    // unplugged: the cart answers at once — wait, port 4 first — and flashes port 4.
    let started = std::time::Instant::now();
    let busy = cart.tap("ext-777").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once"
    );
    assert_eq!(
        (
            busy["beep"].as_u64(),
            busy["reason"].as_str(),
            busy["port"].as_u64()
        ),
        (Some(3), Some("cart_busy"), Some(4)),
        "{busy}"
    );
    assert!(busy["device_id"].is_null(), "{busy}");
    let retry = busy["retry_after_secs"].as_u64().unwrap();
    assert!((1..=70).contains(&retry), "{busy}");
    assert!(
        busy["message"].as_str().unwrap().contains("port 4"),
        "{busy}"
    );
    // Alice takes her phone; Bob taps again and gets port 7.
    p4.agent.handle(Event::Undocked, now()).unwrap();
    p4.sync().await;
    let bob = cart.tap("ext-777").await;
    assert_eq!(
        (
            bob["beep"].as_u64(),
            bob["port"].as_u64(),
            bob["reason"].as_str()
        ),
        (Some(1), Some(7), Some("granted")),
        "{bob}"
    );
    assert_eq!(p4.agent.locker().status(), DeviceStatus::CheckedOut);
    p7.sync().await;
    assert_eq!(p7.agent.locker().user().unwrap().username, "bob");
    p7.agent.handle(Event::Undocked, now()).unwrap();
    p7.sync().await;

    // Carol: only the 10 % phone is left, below the minimum: no device (beep 3), and the
    // answer says why.
    let answer = cart.tap("c-1").await;
    assert_eq!(answer["beep"], 3, "{answer}");
    assert_eq!(answer["reason"], "no_device", "{answer}");
    assert_eq!(
        answer["message"],
        "no phone available: 1 docked (1 blocked by a compliance rule (such as low battery or a passcode not cleared))",
        "{answer}"
    );

    // Every tap is in the cart tap log, newest first, with its reason; filters work.
    let get = |path: String| {
        let req = http.get(format!("{base}{path}")).bearer_auth(&admin_token);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, log) = get("/api/v1/cart-taps?launchpad_id=cart-1".into()).await;
    assert_eq!(status, 200, "{log}");
    let reasons: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "no_device",
            "granted",
            "cart_busy",
            "user_has_device",
            "granted",
            "lookup_unavailable",
            "badge_not_found",
            "badge_not_found",
        ],
        "{log}"
    );
    assert!(
        !log.to_string().contains("0012345") && !log.to_string().contains("ext-777"),
        "badge ids are never logged"
    );
    let (_, refused) = get("/api/v1/cart-taps?refused=true&username=bob".into()).await;
    let refused = refused["items"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["reason"], "cart_busy");
    assert_eq!(
        refused[0]["device_id"],
        p4.id.as_str(),
        "the phone the cart waited on"
    );
    assert_eq!(refused[0]["port"], 4);
    let (_, granted) = get("/api/v1/cart-taps?refused=false&limit=1".into()).await;
    assert_eq!(granted["items"][0]["username"], "bob", "{granted}");
    assert!(granted["next_cursor"].is_string(), "{granted}");
    let (_, future) = get(format!(
        "/api/v1/cart-taps?since={}",
        now().as_millis() + 60_000
    ))
    .await;
    assert_eq!(future["items"].as_array().unwrap().len(), 0, "{future}");
    let (status, none) = get("/api/v1/cart-taps?since=10&until=5".into()).await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["items"].as_array().unwrap().len(), 0, "{none}");
    let (status, bad) = get("/api/v1/cart-taps?limit=0".into()).await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_field")),
        "{bad}"
    );

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
    // Bob taps while port 1 waits: wait for port 1.
    let busy = cart.tap("b-1").await;
    assert_eq!(
        (busy["reason"].as_str(), busy["port"].as_u64()),
        (Some("cart_busy"), Some(1)),
        "{busy}"
    );
    // The hub sees port 1 emptied; the phone has not synced yet. Bob's next tap proceeds.
    let r = http
        .post(format!("{base}/launchpad/v1/ports"))
        .bearer_auth(&cart.credential)
        .json(&json!({"port": 1, "docked": false}))
        .send()
        .await
        .unwrap();
    let hub = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_eq!(hub.0, 200);
    assert_eq!(
        hub.1["device_id"],
        p1.id.as_str(),
        "matched by the port's last occupant"
    );
    let bob = cart.tap("b-1").await;
    assert_eq!(
        (bob["beep"].as_u64(), bob["port"].as_u64()),
        (Some(1), Some(2)),
        "{bob}"
    );

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

    // A user who holds a phone, and a cart with a phone in it, are not deleted: that
    // would leave the phone held by nobody known, docked in no cart.
    let (s, b) = call(
        Method::DELETE,
        "/api/v1/users/alice".into(),
        &admin_token,
        None,
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("in_use")), "{b}");
    assert!(b["message"].as_str().unwrap().contains(&phone.id), "{b}");
    let (s, b) = call(
        Method::DELETE,
        "/api/v1/launchpads/cart-1".into(),
        &admin_token,
        None,
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("in_use")), "{b}");
    // The phone is checked in and taken out of the cart.
    let (s, b) = call(
        Method::POST,
        format!("/api/v1/devices/{}/check-in", phone.id),
        &admin_token,
        Some(json!({"reason": "leaving"})),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    phone.sync().await;
    phone.sync().await;
    phone.agent.handle(Event::Undocked, now()).unwrap();
    phone.sync().await;

    // Deleting the user and the cart: the badge and the reader credential stop working.
    let (s, b) = call(
        Method::DELETE,
        "/api/v1/users/alice".into(),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let (s, _) = call(
        Method::GET,
        "/api/v1/users/alice".into(),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, b) = call(
        Method::DELETE,
        "/api/v1/launchpads/cart-1".into(),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(s, 204, "{b}");
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
    // A shift change: several clinicians tap at the same cart at once. One is granted;
    // the others hear "wait for port N" at once and tap again; each is served as soon as
    // the phone before theirs is unplugged, never held for the undock window (60 s).
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
    let busy = std::sync::atomic::AtomicUsize::new(0);
    let until_served = |badge: &'static str| {
        let (cart, busy) = (&cart, &busy);
        async move {
            loop {
                let a = cart.tap(badge).await;
                if a["reason"] != "cart_busy" {
                    return a;
                }
                assert!(a["port"].is_u64(), "{a}");
                busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let taps = async {
        let (a, b, c, d) = tokio::join!(
            until_served("b-0"),
            until_served("b-1"),
            until_served("b-2"),
            until_served("b-3")
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
        "each tap served after the unplug before it, not the window ({:?})",
        started.elapsed()
    );
    assert!(busy.into_inner() >= 3, "the others were told to wait");
    server.stop().await.unwrap();
}
