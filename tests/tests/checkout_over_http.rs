//! A real server over HTTP and real agents: IT sets up a cart, a user and an enrollment
//! token through the admin API; a phone enrolls from the link, a badge checks it out,
//! unplugging and docking again check it in, and the server mirrors every step.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_agent::runtime::Agent;
use lanyard_agent::secrets::MemorySecretStore;
use lanyard_agent::store::Store;
use lanyard_agent::sync::enroll;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_agent::{Effect, Event, Screen};
use lanyard_e2e::harness::{
    Admin, FakeMdm, Phone, authorize_request, fake_nanomdm, now, plist_b64, signed_webhook,
};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::enroll::DeviceInfo;
use lanyard_protocol::{DeviceStatus, DockLocation, Password, Timestamp};
use serde_json::{Value, json};

#[tokio::test]
async fn enroll_tap_undock_dock_over_http_with_the_server_mirroring_each_step() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };

    let (s, _) = admin
        .post("/api/v1/launchpads", json!({"id": "cart-4west", "name": "4 West cart 1", "ports": 10,
            "department": "4 West", "timezone": "America/Chicago", "manager": "manager@stmary.org"}))
        .await;
    assert_eq!(s, 201);
    let (s, user) = admin
        .post("/api/v1/users", json!({"username": "alice", "display_name": "Alice Moreau, RN", "password": "correct horse"}))
        .await;
    assert_eq!(s, 201, "{user}");
    let (s, user) = admin
        .post("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
    assert_eq!((s, user["badges"].as_u64()), (201, Some(1)));
    assert!(
        !user.to_string().contains("0012345"),
        "the badge id is never echoed"
    );
    let (s, token) = admin
        .post("/api/v1/enrollment-tokens", json!({"label": "4 West staging", "uses": 2, "launchpad_id": "cart-4west", "department": "4 West"}))
        .await;
    assert_eq!(s, 201, "{token}");
    let link = token["link"].as_str().unwrap();
    assert!(
        token["qr_png"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBORw0KGgo"),
        "a PNG of the link"
    );

    let mut phone = Phone::enroll(link).await;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(device["status"], "checked_in");
    assert_eq!(device["device_home"], "4 West");
    assert_eq!(device["serial"], "F2LXK0XXHG7F");

    phone
        .agent
        .handle(
            Event::Docked {
                location: DockLocation {
                    launchpad: Some("cart-4west".into()),
                    port: Some(3),
                },
            },
            now(),
        )
        .unwrap();
    phone.sync().await;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(
        (
            device["last_launchpad"].as_str(),
            device["last_port"].as_u64()
        ),
        (Some("cart-4west"), Some(3))
    );

    // An unknown badge is refused with its own code.
    phone.tap("9999999").await;
    assert_eq!(phone.status(), DeviceStatus::CheckedIn);
    assert!(phone.notice().unwrap().contains("not recognized"));

    // Alice's badge: granted, the name shows, the server knows at once.
    let effects = phone.tap("0012345").await;
    assert_eq!(phone.status(), DeviceStatus::CheckoutPending);
    assert!(effects.iter().any(|e| matches!(e, Effect::ShowScreen(Screen::CheckoutPending { display_name, .. }) if display_name == "Alice Moreau, RN")));
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(
        (device["status"].as_str(), device["device_user"].as_str()),
        (Some("checkout_pending"), Some("alice"))
    );

    phone.agent.handle(Event::Undocked, now()).unwrap();
    phone.sync().await;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(
        (device["status"].as_str(), device["device_user"].as_str()),
        (Some("checked_out"), Some("alice"))
    );

    // A second phone: alice already holds one (beep code 4's reason), bob's password is wrong.
    let mut second = Phone::enroll(link).await;
    second
        .agent
        .handle(
            Event::Docked {
                location: DockLocation::default(),
            },
            now(),
        )
        .unwrap();
    second.tap("0012345").await;
    assert_eq!(second.status(), DeviceStatus::CheckedIn);
    assert!(second.notice().unwrap().contains("already have a device"));
    let effects = second
        .agent
        .handle(
            Event::PasswordEntered {
                username: "alice".into(),
                password: Password::new("wrong password"),
            },
            now(),
        )
        .unwrap();
    second
        .client
        .authorize(&mut second.agent, &authorize_request(&effects), now())
        .await
        .unwrap();
    assert!(second.notice().unwrap().contains("incorrect"));
    // The token allowed two devices; a third is refused.
    let invite: EnrollmentInvite = link.parse().unwrap();
    let transport = HttpTransport::new(invite.server.clone(), Duration::from_secs(5)).unwrap();
    let (mut third, _) = Agent::open(Store::open_in_memory().unwrap(), now()).unwrap();
    let refused = enroll(
        &transport,
        &invite,
        DeviceInfo::default(),
        &MemorySecretStore::default(),
        &mut third,
        now(),
    )
    .await;
    assert!(refused.is_err());

    // Back in the cart: locked and checked in on the phone, mirrored on the server.
    phone
        .agent
        .handle(
            Event::Docked {
                location: DockLocation {
                    launchpad: Some("cart-4west".into()),
                    port: Some(5),
                },
            },
            now(),
        )
        .unwrap();
    assert!(!phone.agent.locker().screen(now()).is_unlocked());
    phone.sync().await;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(device["status"], "checked_in");
    assert_eq!(device["device_user"], Value::Null);
    assert_eq!(device["last_port"], 5);

    // Alice may now take the second phone.
    second.tap("0012345").await;
    assert_eq!(second.status(), DeviceStatus::CheckoutPending);

    let (_, list) = admin.get("/api/v1/devices?status=checkout_pending").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_remote_check_in_reaches_a_long_polling_phone_at_once() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let helpdesk = Admin {
        base: server.base_url(),
        token: server.token("helpdesk").await.unwrap(),
        http: http_client(),
    };
    let auditor = Admin {
        base: server.base_url(),
        token: server.token("auditor").await.unwrap(),
        http: http_client(),
    };
    admin
        .post(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice"}),
        )
        .await;
    admin
        .post("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
    let (_, token) = admin
        .post("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    phone.tap("0012345").await;
    phone.agent.handle(Event::Undocked, now()).unwrap();
    phone.sync().await;
    assert_eq!(phone.status(), DeviceStatus::CheckedOut);

    // The phone long-polls with nothing queued; the helpdesk checks it in meanwhile.
    let req = phone.client.prepare(&phone.agent).unwrap();
    assert!(req.events.is_empty());
    let mut req = req;
    req.wait_secs = 20;
    let started = std::time::Instant::now();
    let (result, action) = tokio::join!(phone.client.send(&req), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let path = format!("/api/v1/devices/{}/check-in", phone.id);
        let (s, _) = auditor.post(&path, json!({"reason": "x"})).await;
        assert_eq!(s, 403, "auditors are read-only");
        helpdesk
            .post(&path, json!({"reason": "lost badge reported"}))
            .await
    });
    let waited = started.elapsed();
    assert_eq!(action.0, 202, "{}", action.1);
    let resp = result.unwrap();
    assert_eq!(resp.commands.len(), 1);
    assert!(
        waited < Duration::from_secs(5),
        "woken by the command, not the 20 s timeout ({waited:?})"
    );
    phone
        .client
        .apply(&mut phone.agent, &req, Ok(resp), now())
        .unwrap();
    assert_eq!(phone.status(), DeviceStatus::CheckedIn);
    assert!(!phone.agent.locker().screen(now()).is_unlocked());
    phone.sync().await;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(device["status"], "checked_in");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ten_thousand_events_queued_offline_drain_into_the_real_server_exactly_once() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let (_, token) = admin
        .post("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    phone.agent.handle(Event::SyncFailed, now()).unwrap();
    let start = now();
    let mut i = 0u64;
    while phone.agent.store().outbox_len().unwrap() < 10_000 {
        i += 1;
        let event = if i % 2 == 1 {
            Event::Docked {
                location: DockLocation {
                    launchpad: Some("cart-1".into()),
                    port: Some((i % 10) as u32 + 1),
                },
            }
        } else {
            Event::Undocked
        };
        phone.agent.handle(event, start.plus_millis(i)).unwrap();
    }
    let queued = phone.agent.locker().next_seq - 1;
    // Drain; one request in the middle is sent twice, as after a lost response.
    let mut rounds = 0;
    while phone.agent.store().outbox_len().unwrap() > 0 {
        rounds += 1;
        assert!(rounds < 100);
        let req = phone.client.prepare(&phone.agent).unwrap();
        if rounds == 5 {
            phone.client.send(&req).await.unwrap(); // the answer to this one is "lost"
        }
        let result = phone.client.send(&req).await;
        phone
            .client
            .apply(&mut phone.agent, &req, result, now())
            .unwrap();
    }
    // The first answer also brought the phone its offline list, which it recorded too.
    let recorded = phone.agent.locker().next_seq - 1;
    assert!((queued..=queued + 1).contains(&recorded), "{recorded}");
    let queued = recorded;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(
        device["last_seq"].as_u64(),
        Some(queued),
        "every record stored, in order, once"
    );
    assert_eq!(device["status"], "checked_in");
    let stored = server
        .query_ints(
            "SELECT COUNT(*), COUNT(DISTINCT seq) FROM device_event WHERE device_id = ?1",
            &phone.id,
        )
        .unwrap();
    let queued = i64::try_from(queued).unwrap();
    assert_eq!(stored, [queued, queued]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn admin_changes_are_audited_and_a_device_journey_is_exportable() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let auditor = Admin {
        base: server.base_url(),
        token: server.token("auditor").await.unwrap(),
        http: http_client(),
    };
    admin
        .post(
            "/api/v1/launchpads",
            json!({"id": "cart-1", "name": "Cart 1", "ports": 4}),
        )
        .await;
    admin
        .post(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice", "password": "s3cret-passw0rd"}),
        )
        .await;
    admin
        .post("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
    let (_, token) = admin
        .post(
            "/api/v1/enrollment-tokens",
            json!({"label": "ward 4", "launchpad_id": "cart-1"}),
        )
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    phone
        .agent
        .handle(
            Event::Docked {
                location: DockLocation {
                    launchpad: Some("cart-1".into()),
                    port: Some(1),
                },
            },
            now(),
        )
        .unwrap();
    phone.tap("0012345").await;
    phone.agent.handle(Event::Undocked, now()).unwrap();
    phone.sync().await;
    let (s, _) = admin
        .post(
            &format!("/api/v1/devices/{}/check-in", phone.id),
            json!({"reason": "end of shift"}),
        )
        .await;
    assert_eq!(s, 202);

    let (s, log) = auditor.get("/api/v1/audit").await;
    assert_eq!(s, 200, "auditors read the audit log");
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "device.check_in",
            "enrollment_token.create",
            "user.badge.add",
            "user.create",
            "launchpad.create"
        ],
        "newest first"
    );
    let first = &log["items"][0];
    assert!(first["actor"].as_str().unwrap().starts_with("api-token:"));
    assert_eq!(
        first["before"]["status"], "checked_out",
        "before/after values kept"
    );
    assert_eq!(log["items"][2]["before"]["badges"], 0);
    assert_eq!(log["items"][2]["after"]["badges"], 1);
    let text = log.to_string();
    for secret in [
        "0012345",
        "s3cret-passw0rd",
        token["token"].as_str().unwrap(),
    ] {
        assert!(
            !text.contains(secret),
            "the audit log must not hold {secret}"
        );
    }
    let csv = admin
        .http
        .get(format!("{}/api/v1/audit.csv", admin.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("id,at,actor,action,target_kind,target_id,before,after\n"));
    assert_eq!(csv.lines().count(), 6);
    let at = csv.lines().nth(1).unwrap().split(',').nth(1).unwrap();
    assert!(
        at.len() >= 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'),
        "RFC 3339 UTC time, got {at}"
    );

    let (_, activity) = auditor
        .get(&format!("/api/v1/devices/{}/activity", phone.id))
        .await;
    let statuses: Vec<&str> = activity["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["transition"]["to"].as_str())
        .collect();
    assert_eq!(statuses, ["checked_in", "checkout_pending", "checked_out"]);
    let csv = admin
        .http
        .get(format!(
            "{}/api/v1/devices/{}/activity.csv",
            admin.base, phone.id
        ))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.lines()
            .any(|l| l.contains("checkout_pending,checked_out,undocked")),
        "{csv}"
    );
    let (s, _) = admin.get("/api/v1/devices/dev-nope/activity").await;
    assert_eq!(s, 404);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_username_for_a_while() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    admin
        .post(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice", "password": "correct horse"}),
        )
        .await;
    let (_, token) = admin
        .post("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    let mut try_password = async |pw: &str| {
        let effects = phone
            .agent
            .handle(
                Event::PasswordEntered {
                    username: "alice".into(),
                    password: Password::new(pw),
                },
                now(),
            )
            .unwrap();
        phone
            .client
            .authorize(&mut phone.agent, &authorize_request(&effects), now())
            .await
            .unwrap();
        phone.notice().unwrap_or_default()
    };
    for attempt in 1..=4 {
        assert!(
            try_password("wrong").await.contains("incorrect"),
            "attempt {attempt}"
        );
    }
    // The fifth failure starts the lockout; from then on even the right password waits.
    assert!(try_password("wrong").await.contains("incorrect"));
    assert!(
        try_password("wrong")
            .await
            .contains("Too many wrong passwords")
    );
    assert!(
        try_password("correct horse")
            .await
            .contains("Too many wrong passwords")
    );
    // The lockout is stored: a restarted server on the same data keeps it.
    let config = server.config();
    let _data_dir = server.data_dir;
    server.server.stop().await.unwrap();
    let restarted = lanyard_server::EmbeddedServer::start(config).await.unwrap();
    assert!(
        try_password("correct horse")
            .await
            .contains("Too many wrong passwords"),
        "still locked after the restart"
    );
    assert_eq!(phone.status(), DeviceStatus::CheckedIn);
    restarted.stop().await.unwrap();
}

#[tokio::test]
async fn filters_find_wandering_and_overdue_phones_and_lost_or_retired_ones_are_never_granted() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let helpdesk = Admin {
        base: server.base_url(),
        token: server.token("helpdesk").await.unwrap(),
        http: http_client(),
    };
    admin
        .post(
            "/api/v1/launchpads",
            json!({"id": "cart-4w", "name": "4 West", "ports": 4, "department": "4 West"}),
        )
        .await;
    admin
        .post(
            "/api/v1/launchpads",
            json!({"id": "cart-ed", "name": "ED", "ports": 4, "department": "ED"}),
        )
        .await;
    admin
        .post(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice"}),
        )
        .await;
    admin
        .post("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
    let (_, token) = admin
        .post(
            "/api/v1/enrollment-tokens",
            json!({"label": "4w", "department": "4 West"}),
        )
        .await;
    let link = token["link"].as_str().unwrap();
    let mut home = Phone::enroll(link).await;
    let mut wanderer = Phone::enroll(link).await;
    home.agent
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
    wanderer
        .agent
        .handle(
            Event::Docked {
                location: DockLocation {
                    launchpad: Some("cart-ed".into()),
                    port: Some(2),
                },
            },
            now(),
        )
        .unwrap();
    home.sync().await;
    wanderer.sync().await;

    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, v) = admin.get("/api/v1/devices?wandering=true").await;
    assert_eq!(
        ids(&v),
        [wanderer.id.clone()],
        "returned to the ED cart, home is 4 West"
    );
    let (_, v) = admin.get("/api/v1/devices?department=4%20West").await;
    assert_eq!(ids(&v), [home.id.clone()]);

    // Overdue: alice keeps the phone past the 13 h lending period; the phone reports it.
    home.tap("0012345").await;
    home.agent.handle(Event::Undocked, now()).unwrap();
    let later = Timestamp(now().as_millis() + 14 * 3_600_000);
    home.agent.handle(Event::Tick, later).unwrap();
    home.client.sync_once(&mut home.agent, later).await.unwrap();
    let (_, v) = admin.get("/api/v1/devices?overdue=true").await;
    assert_eq!(ids(&v), [home.id.clone()]);
    home.agent
        .handle(
            Event::Docked {
                location: DockLocation::default(),
            },
            later,
        )
        .unwrap();
    home.client.sync_once(&mut home.agent, later).await.unwrap();
    let (_, v) = admin.get("/api/v1/devices?overdue=true").await;
    assert!(ids(&v).is_empty(), "back in the cart: no longer overdue");

    // Lost: never granted, not even to a tap on the phone itself; found again: fine.
    let (s, d) = helpdesk
        .post(
            &format!("/api/v1/devices/{}/lost", home.id),
            json!({"reason": "missing after shift"}),
        )
        .await;
    assert_eq!((s, d["admin_state"].as_str()), (200, Some("lost")));
    home.tap("0012345").await;
    assert_eq!(home.status(), DeviceStatus::CheckedIn);
    assert!(home.notice().unwrap().contains("cannot be checked out"));
    let (s, _) = helpdesk
        .post(
            &format!("/api/v1/devices/{}/found", home.id),
            json!({"reason": "in the break room"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = helpdesk
        .post(
            &format!("/api/v1/devices/{}/retire", home.id),
            json!({"reason": "cracked screen"}),
        )
        .await;
    assert_eq!(s, 403, "retiring needs the admin role");
    let (s, _) = admin
        .post(
            &format!("/api/v1/devices/{}/retire", home.id),
            json!({"reason": "cracked screen"}),
        )
        .await;
    assert_eq!(s, 200);
    // Retiring again changes nothing: no second unenroll, no second audit entry.
    let (s, again) = admin
        .post(
            &format!("/api/v1/devices/{}/retire", home.id),
            json!({"reason": "cracked screen"}),
        )
        .await;
    assert_eq!(
        (s, again["admin_state"].as_str()),
        (200, Some("retired")),
        "{again}"
    );
    let (_, commands) = admin
        .get(&format!("/api/v1/devices/{}/commands", home.id))
        .await;
    let unenrolls = commands
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "unenroll")
        .count();
    assert_eq!(unenrolls, 1, "{commands}");
    let (_, audit) = admin
        .get(&format!(
            "/api/v1/audit?action=device.retire&target_id={}",
            home.id
        ))
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    // Applying the unenroll writes one more record, sent at the next sync.
    home.client.sync_once(&mut home.agent, now()).await.unwrap();
    assert_eq!(
        home.status(),
        DeviceStatus::Unenrolled,
        "the retired phone unenrolled itself"
    );
    let (_, v) = admin.get("/api/v1/devices?admin_state=retired").await;
    assert_eq!(ids(&v), [home.id.clone()]);
    let (s, _) = admin
        .post(
            &format!("/api/v1/devices/{}/found", home.id),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(s, 422);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_remote_lock_reaches_the_phone_and_its_user_unlocks_it_with_a_badge() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let helpdesk = Admin {
        base: server.base_url(),
        token: server.token("helpdesk").await.unwrap(),
        http: http_client(),
    };
    admin
        .post(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice"}),
        )
        .await;
    admin
        .post("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
    let (_, token) = admin
        .post("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    phone.tap("0012345").await;
    phone.agent.handle(Event::Undocked, now()).unwrap();
    phone.sync().await;

    let (s, first) = helpdesk
        .post(
            &format!("/api/v1/devices/{}/lock", phone.id),
            json!({"reason": "reported missing"}),
        )
        .await;
    assert_eq!(s, 202);
    // A second click before the phone has it sends nothing twice: the same command.
    let (s, again) = admin
        .post(
            &format!("/api/v1/devices/{}/lock", phone.id),
            json!({"reason": "reported missing"}),
        )
        .await;
    assert_eq!(
        (s, &again["command_id"]),
        (202, &first["command_id"]),
        "{again}"
    );
    let (_, locks) = admin
        .get(&format!(
            "/api/v1/audit?action=device.lock&target_id={}",
            phone.id
        ))
        .await;
    assert_eq!(locks["items"].as_array().unwrap().len(), 1, "{locks}");
    phone
        .client
        .sync_once(&mut phone.agent, now())
        .await
        .unwrap();
    assert_eq!(phone.status(), DeviceStatus::Blocked);
    assert!(!phone.agent.locker().screen(now()).is_unlocked());
    phone.sync().await;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(
        (device["status"].as_str(), device["device_user"].as_str()),
        (Some("blocked"), Some("alice"))
    );

    // Alice taps her badge on the locked phone: the server grants its current holder.
    phone.tap("0012345").await;
    assert_eq!(phone.status(), DeviceStatus::CheckedOut);
    assert!(phone.agent.locker().screen(now()).is_unlocked());
    let (_, log) = admin.get("/api/v1/audit").await;
    assert_eq!(log["items"][0]["action"], "device.lock");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn command_states_follow_delivery_acknowledgement_and_refusal() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let (_, token) = admin
        .post("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    let states = async |admin: &Admin, id: &str| -> Vec<(String, String)> {
        let (_, list) = admin.get(&format!("/api/v1/devices/{id}/commands")).await;
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["kind"].as_str().unwrap().to_owned(),
                    c["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };

    admin
        .post(
            &format!("/api/v1/devices/{}/check-in", phone.id),
            json!({"reason": "r"}),
        )
        .await;
    assert_eq!(
        states(&admin, &phone.id).await,
        [("check_in".to_owned(), "pending".to_owned())]
    );
    phone
        .client
        .sync_once(&mut phone.agent, now())
        .await
        .unwrap();
    assert_eq!(states(&admin, &phone.id).await[0].1, "delivered");
    phone
        .client
        .sync_once(&mut phone.agent, now())
        .await
        .unwrap();
    assert_eq!(
        states(&admin, &phone.id).await[0].1,
        "acknowledged",
        "the phone listed it as handled"
    );

    // A phone whose clock runs two days ahead sees the 24 h lock as expired and refuses it;
    // its report marks the command failed.
    admin
        .post(
            &format!("/api/v1/devices/{}/lock", phone.id),
            json!({"reason": "r"}),
        )
        .await;
    let ahead = Timestamp(now().as_millis() + 2 * 86_400_000);
    phone
        .client
        .sync_once(&mut phone.agent, ahead)
        .await
        .unwrap();
    phone
        .client
        .sync_once(&mut phone.agent, ahead)
        .await
        .unwrap();
    let list = states(&admin, &phone.id).await;
    assert_eq!(
        list[0],
        ("lock".to_owned(), "failed".to_owned()),
        "{list:?}"
    );
    assert_eq!(
        list[1].1, "acknowledged",
        "the earlier command is untouched"
    );
    let (s, _) = admin.get("/api/v1/devices/dev-none/commands").await;
    assert_eq!(s, 404);
    server.stop().await.unwrap();
}

/// A server wired to a fake NanoMDM, an enrolled phone for alice, and the MDM knowing
/// the phone's UnlockToken.
struct MdmRig {
    server: TestServer,
    admin: Admin,
    phone: Phone,
    udid: String,
    fake: std::sync::Arc<FakeMdm>,
}

impl MdmRig {
    async fn start(deadline_secs: u64) -> MdmRig {
        let (mdm_url, fake) = fake_nanomdm().await;
        let server = TestServer::start_with(|c| {
            c.nanomdm_url = Some(mdm_url.parse().unwrap());
            c.nanomdm_api_key = Some("mdm-key".into());
            c.nanomdm_webhook_key = Some("hook-key".into());
            c.mdm_deadline_secs = deadline_secs;
        })
        .await
        .unwrap();
        let admin = Admin {
            base: server.base_url(),
            token: server.token("admin").await.unwrap(),
            http: http_client(),
        };
        admin
            .post(
                "/api/v1/users",
                json!({"username": "alice", "display_name": "Alice"}),
            )
            .await;
        admin
            .post("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
            .await;
        let (_, token) = admin
            .post("/api/v1/enrollment-tokens", json!({"label": "t"}))
            .await;
        let phone = Phone::enroll(token["link"].as_str().unwrap()).await;
        let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
        let udid = device["udid"].as_str().unwrap().to_owned();
        let rig = MdmRig {
            server,
            admin,
            phone,
            udid,
            fake,
        };
        // The phone enrolled in the MDM: its Authenticate vouches for the UDID.
        let mut auth = plist::Dictionary::new();
        auth.insert("MessageType".into(), "Authenticate".into());
        auth.insert(
            "SerialNumber".into(),
            device["serial"].as_str().unwrap().into(),
        );
        let event = json!({"topic": "mdm.Authenticate", "created_at": "2026-11-21T10:00:00Z",
            "checkin_event": {"udid": rig.udid, "enrollment_id": rig.udid, "raw_payload": plist_b64(auth)}});
        let (body, sig) = signed_webhook(&event);
        assert_eq!(rig.webhook_signed(body, &sig).await, 200);
        // The MDM reports the phone's UnlockToken (webhook, HMAC-signed).
        let mut update = plist::Dictionary::new();
        update.insert("MessageType".into(), "TokenUpdate".into());
        update.insert("UnlockToken".into(), plist::Value::Data(vec![0x5A; 16]));
        let event = json!({"topic": "mdm.TokenUpdate", "created_at": "2026-11-21T10:00:00Z",
            "checkin_event": {"udid": rig.udid, "enrollment_id": rig.udid, "raw_payload": plist_b64(update)}});
        let (body, _) = signed_webhook(&event);
        assert_eq!(
            rig.webhook_signed(body.clone(), "AAAA").await,
            401,
            "a forged webhook is refused"
        );
        assert_eq!(rig.webhook(&event).await, 200);
        rig
    }

    async fn webhook_signed(&self, body: String, sig: &str) -> u16 {
        let resp = self
            .admin
            .http
            .post(format!("{}/webhooks/nanomdm", self.admin.base))
            .header("x-hmac-signature", sig.to_owned())
            .body(body)
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    }

    async fn webhook(&self, event: &Value) -> u16 {
        let (body, sig) = signed_webhook(event);
        self.webhook_signed(body, &sig).await
    }

    /// The device's report on a command, as NanoMDM forwards it.
    async fn report(&self, uuid: &str, status: &str) -> u16 {
        let mut report = plist::Dictionary::new();
        report.insert("Status".into(), status.into());
        report.insert("CommandUUID".into(), uuid.into());
        let event = json!({"topic": "mdm.Connect", "created_at": "2026-11-21T10:00:05Z",
            "acknowledge_event": {"udid": self.udid, "status": status, "command_uuid": uuid, "raw_payload": plist_b64(report)}});
        self.webhook(&event).await
    }

    /// A shift: alice checks the phone out, then docks it; it asks for a passcode clear.
    async fn shift_ends(&mut self) {
        self.phone.tap("0012345").await;
        self.phone.agent.handle(Event::Undocked, now()).unwrap();
        self.phone
            .agent
            .handle(
                Event::Docked {
                    location: DockLocation::default(),
                },
                now(),
            )
            .unwrap();
        assert!(self.phone.agent.locker().passcode_clear.is_some());
        self.phone.sync().await;
    }

    /// Waits for the next ClearPasscode at the MDM and returns its CommandUUID.
    async fn next_command(&self, n: usize) -> String {
        loop {
            let arrived = self.fake.arrived.notified();
            if let Some(cmd) = self.fake.queued.lock().unwrap().get(n) {
                let top = cmd.as_dictionary().unwrap();
                return top["CommandUUID"].as_string().unwrap().to_owned();
            }
            tokio::time::timeout(Duration::from_secs(10), arrived)
                .await
                .expect("ClearPasscode reached the MDM");
        }
    }

    /// The device's passcode state as IT's device list shows it, and whether the
    /// `passcode` filter finds it under that state.
    async fn passcode_state(&self) -> String {
        let (_, d) = self
            .admin
            .get(&format!("/api/v1/devices/{}", self.phone.id))
            .await;
        let state = d["passcode"].as_str().unwrap_or("unknown").to_owned();
        let (_, list) = self
            .admin
            .get(&format!("/api/v1/devices?passcode={state}"))
            .await;
        assert!(list.to_string().contains(&self.phone.id), "{list}");
        state
    }

    async fn mdm_log(&self) -> Value {
        let path = format!("/api/v1/devices/{}/mdm-activity", self.phone.id);
        self.admin.get(&path).await.1
    }

    /// Polls the MDM activity log until an entry of `kind` appears (the server logs
    /// background MDM calls after they answer, and no signal reaches the test).
    async fn wait_for(&self, kind: &str) -> Value {
        self.wait_for_entry(kind, None).await
    }

    /// As [`MdmRig::wait_for`], for one command when `uuid` is given.
    async fn wait_for_entry(&self, kind: &str, uuid: Option<&str>) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.mdm_log().await;
            let found = log
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == kind && uuid.is_none_or(|u| e["command_uuid"] == u));
            if found {
                return log;
            }
            assert!(std::time::Instant::now() < deadline, "no {kind} in {log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The phone's next retry is due: it asks again and syncs.
    async fn phone_retries(&mut self, after_secs: i64) {
        let later = Timestamp(now().as_millis() + after_secs * 1000);
        self.phone.agent.handle(Event::Tick, later).unwrap();
        self.phone
            .client
            .sync_once(&mut self.phone.agent, later)
            .await
            .unwrap();
    }
}

fn kinds(log: &Value) -> Vec<String> {
    log.as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_docked_phone_gets_its_passcode_cleared_through_nanomdm() {
    let mut rig = MdmRig::start(3600).await;
    rig.shift_ends().await;
    let uuid = rig.next_command(0).await;
    let sent = rig.fake.queued.lock().unwrap()[0].clone();
    let command = sent.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap()
        .clone();
    assert_eq!(command["RequestType"].as_string(), Some("ClearPasscode"));
    assert_eq!(
        command["UnlockToken"].as_data(),
        Some(&[0x5A; 16][..]),
        "the token the MDM reported, unsealed"
    );
    rig.wait_for("sent").await;

    // The device acknowledges; NanoMDM tells Lanyard; Lanyard tells the phone.
    assert_eq!(rig.report(&uuid, "Acknowledged").await, 200);
    rig.phone
        .client
        .sync_once(&mut rig.phone.agent, now())
        .await
        .unwrap();
    assert!(
        rig.phone.agent.locker().passcode_clear.is_none(),
        "the phone heard the passcode is gone"
    );
    rig.phone.sync().await;
    assert_eq!(rig.passcode_state().await, "absent");
    let log = rig.mdm_log().await;
    assert_eq!(
        kinds(&log),
        [
            "authenticate",
            "token_update",
            "requested",
            "sent",
            "acknowledged"
        ],
        "{log}"
    );
    assert!(
        !log.to_string().contains("WlpaWlpa"),
        "the UnlockToken never appears in the log"
    );
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_clear_queued_with_its_push_failed_is_pushed_again_never_queued_twice() {
    let mut rig = MdmRig::start(3600).await;
    // No push certificate at NanoMDM: it answers 500, yet the command is queued.
    *rig.fake.answer.lock().unwrap() = lanyard_e2e::harness::MdmAnswer::NoPushCert;
    rig.shift_ends().await;
    let uuid = rig.next_command(0).await;
    let log = rig.wait_for("queued_push_failed").await;
    assert!(
        log.to_string().contains("retrieving push cert"),
        "NanoMDM's reason is kept: {log}"
    );
    assert_eq!(
        rig.passcode_state().await,
        "clearing",
        "still waiting on the phone"
    );
    // The phone asks again: a push, not a second ClearPasscode.
    rig.phone_retries(31).await;
    rig.wait_for("pushed").await;
    assert_eq!(rig.fake.queued.lock().unwrap().len(), 1, "no second copy");
    // The phone checks in by itself later and runs it.
    assert_eq!(rig.report(&uuid, "Acknowledged").await, 200);
    rig.phone.sync().await;
    assert_eq!(rig.passcode_state().await, "absent");
}

#[tokio::test]
async fn a_locked_phone_answering_not_now_is_reminded_not_sent_a_second_copy() {
    let mut rig = MdmRig::start(3600).await;
    rig.shift_ends().await;
    let uuid = rig.next_command(0).await;
    rig.wait_for("sent").await;
    assert_eq!(rig.report(&uuid, "NotNow").await, 200);
    // The phone still waits; its next request becomes a push for the queued command.
    rig.phone_retries(31).await;
    let log = rig.wait_for("pushed").await;
    assert_eq!(
        kinds(&log),
        [
            "authenticate",
            "token_update",
            "requested",
            "sent",
            "not_now",
            "retry",
            "pushed"
        ],
        "{log}"
    );
    assert!(
        log.as_array().unwrap()[3..]
            .iter()
            .all(|e| e["command_uuid"] == uuid.as_str()),
        "{log}"
    );
    assert_eq!(rig.fake.queued.lock().unwrap().len(), 1, "no second copy");
    assert_eq!(rig.passcode_state().await, "clearing");
    assert_eq!(rig.fake.pushes.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(rig.phone.agent.locker().passcode_clear.is_some());
    // Unlocked at last, the device runs the queued command.
    assert_eq!(rig.report(&uuid, "Acknowledged").await, 200);
    rig.phone_retries(32).await;
    assert!(rig.phone.agent.locker().passcode_clear.is_none());
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn past_the_deadline_the_phone_is_told_why_and_the_next_request_starts_afresh() {
    let mut rig = MdmRig::start(0).await;
    rig.shift_ends().await;
    let first = rig.next_command(0).await;
    rig.wait_for("sent").await;
    assert_eq!(rig.report(&first, "NotNow").await, 200);
    rig.phone_retries(31).await;
    let log = rig.mdm_log().await;
    let expired = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "expired")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(expired["command_uuid"], first.as_str());
    assert!(
        expired["detail"]
            .as_str()
            .unwrap()
            .contains("no result from the phone within 0 min (last heard: not_now)"),
        "{expired}"
    );
    // The phone hears the failure with the reason, and keeps asking.
    rig.phone_retries(32).await;
    let (_, commands) = rig
        .admin
        .get(&format!("/api/v1/devices/{}/commands", rig.phone.id))
        .await;
    let result = commands
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "passcode_clear_result")
        .unwrap_or_else(|| panic!("{commands}"));
    assert_ne!(result["state"], "pending", "{result}");
    assert!(rig.phone.agent.locker().passcode_clear.is_some());
    assert_eq!(rig.fake.queued.lock().unwrap().len(), 1);
    rig.phone.sync().await;
    assert_eq!(rig.passcode_state().await, "clear_failed", "IT sees it");
    // Its next request sends a fresh Clear Passcode; IT still sees the failure.
    rig.phone_retries(200).await;
    assert_eq!(rig.passcode_state().await, "clear_failed");
    let second = rig.next_command(1).await;
    assert_ne!(first, second);
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn without_an_mdm_the_clear_is_logged_as_not_sent_and_webhooks_are_refused() {
    let server = TestServer::start().await.unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    admin
        .post(
            "/api/v1/users",
            json!({"username": "bob", "display_name": "Bob"}),
        )
        .await;
    admin
        .post("/api/v1/users/bob/badges", json!({"badge": "0054321"}))
        .await;
    let (_, token) = admin
        .post("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;

    // No webhook key: even a well-formed, signed event is not taken.
    let (body, sig) = signed_webhook(&json!({"topic": "mdm.Connect"}));
    let refused = admin
        .http
        .post(format!("{}/webhooks/nanomdm", admin.base))
        .header("x-hmac-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let err: Value = refused.json().await.unwrap();
    assert_eq!(err["code"], "unauthorized");
    assert!(err["message"].as_str().unwrap().contains("webhook key"));

    phone.tap("0054321").await;
    phone.agent.handle(Event::Undocked, now()).unwrap();
    phone
        .agent
        .handle(
            Event::Docked {
                location: DockLocation::default(),
            },
            now(),
        )
        .unwrap();
    phone.sync().await;
    let (_, log) = admin
        .get(&format!("/api/v1/devices/{}/mdm-activity", phone.id))
        .await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["kind"], "cannot_send");
    assert_eq!(log[0]["detail"], "no MDM connector is configured");
    assert!(
        phone.agent.locker().passcode_clear.is_some(),
        "nobody told the phone its passcode is gone"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn it_sends_mdm_commands_on_demand_audited_with_results_in_the_mdm_log() {
    let rig = MdmRig::start(3600).await;
    let path = format!("/api/v1/devices/{}/mdm-commands", rig.phone.id);
    let (s, sent) = rig
        .admin
        .post(
            &path,
            json!({"command": "device_lock", "message": "Return to 4 West", "phone_number": "x4411"}),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["request_type"], "DeviceLock");
    let uuid = rig.next_command(0).await;
    assert_eq!(sent["command_uuid"], uuid.as_str());
    let queued = rig.fake.queued.lock().unwrap()[0].clone();
    let command = queued.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap()
        .clone();
    assert_eq!(command["RequestType"].as_string(), Some("DeviceLock"));
    assert_eq!(command["Message"].as_string(), Some("Return to 4 West"));
    assert_eq!(command["PhoneNumber"].as_string(), Some("x4411"));

    // The phone answers; the result lands beside the request in the MDM log.
    assert_eq!(rig.report(&uuid, "Acknowledged").await, 200);
    let log = rig.mdm_log().await;
    let entries: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["command_uuid"] == uuid.as_str())
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["request_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("requested".to_owned(), "DeviceLock".to_owned()),
            ("sent".to_owned(), "DeviceLock".to_owned()),
            ("acknowledged".to_owned(), "DeviceLock".to_owned()),
        ]
    );
    let (_, audit) = rig.admin.get("/api/v1/audit").await;
    assert!(
        audit.to_string().contains("mdm_command") && audit.to_string().contains(&uuid),
        "{audit}"
    );

    // Clear Passcode on demand uses the UnlockToken the MDM reported.
    let (s, b) = rig
        .admin
        .post(&path, json!({"command": "clear_passcode"}))
        .await;
    assert_eq!(
        (s, b["request_type"].as_str()),
        (202, Some("ClearPasscode"))
    );
    rig.next_command(1).await;

    // Bad requests are refused with a reason, and nothing reaches the MDM.
    for (body, code) in [
        (json!({"command": "enable_lost_mode"}), "invalid_field"),
        (
            json!({"command": "device_information", "queries": []}),
            "invalid_field",
        ),
        (
            json!({"command": "update_os", "version": "latest"}),
            "invalid_field",
        ),
        (json!({"command": "erase_everything"}), "invalid_json"),
        (json!({"command": "restart", "force": true}), "invalid_json"),
    ] {
        let (s, b) = rig.admin.post(&path, body.clone()).await;
        assert_eq!((s, b["code"].as_str()), (400, Some(code)), "{body}: {b}");
    }
    assert_eq!(rig.fake.queued.lock().unwrap().len(), 2);
    let auditor = Admin {
        base: rig.admin.base.clone(),
        token: rig.server.token("auditor").await.unwrap(),
        http: http_client(),
    };
    let (s, _) = auditor.post(&path, json!({"command": "restart"})).await;
    assert_eq!(s, 403);
    let (s, b) = rig
        .admin
        .post(
            "/api/v1/devices/nope/mdm-commands",
            json!({"command": "restart"}),
        )
        .await;
    assert_eq!(s, 404, "{b}");
    rig.server.stop().await.unwrap();
}

#[tokio::test]
async fn the_deadline_sweep_expires_commands_nobody_is_asking_about() {
    let mut rig = MdmRig::start(3600).await;
    let path = format!("/api/v1/devices/{}/mdm-commands", rig.phone.id);
    let (_, sent) = rig.admin.post(&path, json!({"command": "restart"})).await;
    let restart = sent["command_uuid"].as_str().unwrap().to_owned();
    rig.next_command(0).await;
    rig.shift_ends().await;
    let clear = rig.next_command(1).await;
    rig.wait_for_entry("sent", Some(&clear)).await;
    assert_eq!(rig.report(&restart, "NotNow").await, 200);
    assert_eq!(rig.report(&clear, "NotNow").await, 200);

    // Within the deadline nothing is given up.
    let config = |deadline_secs| {
        let mut c = rig.server.config();
        c.mdm_deadline_secs = deadline_secs;
        lanyard_server::open_state(&c, lanyard_server::state::system_clock()).unwrap()
    };
    let patient = config(3600);
    assert_eq!(
        lanyard_server::mdm::expire_overdue(&patient).await.unwrap(),
        0
    );
    // Past it, both are expired with the reason (the phone has gone quiet, so only the
    // sweep can tell it), and the phone hears about its passcode.
    let strict = config(0);
    assert_eq!(
        lanyard_server::mdm::expire_overdue(&strict).await.unwrap(),
        2
    );
    assert_eq!(
        lanyard_server::mdm::expire_overdue(&strict).await.unwrap(),
        0,
        "once"
    );
    let log = rig.mdm_log().await;
    for uuid in [&restart, &clear] {
        let last = log
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e["command_uuid"] == uuid.as_str())
            .unwrap();
        assert_eq!(last["kind"], "expired", "{log}");
        assert!(
            last["detail"]
                .as_str()
                .unwrap()
                .contains("(last heard: not_now)"),
            "{last}"
        );
    }
    rig.phone
        .client
        .sync_once(&mut rig.phone.agent, now())
        .await
        .unwrap();
    rig.phone.sync().await;
    assert_eq!(rig.passcode_state().await, "clear_failed");
    rig.server.stop().await.unwrap();
}
