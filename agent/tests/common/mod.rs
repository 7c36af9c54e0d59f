//! A host for tests: a clock the test moves, a signing server key, and the records
//! the core emitted, so each test reads like a short story.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)]

use lanyard_agent::{Effect, Event, FactsUpdate, Locker, Screen, Verified, handle};
use lanyard_protocol::policy::{AppLogout, OfflineCredential, OfflineCredentialList};
use lanyard_protocol::{
    AppId, BadgeId, CheckoutGrant, CommandEnvelope, DeviceId, DeviceStatus, DockLocation,
    EventRecord, GrantId, PROTOCOL_VERSION, Pin, Policy, ServerCommand, Signed, SigningKey,
    Timestamp, UnlockMethod, UserRef, kdf,
};

pub const DEVICE: &str = "dev-1";
pub const T0: i64 = 1_767_000_000_000;

pub struct Harness {
    pub key: SigningKey,
    pub locker: Locker,
    pub now: Timestamp,
    pub last: Vec<Effect>,
    pub records: Vec<EventRecord>,
    next_command: u64,
}

pub fn user(name: &str) -> UserRef {
    UserRef {
        username: name.to_owned(),
        display_name: format!("{name} (display)"),
    }
}

pub fn sign<T: serde::Serialize>(key: &SigningKey, value: &T) -> Signed {
    key.sign(value).expect("serializable")
}

impl Harness {
    pub fn unenrolled() -> Self {
        let (key, _) = SigningKey::generate().expect("key");
        Harness {
            key,
            locker: Locker::new(),
            now: Timestamp(T0),
            last: Vec::new(),
            records: Vec::new(),
            next_command: 1,
        }
    }

    /// Enrolled, docked, with the given policy.
    pub fn with_policy(policy: Policy) -> Self {
        let mut h = Harness::unenrolled();
        h.enroll(policy);
        h.send(Event::Docked {
            location: DockLocation {
                launchpad: Some("cart-1".into()),
                port: Some(3),
            },
        });
        h
    }

    /// Enrolled with the default policy plus one app to log out, docked.
    pub fn new() -> Self {
        let mut p = Policy::default();
        p.version = 1;
        p.app_logouts = vec![AppLogout {
            app: AppId::new("com.epic.rover"),
            name: "Rover".into(),
        }];
        Harness::with_policy(p)
    }

    pub fn enroll(&mut self, policy: Policy) -> &[Effect] {
        let signed = sign(&self.key, &policy);
        let policy = Verified::open(&signed, &self.key.verifying_key()).expect("verifies");
        self.send(Event::Enrolled {
            device_id: DeviceId::new(DEVICE),
            server_key: self.key.verifying_key(),
            policy,
        })
    }

    pub fn send(&mut self, event: Event) -> &[Effect] {
        let locker = std::mem::take(&mut self.locker);
        let (locker, effects) = handle(locker, event, self.now);
        self.locker = locker;
        for e in &effects {
            if let Effect::Record(r) = e {
                self.records.push(r.clone());
            }
        }
        self.last = effects;
        &self.last
    }

    pub fn advance_secs(&mut self, secs: u64) -> &[Effect] {
        self.now = self.now.plus_secs(secs);
        self.send(Event::Tick)
    }

    pub fn envelope(&mut self, payload: ServerCommand) -> CommandEnvelope {
        let id = self.next_command;
        self.next_command += 1;
        CommandEnvelope {
            v: PROTOCOL_VERSION,
            device_id: DEVICE.into(),
            command_id: format!("cmd-{id}").as_str().into(),
            issued_at: self.now,
            expires_at: self.now.plus_secs(120),
            payload,
        }
    }

    pub fn deliver(&mut self, env: &CommandEnvelope) -> &[Effect] {
        let signed = sign(&self.key, env);
        let verified = Verified::open(&signed, &self.key.verifying_key()).expect("verifies");
        self.send(Event::Command(verified))
    }

    pub fn command(&mut self, payload: ServerCommand) -> &[Effect] {
        let env = self.envelope(payload);
        self.deliver(&env)
    }

    pub fn grant(&mut self, name: &str, method: UnlockMethod) -> &[Effect] {
        let n = self.next_command;
        self.command(ServerCommand::GrantCheckout(CheckoutGrant {
            grant_id: GrantId::new(format!("g-{n}")),
            request_id: self.pending_request(),
            user: user(name),
            method,
            display_text: None,
        }))
    }

    pub fn pending_request(&self) -> Option<lanyard_protocol::RequestId> {
        self.locker
            .pending_auth
            .as_ref()
            .map(|p| p.request_id.clone())
    }

    pub fn tap(&mut self, badge: &str) -> &[Effect] {
        self.send(Event::BadgeTapped {
            badge: BadgeId::new(badge),
        })
    }

    pub fn pin(&mut self, pin: &str) -> &[Effect] {
        self.send(Event::PinEntered { pin: Pin::new(pin) })
    }

    pub fn dock(&mut self) -> &[Effect] {
        self.send(Event::Docked {
            location: DockLocation::default(),
        })
    }

    pub fn undock(&mut self) -> &[Effect] {
        self.send(Event::Undocked)
    }

    pub fn facts(&mut self, f: FactsUpdate) -> &[Effect] {
        self.send(Event::PlatformFacts(f))
    }

    pub fn policy(&mut self, policy: Policy) -> &[Effect] {
        let signed = sign(&self.key, &policy);
        let v = Verified::open(&signed, &self.key.verifying_key()).expect("verifies");
        self.send(Event::PolicyUpdated(v))
    }

    /// Installs an offline list holding `badges` (badge id, username).
    pub fn offline_list(&mut self, badges: &[(&str, &str)], valid_secs: u64) -> &[Effect] {
        let salt = b"per-device-salt".to_vec();
        let entries = badges
            .iter()
            .map(|(b, u)| OfflineCredential {
                badge_hash: kdf::derive(b.as_bytes(), &salt, 1000),
                user: user(u),
            })
            .collect();
        let list = OfflineCredentialList {
            device_id: DEVICE.into(),
            version: 1,
            valid_until: self.now.plus_secs(valid_secs),
            salt,
            iterations: 1000,
            entries,
        };
        let signed = sign(&self.key, &list);
        let v = Verified::open(&signed, &self.key.verifying_key()).expect("verifies");
        self.send(Event::OfflineCredentialsUpdated(v))
    }

    pub fn status(&self) -> DeviceStatus {
        self.locker.status()
    }

    pub fn screen(&self) -> Screen {
        self.locker.screen(self.now)
    }

    pub fn username(&self) -> Option<String> {
        self.locker.user().map(|u| u.username.clone())
    }

    pub fn has(&self, pred: impl Fn(&Effect) -> bool) -> bool {
        self.last.iter().any(pred)
    }

    /// Records the latest call wrote, in order.
    pub fn last_records(&self) -> Vec<&EventRecord> {
        self.last
            .iter()
            .filter_map(|e| match e {
                Effect::Record(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The latest call's record that carries a transition, else its last record.
    pub fn last_record(&self) -> Option<&EventRecord> {
        let records = self.last_records();
        records
            .iter()
            .rev()
            .find(|r| r.transition.is_some())
            .or(records.last())
            .copied()
    }

    /// Reports in all of the latest call's records.
    pub fn last_reports(&self) -> Vec<lanyard_protocol::Report> {
        self.last_records()
            .iter()
            .flat_map(|r| r.reports.clone())
            .collect()
    }
}
