//! A scheduled rule over the real server and real phones: seed 000's "Update iOS Ports
//! 1-5" (daily at 06:00, cart-local) fires at 06:00 in the cart's Timezone, and only for
//! the phones that are checked in, on ports 1–5, above 50% battery. The server runs on a
//! clock set to a few seconds before 06:00 in Chicago; the phones share that clock. On
//! PostgreSQL a second replica runs beside it and the occurrence still fires once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use lanyard_agent::Event;
use lanyard_agent::event::FactsUpdate;
use lanyard_e2e::harness::{Admin, Phone, fake_nanomdm, mdm_enrolled, mdm_report_with, now};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::{DockLocation, Timestamp};
use lanyard_server::ClockOverride;
use serde_json::{Value, json};

#[tokio::test]
async fn update_ios_ports_1_5_fires_at_six_cart_local_for_matching_phones_only() {
    // Today's 05:59:57 in Chicago, whatever the real time is.
    let tz = jiff::tz::TimeZone::get("America/Chicago").unwrap();
    let today = jiff::Timestamp::now().to_zoned(tz.clone()).date();
    let target = tz
        .to_zoned(today.at(5, 59, 57, 0))
        .unwrap()
        .timestamp()
        .as_millisecond();
    let offset = Arc::new(AtomicI64::new(target - now().as_millis()));
    let shifted = {
        let offset = offset.clone();
        move || Timestamp(now().as_millis() + offset.load(Ordering::SeqCst))
    };
    let clock: lanyard_server::state::Clock = Arc::new(shifted.clone());
    let (mdm_url, fake) = fake_nanomdm().await;
    let server = TestServer::start_with(|c| {
        c.nanomdm_url = Some(mdm_url.parse().unwrap());
        c.nanomdm_api_key = Some("mdm-key".into());
        c.nanomdm_webhook_key = Some("hook-key".into());
        c.clock = Some(ClockOverride(clock.clone()));
    })
    .await
    .unwrap();
    // On PostgreSQL a second replica runs beside it, on the same clock: its scheduler
    // sees 06:00 come as well, and the occurrence still fires once.
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = if lanyard_e2e::postgres_db::on_postgres() {
        let mut config = server.config();
        config.listen = ([127, 0, 0, 1], 0).into();
        config.data_dir = replica_dir.path().join("data");
        config.nanomdm_url = Some(mdm_url.parse().unwrap());
        config.nanomdm_api_key = Some("mdm-key".into());
        config.nanomdm_webhook_key = Some("hook-key".into());
        config.clock = Some(ClockOverride(clock.clone()));
        Some(lanyard_server::EmbeddedServer::start(config).await.unwrap())
    } else {
        None
    };
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let ok = |r: (u16, Value)| assert!(r.0 < 300, "{r:?}");
    ok(admin
        .post(
            "/api/v1/launchpads",
            json!({"id": "cart-4w", "name": "4 West Cart 1", "ports": 10,
            "department": "4 West", "timezone": "America/Chicago"}),
        )
        .await);
    ok(admin
        .post(
            "/api/v1/workflows/install-standard",
            json!({"dep_profile": "St Mary DEP",
            "wifi_ssid": "StMary-Provisioning", "wifi_password": "provision-me"}),
        )
        .await);
    let (_, token) = admin
        .post(
            "/api/v1/enrollment-tokens",
            json!({"label": "4W", "launchpad_id": "cart-4w", "department": "4 West"}),
        )
        .await;
    let link = token["link"].as_str().unwrap();
    // (port, battery, checked out?) — only the first matches every condition.
    // (port, battery, taken by a clinician, left the cart since: its last port is stale)
    let setups = [
        (2, 80, false, false),
        (4, 30, false, false),
        (7, 90, false, false),
        (5, 90, true, false),
        (3, 90, false, true),
    ];
    let mut phones = Vec::new();
    for (port, battery, taken, left) in setups {
        let mut phone = Phone::enroll(link).await;
        let t = shifted();
        phone
            .agent
            .handle(
                Event::PlatformFacts(FactsUpdate {
                    battery_percent: Some(battery),
                    ..FactsUpdate::default()
                }),
                t,
            )
            .unwrap();
        phone
            .agent
            .handle(
                Event::Docked {
                    location: DockLocation {
                        launchpad: Some("cart-4w".into()),
                        port: Some(port),
                    },
                },
                t,
            )
            .unwrap();
        phone.client.sync_once(&mut phone.agent, t).await.unwrap();
        if left {
            phone.agent.handle(Event::Undocked, t).unwrap();
            phone.client.sync_once(&mut phone.agent, t).await.unwrap();
            let (_, d) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
            assert_eq!(
                (d["docked"].as_bool(), d["last_port"].as_u64()),
                (Some(false), Some(3)),
                "{d}"
            );
        }
        let (_, d) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
        assert_eq!(
            mdm_enrolled(
                &admin.base,
                d["udid"].as_str().unwrap(),
                d["serial"].as_str().unwrap()
            )
            .await,
            200
        );
        if taken {
            ok(admin
                .post(
                    "/api/v1/users",
                    json!({"username": "bob", "display_name": "Bob"}),
                )
                .await);
            ok(admin
                .post("/api/v1/users/bob/badges", json!({"badge": "77"}))
                .await);
            let effects = phone
                .agent
                .handle(
                    Event::BadgeTapped {
                        badge: lanyard_protocol::BadgeId::new("77"),
                    },
                    shifted(),
                )
                .unwrap();
            let req = lanyard_e2e::harness::authorize_request(&effects);
            phone
                .client
                .authorize(&mut phone.agent, &req, shifted())
                .await
                .unwrap();
            phone.agent.handle(Event::Undocked, shifted()).unwrap();
            phone
                .client
                .sync_once(&mut phone.agent, shifted())
                .await
                .unwrap();
        }
        phones.push((phone, d["udid"].as_str().unwrap().to_owned()));
    }
    // The guide ships the rule disabled; IT enables it.
    let (_, rules) = admin.get("/api/v1/rules").await;
    let mut rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "update-ios-ports-1-5")
        .unwrap()
        .clone();
    assert_eq!(rule["enabled"], false);
    rule["enabled"] = json!(true);
    for k in ["id", "position", "created_at", "updated_at"] {
        rule.as_object_mut().unwrap().remove(k);
    }
    let r = admin
        .http
        .put(format!("{}/api/v1/rules/update-ios-ports-1-5", admin.base))
        .bearer_auth(&admin.token)
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        shifted().as_millis() < target + 3000,
        "the rule was enabled before 06:00"
    );

    // Play the phones and the MDM until 06:00 has passed and the schedule's runs finish.
    let mut answered = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let scheduled = loop {
        for (phone, _) in phones.iter_mut() {
            phone
                .client
                .sync_once(&mut phone.agent, shifted())
                .await
                .unwrap();
        }
        let queued = fake.queued.lock().unwrap().clone();
        let targets = fake.targets.lock().unwrap().clone();
        for (cmd, udid) in queued.iter().zip(targets) {
            let d = cmd.as_dictionary().unwrap();
            let uuid = d["CommandUUID"].as_string().unwrap().to_owned();
            if !answered.insert(uuid.clone()) {
                continue;
            }
            let kind = d["Command"].as_dictionary().unwrap()["RequestType"]
                .as_string()
                .unwrap();
            let mut answer = plist::Dictionary::new();
            if kind == "AvailableOSUpdates" {
                // Apple offers two signed versions; the standard settings take the oldest.
                let offer = |key: &str, version: &str| {
                    let mut o = plist::Dictionary::new();
                    o.insert("ProductKey".into(), key.into());
                    o.insert("Version".into(), version.into());
                    plist::Value::Dictionary(o)
                };
                answer.insert(
                    "AvailableOSUpdates".into(),
                    plist::Value::Array(vec![
                        offer("iOSUpdate23B85", "26.1"),
                        offer("iOSUpdate22G86", "18.6.2"),
                    ]),
                );
            }
            assert_eq!(
                mdm_report_with(&admin.base, &udid, &uuid, "Acknowledged", answer).await,
                200
            );
        }
        let (_, page) = admin.get("/api/v1/runs?limit=500").await;
        let scheduled: Vec<Value> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["origin"] == "schedule")
            .cloned()
            .collect();
        if scheduled.len() >= 2
            && scheduled
                .iter()
                .all(|r| r["state"] == "succeeded" || r["state"] == "failed")
        {
            break scheduled;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled runs finished: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Exactly the matching phone got Update iOS then Check In, both at or after 06:00.
    assert_eq!(scheduled.len(), 2, "{scheduled:#?}");
    let matching = &phones[0].0.id;
    for run in &scheduled {
        assert_eq!(run["device_id"], matching.as_str(), "{run:#}");
        assert_eq!(run["rule_id"], "update-ios-ports-1-5");
        assert_eq!(run["state"], "succeeded", "{run:#}");
        assert!(
            run["created_at"].as_i64().unwrap() >= target + 3000,
            "fired before 06:00: {run:#}"
        );
    }
    let mut workflows: Vec<&str> = scheduled
        .iter()
        .map(|r| r["workflow_id"].as_str().unwrap())
        .collect();
    workflows.sort();
    assert_eq!(workflows, ["check-in", "update-ios"]);
    let updates: Vec<plist::Dictionary> = fake
        .queued
        .lock()
        .unwrap()
        .iter()
        .map(|c| {
            c.as_dictionary().unwrap()["Command"]
                .as_dictionary()
                .unwrap()
                .clone()
        })
        .filter(|c| c["RequestType"].as_string() == Some("ScheduleOSUpdate"))
        .collect();
    assert_eq!(
        updates.len(),
        1,
        "one ScheduleOSUpdate, for the matching phone: {scheduled:#?}"
    );
    let update = updates[0]["Updates"].as_array().unwrap()[0]
        .as_dictionary()
        .unwrap()
        .clone();
    assert_eq!(
        update["ProductVersion"].as_string(),
        Some("18.6.2"),
        "the oldest signed version"
    );
    assert_eq!(update["ProductKey"].as_string(), Some("iOSUpdate22G86"));
    let run = scheduled
        .iter()
        .find(|r| r["workflow_id"] == "update-ios")
        .unwrap();
    assert!(
        run["steps"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("installing iOS 18.6.2 (offered: 26.1, 18.6.2)"),
        "{run:#}"
    );
    // A later pass does not fire 06:00 again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, page) = admin.get("/api/v1/runs?limit=500").await;
    let again = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["origin"] == "schedule")
        .count();
    assert_eq!(again, 2);
    if let Some(replica) = replica {
        replica.stop().await.unwrap();
    }
    server.stop().await.unwrap();
}
