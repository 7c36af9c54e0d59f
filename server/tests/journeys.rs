//! The seeds' journeys across real processes: the `lanyard-server` binary as its own
//! process (killed and restarted mid-way in one journey) and phones running the real
//! agent, store and HTTP sync client. Provisioning into a cart, badge checkout at the
//! cart, password checkout, a wandering return, an overdue phone, a checkout that times
//! out, and a phone that spends the outage offline and reconciles.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_agent::runtime::Agent;
use lanyard_agent::secrets::MemorySecretStore;
use lanyard_agent::store::Store;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_agent::sync::{SyncClient, SyncConfig, SyncOutcome, enroll};
use lanyard_agent::{Effect, Event};
use lanyard_protocol::enroll::DeviceInfo;
use lanyard_protocol::{DeviceStatus, DockLocation, Password, Timestamp};
use serde_json::{Value, json};

/// The server binary, killed when dropped.
struct Server {
    child: std::process::Child,
    base: String,
    data: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data: &std::path::Path, listen: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lanyard-server"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The server prints its address once it listens: that line is the signal.
        let base = loop {
            let line = lines.next().expect("server exited").unwrap();
            if let Some(addr) = line.split("listening on ").nth(1) {
                break addr.trim().to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            base,
            data: data.to_owned(),
        }
    }

    /// Kills the process outright (no graceful shutdown); [`Down::restart`] brings it
    /// back on the same data directory and port.
    fn crash(mut self) -> Down {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let addr = self.base.trim_start_matches("http://").to_owned();
        Down {
            data: self.data.clone(),
            addr,
        }
    }
}

/// A crashed server.
struct Down {
    data: std::path::PathBuf,
    addr: String,
}

impl Down {
    fn restart(self) -> Server {
        Server::start(&self.data, &self.addr)
    }
}

fn token(data: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lanyard-server"))
        .args(["token", "create", "--role", "admin", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Admin {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }
    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn device(&self, id: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/api/v1/devices/{id}"), None)
            .await
    }
    async fn cart_tap(&self, reader: &str, badge: &str) -> Value {
        let r = self
            .http
            .post(format!("{}/launchpad/v1/tap", self.base))
            .bearer_auth(reader)
            .json(&json!({ "badge": badge }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        r.json().await.unwrap()
    }
}

/// A phone: the real agent over a store on disk, with its own clock offset (to let
/// hours pass on the phone).
struct Phone {
    agent: Agent,
    client: SyncClient<HttpTransport>,
    id: String,
    skew_ms: i64,
}

fn wall() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

impl Phone {
    async fn enroll(link: &str, dir: &std::path::Path, serial: &str) -> Phone {
        let invite: EnrollmentInvite = link.parse().unwrap();
        let transport = HttpTransport::new(invite.server.clone(), Duration::from_secs(5)).unwrap();
        let store = Store::open(&dir.join(format!("{serial}.sqlite"))).unwrap();
        let (mut agent, _) = Agent::open(store, wall()).unwrap();
        let info = DeviceInfo {
            serial: Some(serial.into()),
            ..DeviceInfo::default()
        };
        let secrets = MemorySecretStore::default();
        let (cred, _) = enroll(&transport, &invite, info, &secrets, &mut agent, wall())
            .await
            .unwrap();
        let config = SyncConfig {
            long_poll_secs: 0,
            ..SyncConfig::default()
        };
        Phone {
            agent,
            id: cred.device_id.to_string(),
            client: SyncClient::new(transport, cred, config, 3),
            skew_ms: 0,
        }
    }
    fn now(&self) -> Timestamp {
        Timestamp(wall().as_millis() + self.skew_ms)
    }
    fn feed(&mut self, e: Event) -> Vec<Effect> {
        let now = self.now();
        self.agent.handle(e, now).unwrap()
    }
    fn dock(&mut self, cart: &str, port: u32) {
        self.feed(Event::Docked {
            location: DockLocation {
                launchpad: Some(cart.into()),
                port: Some(port),
            },
        });
    }
    /// Syncs until nothing is left to send; false if the server was unreachable.
    async fn sync(&mut self) -> bool {
        for _ in 0..5 {
            let now = self.now();
            let (outcome, _) = self.client.sync_once(&mut self.agent, now).await.unwrap();
            match outcome {
                SyncOutcome::Failed { .. } => return false,
                SyncOutcome::Synced { more: false, .. }
                    if self.agent.store().outbox_len().unwrap() == 0 =>
                {
                    return true;
                }
                SyncOutcome::Synced { .. } => {}
            }
        }
        self.agent.store().outbox_len().unwrap() == 0
    }
    fn status(&self) -> DeviceStatus {
        self.agent.locker().status()
    }
    fn last_seq(&self) -> u64 {
        self.agent.locker().next_seq - 1
    }
}

/// Phone and server agree on status and Device User, and no record is missing.
async fn agree(admin: &Admin, phone: &Phone) {
    let d = admin.device(&phone.id).await;
    assert_eq!(
        d["status"],
        serde_json::to_value(phone.status()).unwrap(),
        "{d}"
    );
    assert_eq!(
        d["device_user"].as_str(),
        phone.agent.locker().user().map(|u| u.username.as_str()),
        "{d}"
    );
    assert_eq!(
        d["last_seq"],
        phone.last_seq(),
        "every record reached the server: {d}"
    );
}

#[tokio::test]
async fn a_day_of_journeys_against_the_server_binary_with_a_crash_in_the_middle() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let token = token(&data);
    let server = Server::start(&data, "127.0.0.1:0");
    let admin = Admin {
        base: server.base.clone(),
        token,
        http: reqwest::Client::new(),
    };

    // IT stages two carts, two clinicians, and a token that provisions into 4 West.
    let mut readers = Vec::new();
    for (id, dept) in [("cart-4w", "4 West"), ("cart-5e", "5 East")] {
        let c = admin
            .post(
                "/api/v1/launchpads",
                json!({"id": id, "name": id, "ports": 10, "department": dept}),
            )
            .await;
        readers.push(c["credential"].as_str().unwrap().to_owned());
    }
    admin
        .post(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice Moreau, RN"}),
        )
        .await;
    admin
        .post("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
    admin
        .post("/api/v1/users", json!({"username": "bob", "display_name": "Bob Okafor, RN", "password": "correct horse battery"}))
        .await;
    let t = admin
        .post(
            "/api/v1/enrollment-tokens",
            json!({"label": "4W", "uses": 3, "launchpad_id": "cart-4w", "department": "4 West"}),
        )
        .await;
    let link = t["link"].as_str().unwrap();

    // Provisioning: phones enroll from the link and are docked in the cart.
    let mut a = Phone::enroll(link, dir.path(), "SNA0000001").await;
    let mut b = Phone::enroll(link, dir.path(), "SNB0000001").await;
    for (phone, port) in [(&mut a, 1), (&mut b, 2)] {
        phone.dock("cart-4w", port);
        phone.feed(Event::PlatformFacts(lanyard_agent::FactsUpdate {
            battery_percent: Some(90),
            ..Default::default()
        }));
    }
    assert!(a.sync().await && b.sync().await);
    let d = admin.device(&a.id).await;
    assert_eq!(
        (
            d["device_home"].as_str(),
            d["last_launchpad"].as_str(),
            d["last_port"].as_u64()
        ),
        (Some("4 West"), Some("cart-4w"), Some(1)),
        "{d}"
    );

    // A checkout that times out: alice taps at the cart, never unplugs the phone; after
    // the undock window it locks again and the cart can hand it out anew.
    let answer = admin.cart_tap(&readers[0], "0012345").await;
    assert_eq!(answer["beep"], 1, "{answer}");
    let granted = if answer["device_id"] == a.id.as_str() {
        &mut a
    } else {
        &mut b
    };
    assert!(granted.sync().await);
    assert_eq!(granted.status(), DeviceStatus::CheckoutPending);
    granted.skew_ms += 120_000;
    granted.feed(Event::Tick);
    assert_eq!(
        granted.status(),
        DeviceStatus::CheckedIn,
        "the pending grant lapsed"
    );
    assert!(granted.sync().await);
    agree(&admin, granted).await;

    // Badge checkout at the cart: alice taps again and this time takes the phone.
    let answer = admin.cart_tap(&readers[0], "0012345").await;
    assert_eq!(answer["beep"], 1, "{answer}");
    let (alice_phone, other) = if answer["device_id"] == a.id.as_str() {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(alice_phone.sync().await);
    alice_phone.feed(Event::Undocked);
    assert!(alice_phone.sync().await);
    assert_eq!(alice_phone.status(), DeviceStatus::CheckedOut);
    agree(&admin, alice_phone).await;

    // Password checkout on the other phone: bob signs in on the locker screen.
    let effects = other.feed(Event::PasswordEntered {
        username: "bob".into(),
        password: Password::new("correct horse battery"),
    });
    let req = effects
        .iter()
        .find_map(|e| match e {
            Effect::Authorize(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    let now = other.now();
    other
        .client
        .authorize(&mut other.agent, &req, now)
        .await
        .unwrap();
    assert_eq!(other.status(), DeviceStatus::CheckoutPending);
    other.feed(Event::Undocked);
    assert!(other.sync().await);
    agree(&admin, other).await;

    // Overdue: bob keeps his phone past the lending period (13 h); the phone raises the
    // alert and reports it, and the server marks the device overdue.
    other.skew_ms += 14 * 3_600_000;
    let effects = other.feed(Event::Tick);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::RaiseAlert { .. }))
    );
    assert!(other.sync().await);
    assert_eq!(admin.device(&other.id).await["overdue"], true);

    // The server crashes (killed outright). Alice's phone is out of coverage for a day:
    // she brings it back to the wrong cart, and a day of battery reports and out-of-
    // contact compliance piles up on the phone (its clock runs a day ahead from here).
    let down = server.crash();
    alice_phone.dock("cart-5e", 7);
    for level in (20..=100).step_by(5) {
        alice_phone.skew_ms += 90 * 60_000;
        alice_phone.feed(Event::PlatformFacts(lanyard_agent::FactsUpdate {
            battery_percent: Some(level),
            ..Default::default()
        }));
        alice_phone.feed(Event::Tick);
    }
    assert!(!alice_phone.sync().await, "the server is down");
    assert_eq!(
        alice_phone.status(),
        DeviceStatus::CheckedIn,
        "the return never waits for the network"
    );
    let queued = alice_phone.agent.store().outbox_len().unwrap();
    assert!(queued >= 5, "{queued}");

    // The server comes back on the same data directory and port; the phone reconciles.
    let server = down.restart();
    assert!(alice_phone.sync().await);
    agree(&admin, alice_phone).await;
    let d = admin.device(&alice_phone.id).await;
    assert_eq!(
        (
            d["last_launchpad"].as_str(),
            d["last_port"].as_u64(),
            d["battery"].as_u64()
        ),
        (Some("cart-5e"), Some(7), Some(100)),
        "the wandering return is where the phone says: {d}"
    );
    // Bob's phone, still out and overdue, agrees too after the restart.
    assert!(other.sync().await);
    agree(&admin, other).await;
    drop(server);
}
