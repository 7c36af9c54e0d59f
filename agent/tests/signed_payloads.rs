//! Signed payloads through the runtime: forgery and replay refused, and a database
//! altered between runs caught by re-verifying the stored signed copies on load.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

mod common;

use std::path::Path;

use common::{DEVICE, user};
use lanyard_agent::runtime::Agent;
use lanyard_agent::store::Store;
use lanyard_agent::{Effect, Event};
use lanyard_protocol::events::{PayloadKind, Report};
use lanyard_protocol::kdf::{self, SlowHash};
use lanyard_protocol::policy::{EmergencyPin, OfflineCredential, OfflineCredentialList};
use lanyard_protocol::{
    BadgeId, CommandEnvelope, CommandRejection, DeviceId, DeviceStatus, PROTOCOL_VERSION, Pin,
    Policy, ServerCommand, SigningKey, Timestamp,
};
use rusqlite::Connection;

const T0: Timestamp = Timestamp(common::T0);

fn reports(effects: &[Effect]) -> Vec<Report> {
    effects
        .iter()
        .filter_map(|e| {
            if let Effect::Record(r) = e {
                Some(r.reports.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect()
}

fn pin_policy(pin: &str, version: u64) -> Policy {
    let mut p = Policy::default();
    p.version = version;
    p.emergency_pin = Some(EmergencyPin {
        hash: SlowHash::new(pin.as_bytes(), b"salt".to_vec(), 1000),
        user: user("emergency"),
    });
    p
}

fn enrolled(path: &Path, key: &SigningKey, policy: &Policy) -> Agent {
    let (mut agent, _) = Agent::open(Store::open(path).unwrap(), T0).unwrap();
    let signed = key.sign(policy).unwrap();
    agent
        .enroll(DeviceId::new(DEVICE), key.verifying_key(), &signed, T0)
        .unwrap();
    assert_eq!(agent.locker().status(), DeviceStatus::CheckedIn);
    agent
}

fn refused(effects: &[Effect], kind: PayloadKind) -> bool {
    reports(effects)
        .iter()
        .any(|r| matches!(r, Report::SignedPayloadRefused { kind: k, .. } if *k == kind))
}

#[test]
fn a_forged_policy_is_refused_recorded_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let (key, _) = SigningKey::generate().unwrap();
    let (forger, _) = SigningKey::generate().unwrap();
    let mut agent = enrolled(&path, &key, &pin_policy("2468", 1));
    let effects = agent
        .receive_policy(&forger.sign(&pin_policy("0000", 9)).unwrap(), T0)
        .unwrap();
    assert!(refused(&effects, PayloadKind::Policy));
    assert_eq!(agent.locker().policy.version, 1);
    // Newer and genuine is applied and becomes the stored copy.
    agent
        .receive_policy(&key.sign(&pin_policy("1357", 2)).unwrap(), T0)
        .unwrap();
    assert_eq!(agent.locker().policy.version, 2);
    // Older and genuine is refused by the core and not stored over the newer one.
    let effects = agent
        .receive_policy(&key.sign(&pin_policy("2468", 1)).unwrap(), T0)
        .unwrap();
    assert!(
        reports(&effects)
            .iter()
            .any(|r| matches!(r, Report::PolicyRejected { version: 1, .. }))
    );
    drop(agent);
    let (agent, effects) = Agent::open(Store::open(&path).unwrap(), T0).unwrap();
    assert!(
        !refused(&effects, PayloadKind::Policy),
        "stored copy is the genuine v2"
    );
    assert_eq!(agent.locker().policy.version, 2);
}

#[test]
fn a_pin_hash_swapped_in_the_database_is_caught_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let (key, _) = SigningKey::generate().unwrap();
    drop(enrolled(&path, &key, &pin_policy("2468", 1)));

    // Someone edits the state row offline, putting in a PIN hash of their own.
    let conn = Connection::open(&path).unwrap();
    let json: String = conn
        .query_row("SELECT state FROM locker_state", [], |r| r.get(0))
        .unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&json).unwrap();
    let evil = serde_json::to_value(SlowHash::new(b"9999", b"salt".to_vec(), 1000)).unwrap();
    state["policy"]["emergency_pin"]["hash"] = evil;
    conn.execute("UPDATE locker_state SET state = ?1", [state.to_string()])
        .unwrap();
    drop(conn);

    let (mut agent, effects) = Agent::open(Store::open(&path).unwrap(), T0).unwrap();
    assert!(
        refused(&effects, PayloadKind::Policy),
        "tampering is reported"
    );
    agent
        .handle(
            Event::PinEntered {
                pin: Pin::new("9999"),
            },
            T0,
        )
        .unwrap();
    assert_eq!(
        agent.locker().status(),
        DeviceStatus::CheckedIn,
        "the swapped PIN does not unlock"
    );
    agent
        .handle(
            Event::PinEntered {
                pin: Pin::new("2468"),
            },
            T0.plus_secs(1),
        )
        .unwrap();
    assert_eq!(
        agent.locker().status(),
        DeviceStatus::CheckoutPending,
        "the signed PIN does"
    );
}

#[test]
fn a_stored_copy_that_no_longer_verifies_falls_back_to_the_default_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let (key, _) = SigningKey::generate().unwrap();
    drop(enrolled(&path, &key, &pin_policy("2468", 1)));
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE signed_payload SET payload = replace(payload, '\"version\":1', '\"version\":7')",
        [],
    )
    .unwrap();
    drop(conn);
    let (agent, effects) = Agent::open(Store::open(&path).unwrap(), T0).unwrap();
    assert!(refused(&effects, PayloadKind::Policy));
    assert_eq!(
        agent.locker().policy,
        Policy::default(),
        "no emergency PIN, default rules"
    );
}

fn offline_list(key: &SigningKey, badges: &[&str]) -> lanyard_protocol::Signed {
    let salt = b"dev-salt".to_vec();
    let list = OfflineCredentialList {
        device_id: DEVICE.into(),
        version: 1,
        valid_until: T0.plus_secs(86_400),
        entries: badges
            .iter()
            .map(|b| OfflineCredential {
                badge_hash: kdf::derive(b.as_bytes(), &salt, 1000),
                user: user("alice"),
            })
            .collect(),
        salt,
        iterations: 1000,
    };
    key.sign(&list).unwrap()
}

#[test]
fn a_badge_added_to_the_offline_list_in_the_database_does_not_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let (key, _) = SigningKey::generate().unwrap();
    let mut agent = enrolled(&path, &key, &Policy::default());
    agent
        .receive_offline_credentials(&offline_list(&key, &["good-badge"]), T0)
        .unwrap();
    assert!(agent.locker().offline_credentials.is_some());
    drop(agent);

    let conn = Connection::open(&path).unwrap();
    let json: String = conn
        .query_row("SELECT state FROM locker_state", [], |r| r.get(0))
        .unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&json).unwrap();
    let evil = OfflineCredential {
        badge_hash: kdf::derive(b"evil-badge", b"dev-salt", 1000),
        user: user("mallory"),
    };
    state["offline_credentials"]["entries"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(evil).unwrap());
    conn.execute("UPDATE locker_state SET state = ?1", [state.to_string()])
        .unwrap();
    drop(conn);

    let (mut agent, effects) = Agent::open(Store::open(&path).unwrap(), T0).unwrap();
    assert!(refused(&effects, PayloadKind::OfflineCredentials));
    agent.handle(Event::SyncFailed, T0).unwrap();
    agent
        .handle(
            Event::BadgeTapped {
                badge: BadgeId::new("evil-badge"),
            },
            T0,
        )
        .unwrap();
    assert_eq!(agent.locker().status(), DeviceStatus::CheckedIn);
    agent
        .handle(
            Event::BadgeTapped {
                badge: BadgeId::new("good-badge"),
            },
            T0.plus_secs(1),
        )
        .unwrap();
    assert_eq!(
        agent.locker().status(),
        DeviceStatus::CheckoutPending,
        "the signed list still works"
    );
}

#[test]
fn forged_and_replayed_commands_are_refused_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let (key, _) = SigningKey::generate().unwrap();
    let (forger, _) = SigningKey::generate().unwrap();
    let mut agent = enrolled(&path, &key, &Policy::default());
    let env = CommandEnvelope {
        v: PROTOCOL_VERSION,
        device_id: DEVICE.into(),
        command_id: "c-unenroll".into(),
        issued_at: T0,
        expires_at: T0.plus_secs(600),
        payload: ServerCommand::ExtendCheckout { due_at: T0 },
    };
    let forged = forger.sign(&env).unwrap();
    let effects = agent.receive_command(&forged, T0).unwrap();
    assert!(reports(&effects).iter().any(|r| matches!(
        r,
        Report::CommandRejected { command_id: Some(id), rejection: CommandRejection::BadSignature { .. } }
            if id.as_str() == "c-unenroll"
    )));
    let genuine = key.sign(&env).unwrap();
    agent.receive_command(&genuine, T0).unwrap();
    drop(agent);
    let (mut agent, _) = Agent::open(Store::open(&path).unwrap(), T0).unwrap();
    let effects = agent.receive_command(&genuine, T0.plus_secs(5)).unwrap();
    assert!(reports(&effects).iter().any(|r| matches!(
        r,
        Report::CommandRejected {
            rejection: CommandRejection::Replayed,
            ..
        }
    )));
}
