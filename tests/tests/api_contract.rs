//! The HTTP contract: roles on every admin route, and bad input on every route answered
//! with a 4xx JSON error carrying a stable code — never a 500, never a non-JSON body.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_e2e::{TestServer, http_client};
use reqwest::Method;
use serde_json::{Value, json};

struct Call {
    method: Method,
    path: &'static str,
    body: Option<Value>,
}

fn call(method: Method, path: &'static str, body: Option<Value>) -> Call {
    Call { method, path, body }
}

async fn send(base: &str, token: Option<&str>, c: &Call) -> (u16, Value) {
    let mut req = http_client().request(c.method.clone(), format!("{base}{}", c.path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = &c.body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{} {}: non-JSON body {text:?}", c.method, c.path));
    (status, body)
}

fn assert_error(status: u16, body: &Value, want: u16, ctx: &str) {
    assert_eq!(status, want, "{ctx}: {body}");
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{ctx}: no code in {body}"
    );
    assert!(
        body["message"].as_str().is_some(),
        "{ctx}: no message in {body}"
    );
}

#[tokio::test]
async fn roles_are_enforced_on_every_admin_route() {
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let admin = server.token("admin").await.unwrap();
    let helpdesk = server.token("helpdesk").await.unwrap();
    let auditor = server.token("auditor").await.unwrap();
    let (s, _) = send(
        &base,
        Some(&admin),
        &call(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "u1", "display_name": "U"})),
        ),
    )
    .await;
    assert_eq!(s, 201);

    let reads = [
        call(Method::GET, "/api/v1/users", None),
        call(Method::GET, "/api/v1/users/u1", None),
        call(Method::GET, "/api/v1/launchpads", None),
        call(Method::GET, "/api/v1/devices", None),
        call(Method::GET, "/api/v1/audit", None),
        call(Method::GET, "/api/v1/workflows", None),
        call(Method::GET, "/api/v1/workflow-folders", None),
        call(Method::GET, "/api/v1/rules", None),
        call(Method::GET, "/api/v1/runs", None),
        call(Method::GET, "/api/v1/emails", None),
        call(Method::GET, "/api/v1/policy", None),
        call(Method::GET, "/api/v1/cart-taps", None),
    ];
    let config_writes = [
        call(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "u2", "display_name": "U"})),
        ),
        call(
            Method::POST,
            "/api/v1/users/u1/badges",
            Some(json!({"badge": "42"})),
        ),
        call(
            Method::POST,
            "/api/v1/launchpads",
            Some(json!({"id": "c1", "name": "C1", "ports": 4})),
        ),
        call(
            Method::POST,
            "/api/v1/enrollment-tokens",
            Some(json!({"label": "t"})),
        ),
        call(
            Method::POST,
            "/api/v1/workflows",
            Some(
                json!({"name": "Reboot", "model": "over_the_air", "actions": [{"type": "reboot"}]}),
            ),
        ),
        call(
            Method::POST,
            "/api/v1/workflows/install-standard",
            Some(
                json!({"dep_profile": "DEP", "wifi_ssid": "Prov", "wifi_password": "provisioning"}),
            ),
        ),
    ];
    for c in reads.iter().chain(config_writes.iter()) {
        let (s, b) = send(&base, None, c).await;
        assert_error(
            s,
            &b,
            401,
            &format!("{} {} without a token", c.method, c.path),
        );
        let (s, b) = send(&base, Some("not-a-token"), c).await;
        assert_error(
            s,
            &b,
            401,
            &format!("{} {} with a bad token", c.method, c.path),
        );
    }
    for c in &reads {
        for t in [&admin, &helpdesk, &auditor] {
            let (s, b) = send(&base, Some(t), c).await;
            assert_eq!(s, 200, "{} {}: {b}", c.method, c.path);
        }
    }
    for c in &config_writes {
        for (who, t) in [("helpdesk", &helpdesk), ("auditor", &auditor)] {
            let (s, b) = send(&base, Some(t), c).await;
            assert_error(s, &b, 403, &format!("{who} {} {}", c.method, c.path));
        }
        let (s, b) = send(&base, Some(&admin), c).await;
        assert!(s == 201, "admin {} {}: {s} {b}", c.method, c.path);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_a_4xx_json_error_on_every_route() {
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let admin = server.token("admin").await.unwrap();
    let cases: Vec<(Call, u16)> = vec![
        (
            call(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": "bad name!", "display_name": "X"})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": "ok", "display_name": "  "})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": "ok", "display_name": "X", "email": "nope"})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": "ok", "display_name": "X", "password": "short"})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": "ok", "display_name": "X", "device_limit": 99})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": "ok", "display_name": "X", "surprise": 1})),
            ),
            400,
        ),
        (
            call(Method::POST, "/api/v1/users", Some(json!({"username": 5}))),
            400,
        ),
        (
            call(Method::POST, "/api/v1/users", Some(json!("just a string"))),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/users/ghost/badges",
                Some(json!({"badge": "1"})),
            ),
            404,
        ),
        (
            call(
                Method::POST,
                "/api/v1/users/ghost/badges",
                Some(json!({"badge": ""})),
            ),
            400,
        ),
        (call(Method::GET, "/api/v1/users/ghost", None), 404),
        (
            call(
                Method::PATCH,
                "/api/v1/users/ghost",
                Some(json!({"display_name": "G"})),
            ),
            404,
        ),
        (
            call(
                Method::PATCH,
                "/api/v1/users/dup",
                Some(json!({"device_limit": 99})),
            ),
            400,
        ),
        (
            call(
                Method::PATCH,
                "/api/v1/users/dup",
                Some(json!({"password": "short"})),
            ),
            400,
        ),
        (
            call(
                Method::PATCH,
                "/api/v1/users/dup",
                Some(json!({"nickname": "x"})),
            ),
            400,
        ),
        (call(Method::DELETE, "/api/v1/users/ghost", None), 404),
        (
            call(
                Method::POST,
                "/api/v1/users/ghost/badges/revoke",
                Some(json!({})),
            ),
            404,
        ),
        (
            call(
                Method::PATCH,
                "/api/v1/launchpads/no-cart",
                Some(json!({"ports": 4})),
            ),
            404,
        ),
        (
            call(
                Method::PATCH,
                "/api/v1/launchpads/no-cart",
                Some(json!({"ports": 0})),
            ),
            400,
        ),
        (
            call(Method::DELETE, "/api/v1/launchpads/no-cart", None),
            404,
        ),
        (call(Method::GET, "/api/v1/users?limit=0", None), 400),
        (call(Method::GET, "/api/v1/users?limit=100000", None), 400),
        (call(Method::GET, "/api/v1/users?limit=abc", None), 400),
        (
            call(Method::GET, "/api/v1/devices?status=flying", None),
            400,
        ),
        (call(Method::GET, "/api/v1/devices?unknown=1", None), 400),
        (call(Method::GET, "/api/v1/devices/dev-none", None), 404),
        (
            call(Method::GET, "/api/v1/devices/dev-none/activity", None),
            404,
        ),
        (call(Method::GET, "/api/v1/audit?cursor=abc", None), 400),
        (call(Method::GET, "/api/v1/audit?limit=0", None), 400),
        (
            call(Method::GET, "/api/v1/devices?passcode=maybe", None),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/devices/dev-none/check-in",
                Some(json!({"reason": "x"})),
            ),
            404,
        ),
        (
            call(
                Method::POST,
                "/api/v1/devices/dev-none/check-in",
                Some(json!({})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/launchpads",
                Some(json!({"id": "Bad Id", "name": "C", "ports": 4})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/launchpads",
                Some(json!({"id": "c2", "name": "C", "ports": 0})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/launchpads",
                Some(json!({"id": "c2", "name": "C", "ports": 4, "timezone": "Mars/Olympus Mons"})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/enrollment-tokens",
                Some(json!({"label": "t", "uses": 0})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/enrollment-tokens",
                Some(json!({"label": "t", "expires_in_secs": 5})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/enrollment-tokens",
                Some(json!({"label": "t", "launchpad_id": "no-such-cart"})),
            ),
            404,
        ),
        (call(Method::DELETE, "/api/v1/users", None), 405),
        (call(Method::GET, "/api/v1/nothing-here", None), 404),
        (
            call(
                Method::POST,
                "/device/v1/enroll",
                Some(json!({"v": 1, "token": "nope", "device": {}})),
            ),
            401,
        ),
        (
            call(
                Method::POST,
                "/device/v1/enroll",
                Some(json!({"v": 99, "token": "nope", "device": {}})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/device/v1/enroll",
                Some(json!({"v": 1, "token": "", "device": {}})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/device/v1/enroll",
                Some(json!({"token": "x"})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/device/v1/sync",
                Some(json!({"v": 1, "device_id": "d"})),
            ),
            401,
        ),
        (
            call(Method::POST, "/device/v1/authorize", Some(json!({}))),
            401,
        ),
    ];
    // The duplicate needs an existing user first.
    send(
        &base,
        Some(&admin),
        &call(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "dup", "display_name": "D"})),
        ),
    )
    .await;
    let (s, b) = send(
        &base,
        Some(&admin),
        &call(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "dup", "display_name": "D"})),
        ),
    )
    .await;
    assert_error(s, &b, 409, "duplicate user");
    let mut cases = cases;
    // The workflow API: bad paths, queries and bodies are JSON errors too.
    for (c, want) in [
        (call(Method::GET, "/api/v1/runs/not-a-number", None), 400),
        (call(Method::GET, "/api/v1/runs/999999", None), 404),
        (call(Method::GET, "/api/v1/runs?limit=0", None), 400),
        (call(Method::GET, "/api/v1/runs?cursor=abc", None), 400),
        (call(Method::GET, "/api/v1/emails?surprise=1", None), 400),
        (call(Method::GET, "/api/v1/workflows/nope", None), 404),
        (call(Method::GET, "/api/v1/devices/nope/runs", None), 404),
        (call(Method::GET, "/api/v1/devices/nope/journey", None), 404),
        (
            call(
                Method::POST,
                "/api/v1/workflows",
                Some(json!({"name": "X"})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/workflows",
                Some(
                    json!({"name": "X", "model": "carrier_pigeon", "actions": [{"type": "reboot"}]}),
                ),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/workflows",
                Some(json!({"name": "X", "model": "over_the_air", "actions": []})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/workflows/nope/deploy",
                Some(json!({"devices": ["d"]})),
            ),
            404,
        ),
        (
            call(
                Method::POST,
                "/api/v1/workflows/nope/clone",
                Some(json!({"name": "Y"})),
            ),
            404,
        ),
        (
            call(
                Method::POST,
                "/api/v1/rules",
                Some(
                    json!({"name": "R", "trigger": {"type": "sometimes"}, "workflows": [], "enabled": true}),
                ),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/rules/nope/move",
                Some(json!({"position": 0})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/rules/nope/move",
                Some(json!({"position": 2})),
            ),
            404,
        ),
        (
            call(
                Method::PUT,
                "/api/v1/rules/nope",
                Some(json!({"name": "R"})),
            ),
            400,
        ),
        (call(Method::DELETE, "/api/v1/rules/nope", None), 404),
        (
            call(
                Method::POST,
                "/api/v1/workflows/install-standard",
                Some(json!({"dep_profile": "D"})),
            ),
            400,
        ),
        (
            call(
                Method::POST,
                "/api/v1/workflows/install-standard",
                Some(json!({"dep_profile": "D", "wifi_ssid": "S", "wifi_password": "short"})),
            ),
            400,
        ),
    ] {
        cases.push((c, want));
    }
    for (c, want) in &cases {
        let (s, b) = send(&base, Some(&admin), c).await;
        assert_error(
            s,
            &b,
            *want,
            &format!("{} {} {:?}", c.method, c.path, c.body),
        );
    }
    // Malformed JSON, the wrong content type, and an oversized body.
    let http = http_client();
    for (body, content_type, want) in [
        ("{not json", "application/json", 400),
        ("{}", "text/plain", 415),
    ] {
        let resp = http
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let b: Value = resp.json().await.unwrap();
        assert_error(status, &b, want, &format!("{content_type} {body}"));
    }
    let huge = format!(
        "{{\"username\": \"x\", \"display_name\": \"{}\"}}",
        "a".repeat(5 * 1024 * 1024)
    );
    let resp = http
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let b: Value = resp.json().await.unwrap();
    assert_eq!(status, 413, "oversized body: {b}");
    assert_eq!(b["code"], "body_too_large");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn device_routes_check_the_credential_and_the_payload() {
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let admin = server.token("admin").await.unwrap();
    let (_, t) = send(
        &base,
        Some(&admin),
        &call(
            Method::POST,
            "/api/v1/enrollment-tokens",
            Some(json!({"label": "t"})),
        ),
    )
    .await;
    let token = t["token"].as_str().unwrap().to_owned();
    let http = http_client();
    let enrolled: Value = http
        .post(format!("{base}/device/v1/enroll"))
        .json(&json!({"v": 1, "token": token, "device": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cred = enrolled["device_credential"].as_str().unwrap().to_owned();
    let id = enrolled["device_id"].as_str().unwrap().to_owned();
    let dev = |body: Value, path: &'static str| {
        let http = http.clone();
        let base = base.clone();
        let cred = cred.clone();
        async move {
            let r = http
                .post(format!("{base}{path}"))
                .bearer_auth(cred)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = dev(
        json!({"v": 1, "device_id": "someone-else"}),
        "/device/v1/sync",
    )
    .await;
    assert_error(s, &b, 403, "sync for another device");
    let (s, b) = dev(json!({"v": 2, "device_id": id}), "/device/v1/sync").await;
    assert_error(s, &b, 400, "unknown version");
    let bad_event = json!({"seq": 0, "at": 1, "status": "checked_in"});
    let (s, b) = dev(
        json!({"v": 1, "device_id": id, "events": [bad_event]}),
        "/device/v1/sync",
    )
    .await;
    assert_error(s, &b, 400, "sequence 0");
    let (s, b) = dev(
        json!({"v": 1, "device_id": id, "events": [{"seq": 1}]}),
        "/device/v1/sync",
    )
    .await;
    assert_error(s, &b, 400, "malformed event");
    let (s, b) = dev(
        json!({"request_id": "r", "device_id": "other", "credential": {"type": "badge", "badge": "1"}, "presented_at": 0}),
        "/device/v1/authorize",
    )
    .await;
    assert_error(s, &b, 403, "authorize for another device");
    let (s, b) = dev(json!({"request_id": "r", "device_id": id, "credential": {"type": "retina"}, "presented_at": 0}), "/device/v1/authorize").await;
    assert_error(s, &b, 400, "unknown credential type");
    let (s, b) = dev(
        json!({"v": 1, "device_id": id, "wait_secs": 0}),
        "/device/v1/sync",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_devices_by_status() {
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let admin = server.token("admin").await.unwrap();
    send(
        &base,
        Some(&admin),
        &call(Method::GET, "/api/v1/users", None),
    )
    .await;
    let (_, t) = send(
        &base,
        Some(&admin),
        &call(
            Method::POST,
            "/api/v1/enrollment-tokens",
            Some(json!({"label": "t"})),
        ),
    )
    .await;
    let r = http_client()
        .post(format!("{base}/device/v1/enroll"))
        .json(&json!({"v": 1, "token": t["token"], "device": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let resp = http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("lanyard_http_requests_total{")
                && l.contains("route=\"/api/v1/users\"")
                && l.contains("status=\"200\"")),
        "{text}"
    );
    assert!(
        text.contains("lanyard_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        text.contains("lanyard_devices{status=\"checked_in\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains(t["token"].as_str().unwrap()),
        "no secrets in metrics"
    );
    server.stop().await.unwrap();
}

/// Every `$ref` in the document, to check none dangles.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref"
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_owned());
                }
                refs(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_with_resolvable_schemas() {
    let server = TestServer::start().await.unwrap();
    let doc: Value = http_client()
        .get(format!("{}/api/v1/openapi.json", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("post", "/api/v1/users"),
        ("get", "/api/v1/users"),
        ("get", "/api/v1/users/{username}"),
        ("post", "/api/v1/users/{username}/badges"),
        ("patch", "/api/v1/users/{username}"),
        ("delete", "/api/v1/users/{username}"),
        ("post", "/api/v1/users/{username}/badges/revoke"),
        ("patch", "/api/v1/launchpads/{id}"),
        ("delete", "/api/v1/launchpads/{id}"),
        ("post", "/api/v1/launchpads"),
        ("get", "/api/v1/launchpads"),
        ("post", "/api/v1/enrollment-tokens"),
        ("get", "/api/v1/devices"),
        ("get", "/api/v1/devices/{id}"),
        ("post", "/api/v1/devices/{id}/check-in"),
        ("post", "/api/v1/devices/{id}/lock"),
        ("post", "/api/v1/devices/{id}/lost"),
        ("post", "/api/v1/devices/{id}/found"),
        ("post", "/api/v1/devices/{id}/retire"),
        ("get", "/api/v1/devices/{id}/activity"),
        ("get", "/api/v1/devices/{id}/activity.csv"),
        ("get", "/api/v1/devices/{id}/commands"),
        ("get", "/api/v1/devices/{id}/mdm-activity"),
        ("post", "/api/v1/devices/{id}/mdm-commands"),
        ("post", "/webhooks/nanomdm"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/audit.csv"),
        ("get", "/api/v1/cart-taps"),
        ("get", "/api/v1/policy"),
        ("patch", "/api/v1/policy"),
        ("post", "/device/v1/enroll"),
        ("post", "/device/v1/sync"),
        ("post", "/device/v1/authorize"),
        ("post", "/launchpad/v1/tap"),
        ("post", "/launchpad/v1/ports"),
        ("post", "/api/v1/attributes"),
        ("get", "/api/v1/attributes"),
        ("put", "/api/v1/devices/{id}/attributes/{name}"),
        ("put", "/api/v1/launchpads/{id}/attributes/{name}"),
        ("get", "/api/v1/workflows"),
        ("post", "/api/v1/workflows"),
        ("get", "/api/v1/workflows/{id}"),
        ("put", "/api/v1/workflows/{id}"),
        ("delete", "/api/v1/workflows/{id}"),
        ("post", "/api/v1/workflows/{id}/clone"),
        ("post", "/api/v1/workflows/{id}/deploy"),
        ("post", "/api/v1/workflows/install-standard"),
        ("get", "/api/v1/workflow-folders"),
        ("get", "/api/v1/rules"),
        ("post", "/api/v1/rules"),
        ("put", "/api/v1/rules/{id}"),
        ("delete", "/api/v1/rules/{id}"),
        ("post", "/api/v1/rules/{id}/move"),
        ("get", "/api/v1/runs"),
        ("get", "/api/v1/runs/{id}"),
        ("get", "/api/v1/devices/{id}/runs"),
        ("get", "/api/v1/emails"),
        ("get", "/api/v1/devices/{id}/journey"),
        ("post", "/api/v1/runs/{id}/cancel"),
        ("patch", "/api/v1/rules/{id}"),
        ("patch", "/api/v1/workflows/{id}"),
        ("post", "/api/v1/workflows/{id}/move"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "User",
        "Device",
        "ErrorBody",
        "SyncRequest",
        "EventRecord",
        "Report",
        "TapResponse",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }
    for scheme in ["api_token", "device_credential", "launchpad_credential"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn custom_attributes_are_typed_role_checked_and_audited() {
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let admin = server.token("admin").await.unwrap();
    let auditor = server.token("auditor").await.unwrap();
    let put = |path: &'static str, body: Value| call(Method::PUT, path, Some(body));
    send(
        &base,
        Some(&admin),
        &call(
            Method::POST,
            "/api/v1/launchpads",
            Some(json!({"id": "cart-1", "name": "C", "ports": 4})),
        ),
    )
    .await;
    let def = call(
        Method::POST,
        "/api/v1/attributes",
        Some(json!({"target": "launchpad", "name": "Floor", "value_type": "int"})),
    );
    let (s, b) = send(&base, Some(&admin), &def).await;
    assert_eq!((s, b["name"].as_str()), (201, Some("Floor")));
    let (s, b) = send(&base, Some(&admin), &def).await;
    assert_error(s, &b, 409, "duplicate attribute");
    // The guide's Launchpad Attributes are built in: creating them finds them there.
    for name in ["Department", "Facility", "Launchpad Manager", "timezone"] {
        let (s, b) = send(
            &base,
            Some(&admin),
            &call(
                Method::POST,
                "/api/v1/attributes",
                Some(json!({"target": "launchpad", "name": name, "value_type": "string"})),
            ),
        )
        .await;
        assert_eq!(
            (s, b["builtin"].as_bool()),
            (200, Some(true)),
            "{name}: {b}"
        );
    }
    // A built-in name for another target or type is taken.
    for taken in [
        json!({"target": "launchpad", "name": "Department", "value_type": "int"}),
        json!({"target": "device", "name": "Department", "value_type": "string"}),
    ] {
        let (s, b) = send(
            &base,
            Some(&admin),
            &call(Method::POST, "/api/v1/attributes", Some(taken.clone())),
        )
        .await;
        assert_eq!(
            (s, b["code"].as_str()),
            (409, Some("builtin_attribute")),
            "{taken}: {b}"
        );
    }
    for bad in [
        json!({"target": "launchpad", "name": "9lives", "value_type": "string"}),
        json!({"target": "launchpad", "name": "Wing", "value_type": "float"}),
        json!({"target": "cart", "name": "Wing", "value_type": "string"}),
    ] {
        let (s, b) = send(
            &base,
            Some(&admin),
            &call(Method::POST, "/api/v1/attributes", Some(bad.clone())),
        )
        .await;
        assert_error(s, &b, 400, &bad.to_string());
    }
    let (s, b) = send(
        &base,
        Some(&admin),
        &put(
            "/api/v1/launchpads/cart-1/attributes/Floor",
            json!({"value": 4}),
        ),
    )
    .await;
    assert_eq!((s, &b), (200, &json!({"Floor": 4})));
    let (s, b) = send(
        &base,
        Some(&admin),
        &put(
            "/api/v1/launchpads/cart-1/attributes/Floor",
            json!({"value": "four"}),
        ),
    )
    .await;
    assert_error(s, &b, 422, "wrong type");
    let (s, b) = send(
        &base,
        Some(&admin),
        &put(
            "/api/v1/launchpads/cart-1/attributes/Wing",
            json!({"value": "A"}),
        ),
    )
    .await;
    assert_error(s, &b, 404, "undefined attribute");
    let (s, b) = send(
        &base,
        Some(&admin),
        &put(
            "/api/v1/launchpads/no-cart/attributes/Floor",
            json!({"value": 1}),
        ),
    )
    .await;
    assert_error(s, &b, 404, "unknown launchpad");
    let (s, b) = send(
        &base,
        Some(&auditor),
        &put(
            "/api/v1/launchpads/cart-1/attributes/Floor",
            json!({"value": 5}),
        ),
    )
    .await;
    assert_error(s, &b, 403, "auditor");
    let (s, b) = send(
        &base,
        Some(&auditor),
        &call(Method::GET, "/api/v1/launchpads/cart-1/attributes", None),
    )
    .await;
    assert_eq!((s, &b), (200, &json!({"Floor": 4})));
    let (s, b) = send(
        &base,
        Some(&admin),
        &put(
            "/api/v1/launchpads/cart-1/attributes/Floor",
            json!({"value": null}),
        ),
    )
    .await;
    assert_eq!((s, &b), (200, &json!({})), "null clears");
    let (_, log) = send(
        &base,
        Some(&auditor),
        &call(Method::GET, "/api/v1/audit", None),
    )
    .await;
    let set = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "attribute.set")
        .unwrap();
    assert_eq!(
        (&set["before"], &set["after"]),
        (&json!({"Floor": 4}), &Value::Null)
    );
    let (s, b) = send(
        &base,
        Some(&auditor),
        &call(Method::GET, "/api/v1/attributes", None),
    )
    .await;
    assert_eq!(s, 200);
    let listed: Vec<(String, bool)> = b
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().to_owned(), d["builtin"] == true))
        .collect();
    assert_eq!(listed.len(), 7, "{b}");
    assert!(listed.contains(&("Department".into(), true)), "{b}");
    assert!(listed.contains(&("Device Home".into(), true)), "{b}");
    assert!(listed.contains(&("Floor".into(), false)), "{b}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_that_number_and_a_real_fraction_is_refused() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    // JSON Schema counts 30.0 as the integer 30; so does the server.
    let (status, body) = admin
        .post(
            "/api/v1/tokens",
            json!({"label": "ci", "role": "auditor", "expires_in_days": 30.0}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin
        .post(
            "/api/v1/tokens",
            json!({"label": "ci", "role": "auditor", "expires_in_days": 30.5}),
        )
        .await;
    assert_error(status, &body, 400, "a fraction");
    assert_eq!(body["code"], "invalid_json");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_policy_is_seen_changed_audited_and_reaches_phones() {
    use lanyard_e2e::harness::Phone;
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let admin = server.admin().await;
    let helpdesk = server.token("helpdesk").await.unwrap();
    let patch = |token: String, body: Value| {
        let req = http_client()
            .patch(format!("{base}/api/v1/policy"))
            .bearer_auth(token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, before) = admin.get("/api/v1/policy").await;
    assert_eq!(s, 200, "{before}");
    let v0 = before["version"].as_u64().unwrap();
    assert_eq!(before["checkout"]["undock_window_secs"], 60);
    assert!(before["emergency_pin"].is_null(), "{before}");

    let token = admin
        .ok("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    phone.sync().await;
    assert_eq!(phone.agent.locker().policy.version, v0);

    // Helpdesk may read it, not change it.
    let (s, b) = patch(helpdesk, json!({"lock_screen_text": "x"})).await;
    assert_error(s, &b, 403, "helpdesk PATCH /api/v1/policy");
    // Every bad field is named at once; nothing changes.
    let (s, b) = patch(
        admin.token.clone(),
        json!({
            "checkout": {"undock_window_secs": 0, "lending_period_secs": 99_999_999},
            "lock_screen_text": "x".repeat(501),
            "app_logouts": [],
            "emergency_pin": {"pin": "12"}
        }),
    )
    .await;
    assert_error(s, &b, 400, "bad policy patch");
    let message = b["message"].as_str().unwrap();
    for field in [
        "checkout.undock_window_secs",
        "checkout.lending_period_secs",
        "lock_screen_text",
        "app_logouts: set by the check-in rules' workflows",
        "emergency_pin.pin",
    ] {
        assert!(message.contains(field), "{field} not named: {message}");
    }
    // A rule a phone would refuse is refused here.
    let (s, b) = patch(
        admin.token.clone(),
        json!({"compliance": [{"condition": {"type": "battery_below_checkout_minimum", "min_percent": 150}, "tiers": [{"delay_secs": 0, "actions": [{"type": "block_checkout"}]}]}]}),
    )
    .await;
    assert_error(s, &b, 422, "battery 150");
    assert!(b["message"].as_str().unwrap().contains("150"), "{b}");
    let (s, b) = patch(admin.token.clone(), json!({"lending_period": 5})).await;
    assert_error(s, &b, 400, "unknown field");
    assert_eq!(admin.get("/api/v1/policy").await.1["version"], v0);

    // A good change: the next version, the PIN kept only as a hash that is never shown.
    let change = json!({
        "checkout": {"undock_window_secs": 90},
        "lock_screen_text": "Return this phone to 4 West",
        "emergency_pin": {"pin": "2468"}
    });
    let (s, after) = patch(admin.token.clone(), change.clone()).await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(after["version"], v0 + 1);
    assert_eq!(after["checkout"]["undock_window_secs"], 90);
    assert_eq!(
        after["checkout"]["lending_period_secs"],
        before["checkout"]["lending_period_secs"]
    );
    assert_eq!(after["emergency_pin"]["set"], true);
    assert_eq!(after["emergency_pin"]["user"]["username"], "emergency");
    assert!(!after.to_string().contains("pbkdf2"), "{after}");
    // The same timings again change nothing: no new version.
    let (s, same) = patch(
        admin.token.clone(),
        json!({"checkout": {"undock_window_secs": 90}}),
    )
    .await;
    assert_eq!((s, same["version"].as_u64()), (200, Some(v0 + 1)), "{same}");

    // Audited, before and after, without the PIN's hash.
    let (_, audit) = admin.get("/api/v1/audit").await;
    let entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "policy.update")
        .unwrap()
        .clone();
    assert_eq!(entry["before"]["checkout"]["undock_window_secs"], 60);
    assert_eq!(entry["after"]["checkout"]["undock_window_secs"], 90);
    assert!(
        !audit.to_string().contains("pbkdf2"),
        "no PIN hash in the audit log"
    );

    // The phone's next sync brings the new version, signed, and the core applies it.
    phone.sync().await;
    let policy = &phone.agent.locker().policy;
    assert_eq!(policy.version, v0 + 1);
    assert_eq!(policy.checkout.undock_window_secs, 90);
    assert_eq!(policy.lock_screen_text, "Return this phone to 4 West");
    assert!(policy.emergency_pin.is_some());

    // The PIN is removed with null.
    let (s, removed) = patch(admin.token.clone(), json!({"emergency_pin": null})).await;
    assert_eq!(s, 200, "{removed}");
    assert!(
        removed["emergency_pin"].is_null() && removed["version"] == v0 + 2,
        "{removed}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn devices_users_and_the_audit_log_can_be_searched_and_filtered() {
    use lanyard_e2e::harness::RawPhone;
    use lanyard_protocol::enroll::DeviceInfo;
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "amoreau", "display_name": "Alice Moreau", "email": "Alice.Moreau@stmary.example"}),
        )
        .await;
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "bokafor", "display_name": "Bob Okafor", "email": "bob@stmary.example"}),
        )
        .await;
    admin
        .ok("/api/v1/users/amoreau/badges", json!({"badge": "0012345"}))
        .await;
    let token = admin
        .ok("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let link = token["link"].as_str().unwrap();
    let device = |n: u32, name: &str| DeviceInfo {
        serial: Some(format!("F2LXK0XXHG{n:02}")),
        udid: Some(format!("00008030-00000000000000{n:02}")),
        name: Some(name.into()),
        ..Default::default()
    };
    let one = RawPhone::enroll(link, device(1, "4 West 100% Spare"))
        .await
        .unwrap();
    let two = RawPhone::enroll(link, device(2, "ICU phone_2"))
        .await
        .unwrap();
    let (s, granted) = one
        .authorize(json!({"type": "badge", "badge": "0012345"}))
        .await;
    assert_eq!(
        (s, granted["type"].as_str()),
        (200, Some("grant_checkout")),
        "{granted}"
    );

    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (q, want) in [
        ("f2lxk0xxhg02", vec![two.id.clone()]), // serial, any case
        ("00008030-0000000000000001", vec![one.id.clone()]), // UDID
        ("icu", vec![two.id.clone()]),          // part of the name
        ("100%", vec![one.id.clone()]),         // a % is a character, not a wildcard
        ("phone_2", vec![two.id.clone()]),
        ("alice.moreau@STMARY.example", vec![one.id.clone()]), // the holder's email
        ("amoreau", vec![one.id.clone()]),                     // the holder
        (one.id.as_str(), vec![one.id.clone()]),
        ("nothing-like-it", vec![]),
    ] {
        let (s, found) = admin
            .get(&format!("/api/v1/devices?q={}", urlencode(q)))
            .await;
        assert_eq!(s, 200, "{found}");
        assert_eq!(ids(&found), want, "q={q}");
    }
    let (s, b) = admin
        .get(&format!("/api/v1/devices?q={}", "x".repeat(129)))
        .await;
    assert_error(s, &b, 400, "a 129-character search");

    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    for (q, want) in [
        ("okafor", vec!["bokafor"]),
        ("STMARY", vec!["amoreau", "bokafor"]),
        ("alice.moreau@", vec!["amoreau"]),
        ("zed", vec![]),
    ] {
        let (_, found) = admin
            .get(&format!("/api/v1/users?q={}", urlencode(q)))
            .await;
        assert_eq!(names(&found), want, "q={q}");
    }

    // The audit log by actor, action (exact or a prefix), target and time.
    let since = lanyard_e2e::harness::now().as_millis();
    admin
        .ok(
            &format!("/api/v1/devices/{}/lost", two.id),
            json!({"reason": "left on the bus"}),
        )
        .await;
    let actions = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, users) = admin.get("/api/v1/audit?action=user.").await;
    let all = actions(&users);
    assert!(
        !all.is_empty() && all.iter().all(|a| a.starts_with("user.")),
        "{all:?}"
    );
    let (_, created) = admin.get("/api/v1/audit?action=user.create").await;
    assert!(actions(&created).iter().all(|a| a == "user.create"));
    assert_eq!(actions(&created).len(), 2);
    let (_, alice) = admin
        .get("/api/v1/audit?target_kind=user&target_id=amoreau")
        .await;
    assert_eq!(actions(&alice), ["user.badge.add", "user.create"]);
    let (_, recent) = admin.get(&format!("/api/v1/audit?since={since}")).await;
    let recent_actions = actions(&recent);
    assert!(
        !recent_actions.is_empty() && !recent_actions.iter().any(|a| a.starts_with("user.")),
        "{recent_actions:?}"
    );
    let (_, by_actor) = admin.get("/api/v1/audit?actor=API-TOKEN").await;
    assert_eq!(
        by_actor["items"].as_array().unwrap().len(),
        admin.get("/api/v1/audit").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        "every entry here was made with an API token"
    );
    let (_, nobody) = admin.get("/api/v1/audit?actor=nobody-at-all").await;
    assert!(nobody["items"].as_array().unwrap().is_empty());
    // The CSV export takes the same filters.
    let csv = http_client()
        .get(format!(
            "{}/api/v1/audit.csv?target_kind=device&target_id={}",
            admin.base, two.id
        ))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(!rows.is_empty(), "{csv}");
    assert!(rows.iter().all(|r| r.contains(&two.id)), "{csv}");

    // A device's activity by time.
    let mut two = two;
    let (s, b) = two
        .send(
            lanyard_protocol::DeviceStatus::CheckedIn,
            None,
            None,
            vec![],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let at = lanyard_e2e::harness::now().as_millis();
    for (query, n) in [
        (format!("since={}", at - 60_000), 1),
        (format!("since={}", at + 60_000), 0),
        (format!("until={}", at - 60_000), 0),
    ] {
        let (s, page) = admin
            .get(&format!("/api/v1/devices/{}/activity?{query}", two.id))
            .await;
        assert_eq!(s, 200, "{page}");
        assert_eq!(
            page["items"].as_array().unwrap().len(),
            n,
            "{query}: {page}"
        );
    }

    // On a server without an MDM, a malformed MDM request still hears what is wrong
    // with it first; a good one hears that no MDM can carry it.
    let path = format!("/api/v1/devices/{}/mdm-commands", one.id);
    let (s, b) = admin
        .post(&path, json!({"command": "enable_lost_mode"}))
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_field")), "{b}");
    assert!(b["message"].as_str().unwrap().contains("message"), "{b}");
    let (s, b) = admin
        .post(
            &path,
            json!({"command": "enable_lost_mode", "message": "Return to 4 West"}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    server.stop().await.unwrap();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
