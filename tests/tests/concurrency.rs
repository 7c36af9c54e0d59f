//! Races, over HTTP, released together by a barrier: a clinician limited to one phone
//! never gets two, a phone never goes to two people, an enrollment token is never used
//! more than it allows. 200 trials each; every trial starts from phones checked in.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_e2e::harness::{Admin, now};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::events::{FactsReport, Report};
use lanyard_protocol::{
    AuthorizeRequest, BadgeId, Credential, DeviceStatus, DockLocation, EventRecord,
    PROTOCOL_VERSION, RequestId,
};
use serde_json::{Value, json};
use tokio::sync::Barrier;

const TRIALS: usize = 200;

struct Fleet {
    base: String,
    http: reqwest::Client,
    admin: Admin,
}

struct Phone {
    id: String,
    credential: String,
    seq: u64,
    cart: String,
    port: u32,
}

impl Fleet {
    async fn start(server: &TestServer) -> Fleet {
        Fleet {
            base: server.base_url(),
            http: http_client(),
            admin: server.admin().await,
        }
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        self.admin.ok(path, body).await
    }

    /// A cart and its reader credential.
    async fn cart(&self, id: &str) -> String {
        let cart = self
            .admin(
                "/api/v1/launchpads",
                json!({"id": id, "name": id, "ports": 10}),
            )
            .await;
        cart["credential"].as_str().unwrap().to_owned()
    }

    async fn user(&self, username: &str, badge: &str) {
        self.admin(
            "/api/v1/users",
            json!({"username": username, "display_name": username, "device_limit": 1}),
        )
        .await;
        self.admin(
            &format!("/api/v1/users/{username}/badges"),
            json!({"badge": badge}),
        )
        .await;
    }

    /// An enrollment token for a cart, with `uses` uses.
    async fn enrollment_token(&self, cart: &str, uses: Option<u32>) -> String {
        let mut body = json!({"label": "race", "launchpad_id": cart});
        if let Some(n) = uses {
            body["uses"] = json!(n);
        }
        let t = self.admin("/api/v1/enrollment-tokens", body).await;
        let invite: EnrollmentInvite = t["link"].as_str().unwrap().parse().unwrap();
        invite.token
    }

    async fn enroll(&self, token: &str) -> Result<(String, String), u16> {
        let r = self
            .http
            .post(format!("{}/device/v1/enroll", self.base))
            .json(&json!({"v": PROTOCOL_VERSION, "token": token, "device": {}}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        if status != 200 {
            return Err(status);
        }
        Ok((
            body["device_id"].as_str().unwrap().to_owned(),
            body["device_credential"].as_str().unwrap().to_owned(),
        ))
    }

    /// A phone enrolled and docked in `cart` at `port` with a full battery.
    async fn phone(&self, token: &str, cart: &str, port: u32) -> Phone {
        let (id, credential) = self.enroll(token).await.unwrap();
        let mut phone = Phone {
            id,
            credential,
            seq: 0,
            cart: cart.into(),
            port,
        };
        self.check_in(&mut phone).await;
        phone
    }

    async fn sync(&self, phone: &Phone, events: Vec<EventRecord>, handled: Vec<String>) -> Value {
        let r = self
            .http
            .post(format!("{}/device/v1/sync", self.base))
            .bearer_auth(&phone.credential)
            .json(&json!({
                "v": PROTOCOL_VERSION, "device_id": phone.id, "events": events,
                "handled_commands": handled, "policy_version": u64::MAX,
                "credentials_version": u64::MAX,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    }

    /// The phone takes what the server queued for it, acknowledges it, and reports
    /// itself checked in and docked: the state every trial starts from.
    async fn check_in(&self, phone: &mut Phone) {
        let taken = self.sync(phone, vec![], vec![]).await;
        let handled: Vec<String> = taken["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| envelope(c)["command_id"].as_str().unwrap().to_owned())
            .collect();
        phone.seq += 1;
        let record = EventRecord {
            seq: phone.seq,
            at: now(),
            status: DeviceStatus::CheckedIn,
            user: None,
            transition: None,
            reports: vec![
                Report::Docked {
                    location: DockLocation {
                        launchpad: Some(phone.cart.as_str().into()),
                        port: Some(phone.port),
                    },
                },
                Report::Facts(FactsReport {
                    battery_percent: Some(90),
                    ..FactsReport::default()
                }),
            ],
        };
        let answer = self.sync(phone, vec![record], handled).await;
        assert_eq!(answer["acked_seq"], phone.seq);
    }

    /// A badge tapped on a phone: whether the server granted it.
    async fn authorize(&self, phone: &Phone, badge: &str, n: usize) -> bool {
        let req = AuthorizeRequest {
            request_id: RequestId(format!("r-{}-{n}", phone.id)),
            device_id: phone.id.as_str().into(),
            credential: Credential::Badge {
                badge: BadgeId::new(badge),
            },
            presented_at: now(),
        };
        let r = self
            .http
            .post(format!("{}/device/v1/authorize", self.base))
            .bearer_auth(&phone.credential)
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body: Value = r.json().await.unwrap();
        envelope(&body["command"])["payload"]["type"] == "grant_checkout"
    }

    /// A badge tapped at a cart's reader: the phone granted, if any.
    async fn cart_tap(&self, reader: &str, badge: &str) -> Option<String> {
        let r = self
            .http
            .post(format!("{}/launchpad/v1/tap", self.base))
            .bearer_auth(reader)
            .json(&json!({"badge": badge}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body: Value = r.json().await.unwrap();
        (body["beep"] == 1).then(|| body["device_id"].as_str().unwrap().to_owned())
    }

    /// Devices the server says `username` holds.
    async fn held_by(&self, username: &str) -> usize {
        let (status, body) = self
            .admin
            .get(&format!("/api/v1/devices?user={username}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().len()
    }
}

fn envelope(signed: &Value) -> Value {
    serde_json::from_str(signed["payload"].as_str().unwrap()).unwrap()
}

/// Runs `racers` together, released at once by a barrier; returns their answers.
async fn race<T: Send + 'static>(
    racers: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>>,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(racers.len()));
    let tasks: Vec<_> = racers
        .into_iter()
        .map(|f| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                f.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_badge_on_several_phones_is_granted_at_most_once() {
    let server = TestServer::start().await.unwrap();
    let fleet = Arc::new(Fleet::start(&server).await);
    fleet.cart("cart-1").await;
    let token = fleet.enrollment_token("cart-1", None).await;
    let mut phones = Vec::new();
    for port in 1..=4 {
        phones.push(fleet.phone(&token, "cart-1", port).await);
    }
    fleet.user("alice", "b-alice").await;
    for n in 0..TRIALS {
        // Half the trials on two phones, half on four.
        let racing = if n % 2 == 0 { 2 } else { 4 };
        let shared: Vec<Arc<Phone>> = phones.drain(..).map(Arc::new).collect::<Vec<_>>();
        let racers = shared
            .iter()
            .take(racing)
            .map(|p| {
                let (fleet, p) = (fleet.clone(), p.clone());
                Box::pin(async move { fleet.authorize(&p, "b-alice", n).await })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
            })
            .collect();
        let granted = race(racers).await.into_iter().filter(|g| *g).count();
        assert_eq!(
            granted, 1,
            "trial {n}: {granted} of {racing} phones granted"
        );
        assert_eq!(fleet.held_by("alice").await, 1, "trial {n}");
        phones = shared
            .into_iter()
            .map(|p| Arc::try_unwrap(p).ok().unwrap())
            .collect();
        for p in &mut phones {
            fleet.check_in(p).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_clinicians_on_one_phone_never_both_get_it() {
    let server = TestServer::start().await.unwrap();
    let fleet = Arc::new(Fleet::start(&server).await);
    let reader = fleet.cart("cart-1").await;
    let token = fleet.enrollment_token("cart-1", None).await;
    let mut phone = fleet.phone(&token, "cart-1", 1).await;
    fleet.user("alice", "b-alice").await;
    fleet.user("bob", "b-bob").await;
    for n in 0..TRIALS {
        let p = Arc::new(phone);
        // Even trials: both tap the phone. Odd: alice taps the cart's reader (the
        // cart's only phone), bob the phone itself.
        let cart_race = n % 2 == 1;
        let (f1, p1, f2, p2, reader) = (
            fleet.clone(),
            p.clone(),
            fleet.clone(),
            p.clone(),
            reader.clone(),
        );
        let racers: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>> = vec![
            Box::pin(async move {
                if cart_race {
                    f1.cart_tap(&reader, "b-alice").await.is_some()
                } else {
                    f1.authorize(&p1, "b-alice", n).await
                }
            }),
            Box::pin(async move { f2.authorize(&p2, "b-bob", n).await }),
        ];
        let granted = race(racers).await.into_iter().filter(|g| *g).count();
        assert_eq!(
            granted, 1,
            "trial {n} (cart: {cart_race}): {granted} grants"
        );
        let holders = fleet.held_by("alice").await + fleet.held_by("bob").await;
        assert_eq!(holders, 1, "trial {n}");
        phone = Arc::try_unwrap(p).ok().unwrap();
        fleet.check_in(&mut phone).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_badge_at_one_cart_and_a_phone_in_another_is_granted_once() {
    let server = TestServer::start().await.unwrap();
    let fleet = Arc::new(Fleet::start(&server).await);
    let reader_x = fleet.cart("cart-x").await;
    fleet.cart("cart-y").await;
    let token_x = fleet.enrollment_token("cart-x", None).await;
    let token_y = fleet.enrollment_token("cart-y", None).await;
    let mut in_x = fleet.phone(&token_x, "cart-x", 1).await;
    let mut in_y = fleet.phone(&token_y, "cart-y", 1).await;
    fleet.user("alice", "b-alice").await;
    for n in 0..TRIALS {
        let py = Arc::new(in_y);
        let (f1, f2, p, reader) = (fleet.clone(), fleet.clone(), py.clone(), reader_x.clone());
        let racers: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>> = vec![
            Box::pin(async move { f1.cart_tap(&reader, "b-alice").await.is_some() }),
            Box::pin(async move { f2.authorize(&p, "b-alice", n).await }),
        ];
        let granted = race(racers).await.into_iter().filter(|g| *g).count();
        assert_eq!(granted, 1, "trial {n}: {granted} grants");
        assert_eq!(fleet.held_by("alice").await, 1, "trial {n}");
        in_y = Arc::try_unwrap(py).ok().unwrap();
        fleet.check_in(&mut in_x).await;
        fleet.check_in(&mut in_y).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_use_of_an_enrollment_token_goes_to_one_phone() {
    let server = TestServer::start().await.unwrap();
    let fleet = Arc::new(Fleet::start(&server).await);
    fleet.cart("cart-1").await;
    for n in 0..TRIALS {
        let token = fleet.enrollment_token("cart-1", Some(1)).await;
        let racers = (0..2)
            .map(|_| {
                let (fleet, token) = (fleet.clone(), token.clone());
                Box::pin(async move { fleet.enroll(&token).await })
                    as std::pin::Pin<
                        Box<dyn std::future::Future<Output = Result<(String, String), u16>> + Send>,
                    >
            })
            .collect();
        let answers = race(racers).await;
        let enrolled = answers.iter().filter(|a| a.is_ok()).count();
        assert_eq!(enrolled, 1, "trial {n}: {answers:?}");
        // The loser hears why, as a client error.
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().err().is_none_or(|s| (400..500).contains(s))),
            "trial {n}: {answers:?}"
        );
    }
}
