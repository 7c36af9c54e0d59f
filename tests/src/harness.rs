//! Shared pieces of the end-to-end tests: the admin API, a phone (real agent core and
//! sync client over HTTP), and a fake NanoMDM that follows its documented API.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_agent::runtime::Agent;
use lanyard_agent::secrets::{DeviceCredential, MemorySecretStore};
use lanyard_agent::store::Store;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_agent::sync::{SyncClient, SyncConfig, SyncOutcome, enroll};
use lanyard_agent::{Effect, Event, Screen};
use lanyard_protocol::enroll::DeviceInfo;
use lanyard_protocol::{AuthorizeRequest, BadgeId, DeviceStatus, Timestamp};
use serde_json::{Value, json};

use crate::http_client;

/// The admin API with one token.
pub struct Admin {
    /// `http://ADDR`.
    pub base: String,
    /// The API token.
    pub token: String,
    /// The client.
    pub http: reqwest::Client,
}

impl Admin {
    /// POSTs JSON; returns the status and JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// POSTs JSON that must succeed; returns the body.
    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.post(path, body).await;
        assert!(status < 300, "POST {path}: {status} {answer}");
        answer
    }

    /// GETs; returns the status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

/// The wall clock.
pub fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

/// The authorization request among a core's effects.
pub fn authorize_request(effects: &[Effect]) -> AuthorizeRequest {
    effects
        .iter()
        .find_map(|e| {
            if let Effect::Authorize(r) = e {
                Some(r.clone())
            } else {
                None
            }
        })
        .expect("the core asked the server")
}

/// A phone: its agent and sync client.
pub struct Phone {
    /// The agent core with its store.
    pub agent: Agent,
    /// Its sync client.
    pub client: SyncClient<HttpTransport>,
    /// Its device id.
    pub id: String,
}

impl Phone {
    /// Enrolls from an enrollment link.
    pub async fn enroll(link: &str) -> Phone {
        let invite: EnrollmentInvite = link.parse().unwrap();
        let transport = HttpTransport::new(invite.server.clone(), Duration::from_secs(5)).unwrap();
        let secrets = MemorySecretStore::default();
        let (mut agent, _) = Agent::open(Store::open_in_memory().unwrap(), now()).unwrap();
        static NEXT_UDID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT_UDID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let info = DeviceInfo {
            serial: Some("F2LXK0XXHG7F".into()),
            udid: Some(format!("00008030-{n:016X}")),
            model: Some("iPhone15,2".into()),
            ..Default::default()
        };
        let (cred, _) = enroll(&transport, &invite, info, &secrets, &mut agent, now())
            .await
            .unwrap();
        assert_eq!(
            DeviceCredential::load(&secrets).unwrap().as_ref(),
            Some(&cred)
        );
        let id = cred.device_id.to_string();
        let config = SyncConfig {
            long_poll_secs: 0,
            ..SyncConfig::default()
        };
        Phone {
            agent,
            client: SyncClient::new(transport, cred, config, 1),
            id,
        }
    }

    /// Syncs until the outbox is empty: what the phone recorded in answer to a sync
    /// (an offline list applied, a command handled) goes up with the next one, and
    /// three rounds must be enough for everything to be acknowledged.
    pub async fn sync(&mut self) {
        for _ in 0..3 {
            let (outcome, _) = self.client.sync_once(&mut self.agent, now()).await.unwrap();
            assert!(matches!(outcome, SyncOutcome::Synced { .. }), "{outcome:?}");
            if self.agent.store().outbox_len().unwrap() == 0 {
                break;
            }
        }
        assert_eq!(
            self.agent.store().outbox_len().unwrap(),
            0,
            "everything acknowledged"
        );
    }

    /// A badge tapped on the phone, authorized by the server.
    pub async fn tap(&mut self, badge: &str) -> Vec<Effect> {
        let effects = self
            .agent
            .handle(
                Event::BadgeTapped {
                    badge: BadgeId::new(badge),
                },
                now(),
            )
            .unwrap();
        let req = authorize_request(&effects);
        self.client
            .authorize(&mut self.agent, &req, now())
            .await
            .unwrap()
    }

    /// Placed in `cart` at `port` with `battery` percent, and synced.
    pub async fn dock(&mut self, cart: &str, port: u32, battery: u8) {
        self.agent
            .handle(
                Event::Docked {
                    location: lanyard_protocol::DockLocation {
                        launchpad: Some(cart.into()),
                        port: Some(port),
                    },
                },
                now(),
            )
            .unwrap();
        self.agent
            .handle(
                Event::PlatformFacts(lanyard_agent::FactsUpdate {
                    battery_percent: Some(battery),
                    ..Default::default()
                }),
                now(),
            )
            .unwrap();
        self.sync().await;
    }

    /// One sync, leaving whatever the commands it brought produced for the next one.
    pub async fn sync_step(&mut self) {
        let (outcome, _) = self.client.sync_once(&mut self.agent, now()).await.unwrap();
        assert!(matches!(outcome, SyncOutcome::Synced { .. }), "{outcome:?}");
    }

    /// The core's status.
    pub fn status(&self) -> DeviceStatus {
        self.agent.locker().status()
    }

    /// The locked screen's notice.
    pub fn notice(&self) -> Option<String> {
        match self.agent.locker().screen(now()) {
            Screen::Locked { notice, .. } => notice,
            _ => None,
        }
    }
}

/// How the fake NanoMDM answers an enqueue: each a shape a real NanoMDM gave
/// (`shared/reference/nanomdm/captures/api-exchanges.json`), served as recorded with the
/// enrollment id and CommandUUID of the request put in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdmAnswer {
    /// 200: queued and pushed.
    Pushed,
    /// 500 with a top-level `push_error`: no push certificate (queued all the same).
    NoPushCert,
    /// 500 with a per-id `push_error` beside a `push_result`: APNs refused the token
    /// (queued all the same).
    BadDeviceToken,
    /// 500 "push data missing for id": an enrollment NanoMDM never saw.
    UnknownId,
    /// 404 plain text: the URL lost its path prefix.
    NotFound,
}

impl MdmAnswer {
    /// Every shape.
    pub const ALL: [MdmAnswer; 5] = [
        MdmAnswer::Pushed,
        MdmAnswer::NoPushCert,
        MdmAnswer::BadDeviceToken,
        MdmAnswer::UnknownId,
        MdmAnswer::NotFound,
    ];

    /// Whether NanoMDM queued the command with this answer.
    pub fn queued(self) -> bool {
        matches!(
            self,
            MdmAnswer::Pushed | MdmAnswer::NoPushCert | MdmAnswer::BadDeviceToken
        )
    }

    fn recorded(self) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/reference/nanomdm/captures/api-exchanges.json");
        let all: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let body = |e: &Value| e["response_body"].as_str().unwrap_or_default().to_owned();
        all.into_iter()
            .find(|e| match self {
                MdmAnswer::Pushed => e["status"] == 200,
                MdmAnswer::NoPushCert => body(e).contains("retrieving push cert"),
                MdmAnswer::BadDeviceToken => body(e).contains("BadDeviceToken"),
                MdmAnswer::UnknownId => body(e).contains("push data missing"),
                MdmAnswer::NotFound => e["status"] == 404,
            })
            .expect("a recorded exchange of this shape")
    }
}

/// A NanoMDM stand-in that answers as the recorded real one does.
pub struct FakeMdm {
    /// Commands enqueued, in order.
    pub queued: std::sync::Mutex<Vec<plist::Value>>,
    /// The enrollment ids each command was enqueued for (same order as `queued`).
    pub targets: std::sync::Mutex<Vec<String>>,
    /// Signalled on each enqueue.
    pub arrived: tokio::sync::Notify,
    /// Pushes asked for.
    pub pushes: std::sync::atomic::AtomicUsize,
    /// How the next enqueues are answered.
    pub answer: std::sync::Mutex<MdmAnswer>,
    /// When set, the next enqueue is taken (recorded, `arrived` signalled) but not
    /// answered until the sender is used or dropped: "during the enqueue call".
    pub hold: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl FakeMdm {
    /// Holds the next enqueue's answer until the returned sender fires (or drops).
    pub fn hold_next(&self) -> tokio::sync::oneshot::Sender<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        *self.hold.lock().unwrap() = Some(rx);
        tx
    }
}

/// Starts a fake NanoMDM on a free port (API key `mdm-key`); returns its URL.
pub async fn fake_nanomdm() -> (String, std::sync::Arc<FakeMdm>) {
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    async fn enqueue(
        State(fake): State<std::sync::Arc<FakeMdm>>,
        Path(ids): Path<String>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use base64::Engine;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("nanomdm:mdm-key")
        );
        if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some(expected.as_str()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let cmd = plist::Value::from_reader_xml(body.as_ref()).unwrap();
        let uuid = cmd.as_dictionary().unwrap()["CommandUUID"]
            .as_string()
            .unwrap()
            .to_owned();
        fake.targets.lock().unwrap().push(ids.clone());
        fake.queued.lock().unwrap().push(cmd);
        let hold = fake.hold.lock().unwrap().take();
        fake.arrived.notify_one();
        if let Some(hold) = hold {
            let _ = hold.await;
        }
        let shape = *fake.answer.lock().unwrap();
        let recorded = shape.recorded();
        let recorded_id = recorded["path"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let mut answer = recorded["response_body"].as_str().unwrap().to_owned();
        if let Ok(mut v) = serde_json::from_str::<Value>(&answer) {
            v["command_uuid"] = json!(uuid);
            if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut)
                && let Some(entry) = status.remove(&recorded_id)
            {
                status.insert(ids.clone(), entry);
            }
            answer = v.to_string();
        }
        let status =
            StatusCode::from_u16(u16::try_from(recorded["status"].as_u64().unwrap()).unwrap())
                .unwrap();
        let content_type = recorded["response_content_type"]
            .as_str()
            .unwrap()
            .to_owned();
        (status, [(header::CONTENT_TYPE, content_type)], answer).into_response()
    }
    async fn push(State(fake): State<std::sync::Arc<FakeMdm>>, Path(ids): Path<String>) -> String {
        fake.pushes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        json!({"status": {ids: {"push_result": "P-2"}}}).to_string()
    }
    let fake = std::sync::Arc::new(FakeMdm {
        queued: Default::default(),
        targets: Default::default(),
        arrived: tokio::sync::Notify::new(),
        pushes: Default::default(),
        answer: std::sync::Mutex::new(MdmAnswer::Pushed),
        hold: Default::default(),
    });
    let app = axum::Router::new()
        .route("/v1/enqueue/{ids}", axum::routing::put(enqueue))
        .route("/v1/push/{ids}", axum::routing::get(push))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/"), fake)
}

/// A webhook body and its HMAC signature with key `hook-key`.
/// The event is stamped as NanoMDM stamps it: a fresh `event_id` and `created_at` now
/// (the server refuses a replayed or stale one).
pub fn signed_webhook(event: &Value) -> (String, String) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut event = event.clone();
    if let Some(e) = event.as_object_mut() {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        e.insert(
            "event_id".into(),
            json!(format!("{:08x}{n:08x}", std::process::id())),
        );
        e.insert(
            "created_at".into(),
            json!(jiff::Timestamp::now().to_string()),
        );
    }
    let body = event.to_string();
    let sig = sign_webhook_body(&body);
    (body, sig)
}

/// The HMAC signature of a webhook body with key `hook-key`, the body left as it is.
pub fn sign_webhook_body(body: &str) -> String {
    use base64::Engine;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hook-key");
    base64::engine::general_purpose::STANDARD
        .encode(ring::hmac::sign(&key, body.as_bytes()).as_ref())
}

/// A plist dictionary as base64 XML, as NanoMDM's webhook carries it.
pub fn plist_b64(dict: plist::Dictionary) -> String {
    use base64::Engine;
    let mut out = Vec::new();
    plist::Value::Dictionary(dict)
        .to_writer_xml(&mut out)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Posts a device's report on an MDM command to the server's NanoMDM webhook, as
/// NanoMDM forwards it (`mdm.Connect`, signed with `hook-key`); returns the status.
pub async fn mdm_report(base: &str, udid: &str, uuid: &str, status: &str) -> u16 {
    mdm_report_with(base, udid, uuid, status, plist::Dictionary::new()).await
}

/// As [`mdm_report`], with more keys in the device's answer (e.g. `AvailableOSUpdates`).
pub async fn mdm_report_with(
    base: &str,
    udid: &str,
    uuid: &str,
    status: &str,
    mut report: plist::Dictionary,
) -> u16 {
    report.insert("Status".into(), status.into());
    report.insert("CommandUUID".into(), uuid.into());
    if status == "Error" {
        let mut chain = plist::Dictionary::new();
        chain.insert("ErrorCode".into(), plist::Value::Integer(12021.into()));
        chain.insert("ErrorDomain".into(), "MCMDMErrorDomain".into());
        chain.insert(
            "LocalizedDescription".into(),
            "The passcode could not be cleared.".into(),
        );
        report.insert("ErrorChain".into(), plist::Value::Array(vec![chain.into()]));
    }
    let event = json!({"topic": "mdm.Connect", "created_at": "2026-11-21T10:00:05Z",
        "acknowledge_event": {"udid": udid, "status": status, "command_uuid": uuid, "raw_payload": plist_b64(report)}});
    post_webhook(base, &event).await
}

/// Posts a NanoMDM webhook event, signed with `hook-key`; returns the status.
pub async fn post_webhook(base: &str, event: &Value) -> u16 {
    let (body, sig) = signed_webhook(event);
    http_client()
        .post(format!("{base}/webhooks/nanomdm"))
        .header("x-hmac-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The phone enrolled in the MDM, as NanoMDM tells the server's webhook: its
/// Authenticate (this UDID is this serial number), then its TokenUpdate with the
/// UnlockToken. Returns the second answer's status (the first must be 200).
pub async fn mdm_enrolled(base: &str, udid: &str, serial: &str) -> u16 {
    let mut auth = plist::Dictionary::new();
    auth.insert("MessageType".into(), "Authenticate".into());
    auth.insert("SerialNumber".into(), serial.into());
    auth.insert("UDID".into(), udid.into());
    let event = json!({"topic": "mdm.Authenticate", "created_at": "2026-11-21T10:00:00Z",
        "checkin_event": {"udid": udid, "enrollment_id": udid, "raw_payload": plist_b64(auth)}});
    assert_eq!(post_webhook(base, &event).await, 200);
    mdm_token_update(base, udid).await
}

/// Reports the phone's UnlockToken to the server's webhook (`mdm.TokenUpdate`).
pub async fn mdm_token_update(base: &str, udid: &str) -> u16 {
    let mut update = plist::Dictionary::new();
    update.insert("MessageType".into(), "TokenUpdate".into());
    update.insert("UnlockToken".into(), plist::Value::Data(vec![0x5A; 16]));
    let event = json!({"topic": "mdm.TokenUpdate", "created_at": "2026-11-21T10:00:00Z",
        "checkin_event": {"udid": udid, "enrollment_id": udid, "raw_payload": plist_b64(update)}});
    post_webhook(base, &event).await
}

impl FakeMdm {
    /// `(CommandUUID, RequestType)` of every command enqueued so far.
    pub fn commands(&self) -> Vec<(String, String)> {
        self.queued
            .lock()
            .unwrap()
            .iter()
            .map(|c| {
                let d = c.as_dictionary().unwrap();
                let uuid = d["CommandUUID"].as_string().unwrap().to_owned();
                let kind = d["Command"].as_dictionary().unwrap()["RequestType"]
                    .as_string()
                    .unwrap()
                    .to_owned();
                (uuid, kind)
            })
            .collect()
    }
}

/// A real SMTP server on loopback (aiosmtpd, installed by `scripts/test.sh`) that keeps
/// every message it accepts. Stopped on drop.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpSink {
    /// Starts the sink and waits until it listens.
    pub async fn start() -> SmtpSink {
        use tokio::io::AsyncBufReadExt;
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/support/smtp_sink.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs the SMTP sink");
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP sink starts (is aiosmtpd installed? scripts/test.sh installs it)")
            .unwrap()
            .expect("the SMTP sink printed its port");
        let port = line
            .strip_prefix("ready ")
            .expect("ready PORT")
            .trim()
            .to_owned();
        SmtpSink {
            url: format!("smtp://127.0.0.1:{port}"),
            dir,
            _child: child,
        }
    }

    /// Waits (up to 20 s) until at least `n` messages arrived; returns them all, raw.
    pub async fn messages(&self, n: usize) -> Vec<String> {
        self.messages_within(n, Duration::from_secs(20)).await
    }

    /// Waits up to `limit` until at least `n` messages arrived; returns them all, raw.
    pub async fn messages_within(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect();
            if files.len() >= n {
                files.sort();
                return files
                    .iter()
                    .map(|p| std::fs::read_to_string(p).unwrap())
                    .collect();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} emails arrived",
                files.len()
            );
            // The sink has no way to signal this process: poll its folder.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A phone played over raw HTTP with a real enrollment, as an attacker holding a
/// device credential would: it sends whatever records it likes.
pub struct RawPhone {
    /// `http://ADDR`.
    pub base: String,
    /// Its device id.
    pub id: String,
    /// Its device credential.
    pub credential: String,
    /// The sequence of the last record it sent.
    pub seq: u64,
    http: reqwest::Client,
}

impl RawPhone {
    /// Enrolls from an enrollment link with `device`; the error is the server's answer.
    pub async fn enroll(link: &str, device: DeviceInfo) -> Result<RawPhone, (u16, Value)> {
        let invite: EnrollmentInvite = link.parse().unwrap();
        let base = invite.server.as_str().trim_end_matches('/').to_owned();
        let http = http_client();
        let r = http
            .post(format!("{base}/device/v1/enroll"))
            .json(&json!({"v": 1, "token": invite.token, "device": device}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != 201 && status != 200 {
            return Err((status, body));
        }
        Ok(RawPhone {
            base,
            id: body["device_id"].as_str().unwrap().to_owned(),
            credential: body["device_credential"].as_str().unwrap().to_owned(),
            seq: 0,
            http,
        })
    }

    /// Sends one record (the next sequence) with `status`, `user`, `transition` and
    /// `reports`; returns the sync's answer.
    pub async fn send(
        &mut self,
        status: DeviceStatus,
        user: Option<&str>,
        transition: Option<lanyard_protocol::events::Transition>,
        reports: Vec<lanyard_protocol::events::Report>,
    ) -> (u16, Value) {
        self.seq += 1;
        let record = lanyard_protocol::EventRecord {
            seq: self.seq,
            at: now(),
            status,
            user: user.map(|u| lanyard_protocol::UserRef {
                username: u.into(),
                display_name: u.into(),
            }),
            transition,
            reports,
        };
        self.sync_body(json!({"v": 1, "device_id": self.id, "events": [record]}))
            .await
    }

    /// Asks the server to authorize `credential` (JSON, e.g. `{"type": "badge",
    /// "badge": "…"}`); returns the status and the decision's payload (its `type` and,
    /// for a denial, its `code`).
    pub async fn authorize(&self, credential: Value) -> (u16, Value) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = self
            .http
            .post(format!("{}/device/v1/authorize", self.base))
            .bearer_auth(&self.credential)
            .json(
                &json!({"request_id": format!("r-{n}"), "device_id": self.id,
                "credential": credential, "presented_at": now()}),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let payload = body["command"]["payload"]
            .as_str()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .map(|envelope| envelope["payload"].clone())
            .unwrap_or(body);
        (status, payload)
    }

    /// Posts a raw sync body with this phone's credential.
    pub async fn sync_body(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/device/v1/sync", self.base))
            .bearer_auth(&self.credential)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}
