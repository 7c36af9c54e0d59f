//! The trust boundary over HTTP: a phone holding a real credential says what it likes,
//! and the server mirrors only what it can check — each refusal a security event.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_e2e::TestServer;
use lanyard_e2e::harness::{Admin, Phone, RawPhone};
use lanyard_protocol::enroll::DeviceInfo;
use lanyard_protocol::events::{Cause, FactsReport, Report, Transition};
use lanyard_protocol::{DeviceStatus, DockLocation, GrantId, UnlockMethod};
use serde_json::{Value, json};

/// Cart 1 (10 ports) with the standard set, alice (limit 1) and her badge; returns the
/// enrollment link and the cart's reader credential.
async fn setup(admin: &Admin) -> (String, String) {
    let cart = admin
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
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice", "device_limit": 1}),
        )
        .await;
    admin
        .ok("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
    let token = admin
        .ok(
            "/api/v1/enrollment-tokens",
            json!({"label": "cart 1", "launchpad_id": "cart-1"}),
        )
        .await;
    (
        token["link"].as_str().unwrap().to_owned(),
        cart["credential"].as_str().unwrap().to_owned(),
    )
}

fn device(n: u32) -> DeviceInfo {
    DeviceInfo {
        serial: Some(format!("ROGUE{n:07}")),
        udid: Some(format!("00008030-{:016X}", 0xDEAD_0000 + u64::from(n))),
        model: Some("iPhone15,2".into()),
        ..DeviceInfo::default()
    }
}

fn dock(cart: &str, port: u32) -> Report {
    Report::Docked {
        location: DockLocation {
            launchpad: Some(cart.into()),
            port: Some(port),
        },
    }
}

fn battery(percent: u8) -> Report {
    Report::Facts(FactsReport {
        battery_percent: Some(percent),
        ..FactsReport::default()
    })
}

async fn device_row(admin: &Admin, id: &str) -> Value {
    let (status, body) = admin.get(&format!("/api/v1/devices/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn security_kinds(admin: &Admin, id: &str) -> Vec<String> {
    let (status, body) = admin
        .get(&format!("/api/v1/security-events?device_id={id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn cart_tap(server: &TestServer, credential: &str, badge: &str) -> Value {
    let r = lanyard_e2e::http_client()
        .post(format!("{}/launchpad/v1/tap", server.base_url()))
        .bearer_auth(credential)
        .json(&json!({ "badge": badge }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_the_server_never_granted_is_refused_and_recorded() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let (link, reader) = setup(&admin).await;
    let mut rogue = RawPhone::enroll(&link, device(1)).await.unwrap();
    let (status, body) = rogue
        .send(
            DeviceStatus::CheckedIn,
            None,
            None,
            vec![dock("cart-1", 3), battery(50)],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // A made-up grant id: the phone says alice took it.
    let granted = Transition {
        from: DeviceStatus::CheckedIn,
        to: DeviceStatus::CheckoutPending,
        cause: Cause::Granted {
            grant_id: GrantId::new("g-made-up"),
            method: UnlockMethod::PhoneBadge,
        },
    };
    let (status, body) = rogue
        .send(
            DeviceStatus::CheckoutPending,
            Some("alice"),
            Some(granted),
            vec![],
        )
        .await;
    assert_eq!(
        status, 200,
        "records are stored (the phone's history): {body}"
    );
    assert_eq!(body["acked_seq"], 2);
    let row = device_row(&admin, &rogue.id).await;
    assert_eq!(row["status"], "checked_in", "{row}");
    assert!(row["device_user"].is_null(), "{row}");
    // The phone then says alice holds it, with no grant at all.
    let (status, _) = rogue
        .send(DeviceStatus::CheckedOut, Some("alice"), None, vec![])
        .await;
    assert_eq!(status, 200);
    let row = device_row(&admin, &rogue.id).await;
    assert_eq!(row["status"], "checked_in", "{row}");
    assert!(row["device_user"].is_null(), "{row}");
    assert_eq!(
        security_kinds(&admin, &rogue.id).await,
        ["user_not_granted", "unknown_grant"]
    );
    // No automation ran for the forged checkout (Express Checkout triggers on a grant).
    let (_, runs) = admin
        .get(&format!("/api/v1/devices/{}/runs", rogue.id))
        .await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 0, "{runs}");
    // The journey shows the refusals.
    let (_, journey) = admin
        .get(&format!("/api/v1/devices/{}/journey", rogue.id))
        .await;
    assert!(
        journey
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == "security" && e["reference"] == "seq 2"),
        "{journey}"
    );
    // Alice is not held by the forged claims: her badge at the cart gets a phone (the
    // rogue one, the only one docked — it is in the cart).
    let tap = cart_tap(&server, &reader, "0012345").await;
    assert_eq!(tap["beep"], 1, "{tap}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dock_must_name_a_real_free_port_and_values_must_be_in_range() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let (link, reader) = setup(&admin).await;
    let mut real = Phone::enroll(&link).await;
    real.dock("cart-1", 1, 60).await;
    let mut rogue = RawPhone::enroll(&link, device(2)).await.unwrap();

    // Port 1 holds the real phone: a claim on it (with a full battery, to win the next
    // tap) is refused, and so are a port out of range, an unknown cart and battery 255.
    for (reports, kind) in [
        (vec![dock("cart-1", 1), battery(100)], "port_taken"),
        (vec![dock("cart-1", 99)], "invalid_dock"),
        (vec![dock("cart-nowhere", 1)], "invalid_dock"),
        (vec![battery(255)], "value_out_of_range"),
    ] {
        let (status, body) = rogue
            .send(DeviceStatus::CheckedIn, None, None, reports)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            security_kinds(&admin, &rogue.id)
                .await
                .first()
                .map(String::as_str),
            Some(kind)
        );
    }
    assert_eq!(security_kinds(&admin, &rogue.id).await.len(), 4);
    let row = device_row(&admin, &rogue.id).await;
    assert!(row["last_port"].is_null(), "{row}");
    assert_eq!(row["battery"], 100, "an in-range value is kept: {row}");
    // The next tap at the cart hands out the real phone, still alone in port 1.
    let tap = cart_tap(&server, &reader, "0012345").await;
    assert_eq!(tap["beep"], 1, "{tap}");
    assert_eq!(tap["device_id"], real.id.as_str(), "{tap}");
    assert_eq!(tap["port"], 1, "{tap}");
    server.stop().await.unwrap();
}

/// A server with a (fake) NanoMDM and its webhook key, cart 1 and a multi-use token.
async fn mdm_server() -> (
    TestServer,
    Admin,
    String,
    std::sync::Arc<lanyard_e2e::harness::FakeMdm>,
) {
    let (mdm_url, fake) = lanyard_e2e::harness::fake_nanomdm().await;
    let server = TestServer::start_with(|c| {
        c.nanomdm_url = Some(mdm_url.parse().unwrap());
        c.nanomdm_api_key = Some("mdm-key".into());
        c.nanomdm_webhook_key = Some("hook-key".into());
    })
    .await
    .unwrap();
    let admin = server.admin().await;
    let (link, _) = setup(&admin).await;
    (server, admin, link, fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udid_belongs_to_one_phone_and_mdm_commands_go_only_where_the_mdm_vouched() {
    let (server, admin, link, fake) = mdm_server().await;
    let victim_info = device(10);
    let udid = victim_info.udid.clone().unwrap();
    let serial = victim_info.serial.clone().unwrap();
    // The victim phone enrolled in the MDM (Authenticate), then in Lanyard.
    let victim = RawPhone::enroll(&link, victim_info.clone()).await.unwrap();
    assert_eq!(
        lanyard_e2e::harness::mdm_enrolled(&admin.base, &udid, &serial).await,
        200
    );
    let row = device_row(&admin, &victim.id).await;
    assert_eq!(row["mdm_udid"], udid.as_str(), "{row}");

    // A rogue phone claims the victim's UDID (lowercased, as a careless or crafty
    // client might): refused — the MDM says that UDID is another serial number — and
    // the attempt is on the victim's record.
    let mut rogue_info = device(11);
    rogue_info.udid = Some(udid.to_lowercase());
    let (status, body) = RawPhone::enroll(&link, rogue_info.clone())
        .await
        .err()
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("udid_serial_mismatch")),
        "{body}"
    );
    // With the victim's serial too (a copy of everything the phone shows): still refused,
    // the MDM has not enrolled the phone again since.
    rogue_info.serial = Some(serial.clone());
    let (status, body) = RawPhone::enroll(&link, rogue_info).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("udid_in_use")),
        "{body}"
    );
    assert_eq!(
        security_kinds(&admin, &victim.id).await,
        ["udid_in_use", "udid_serial_mismatch"]
    );
    assert_eq!(
        device_row(&admin, &victim.id).await["mdm_udid"],
        udid.as_str(),
        "the victim keeps its UDID"
    );
    // Malformed UDIDs are refused outright.
    let mut bad = device(12);
    bad.udid = Some("victim-udid".into());
    let (status, body) = RawPhone::enroll(&link, bad).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_field")),
        "{body}"
    );

    // A phone whose UDID the MDM never reported gets no MDM command: its passcode clear
    // request is logged as impossible, and nothing is enqueued.
    let mut unvouched = RawPhone::enroll(&link, device(13)).await.unwrap();
    let before = fake.commands().len();
    let (status, _) = unvouched
        .send(
            DeviceStatus::CheckedIn,
            None,
            None,
            vec![Report::PasscodeClearRequested { attempt: 1 }],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        fake.commands().len(),
        before,
        "nothing sent to an unvouched UDID"
    );
    let (_, log) = admin
        .get(&format!("/api/v1/devices/{}/mdm-activity", unvouched.id))
        .await;
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["cannot_send"], "{log}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_the_mdm_enrolled_again_replaces_its_ghost() {
    let (server, admin, link, _fake) = mdm_server().await;
    let info = device(20);
    let (udid, serial) = (info.udid.clone().unwrap(), info.serial.clone().unwrap());
    assert_eq!(
        lanyard_e2e::harness::mdm_enrolled(&admin.base, &udid, &serial).await,
        200
    );
    let ghost = RawPhone::enroll(&link, info.clone()).await.unwrap();
    assert_eq!(
        device_row(&admin, &ghost.id).await["mdm_udid"],
        udid.as_str()
    );
    // IT tagged the phone.
    admin
        .ok(
            "/api/v1/attributes",
            json!({"target": "device", "name": "Asset Tag", "value_type": "string"}),
        )
        .await;
    let r = admin
        .http
        .put(format!(
            "{}/api/v1/devices/{}/attributes/Asset%20Tag",
            admin.base, ghost.id
        ))
        .bearer_auth(&admin.token)
        .json(&json!({"value": "SMH-00417"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The phone is erased (Provisioning) and enrolls in the MDM again, then in Lanyard.
    assert_eq!(
        lanyard_e2e::harness::mdm_enrolled(&admin.base, &udid, &serial).await,
        200
    );
    let phone = RawPhone::enroll(&link, info).await.unwrap();
    // What IT set on the old record is handed on, and the audit log links the two.
    let (_, attrs) = admin
        .get(&format!("/api/v1/devices/{}/attributes", phone.id))
        .await;
    assert_eq!(attrs["Asset Tag"], "SMH-00417", "{attrs}");
    let (_, audit) = admin
        .get(&format!(
            "/api/v1/audit?action=device.inherited&target_id={}",
            phone.id
        ))
        .await;
    assert_eq!(
        audit["items"][0]["after"]["replaces"],
        ghost.id.as_str(),
        "{audit}"
    );
    let old = device_row(&admin, &ghost.id).await;
    assert_eq!(old["admin_state"], "retired", "{old}");
    assert!(old["mdm_udid"].is_null(), "{old}");
    assert!(!old["docked"].as_bool().unwrap(), "{old}");
    assert_eq!(
        device_row(&admin, &phone.id).await["mdm_udid"],
        udid.as_str()
    );
    server.stop().await.unwrap();
}

async fn delete(admin: &Admin, path: &str) -> (u16, Value) {
    let r = admin
        .http
        .delete(format!("{}{path}", admin.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_credential_can_be_listed_and_revoked() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let (link, reader) = setup(&admin).await;

    // An API token made through the API works, shows its last use, and stops at revoke.
    let made = admin
        .ok(
            "/api/v1/tokens",
            json!({"role": "auditor", "label": "SIEM export", "expires_in_days": 30}),
        )
        .await;
    let auditor = Admin {
        base: admin.base.clone(),
        token: made["token"].as_str().unwrap().to_owned(),
        http: lanyard_e2e::http_client(),
    };
    assert_eq!(auditor.get("/api/v1/audit").await.0, 200);
    let (_, tokens) = admin.get("/api/v1/tokens").await;
    let listed = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == made["id"])
        .unwrap()
        .clone();
    assert!(listed["last_used_at"].is_i64(), "{listed}");
    assert!(listed["expires_at"].is_i64(), "{listed}");
    assert!(
        listed.get("token").is_none()
            && !tokens.to_string().contains(made["token"].as_str().unwrap())
    );
    let (status, _) = delete(&admin, &format!("/api/v1/tokens/{}", made["id"])).await;
    assert_eq!(status, 200);
    assert_eq!(auditor.get("/api/v1/audit").await.0, 401);

    // An enrollment token stops enrolling once revoked.
    let (_, enrollment) = admin.get("/api/v1/enrollment-tokens").await;
    let id = enrollment[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = delete(&admin, &format!("/api/v1/enrollment-tokens/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["revoked_at"].is_i64());
    let (status, _) = RawPhone::enroll(&link, device(30)).await.err().unwrap();
    assert_eq!(status, 401);

    // A cart reader's credential: rotated (the old one stops), then revoked.
    let reader_status = |credential: &str| {
        let (base, credential) = (server.base_url(), credential.to_owned());
        async move {
            lanyard_e2e::http_client()
                .post(format!("{base}/launchpad/v1/ports"))
                .bearer_auth(credential)
                .json(&json!({"port": 1, "docked": false}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(reader_status(&reader).await, 200);
    let rotated = admin
        .ok("/api/v1/launchpads/cart-1/credential", json!({}))
        .await;
    let new_reader = rotated["credential"].as_str().unwrap().to_owned();
    assert_eq!(reader_status(&reader).await, 401);
    assert_eq!(reader_status(&new_reader).await, 200);
    let (status, _) = delete(&admin, "/api/v1/launchpads/cart-1/credential").await;
    assert_eq!(status, 204);
    assert_eq!(reader_status(&new_reader).await, 401);

    // Every change is in the audit log.
    let (_, audit) = admin.get("/api/v1/audit?limit=20").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for action in [
        "api_token.create",
        "api_token.revoke",
        "enrollment_token.revoke",
        "launchpad.credential_rotate",
        "launchpad.credential_revoke",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_phone_changes_nothing_and_a_retired_one_is_shut_out() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let (link, _) = setup(&admin).await;
    let mut lost = RawPhone::enroll(&link, device(40)).await.unwrap();
    let (status, _) = lost
        .send(
            DeviceStatus::CheckedIn,
            None,
            None,
            vec![dock("cart-1", 4), battery(80)],
        )
        .await;
    assert_eq!(status, 200);
    admin
        .ok(
            &format!("/api/v1/devices/{}/lost", lost.id),
            json!({"reason": "not returned after the night shift"}),
        )
        .await;
    // It still syncs (to hear what IT sends it), but what it says is not applied.
    let (status, body) = lost
        .send(
            DeviceStatus::CheckedIn,
            None,
            None,
            vec![Report::Undocked, battery(20)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acked_seq"], 2);
    let row = device_row(&admin, &lost.id).await;
    assert_eq!(
        (row["battery"].as_u64(), row["docked"].as_bool()),
        (Some(80), Some(true)),
        "{row}"
    );
    assert_eq!(
        security_kinds(&admin, &lost.id).await,
        ["out_of_service_contact"]
    );

    // Retired: it collects its Unenroll once, then its credential is refused.
    let mut retired = RawPhone::enroll(&link, device(41)).await.unwrap();
    admin
        .ok(
            &format!("/api/v1/devices/{}/retire", retired.id),
            json!({"reason": "cracked screen"}),
        )
        .await;
    let (status, body) = retired
        .send(DeviceStatus::CheckedIn, None, None, vec![])
        .await;
    assert_eq!(status, 200, "{body}");
    let commands = body["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 1, "{body}");
    let envelope: Value = serde_json::from_str(commands[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["payload"]["type"], "unenroll");
    let (status, _) = retired
        .sync_body(json!({"v": 1, "device_id": retired.id, "events": [],
            "handled_commands": [envelope["command_id"]]}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = retired
        .send(DeviceStatus::CheckedIn, None, None, vec![])
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        security_kinds(&admin, &retired.id)
            .await
            .contains(&"revoked_credential_used".to_owned())
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badge_guessing_is_throttled_per_phone_and_per_reader() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let (link, reader) = setup(&admin).await;
    let phone = RawPhone::enroll(&link, device(50)).await.unwrap();
    let badge = |b: &str| json!({"type": "badge", "badge": b});
    for n in 0..10 {
        let (status, answer) = phone.authorize(badge(&format!("guess-{n}"))).await;
        assert_eq!(status, 200);
        assert_eq!(answer["code"], "badge_not_found", "{answer}");
    }
    // Past the limit, even alice's real badge is refused: the guesser learns nothing.
    let (_, answer) = phone.authorize(badge("0012345")).await;
    assert_eq!(answer["code"], "too_many_attempts", "{answer}");
    assert_eq!(
        security_kinds(&admin, &phone.id).await,
        ["too_many_failures"]
    );
    // Another phone is not affected.
    let other = RawPhone::enroll(&link, device(51)).await.unwrap();
    let (_, answer) = other.authorize(badge("0012345")).await;
    assert_eq!(answer["type"], "grant_checkout", "{answer}");

    // A cart reader: 30 unknown badges, then it beeps 3 for everyone.
    for n in 0..30 {
        assert_eq!(
            cart_tap(&server, &reader, &format!("guess-{n}")).await["beep"],
            2
        );
    }
    let tap = cart_tap(&server, &reader, "0012345").await;
    assert_eq!(tap["beep"], 3, "{tap}");
    let (_, events) = admin
        .get("/api/v1/security-events?launchpad_id=cart-1")
        .await;
    assert_eq!(events["items"][0]["kind"], "too_many_failures", "{events}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_username_costs_what_a_wrong_password_costs() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let (link, _) = setup(&admin).await;
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "bob", "display_name": "Bob", "password": "correct horse battery"}),
        )
        .await;
    let phone = RawPhone::enroll(&link, device(60)).await.unwrap();
    let timed = |username: &'static str| {
        let phone = &phone;
        async move {
            let started = std::time::Instant::now();
            let (_, answer) = phone
                .authorize(
                    json!({"type": "password", "username": username, "password": "wrong-one"}),
                )
                .await;
            assert_eq!(answer["code"], "invalid_credentials", "{answer}");
            started.elapsed()
        }
    };
    // Interleaved, the median of three each (below the lockout's five free attempts).
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        known.push(timed("bob").await);
        unknown.push(timed("nobody-by-that-name").await);
    }
    known.sort();
    unknown.sort();
    // Before: 37 ms against 4 ms. Both now run the same slow check.
    assert!(
        unknown[1] * 2 >= known[1],
        "unknown {unknown:?} vs known {known:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_taken_once_and_only_while_fresh() {
    let (server, admin, link, _fake) = mdm_server().await;
    let info = device(70);
    let (udid, serial) = (info.udid.clone().unwrap(), info.serial.clone().unwrap());
    let phone = RawPhone::enroll(&link, info).await.unwrap();
    let post = |body: String, sig: String| {
        let base = admin.base.clone();
        async move {
            let r = lanyard_e2e::http_client()
                .post(format!("{base}/webhooks/nanomdm"))
                .header("x-hmac-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let mut update = plist::Dictionary::new();
    update.insert("MessageType".into(), "TokenUpdate".into());
    update.insert("UnlockToken".into(), plist::Value::Data(vec![0x5A; 16]));
    let event = json!({"topic": "mdm.TokenUpdate",
        "checkin_event": {"udid": udid, "raw_payload": lanyard_e2e::harness::plist_b64(update)}});
    assert_eq!(
        lanyard_e2e::harness::mdm_enrolled(&admin.base, &udid, &serial).await,
        200
    );
    let (body, sig) = lanyard_e2e::harness::signed_webhook(&event);
    // The same signed POST three times: taken once.
    for n in 0..3 {
        let (status, answer) = post(body.clone(), sig.clone()).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["duplicate"].as_bool().unwrap_or(false),
            n > 0,
            "{answer}"
        );
    }
    let (_, log) = admin
        .get(&format!("/api/v1/devices/{}/mdm-activity", phone.id))
        .await;
    let updates = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "token_update")
        .count();
    assert_eq!(
        updates, 2,
        "the enrollment's and the one above, not its replays: {log}"
    );
    // A correctly signed event made an hour ago (a captured POST replayed later).
    let mut old = event.clone();
    old["event_id"] = json!("captured-1");
    old["created_at"] = json!("2026-12-01T07:41:10.607700409Z");
    let body = old.to_string();
    let sig = lanyard_e2e::harness::sign_webhook_body(&body);
    let (status, answer) = post(body, sig).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("stale_webhook")),
        "{answer}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_check_in_is_last_seen_not_a_row() {
    let (server, admin, link, _fake) = mdm_server().await;
    let info = device(80);
    let (udid, serial) = (info.udid.clone().unwrap(), info.serial.clone().unwrap());
    let phone = RawPhone::enroll(&link, info).await.unwrap();
    assert_eq!(
        lanyard_e2e::harness::mdm_enrolled(&admin.base, &udid, &serial).await,
        200
    );
    let before = admin
        .get(&format!("/api/v1/devices/{}/mdm-activity", phone.id))
        .await
        .1;
    let mut idle = plist::Dictionary::new();
    idle.insert("Status".into(), "Idle".into());
    for _ in 0..5 {
        let event = json!({"topic": "mdm.Connect", "acknowledge_event": {"udid": udid,
            "status": "Idle", "raw_payload": lanyard_e2e::harness::plist_b64(idle.clone())}});
        assert_eq!(
            lanyard_e2e::harness::post_webhook(&admin.base, &event).await,
            200
        );
    }
    let after = admin
        .get(&format!("/api/v1/devices/{}/mdm-activity", phone.id))
        .await
        .1;
    assert_eq!(before, after, "no row per Idle check-in");
    assert!(device_row(&admin, &phone.id).await["mdm_last_seen"].is_i64());
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_mdm_only_an_admins_re_enrollment_token_replaces_a_phone() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let (link, _reader) = setup(&admin).await;
    let info = device(70);
    let old = RawPhone::enroll(&link, info.clone()).await.unwrap();
    admin
        .ok(
            "/api/v1/attributes",
            json!({"target": "device", "name": "Asset Tag", "value_type": "string"}),
        )
        .await;
    let r = admin
        .http
        .put(format!(
            "{}/api/v1/devices/{}/attributes/Asset%20Tag",
            admin.base, old.id
        ))
        .bearer_auth(&admin.token)
        .json(&json!({"value": "SMH-00070"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An ordinary token cannot take a phone's identity: refused, and the way out named.
    let (status, body) = RawPhone::enroll(&link, info.clone()).await.err().unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("udid_in_use")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("re-enrollment token"),
        "{body}"
    );
    // Nor can a re-enrollment token take a UDID with another serial number.
    let token = admin
        .ok(
            "/api/v1/enrollment-tokens",
            json!({"label": "re-enroll 4W", "launchpad_id": "cart-1", "uses": 2, "replaces_existing": true}),
        )
        .await;
    let relink = token["link"].as_str().unwrap();
    let mut other = info.clone();
    other.serial = Some("ROGUE9999999".into());
    let (status, _) = RawPhone::enroll(relink, other).await.err().unwrap();
    assert_eq!(status, 409);
    // The erased phone with the admin's re-enrollment token replaces its old record.
    let new = RawPhone::enroll(relink, info).await.unwrap();
    let old_row = device_row(&admin, &old.id).await;
    assert_eq!(old_row["admin_state"], "retired", "{old_row}");
    let (_, attrs) = admin
        .get(&format!("/api/v1/devices/{}/attributes", new.id))
        .await;
    assert_eq!(attrs["Asset Tag"], "SMH-00070", "{attrs}");
    let (_, audit) = admin
        .get("/api/v1/audit?action=enrollment_token.create")
        .await;
    assert!(
        audit.to_string().contains("\"replaces_existing\":true"),
        "{audit}"
    );
    server.stop().await.unwrap();
}
