//! Every answer a real NanoMDM gives, in every order the device's answers can arrive in
//! around it: the server against a NanoMDM double that answers as the recorded real one
//! did (`shared/reference/nanomdm/captures`), with the device's acknowledgement posted
//! before the enqueue call returns, after it, after a NotNow, or as an error. Every run
//! must end with the right command state, exactly one passcode result for the phone,
//! and one enqueue.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use lanyard_e2e::harness::{
    Admin, FakeMdm, MdmAnswer, Phone, fake_nanomdm, mdm_enrolled, mdm_report, plist_b64,
    post_webhook,
};
use lanyard_e2e::{TestServer, http_client};
use serde_json::{Value, json};

struct Rig {
    server: TestServer,
    admin: Admin,
    fake: Arc<FakeMdm>,
    fake_url: String,
    device: String,
    udid: String,
    phone: Phone,
}

async fn rig() -> Rig {
    let (mdm_url, fake) = fake_nanomdm().await;
    let fake_url = mdm_url.clone();
    let server = TestServer::start_with(|c| {
        c.nanomdm_url = Some(mdm_url.parse().unwrap());
        c.nanomdm_api_key = Some("mdm-key".into());
        c.nanomdm_webhook_key = Some("hook-key".into());
    })
    .await
    .unwrap();
    let admin = server.admin().await;
    let token = admin
        .ok("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    let udid = device["udid"].as_str().unwrap().to_owned();
    assert_eq!(
        mdm_enrolled(
            &server.base_url(),
            &udid,
            device["serial"].as_str().unwrap()
        )
        .await,
        200
    );
    Rig {
        server,
        admin,
        fake,
        fake_url,
        device: phone.id.clone(),
        udid,
        phone,
    }
}

impl Rig {
    fn fake_url(&self) -> &str {
        &self.fake_url
    }

    fn admin(&self) -> Admin {
        Admin {
            base: self.admin.base.clone(),
            token: self.admin.token.clone(),
            http: http_client(),
        }
    }

    /// Asks for a Clear Passcode through the admin API (it waits on the enqueue).
    fn clear(&self) -> tokio::task::JoinHandle<(u16, Value)> {
        let admin = self.admin();
        let path = format!("/api/v1/devices/{}/mdm-commands", self.device);
        tokio::spawn(async move {
            admin
                .post(&path, json!({"command": "clear_passcode"}))
                .await
        })
    }

    async fn report(&self, uuid: &str, status: &str) {
        assert_eq!(
            mdm_report(&self.server.base_url(), &self.udid, uuid, status).await,
            200
        );
    }

    async fn state(&self, uuid: &str) -> Value {
        let (_, list) = self
            .admin
            .get(&format!("/api/v1/devices/{}/mdm-commands", self.device))
            .await;
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["command_uuid"] == uuid)
            .cloned()
            .unwrap_or_else(|| panic!("{uuid} not in {list}"))
    }

    /// The passcode results queued for the phone.
    async fn results(&self) -> usize {
        let (_, list) = self
            .admin
            .get(&format!("/api/v1/devices/{}/commands", self.device))
            .await;
        list.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "passcode_clear_result")
            .count()
    }
}

#[derive(Debug, Clone, Copy)]
enum Order {
    /// The device acknowledges while the enqueue call is still open.
    AckDuring,
    /// After the enqueue call returned.
    AckAfter,
    /// NotNow first (a locked phone), then Acknowledged.
    NotNowThenAck,
    /// The device could not do it.
    ErrorAfter,
    /// Acknowledged during the call, then the same answer again and a late NotNow.
    AckDuringThenStragglers,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_answer_in_every_arrival_order_ends_right_with_one_result() {
    let orders = [
        Order::AckDuring,
        Order::AckAfter,
        Order::NotNowThenAck,
        Order::ErrorAfter,
        Order::AckDuringThenStragglers,
    ];
    for answer in [
        MdmAnswer::Pushed,
        MdmAnswer::NoPushCert,
        MdmAnswer::BadDeviceToken,
    ] {
        for order in orders {
            let case = format!("{answer:?} / {order:?}");
            let rig = rig().await;
            *rig.fake.answer.lock().unwrap() = answer;
            let held = matches!(order, Order::AckDuring | Order::AckDuringThenStragglers);
            let release = held.then(|| rig.fake.hold_next());
            let call = rig.clear();
            rig.fake.arrived.notified().await;
            let uuid = rig.fake.commands().last().unwrap().0.clone();
            if held {
                rig.report(&uuid, "Acknowledged").await;
                release.unwrap().send(()).unwrap();
            }
            let (status, sent) = call.await.unwrap();
            assert_eq!(status, 202, "{case}: {sent}");
            let expected_kind = if answer == MdmAnswer::Pushed {
                "sent"
            } else {
                "queued_push_failed"
            };
            assert_eq!(sent["status"], expected_kind, "{case}: {sent}");
            match order {
                Order::AckDuring => {}
                Order::AckAfter => rig.report(&uuid, "Acknowledged").await,
                Order::NotNowThenAck => {
                    rig.report(&uuid, "NotNow").await;
                    assert_eq!(rig.state(&uuid).await["state"], "not_now", "{case}");
                    assert_eq!(rig.results().await, 0, "{case}: nothing settled yet");
                    rig.report(&uuid, "Acknowledged").await;
                }
                Order::ErrorAfter => rig.report(&uuid, "Error").await,
                Order::AckDuringThenStragglers => {
                    rig.report(&uuid, "Acknowledged").await;
                    rig.report(&uuid, "NotNow").await;
                }
            }
            let want = if matches!(order, Order::ErrorAfter) {
                "error"
            } else {
                "acknowledged"
            };
            let state = rig.state(&uuid).await;
            assert_eq!(state["state"], want, "{case}: {state}");
            assert_eq!(state["settled"], true, "{case}");
            assert_eq!(rig.results().await, 1, "{case}: one passcode result");
            assert_eq!(rig.fake.commands().len(), 1, "{case}: queued once");
            rig.server.stop().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_queued_nothing_settles_at_once_with_the_mdms_reason() {
    for (answer, state, needle) in [
        (
            MdmAnswer::UnknownId,
            "unknown_enrollment",
            "push data missing",
        ),
        (MdmAnswer::NotFound, "not_queued", "HTTP 404"),
    ] {
        let rig = rig().await;
        *rig.fake.answer.lock().unwrap() = answer;
        let (status, sent) = rig.clear().await.unwrap();
        assert_eq!(status, 202, "{sent}");
        let uuid = sent["command_uuid"].as_str().unwrap().to_owned();
        assert!(
            sent["detail"].as_str().unwrap().contains(needle),
            "{answer:?}: {sent}"
        );
        let got = rig.state(&uuid).await;
        assert_eq!(got["state"], state, "{answer:?}: {got}");
        assert_eq!(rig.results().await, 1, "the phone hears it did not happen");
        // A device answer for it later (it cannot happen, but if it did) sends nothing
        // more.
        rig.report(&uuid, "Acknowledged").await;
        assert_eq!(rig.results().await, 1);
        rig.server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_leaves_the_mdm_is_marked_and_what_it_waited_on_settles() {
    let rig = rig().await;
    let (_, sent) = rig.clear().await.unwrap();
    let uuid = sent["command_uuid"].as_str().unwrap().to_owned();
    assert_eq!(rig.state(&uuid).await["state"], "queued");
    let mut checkout = plist::Dictionary::new();
    checkout.insert("MessageType".into(), "CheckOut".into());
    let event = json!({"topic": "mdm.CheckOut", "created_at": "2026-11-21T10:00:00Z",
        "checkin_event": {"udid": rig.udid, "enrollment_id": rig.udid, "raw_payload": plist_b64(checkout)}});
    assert_eq!(post_webhook(&rig.server.base_url(), &event).await, 200);

    let (_, device) = rig
        .admin
        .get(&format!("/api/v1/devices/{}", rig.device))
        .await;
    assert!(device["mdm_checked_out_at"].is_i64(), "{device}");
    let (_, out) = rig.admin.get("/api/v1/devices?mdm_checked_out=true").await;
    assert_eq!(out["items"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["items"][0]["id"], rig.device.as_str());
    let got = rig.state(&uuid).await;
    assert_eq!(got["state"], "expired", "{got}");
    assert!(got["detail"].as_str().unwrap().contains("left the MDM"));
    assert_eq!(rig.results().await, 1, "the phone hears at once");
    let (_, events) = rig
        .admin
        .get(&format!("/api/v1/security-events?device_id={}", rig.device))
        .await;
    assert!(events.to_string().contains("mdm_checkout"), "{events}");
    // Nothing more goes to it.
    let (status, body) = rig.clear().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("left the MDM"));
    assert_eq!(rig.fake.commands().len(), 1);

    // Its management profile installed again (not erased): the same phone, managed.
    let serial = device["serial"].as_str().unwrap();
    assert_eq!(
        mdm_enrolled(&rig.server.base_url(), &rig.udid, serial).await,
        200
    );
    let (_, device) = rig
        .admin
        .get(&format!("/api/v1/devices/{}", rig.device))
        .await;
    assert!(device["mdm_checked_out_at"].is_null(), "{device}");
    let (status, _) = rig.clear().await.unwrap();
    assert_eq!(status, 202);
    rig.server.stop().await.unwrap();
}

/// The same database opened with a clock eleven minutes on, as a second server process
/// would see it when its sweep runs.
fn eleven_minutes_later(
    rig: &Rig,
) -> lanyard_server::state::AppState<lanyard_server::storage::sqlite::SqliteStorage> {
    minutes_later(rig, 11)
}

/// The same database opened with a clock `minutes` on.
fn minutes_later(
    rig: &Rig,
    minutes: i64,
) -> lanyard_server::state::AppState<lanyard_server::storage::sqlite::SqliteStorage> {
    let mut config = rig.server.config();
    config.nanomdm_url = Some(rig.fake_url().parse().unwrap());
    config.nanomdm_api_key = Some("mdm-key".into());
    let wall = lanyard_server::state::system_clock();
    let later: lanyard_server::state::Clock =
        Arc::new(move || lanyard_protocol::Timestamp(wall().as_millis() + minutes * 60 * 1000));
    lanyard_server::open_state(&config, later).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_command_whose_push_failed_is_pushed_again_not_queued_again() {
    let rig = rig().await;
    *rig.fake.answer.lock().unwrap() = MdmAnswer::NoPushCert;
    let (status, sent) = rig.clear().await.unwrap();
    assert_eq!(
        (status, sent["status"].as_str()),
        (202, Some("queued_push_failed"))
    );
    let pushes = || rig.fake.pushes.load(std::sync::atomic::Ordering::SeqCst);
    // Not yet: the push failed a moment ago.
    let now = minutes_later(&rig, 0);
    assert_eq!(lanyard_server::mdm::push_again(&now).await.unwrap(), 0);
    assert_eq!(pushes(), 0);
    // Three minutes on (the certificate was uploaded meanwhile): pushed, once.
    let later = minutes_later(&rig, 3);
    assert_eq!(lanyard_server::mdm::push_again(&later).await.unwrap(), 1);
    assert_eq!(pushes(), 1);
    assert_eq!(
        lanyard_server::mdm::push_again(&later).await.unwrap(),
        0,
        "done"
    );
    assert_eq!(rig.fake.commands().len(), 1, "never queued again");
    let (_, log) = rig
        .admin
        .get(&format!("/api/v1/devices/{}/mdm-activity", rig.device))
        .await;
    assert!(log.to_string().contains("\"pushed\""), "{log}");
    rig.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_of_a_clear_the_phone_confirms_settles_as_cleared() {
    let mut rig = rig().await;
    let (_, sent) = rig.clear().await.unwrap();
    let uuid = sent["command_uuid"].as_str().unwrap().to_owned();
    // The passcode went (the device ran the command); the webhook saying so was lost.
    // The phone itself reports it has no passcode.
    rig.phone
        .agent
        .handle(
            lanyard_agent::Event::PlatformFacts(lanyard_agent::FactsUpdate {
                passcode_present: Some(false),
                ..Default::default()
            }),
            lanyard_e2e::harness::now(),
        )
        .unwrap();
    rig.phone.sync().await;
    let late = eleven_minutes_later(&rig);
    assert_eq!(
        lanyard_server::mdm::probe_unanswered(&late).await.unwrap(),
        1
    );
    let (probe, _) = rig.fake.commands().last().unwrap().clone();
    rig.report(&probe, "Acknowledged").await;
    let got = rig.state(&uuid).await;
    assert_eq!(got["state"], "acknowledged", "{got}");
    assert!(
        got["detail"]
            .as_str()
            .unwrap()
            .contains("reports no passcode"),
        "{got}"
    );
    assert_eq!(rig.results().await, 1);
    rig.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_is_found_out_by_a_probe_not_left_until_the_deadline() {
    let rig = rig().await;
    let (_, sent) = rig.clear().await.unwrap();
    let uuid = sent["command_uuid"].as_str().unwrap().to_owned();
    // The device answered, but NanoMDM's webhook never reached the server (and NanoMDM
    // does not resend it). Eleven minutes later, the sweep (here: the same database
    // opened with a clock eleven minutes on, as a second server process would) probes.
    let late = eleven_minutes_later(&rig);
    assert_eq!(
        lanyard_server::mdm::probe_unanswered(&late).await.unwrap(),
        1
    );
    assert_eq!(
        lanyard_server::mdm::probe_unanswered(&late).await.unwrap(),
        0,
        "one probe per command"
    );
    let (probe, kind) = rig.fake.commands().last().unwrap().clone();
    assert_eq!(kind, "DeviceInformation");
    assert_eq!(
        rig.state(&uuid).await["state"],
        "queued",
        "not settled by the probe alone"
    );

    // The device answers the probe: what was queued before it was answered too.
    rig.report(&probe, "Acknowledged").await;
    let got = rig.state(&uuid).await;
    assert_eq!(got["state"], "expired", "{got}");
    assert!(
        got["detail"].as_str().unwrap().contains("lost webhook"),
        "{got}"
    );
    assert_eq!(rig.results().await, 1, "the phone hears, and asks again");
    // The lost acknowledgement turning up after all changes nothing more.
    rig.report(&uuid, "Acknowledged").await;
    assert_eq!(rig.results().await, 1);
    rig.server.stop().await.unwrap();
}

/// Waits for a workflow run to finish; returns it.
async fn finished_run(rig: &Rig, run_id: i64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, run) = rig.admin.get(&format!("/api/v1/runs/{run_id}")).await;
        if run["state"] == "succeeded" || run["state"] == "failed" {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "{run:#}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_step_waits_for_the_device_whatever_became_of_the_push() {
    let cases = [
        (MdmAnswer::Pushed, Order::AckDuring),
        (MdmAnswer::NoPushCert, Order::AckDuring),
        (MdmAnswer::BadDeviceToken, Order::AckAfter),
        (MdmAnswer::NoPushCert, Order::ErrorAfter),
        (MdmAnswer::UnknownId, Order::AckAfter),
    ];
    for (answer, order) in cases {
        let case = format!("{answer:?} / {order:?}");
        let rig = rig().await;
        rig.admin
            .ok(
                "/api/v1/workflows",
                json!({"name": "Restart Me", "model": "device_enrollment_program",
                    "actions": [{"type": "reboot"}, {"type": "set_attribute", "attribute": "Device Home", "value": "4 West"}]}),
            )
            .await;
        *rig.fake.answer.lock().unwrap() = answer;
        let held = matches!(order, Order::AckDuring);
        let release = held.then(|| rig.fake.hold_next());
        let deployed = rig
            .admin
            .ok(
                "/api/v1/workflows/restart-me/deploy",
                json!({"devices": [rig.device]}),
            )
            .await;
        let run_id = deployed["runs"][0].as_i64().unwrap();
        rig.fake.arrived.notified().await;
        let uuid = rig.fake.commands().last().unwrap().0.clone();
        if held {
            rig.report(&uuid, "Acknowledged").await;
            release.unwrap().send(()).unwrap();
        }
        match (answer.queued(), order) {
            (true, Order::AckAfter) => rig.report(&uuid, "Acknowledged").await,
            (true, Order::ErrorAfter) => rig.report(&uuid, "Error").await,
            _ => {}
        }
        let run = finished_run(&rig, run_id).await;
        let step = run["steps"][0].to_string();
        match (answer.queued(), order) {
            (true, Order::ErrorAfter) => {
                assert_eq!(run["state"], "failed", "{case}: {run:#}");
                assert!(step.contains("error"), "{case}: {step}");
                // The step after the failed one is not left pending.
                assert_eq!(run["steps"][1]["status"], "skipped", "{case}: {run:#}");
                assert_eq!(
                    run["steps"][1]["detail"], "not run: step 1 (reboot) failed",
                    "{case}: {run:#}"
                );
            }
            (true, _) => assert_eq!(run["state"], "succeeded", "{case}: {run:#}"),
            (false, _) => {
                assert_eq!(run["state"], "failed", "{case}: {run:#}");
                assert!(step.contains("push data missing"), "{case}: {step}");
                assert_eq!(run["steps"][1]["status"], "skipped", "{case}: {run:#}");
            }
        }
        assert_eq!(rig.fake.commands().len(), 1, "{case}: queued once");
        rig.server.stop().await.unwrap();
    }
}
