//! Bounded resources over HTTP: oversize and mistyped bodies, the connection cap and
//! the idle timeout, one long-poll per phone, the sequence window.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use lanyard_e2e::harness::{Admin, RawPhone};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::DeviceStatus;
use lanyard_protocol::enroll::DeviceInfo;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

async fn phone(admin: &Admin) -> RawPhone {
    let token = admin
        .ok("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    RawPhone::enroll(
        token["link"].as_str().unwrap(),
        DeviceInfo {
            serial: Some("LIMITS000001".into()),
            udid: Some("00008030-00000000000000AA".into()),
            ..DeviceInfo::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_typed_and_the_scheme_is_case_insensitive() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let http = http_client();
    let url = format!("{}/api/v1/users", admin.base);
    let big = format!(
        r#"{{"username": "u", "display_name": "{}"}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let r = http
        .post(&url)
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "body_too_large", "{body}");
    // The server closes a connection whose body it refused unread; a pooled client can
    // race that close, so the next requests go on a fresh connection.
    let http = http_client();
    let r = http
        .post(&url)
        .bearer_auth(&admin.token)
        .header("content-type", "text/plain")
        .body(r#"{"username": "u", "display_name": "U"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unsupported_media_type", "{body}");
    let r = http
        .get(format!("{}/api/v1/users", admin.base))
        .header("authorization", format!("bearer {}", admin.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a lowercase scheme is the same scheme");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_far_past_the_last_stored_one_are_refused() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let mut phone = phone(&admin).await;
    phone.seq = 5_000;
    let (status, body) = phone
        .send(DeviceStatus::CheckedIn, None, None, vec![])
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unprocessable")),
        "{body}"
    );
    phone.seq = 0;
    let (status, _) = phone
        .send(DeviceStatus::CheckedIn, None, None, vec![])
        .await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phones_new_long_poll_ends_its_earlier_one() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let phone = phone(&admin).await;
    let poll = |phone: &RawPhone| {
        let body = json!({"v": 1, "device_id": phone.id, "events": [], "wait_secs": 25});
        let (base, credential) = (phone.base.clone(), phone.credential.clone());
        async move {
            http_client()
                .post(format!("{base}/device/v1/sync"))
                .bearer_auth(credential)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let started = Instant::now();
    let first = tokio::spawn(poll(&phone));
    // Later polls keep arriving until the first one has been told to stop waiting.
    let mut later = Vec::new();
    while !first.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the first poll ended"
        );
        later.push(tokio::spawn(poll(&phone)));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(first.await.unwrap(), 200);
    assert!(started.elapsed() < Duration::from_secs(10));
    for p in later {
        p.abort();
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_cannot_take_the_server_down() {
    let server = TestServer::start_with(|c| {
        c.limits.max_connections = 20;
        c.limits.header_timeout = Duration::from_secs(1);
    })
    .await
    .unwrap();
    let addr = server.server.addr;
    // Twenty sockets that never send a request fill the cap.
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /hea").await.unwrap();
        idle.push(s);
    }
    // Past the cap, a caller hears 503 at once rather than hanging.
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut saw_busy = false;
    loop {
        match http_client()
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) if r.status() == 503 => saw_busy = true,
            Ok(r) if r.status() == 200 => break,
            other => panic!("/healthz answered {other:?}"),
        }
        assert!(Instant::now() < deadline, "idle sockets were closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_busy, "the cap answered 503 while it was full");
    // The idle sockets were closed by the header timeout, not by us.
    assert!(started.elapsed() >= Duration::from_millis(500));
    drop(idle);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_grows_with_use_is_pruned_past_its_retention() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use lanyard_protocol::Timestamp;
    use lanyard_server::{ClockOverride, EmbeddedServer, ServerConfig};

    let offset = Arc::new(AtomicI64::new(0));
    let clock: lanyard_server::state::Clock = {
        let offset = offset.clone();
        Arc::new(move || {
            Timestamp(lanyard_e2e::harness::now().as_millis() + offset.load(Ordering::SeqCst))
        })
    };
    let configure = |c: &mut ServerConfig| {
        c.clock = Some(ClockOverride(clock.clone()));
        c.retention.history_days = 30;
    };
    let server = TestServer::start_with(configure).await.unwrap();
    let admin = server.admin().await;
    let mut phone = phone(&admin).await;
    // A record, and a security event (battery 255 is refused).
    let (status, _) = phone
        .send(
            DeviceStatus::CheckedIn,
            None,
            None,
            vec![lanyard_protocol::events::Report::Facts(
                lanyard_protocol::events::FactsReport {
                    battery_percent: Some(255),
                    ..Default::default()
                },
            )],
        )
        .await;
    assert_eq!(status, 200);
    // A tap at a cart (an unknown badge), kept in the cart tap log.
    let cart = admin
        .ok(
            "/api/v1/launchpads",
            json!({"id": "cart-r", "name": "Cart R", "ports": 4}),
        )
        .await;
    let tap = http_client()
        .post(format!("{}/launchpad/v1/tap", admin.base))
        .bearer_auth(cart["credential"].as_str().unwrap())
        .json(&json!({"badge": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(tap.status(), 200);
    let activity = |admin: &Admin, id: String| {
        let admin = Admin {
            base: admin.base.clone(),
            token: admin.token.clone(),
            http: http_client(),
        };
        async move {
            let (_, a) = admin.get(&format!("/api/v1/devices/{id}/activity")).await;
            let (_, e) = admin
                .get(&format!("/api/v1/security-events?device_id={id}"))
                .await;
            let (_, t) = admin.get("/api/v1/cart-taps").await;
            (
                a["items"].as_array().unwrap().len(),
                e["items"].as_array().unwrap().len(),
                t["items"].as_array().unwrap().len(),
            )
        }
    };
    assert_eq!(activity(&admin, phone.id.clone()).await, (1, 1, 1));

    // 31 days on, the server starts again: its retention pass prunes all three.
    let server_config = server.config();
    let _data_dir = server.data_dir;
    server.server.stop().await.unwrap();
    offset.store(31 * 86_400_000, Ordering::SeqCst);
    let mut config = server_config;
    configure(&mut config);
    let restarted = EmbeddedServer::start(config).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while activity(&admin, phone.id.clone()).await != (0, 0, 0) {
        assert!(Instant::now() < deadline, "pruned at start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The phone's next record is stored as usual (its sequence continues).
    let (status, body) = phone
        .send(DeviceStatus::CheckedIn, None, None, vec![])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acked_seq"], 2);
    restarted.stop().await.unwrap();
}
