//! Seed 000 and 001's journeys with the standard set installed: a real server with a
//! fake NanoMDM, real agents over HTTP, automation rules deploying workflows on each
//! status change, and every run's steps read back through the admin API.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashSet;
use std::time::Duration;

use lanyard_agent::Event;
use lanyard_e2e::harness::{
    Admin, FakeMdm, Phone, SmtpSink, authorize_request, fake_nanomdm, mdm_enrolled, mdm_report, now,
};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::{DeviceStatus, DockLocation, Password, Timestamp};
use serde_json::{Value, json};

struct Rig {
    server: TestServer,
    admin: Admin,
    phone: Phone,
    udid: String,
    fake: std::sync::Arc<FakeMdm>,
    /// Commands already answered by the test.
    answered: HashSet<String>,
}

async fn rig() -> Rig {
    rig_with(None).await
}

async fn rig_with(smtp_url: Option<String>) -> Rig {
    let smtp_url_given = smtp_url.clone();
    let (mdm_url, fake) = fake_nanomdm().await;
    let server = TestServer::start_with(|c| {
        c.nanomdm_url = Some(mdm_url.parse().unwrap());
        c.nanomdm_api_key = Some("mdm-key".into());
        c.nanomdm_webhook_key = Some("hook-key".into());
        c.smtp_url = smtp_url;
        c.smtp_from = "Lanyard <lanyard@stmary.example>".into();
    })
    .await
    .unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let ok = |r: (u16, Value)| assert!(r.0 < 300, "{r:?}");
    ok(admin
        .post("/api/v1/users", json!({"username": "alice", "display_name": "Alice Moreau, RN", "password": "correct horse 1"}))
        .await);
    ok(admin
        .post("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await);
    for (id, name, dept, mgr) in [
        (
            "cart-4w",
            "4 West Cart 1",
            "4 West",
            "mgr-4w@stmary.example",
        ),
        (
            "cart-5e",
            "5 East Cart 2",
            "5 East",
            "mgr-5e@stmary.example",
        ),
    ] {
        ok(admin
            .post(
                "/api/v1/launchpads",
                json!({"id": id, "name": name, "ports": 10, "department": dept,
                "manager": mgr, "timezone": "America/Chicago"}),
            )
            .await);
    }
    let installed = admin
        .post(
            "/api/v1/workflows/install-standard",
            json!({"dep_profile": "St Mary DEP",
            "wifi_ssid": "StMary-Provisioning", "wifi_password": "provision-me"}),
        )
        .await;
    ok(installed.clone());
    // With an MDM, nothing is said about it; without a relay, the email workflow is named.
    let warnings = installed.1["warnings"].to_string();
    assert!(!warnings.contains("no MDM"), "{warnings}");
    assert_eq!(
        warnings.contains("no SMTP relay"),
        smtp_url_given.is_none(),
        "{warnings}"
    );
    let (_, token) = admin
        .post(
            "/api/v1/enrollment-tokens",
            json!({"label": "4W", "launchpad_id": "cart-4w", "department": "4 West"}),
        )
        .await;
    let phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(device["device_home"], "4 West");
    let udid = device["udid"].as_str().unwrap().to_owned();
    assert_eq!(
        mdm_enrolled(&admin.base, &udid, device["serial"].as_str().unwrap()).await,
        200
    );
    let mut rig = Rig {
        server,
        admin,
        phone,
        udid,
        fake,
        answered: HashSet::new(),
    };
    // Enrolling checked the phone in: the Check In rule runs once before anything else.
    let runs = rig
        .until(acknowledged, |r| !r.is_empty() && r.iter().all(finished))
        .await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["workflow_id"], "check-in");
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    rig
}

impl Rig {
    async fn runs(&self) -> Vec<Value> {
        let (s, page) = self
            .admin
            .get(&format!("/api/v1/devices/{}/runs", self.phone.id))
            .await;
        assert_eq!(s, 200, "{page}");
        let mut runs = page["items"].as_array().unwrap().clone();
        runs.reverse();
        runs
    }

    /// Plays the phone and the MDM until `done` holds for the device's runs (oldest
    /// first): the phone syncs, and every new MDM command is answered with `answer`'s
    /// status for it (Acknowledged unless it says otherwise).
    async fn until(
        &mut self,
        mut answer: impl FnMut(&str, usize) -> &'static str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            self.phone.sync_step().await;
            for (i, (uuid, kind)) in self.fake.commands().into_iter().enumerate() {
                if self.answered.insert(uuid.clone()) {
                    let status = answer(&kind, i);
                    assert_eq!(
                        mdm_report(&self.admin.base, &self.udid, &uuid, status).await,
                        200
                    );
                }
            }
            let runs = self.runs().await;
            if done(&runs) {
                return runs;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "runs never got there: {runs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn dock(&mut self, cart: &str, port: u32) {
        self.phone
            .agent
            .handle(
                Event::Docked {
                    location: DockLocation {
                        launchpad: Some(cart.into()),
                        port: Some(port),
                    },
                },
                now(),
            )
            .unwrap();
    }
}

/// Alice's badge at a cart's reader.
async fn cart_tap(base: String, credential: String) -> Value {
    let r = http_client()
        .post(format!("{base}/launchpad/v1/tap"))
        .bearer_auth(credential)
        .json(&json!({"badge": "0012345"}))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()
}

impl Rig {
    /// A new cart in Chicago time with the (charged) phone docked at `port`; returns the
    /// cart reader's credential.
    async fn cart_with_the_phone(
        &mut self,
        id: &str,
        name: &str,
        department: &str,
        port: u32,
    ) -> String {
        let (s, cart) = self
            .admin
            .post(
                "/api/v1/launchpads",
                json!({"id": id, "name": name, "ports": 8, "department": department,
                    "timezone": "America/Chicago"}),
            )
            .await;
        assert_eq!(s, 201, "{cart}");
        let facts = lanyard_agent::FactsUpdate {
            battery_percent: Some(90),
            ..Default::default()
        };
        self.phone
            .agent
            .handle(Event::PlatformFacts(facts), now())
            .unwrap();
        self.dock(id, port);
        self.phone.sync_step().await;
        cart["credential"].as_str().unwrap().to_owned()
    }
}

fn finished(run: &Value) -> bool {
    run["state"] == "succeeded" || run["state"] == "failed"
}

fn named<'a>(runs: &'a [Value], workflow: &str) -> Vec<&'a Value> {
    runs.iter()
        .filter(|r| r["workflow_id"] == workflow)
        .collect()
}

fn acknowledged(_: &str, _: usize) -> &'static str {
    "Acknowledged"
}

#[tokio::test]
async fn badge_checkout_and_return_run_express_checkout_then_check_in_with_its_retry() {
    let mut rig = rig().await;
    // A badge on the phone: the checked-out rule deploys Express Checkout, whose Check
    // Out Device completes when the phone leaves the cart.
    rig.phone.tap("0012345").await;
    assert_eq!(rig.phone.status(), DeviceStatus::CheckoutPending);
    // The grant carries Check Out Device's "Text to display when unlocked".
    match rig.phone.agent.locker().screen(now()) {
        lanyard_agent::Screen::CheckoutPending { text, .. } => assert_eq!(text, "Alice Moreau, RN"),
        other => panic!("{other:?}"),
    }
    let runs = rig
        .until(acknowledged, |r| !named(r, "express-checkout").is_empty())
        .await;
    let express = named(&runs, "express-checkout")[0];
    assert_eq!(express["rule_id"], "express-checkout");
    assert_eq!(express["origin"], "checked_out");
    rig.phone.agent.handle(Event::Undocked, now()).unwrap();
    let runs = rig
        .until(acknowledged, |r| {
            named(r, "express-checkout").iter().all(|r| finished(r))
        })
        .await;
    let express = named(&runs, "express-checkout")[0];
    assert_eq!(express["state"], "succeeded", "{express:#}");
    assert_eq!(express["steps"][0]["detail"], "unplugged by alice");

    // Back in its home cart: the first check-in rule (Incorrect Device Home) does not
    // match, so Check In runs. Its Clear Passcode fails once at the MDM; On Failure
    // retries the workflow (maximum attempts 2) and the second attempt goes through.
    rig.dock("cart-4w", 3);
    let mut failed_once = false;
    let runs = rig
        .until(
            |kind, _| {
                // The first ClearPasscode of this return fails on the phone.
                if kind == "ClearPasscode" && !failed_once {
                    failed_once = true;
                    "Error"
                } else {
                    "Acknowledged"
                }
            },
            |r| named(r, "check-in").len() == 2 && r.iter().all(finished),
        )
        .await;
    assert!(
        named(&runs, "incorrect-device-home").is_empty(),
        "{runs:#?}"
    );
    let check_in = named(&runs, "check-in")[1];
    assert_eq!(check_in["state"], "succeeded", "{check_in:#}");
    assert_eq!(check_in["rule_id"], "check-in");
    assert_eq!(check_in["attempt"], 2);
    let earlier = check_in["earlier_attempts"][0].as_str().unwrap();
    assert!(
        earlier.starts_with("attempt 1: perform_mdm_command failed: error"),
        "{earlier}"
    );
    assert!(
        earlier.contains("12021"),
        "the MDM's error chain is kept: {earlier}"
    );
    let steps: Vec<(&str, &str)> = check_in["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["action"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("perform_mdm_command", "succeeded"),
            ("check_in_device", "succeeded")
        ]
    );
    // The webhook's result closed the loop in the MDM activity log.
    let uuid = check_in["steps"][0]["handle"].as_str().unwrap();
    let (_, log) = rig
        .admin
        .get(&format!("/api/v1/devices/{}/mdm-activity", rig.phone.id))
        .await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["command_uuid"] == uuid && e["kind"] == "acknowledged"),
        "{log:#}"
    );
    assert_eq!(rig.phone.status(), DeviceStatus::CheckedIn);
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_checkout_not_unplugged_in_time_fails_into_the_check_in_workflow() {
    let mut rig = rig().await;
    // Seed 001's Check Out: On Failure, if still failing, run the Check In workflow.
    let (s, w) = rig
        .admin
        .post("/api/v1/workflows", json!({"name": "Check Out", "model": "device_enrollment_program",
            "actions": [{"type": "check_out_device", "display_text": "[Display Name]", "suppress_blue_led": true},
                        {"type": "on_failure", "run_workflow": "check-in"}]}))
        .await;
    assert_eq!(s, 201, "{w}");
    let (s, r) = rig
        .admin
        .post(
            "/api/v1/rules",
            json!({"name": "Check Out", "trigger": {"type": "checked_out"},
            "workflows": ["check-out"], "enabled": true}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, order) = rig
        .admin
        .post("/api/v1/rules/check-out/move", json!({"position": 1}))
        .await;
    assert_eq!(s, 200, "{order}");
    rig.phone.tap("0012345").await;
    let runs = rig
        .until(acknowledged, |r| !named(r, "check-out").is_empty())
        .await;
    assert!(
        named(&runs, "express-checkout").is_empty(),
        "first match wins: {runs:#?}"
    );
    // Nobody unplugs it: past the grant window the phone checks itself in.
    let later = Timestamp(now().as_millis() + 61_000);
    rig.phone.agent.handle(Event::Tick, later).unwrap();
    assert_eq!(rig.phone.status(), DeviceStatus::CheckedIn);
    let runs = rig
        .until(acknowledged, |r| {
            r.iter().any(|r| r["origin"] == "on_failure" && finished(r))
        })
        .await;
    let check_out = named(&runs, "check-out")[0];
    assert_eq!(check_out["state"], "failed");
    let error = check_out["error"].as_str().unwrap();
    assert!(
        error.contains("not unplugged within the checkout window"),
        "{error}"
    );
    assert!(error.contains("ran \"check-in\""), "{error}");
    let follow_up = runs.iter().find(|r| r["origin"] == "on_failure").unwrap();
    assert_eq!(follow_up["workflow_id"], "check-in");
    assert_eq!(follow_up["parent_run"], check_out["id"]);
    assert_eq!(follow_up["state"], "succeeded", "{follow_up:#}");
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_password_checkout_runs_manual_checkout_which_records_the_device_user() {
    let mut rig = rig().await;
    let effects = rig
        .phone
        .agent
        .handle(
            Event::PasswordEntered {
                username: "alice".into(),
                password: Password::new("correct horse 1"),
            },
            now(),
        )
        .unwrap();
    rig.phone
        .client
        .authorize(&mut rig.phone.agent, &authorize_request(&effects), now())
        .await
        .unwrap();
    assert_eq!(rig.phone.status(), DeviceStatus::CheckoutPending);
    let runs = rig
        .until(acknowledged, |r| {
            named(r, "manual-checkout").iter().any(|r| finished(r))
        })
        .await;
    let manual = named(&runs, "manual-checkout")[0];
    assert_eq!(manual["state"], "succeeded", "{manual:#}");
    assert_eq!(manual["origin"], "unlocked_via_password");
    assert_eq!(manual["steps"][0]["detail"], "Device User = alice");
    // Express Checkout ran too: the checked-out trigger and the password trigger are
    // separate lists, each with its own first match.
    assert_eq!(named(&runs, "express-checkout").len(), 1);
    let (_, audit) = rig.admin.get("/api/v1/audit").await;
    let entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "device.user.set")
        .expect("the manual checkout is in the audit log");
    assert!(
        entry["actor"].as_str().unwrap().contains("Manual Checkout"),
        "{entry}"
    );
    // The device's journey shows the checkout and the Manual Checkout run together.
    let (s, journey) = rig
        .admin
        .get(&format!("/api/v1/devices/{}/journey", rig.phone.id))
        .await;
    assert_eq!(s, 200, "{journey}");
    let lines: Vec<String> = journey
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["source"].as_str().unwrap(),
                e["summary"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l == "device: checked_in → checkout_pending (alice): granted"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l
            == "workflow: Manual Checkout (unlocked via password, rule manual-checkout) succeeded"),
        "{lines:#?}"
    );
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_phone_returned_to_the_wrong_cart_emails_its_manager_and_still_checks_in() {
    let sink = SmtpSink::start().await;
    let mut rig = rig_with(Some(sink.url.clone())).await;
    rig.phone.tap("0012345").await;
    rig.phone.agent.handle(Event::Undocked, now()).unwrap();
    // Home is 4 West; the phone comes back to 5 East's cart, port 7.
    rig.dock("cart-5e", 7);
    let runs = rig
        .until(acknowledged, |r| {
            named(r, "incorrect-device-home")
                .iter()
                .any(|r| finished(r))
                && named(r, "check-in").len() == 2
                && r.iter().all(finished)
        })
        .await;
    let email_run = named(&runs, "incorrect-device-home")[0];
    assert_eq!(email_run["state"], "succeeded", "{email_run:#}");
    assert_eq!(email_run["rule_id"], "incorrect-device-home");
    let check_in = named(&runs, "check-in")[1];
    assert_eq!(
        check_in["rule_id"], "incorrect-device-home",
        "the rule's second workflow"
    );
    assert_eq!(check_in["state"], "succeeded", "{check_in:#}");
    assert_eq!(rig.phone.status(), DeviceStatus::CheckedIn);

    let mail = sink.messages(1).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    let m = &mail[0];
    assert!(m.starts_with("X-Envelope-To: mgr-5e@stmary.example"), "{m}");
    assert!(m.contains("From: Lanyard <lanyard@stmary.example>"), "{m}");
    assert!(
        m.contains("Subject: Mobile device (F2LXK0XXHG7F) returned to the incorrect location"),
        "{m}"
    );
    let body = m.replace("=\r\n", "").replace("\r\n", "\n");
    assert!(
        body.contains("Device F2LXK0XXHG7F has been returned to the incorrect location. The device was last seen at 5 East Cart 2 in port 7."),
        "{body}"
    );
    assert!(
        body.contains("This device should be returned to 4 West."),
        "{body}"
    );
    let (_, outbox) = rig.admin.get("/api/v1/emails").await;
    let sent = &outbox["items"][0];
    assert_eq!(sent["state"], "sent", "{outbox:#}");
    assert_eq!(sent["run_id"], email_run["id"]);
    assert_eq!(sent["attempts"], 1);
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn without_an_smtp_relay_send_email_fails_with_the_reason_and_check_in_goes_on() {
    let mut rig = rig().await;
    rig.phone.tap("0012345").await;
    rig.phone.agent.handle(Event::Undocked, now()).unwrap();
    rig.dock("cart-5e", 2);
    let runs = rig
        .until(acknowledged, |r| r.len() >= 4 && r.iter().all(finished))
        .await;
    let email_run = named(&runs, "incorrect-device-home")[0];
    assert_eq!(email_run["state"], "failed");
    assert!(
        email_run["error"]
            .as_str()
            .unwrap()
            .contains("no SMTP relay is configured"),
        "{email_run:#}"
    );
    assert_eq!(named(&runs, "check-in")[1]["state"], "succeeded");
    rig.server.stop().await.unwrap();
}

/// The command dictionaries the MDM received with this RequestType.
fn sent(fake: &FakeMdm, request_type: &str) -> Vec<plist::Dictionary> {
    fake.queued
        .lock()
        .unwrap()
        .iter()
        .map(|c| {
            c.as_dictionary().unwrap()["Command"]
                .as_dictionary()
                .unwrap()
                .clone()
        })
        .filter(|c| c["RequestType"].as_string() == Some(request_type))
        .collect()
}

/// The payloads of every InstallProfile the MDM received.
fn installed_payloads(fake: &FakeMdm) -> Vec<plist::Dictionary> {
    sent(fake, "InstallProfile")
        .iter()
        .flat_map(|c| {
            let profile = plist::Value::from_reader_xml(c["Payload"].as_data().unwrap()).unwrap();
            profile.as_dictionary().unwrap()["PayloadContent"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_dictionary().unwrap().clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn staging_a_cart_with_ios_provisioning_sends_each_step_to_the_mdm() {
    let mut rig = rig().await;
    let (s, deployed) = rig
        .admin
        .post(
            "/api/v1/workflows/ios-provisioning/deploy",
            json!({"launchpad": "cart-4w"}),
        )
        .await;
    assert_eq!(s, 202, "{deployed}");
    assert_eq!(deployed["devices"], json!([rig.phone.id]));
    let runs = rig
        .until(acknowledged, |r| {
            named(r, "ios-provisioning").iter().any(|r| finished(r))
        })
        .await;
    let run = named(&runs, "ios-provisioning")[0];
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["origin"], "on_demand");
    let step = |i: usize| {
        (
            run["steps"][i]["status"].as_str().unwrap(),
            run["steps"][i]["detail"].as_str().unwrap_or(""),
        )
    };
    // Clear Passcode went through; the DEP profile cannot go through NanoMDM, and says so.
    assert_eq!(step(0).0, "succeeded");
    assert!(
        step(0).1.contains(
            "Assign DEP Profile \"St Mary DEP\" is not possible through the NanoMDM connector"
        ),
        "{run:#}"
    );
    assert_eq!(step(4).0, "skipped");
    assert!(
        step(4).1.contains("no command to set an iPhone's language"),
        "{run:#}"
    );
    assert_eq!(step(6), ("succeeded", "Device Home = 4 West"));

    assert_eq!(sent(&rig.fake, "EraseDevice").len(), 1);
    let settings = sent(&rig.fake, "Settings");
    let tz = settings
        .iter()
        .flat_map(|c| c["Settings"].as_array().unwrap().iter())
        .find_map(|i| {
            i.as_dictionary()
                .unwrap()
                .get("TimeZone")
                .and_then(|t| t.as_string())
                .map(str::to_owned)
        });
    assert_eq!(
        tz.as_deref(),
        Some("America/Chicago"),
        "[Timezone] came from the cart"
    );
    let payloads = installed_payloads(&rig.fake);
    let wifi = payloads
        .iter()
        .find(|p| p["PayloadType"].as_string() == Some("com.apple.wifi.managed"))
        .unwrap();
    assert_eq!(wifi["SSID_STR"].as_string(), Some("StMary-Provisioning"));
    assert_eq!(
        wifi["DisableAssociationMACRandomization"].as_boolean(),
        Some(true)
    );
    let lock = payloads
        .iter()
        .find(|p| p["PayloadType"].as_string() == Some("com.apple.shareddeviceconfiguration"))
        .unwrap();
    assert_eq!(
        lock["LockScreenFootnote"].as_string(),
        Some("If found, return this device to 4 West.\nF2LXK0XXHG7F")
    );
    // The Wi-Fi profile forgets the provisioning network after 60 minutes.
    let wifi_profile = sent(&rig.fake, "InstallProfile")
        .into_iter()
        .map(|c| plist::Value::from_reader_xml(c["Payload"].as_data().unwrap()).unwrap())
        .find(|p| {
            p.as_dictionary()
                .unwrap()
                .contains_key("DurationUntilRemoval")
        })
        .unwrap();
    assert_eq!(
        wifi_profile.as_dictionary().unwrap()["DurationUntilRemoval"].as_real(),
        Some(3600.0)
    );
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_passcode_that_cannot_be_cleared_escalates_by_email_and_an_erase_with_return_to_service()
{
    let sink = SmtpSink::start().await;
    let mut rig = rig_with(Some(sink.url.clone())).await;
    // IT's escalation policy, as workflows: Check In retries once, then escalates.
    let (s, w) = rig
        .admin
        .post("/api/v1/workflows", json!({"name": "Passcode Escalation", "model": "device_enrollment_program", "actions": [
            {"type": "send_email", "to": ["it-mobile@stmary.example"],
             "subject": "Passcode could not be cleared on [Device Serial]",
             "body": "[Device Serial] in [Launchpad Name] port [Last Port Number] kept its passcode; it is being erased and returned to service."},
            {"type": "erase", "return_to_service": true},
            {"type": "add_wifi", "ssid": "StMary-Provisioning", "security": "wpa_personal", "password": "provision-me", "forget_after_minutes": 60}
        ]}))
        .await;
    assert_eq!(s, 201, "{w}");
    let (s, w) = rig
        .admin
        .post(
            "/api/v1/workflows/check-in/clone",
            json!({"name": "Check In (escalating)"}),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let mut spec = w.clone();
    for k in ["id", "created_at", "updated_at"] {
        spec.as_object_mut().unwrap().remove(k);
    }
    spec["actions"][2] = json!({"type": "on_failure", "retry": true, "max_attempts": 2, "run_workflow": "passcode-escalation"});
    let r = rig
        .admin
        .http
        .put(format!(
            "{}/api/v1/workflows/check-in-escalating",
            rig.admin.base
        ))
        .bearer_auth(&rig.admin.token)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let rule = json!({"name": "Check In", "description": "Check in an iOS device.", "trigger": {"type": "checked_in"},
        "workflows": ["check-in-escalating"], "enabled": true});
    let r = rig
        .admin
        .http
        .put(format!("{}/api/v1/rules/check-in", rig.admin.base))
        .bearer_auth(&rig.admin.token)
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    rig.phone.tap("0012345").await;
    rig.phone.agent.handle(Event::Undocked, now()).unwrap();
    rig.dock("cart-4w", 6);
    // Every ClearPasscode fails on the phone.
    let runs = rig
        .until(
            |kind, _| {
                if kind == "ClearPasscode" {
                    "Error"
                } else {
                    "Acknowledged"
                }
            },
            |r| named(r, "passcode-escalation").iter().any(|r| finished(r)),
        )
        .await;
    let check_in = named(&runs, "check-in-escalating")[0];
    assert_eq!(check_in["state"], "failed");
    assert_eq!(check_in["attempt"], 2);
    let escalation = named(&runs, "passcode-escalation")[0];
    assert_eq!(escalation["state"], "succeeded", "{escalation:#}");
    assert_eq!(escalation["parent_run"], check_in["id"]);
    let erase = sent(&rig.fake, "EraseDevice");
    assert_eq!(erase.len(), 1);
    let rts = erase[0]["ReturnToService"].as_dictionary().unwrap();
    assert_eq!(rts["Enabled"].as_boolean(), Some(true));
    let wifi = plist::Value::from_reader_xml(rts["WiFiProfileData"].as_data().unwrap()).unwrap();
    assert!(format!("{wifi:?}").contains("StMary-Provisioning"));
    let mail = sink.messages(1).await;
    assert!(
        mail[0].starts_with("X-Envelope-To: it-mobile@stmary.example"),
        "{}",
        mail[0]
    );
    assert!(
        mail[0].contains("Subject: Passcode could not be cleared on F2LXK0XXHG7F"),
        "{}",
        mail[0]
    );
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_relay_leaves_the_email_pending_with_the_error_for_a_later_retry() {
    // Nothing listens on port 9 of loopback.
    let mut rig = rig_with(Some("smtp://127.0.0.1:9".into())).await;
    let (s, w) = rig
        .admin
        .post("/api/v1/workflows", json!({"name": "Notify", "model": "over_the_air", "actions": [
            {"type": "send_email", "to": ["[Launchpad Manager]"], "subject": "[Device Serial] staged", "body": "In [Launchpad Name]."}]}))
        .await;
    assert_eq!(s, 201, "{w}");
    let (s, d) = rig
        .admin
        .post(
            "/api/v1/workflows/notify/deploy",
            json!({"devices": [rig.phone.id]}),
        )
        .await;
    assert_eq!(s, 202, "{d}");
    rig.until(acknowledged, |r| {
        named(r, "notify").iter().any(|r| finished(r))
    })
    .await;
    // The run hands the email to the outbox; the outbox keeps it and says why it waits.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let email = loop {
        let (_, page) = rig.admin.get("/api/v1/emails").await;
        let e = page["items"][0].clone();
        if e["attempts"].as_u64().unwrap_or(0) >= 1 {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "{page:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(email["state"], "pending", "{email:#}");
    assert_eq!(email["to"], json!(["mgr-4w@stmary.example"]));
    assert_eq!(email["subject"], "F2LXK0XXHG7F staged");
    assert!(!email["last_error"].as_str().unwrap().is_empty());
    assert!(
        email["next_attempt_at"].as_i64().unwrap() > email["created_at"].as_i64().unwrap() + 25_000
    );
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_run_waiting_on_the_mdm_survives_a_server_restart() {
    let Rig {
        server,
        admin,
        mut phone,
        udid,
        fake,
        ..
    } = rig().await;
    let (s, w) = admin
        .post("/api/v1/workflows", json!({"name": "Restart Me", "model": "device_enrollment_program", "actions": [
            {"type": "reboot"}, {"type": "set_attribute", "attribute": "Device Home", "value": "[Department]"}]}))
        .await;
    assert_eq!(s, 201, "{w}");
    let (s, d) = admin
        .post(
            "/api/v1/workflows/restart-me/deploy",
            json!({"devices": [phone.id]}),
        )
        .await;
    assert_eq!(s, 202, "{d}");
    let run_id = d["runs"][0].as_i64().unwrap();
    // The RestartDevice reaches the MDM; the server stops before the phone answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let uuid = loop {
        if let Some((uuid, _)) = fake
            .commands()
            .into_iter()
            .find(|(_, k)| k == "RestartDevice")
        {
            break uuid;
        }
        assert!(std::time::Instant::now() < deadline, "no RestartDevice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut config = server.config();
    let TestServer {
        server: running,
        data_dir,
        ..
    } = server;
    running.stop().await.unwrap();
    // Nothing new goes to the MDM after the restart: only its answer is awaited.
    config.nanomdm_url = Some("http://127.0.0.1:1/".parse().unwrap());
    config.nanomdm_api_key = Some("mdm-key".into());
    config.nanomdm_webhook_key = Some("hook-key".into());
    let restarted = lanyard_server::EmbeddedServer::start(config).await.unwrap();
    // The phone answers; the restarted server's engine picks the run up where it was.
    assert_eq!(
        mdm_report(&admin.base, &udid, &uuid, "Acknowledged").await,
        200
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        phone.sync_step().await;
        let (_, run) = admin.get(&format!("/api/v1/runs/{run_id}")).await;
        if run["state"] == "succeeded" {
            assert_eq!(run["steps"][1]["detail"], "Device Home = 4 West");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{run:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    restarted.stop().await.unwrap();
    drop(data_dir);
}

const WEBEX_PROFILE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadType</key><string>com.apple.app.managed</string>
  <key>PayloadVersion</key><integer>1</integer>
  <key>PayloadIdentifier</key><string>org.stmary.webex.$USERID$</string>
  <key>PayloadUUID</key><string>3A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D</string>
  <key>PayloadDisplayName</key><string>Webex for $DISPLAY_NAME$</string>
</dict>
</plist>"#;

#[tokio::test]
async fn deploying_by_attribute_fills_a_dynamic_config_profile_for_the_phones_user() {
    let mut rig = rig().await;
    let (s, a) = rig
        .admin
        .post(
            "/api/v1/attributes",
            json!({"target": "device", "name": "Ward Pool", "value_type": "string"}),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    let r = rig
        .admin
        .http
        .put(format!(
            "{}/api/v1/devices/{}/attributes/Ward%20Pool",
            rig.admin.base, rig.phone.id
        ))
        .bearer_auth(&rig.admin.token)
        .json(&json!({"value": "cardiology"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, w) = rig
        .admin
        .post("/api/v1/workflows", json!({"name": "Webex Login", "model": "device_enrollment_program", "actions": [
            {"type": "add_dynamic_config_profile", "name": "Webex", "profile_xml": WEBEX_PROFILE}]}))
        .await;
    assert_eq!(s, 201, "{w}");
    // A profile with a variable Lanyard cannot fill is refused when saved.
    let (s, e) = rig
        .admin
        .post("/api/v1/workflows", json!({"name": "Bad Profile", "model": "over_the_air", "actions": [
            {"type": "add_dynamic_config_profile", "name": "x", "profile_xml": WEBEX_PROFILE.replace("$USERID$", "$MANAGER_DN$")}]}))
        .await;
    assert_eq!(s, 400, "{e}");
    rig.phone.tap("0012345").await;
    rig.phone.agent.handle(Event::Undocked, now()).unwrap();
    rig.until(acknowledged, |r| {
        named(r, "express-checkout").iter().any(|r| finished(r))
    })
    .await;
    let (s, d) = rig
        .admin
        .post(
            "/api/v1/workflows/webex-login/deploy",
            json!({"attribute": {"name": "Ward Pool", "value": "cardiology"}}),
        )
        .await;
    assert_eq!(s, 202, "{d}");
    assert_eq!(d["devices"], json!([rig.phone.id]));
    let runs = rig
        .until(acknowledged, |r| {
            named(r, "webex-login").iter().any(|r| finished(r))
        })
        .await;
    assert_eq!(named(&runs, "webex-login")[0]["state"], "succeeded");
    let payloads = installed_payloads(&rig.fake);
    let webex = payloads
        .iter()
        .find(|p| p["PayloadType"].as_string() == Some("com.apple.app.managed"))
        .unwrap();
    assert_eq!(
        webex["PayloadIdentifier"].as_string(),
        Some("org.stmary.webex.alice")
    );
    assert_eq!(
        webex["PayloadDisplayName"].as_string(),
        Some("Webex for Alice Moreau, RN")
    );
    let (s, none) = rig
        .admin
        .post(
            "/api/v1/workflows/webex-login/deploy",
            json!({"attribute": {"name": "Ward Pool", "value": "oncology"}}),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(none["devices"], json!([]));
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn check_in_logout_actions_reach_the_phones_policy_and_run_at_the_dock() {
    use lanyard_agent::Effect;
    let mut rig = rig().await;
    let (s, w) = rig
        .admin
        .post(
            "/api/v1/workflows/check-in/clone",
            json!({"name": "Check In (Rover)"}),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let mut spec = w.clone();
    for k in ["id", "created_at", "updated_at"] {
        spec.as_object_mut().unwrap().remove(k);
    }
    spec["actions"][1]["logout_apps"] = json!([{"app": "com.epic.rover", "name": "Epic Rover"}]);
    let put = |path: String, body: Value| {
        let admin = &rig.admin;
        async move {
            let r = admin
                .http
                .put(format!("{}{path}", admin.base))
                .bearer_auth(&admin.token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, e) = put("/api/v1/workflows/check-in-rover".into(), {
        let mut bad = spec.clone();
        bad["actions"][1]["logout_apps"][0]["app"] = json!("Epic Rover");
        bad
    })
    .await;
    assert_eq!(s, 400, "a bundle id is required: {e}");
    let (s, e) = put("/api/v1/workflows/check-in-rover".into(), spec).await;
    assert_eq!(s, 200, "{e}");
    let (s, e) = put(
        "/api/v1/rules/check-in".into(),
        json!({"name": "Check In", "description": "Check in an iOS device.", "trigger": {"type": "checked_in"},
            "workflows": ["check-in-rover"], "enabled": true}),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let (_, after) = rig.admin.get("/api/v1/audit").await;
    // The newest policy change (installing the standard set made the first one: its
    // Check In opens a blank page first).
    let change = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "policy.app_logouts")
        .unwrap();
    assert_eq!(change["after"]["blank_page_before_check_in"], true);
    assert_eq!(
        change["after"]["app_logouts"],
        json!([{"app": "com.epic.rover", "name": "Epic Rover"}])
    );

    // The phone's next sync brings the new signed policy; at the dock it logs Rover out
    // itself and checks in once Rover confirms.
    rig.phone.sync_step().await;
    rig.phone.tap("0012345").await;
    rig.phone.agent.handle(Event::Undocked, now()).unwrap();
    let effects = rig
        .phone
        .agent
        .handle(
            Event::Docked {
                location: DockLocation {
                    launchpad: Some("cart-4w".into()),
                    port: Some(1),
                },
            },
            now(),
        )
        .unwrap();
    let blank = effects
        .iter()
        .position(|e| matches!(e, Effect::OpenBlankPage));
    let logout = effects
        .iter()
        .position(|e| matches!(e, Effect::LogOutApps { .. }));
    assert!(
        blank.is_some() && blank < logout,
        "a blank page comes first: {effects:?}"
    );
    let apps = effects
        .iter()
        .find_map(|e| match e {
            Effect::LogOutApps { apps } => Some(apps.clone()),
            _ => None,
        })
        .expect("the dock logs apps out");
    assert_eq!(apps[0].app.as_str(), "com.epic.rover");
    assert_eq!(rig.phone.status(), DeviceStatus::Returning);
    rig.phone
        .agent
        .handle(
            Event::AppLogoutFinished {
                app: apps[0].app.clone(),
                outcome: lanyard_protocol::events::LogoutOutcome::Done,
            },
            now(),
        )
        .unwrap();
    assert_eq!(rig.phone.status(), DeviceStatus::CheckedIn);
    let runs = rig
        .until(acknowledged, |r| {
            named(r, "check-in-rover").iter().any(|r| finished(r))
        })
        .await;
    assert_eq!(named(&runs, "check-in-rover")[0]["state"], "succeeded");
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_cart_tap_lights_the_led_and_shows_the_text_the_checkout_workflow_chooses() {
    let mut rig = rig().await;
    let credential = rig
        .cart_with_the_phone("cart-3s", "3 South Cart 1", "3 South", 4)
        .await;
    let tap = |credential: String, base: String| cart_tap(base, credential);
    // The standard Express Checkout keeps the blue LED.
    let answer = tap(credential.clone(), rig.admin.base.clone()).await;
    assert_eq!(answer["beep"], 1, "{answer}");
    assert_eq!(answer["led"], "blue");
    assert_eq!(answer["port"], 4);
    rig.phone.sync_step().await;
    rig.phone
        .agent
        .handle(Event::Tick, Timestamp(now().as_millis() + 61_000))
        .unwrap();
    rig.until(acknowledged, |r| r.iter().all(finished)).await;
    // Seed 001's best practice: the checkout workflow suppresses the blue LED, and shows
    // its own text when unlocked.
    let (s, w) = rig
        .admin
        .post("/api/v1/workflows", json!({"name": "Check Out", "model": "device_enrollment_program",
            "actions": [{"type": "check_out_device", "display_text": "Checked out to [Display Name] ([Department])", "suppress_blue_led": true}]}))
        .await;
    assert_eq!(s, 201, "{w}");
    let (s, r) = rig
        .admin
        .post("/api/v1/rules", json!({"name": "Check Out", "trigger": {"type": "checked_out"}, "workflows": ["check-out"], "enabled": true}))
        .await;
    assert_eq!(s, 201, "{r}");
    rig.admin
        .post("/api/v1/rules/check-out/move", json!({"position": 1}))
        .await;
    let answer = tap(credential, rig.admin.base.clone()).await;
    assert_eq!(answer["beep"], 1, "{answer}");
    assert_eq!(answer["led"], "white");
    rig.phone.sync_step().await;
    match rig.phone.agent.locker().screen(now()) {
        lanyard_agent::Screen::CheckoutPending { text, .. } => {
            assert_eq!(text, "Checked out to Alice Moreau, RN (3 South)")
        }
        other => panic!("{other:?}"),
    }
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_phone_being_updated_is_not_handed_out_until_the_update_run_ends() {
    let mut rig = rig().await;
    let credential = rig
        .cart_with_the_phone("cart-2n", "2 North Cart 1", "2 North", 2)
        .await;
    let base = rig.admin.base.clone();
    let tap = || cart_tap(base.clone(), credential.clone());
    let (s, d) = rig
        .admin
        .post(
            "/api/v1/workflows/update-ios/deploy",
            json!({"launchpad": "cart-2n"}),
        )
        .await;
    assert_eq!(s, 202, "{d}");
    assert_eq!(d["devices"], json!([rig.phone.id]), "{d}");
    // The phone has not answered AvailableOSUpdates yet: it is not handed out.
    let answer = tap().await;
    assert_eq!(answer["beep"], 3, "{answer}");
    let runs = rig
        .until(acknowledged, |r| {
            named(r, "update-ios").iter().any(|r| finished(r))
        })
        .await;
    let update = named(&runs, "update-ios")[0];
    assert_eq!(update["state"], "succeeded", "{update:#}");
    assert_eq!(
        update["steps"][0]["detail"],
        "no OS update offered: the phone is up to date"
    );
    let answer = tap().await;
    assert_eq!(answer["beep"], 1, "{answer}");
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn it_can_cancel_a_run_stuck_waiting_on_the_phone() {
    let rig = rig().await;
    let (s, d) = rig
        .admin
        .post(
            "/api/v1/workflows/update-ios/deploy",
            json!({"devices": [rig.phone.id]}),
        )
        .await;
    assert_eq!(s, 202, "{d}");
    let id = d["runs"][0].as_i64().unwrap();
    // The phone never answers AvailableOSUpdates.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, run) = rig.admin.get(&format!("/api/v1/runs/{id}")).await;
        if run["steps"][0]["status"] == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{run:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, run) = rig
        .admin
        .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(s, 200, "{run}");
    assert_eq!(run["state"], "failed");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .starts_with("cancelled by api-token:"),
        "{run}"
    );
    assert_eq!(run["steps"][0]["status"], "failed");
    // The engine's next look does not bring it back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, again) = rig.admin.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(again["state"], "failed", "{again:#}");
    let (s, e) = rig
        .admin
        .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(s, 422, "{e}");
    let (_, audit) = rig.admin.get("/api/v1/audit").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "run.cancel")
    );
    rig.server.stop().await.unwrap();
}
