//! A rule's check-in that reaches the phone after a clinician took it: found by the
//! Python binding tests (a phone enrolled, the Check In rule fired, and a badge tap won
//! the race with the rule's command). The phone keeps its new user and the run says why.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use lanyard_e2e::harness::{Admin, Phone, now};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::{DeviceStatus, DockLocation};
use serde_json::{Value, json};

#[tokio::test]
async fn a_rule_check_in_queued_before_a_tap_never_takes_the_phone_from_its_new_user() {
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
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice Moreau, RN"}),
        )
        .await);
    ok(admin
        .post("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await);
    let wf = ok(admin
        .post(
            "/api/v1/workflows",
            json!({"name": "Rover Check In", "model": "express_checkout",
                "actions": [{"type": "check_in_device", "logout_apps": [{"app": "com.epic.rover", "name": "Epic Rover"}]}]}),
        )
        .await);
    ok(admin
        .post(
            "/api/v1/rules",
            json!({"name": "Check In Rover", "trigger": {"type": "checked_in"},
                "workflows": [wf["id"]], "enabled": true}),
        )
        .await);
    let token = ok(admin
        .post("/api/v1/enrollment-tokens", json!({"label": "race"}))
        .await);
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;

    // The phone reports its check-in (enrollment): the rule's run queues its command...
    phone.sync_step().await;
    let runs_path = format!("/api/v1/devices/{}/runs", phone.id);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, runs) = admin.get(&runs_path).await;
        if runs["items"][0]["steps"][0]["status"] == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{runs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...but before the phone syncs, alice taps and is granted.
    phone
        .agent
        .handle(
            lanyard_agent::Event::Docked {
                location: DockLocation::default(),
            },
            now(),
        )
        .unwrap();
    phone.tap("0012345").await;
    assert_eq!(phone.status(), DeviceStatus::CheckoutPending);

    // The sync brings the rule's check-in: refused, alice keeps the phone.
    phone.sync().await;
    assert_eq!(phone.status(), DeviceStatus::CheckoutPending);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let run = loop {
        let (_, runs) = admin.get(&runs_path).await;
        let run = runs["items"][0].clone();
        if run["state"] != "running" && run["state"] != "pending" {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "{runs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["status"], "skipped", "{run}");
    assert!(
        run["steps"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("refused the check-in"),
        "{run}"
    );
    let (_, commands) = admin
        .get(&format!("/api/v1/devices/{}/commands", phone.id))
        .await;
    let check_in = commands
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "check_in")
        .unwrap();
    assert_eq!(check_in["state"], "superseded", "{commands}");
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(
        (device["status"].as_str(), device["device_user"].as_str()),
        (Some("checkout_pending"), Some("alice"))
    );
    server.stop().await.unwrap();
}
