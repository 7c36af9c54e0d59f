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
