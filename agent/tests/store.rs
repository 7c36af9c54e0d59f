//! The durable store and the runtime that commits before acting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

mod common;

use std::path::Path;

use common::{DEVICE, Harness, user};
use lanyard_agent::runtime::Agent;
use lanyard_agent::store::migrations::{self, MIGRATIONS};
use lanyard_agent::store::{Store, StoreError};
use lanyard_agent::{Effect, Event, Screen, Verified};
use lanyard_protocol::events::LogoutOutcome;
use lanyard_protocol::events::PayloadKind;
use lanyard_protocol::policy::AppLogout;
use lanyard_protocol::{
    AppId, BadgeId, CheckoutGrant, CommandEnvelope, DeviceId, DeviceStatus, DockLocation, GrantId,
    PROTOCOL_VERSION, Policy, ServerCommand, SigningKey, Timestamp, UnlockMethod,
};
use rusqlite::Connection;

fn schema(conn: &Connection) -> Vec<(String, String, String)> {
    let mut stmt = conn
        .prepare("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_database_migrated_from_the_first_version_equals_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    {
        let mut conn = Connection::open(&old).unwrap();
        let tx = conn.transaction().unwrap();
        migrations::apply(&tx, 0, 1).unwrap();
        tx.commit().unwrap();
        assert_eq!(migrations::current(&conn).unwrap(), 1);
    }
    let migrated = Store::open(&old).unwrap();
    assert_eq!(migrated.schema_version().unwrap(), MIGRATIONS.len() as i64);
    drop(migrated);
    let fresh_path = dir.path().join("fresh.db");
    drop(Store::open(&fresh_path).unwrap());
    let a = schema(&Connection::open(&old).unwrap());
    let b = schema(&Connection::open(&fresh_path).unwrap());
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    drop(Store::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn wal_and_full_sync_are_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    drop(Store::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

fn records(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Record(_)))
        .count()
}

#[test]
fn outbox_is_ordered_durable_and_trimmed_only_on_ack() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut h = Harness::new();
    let mut store = Store::open(&path).unwrap();
    store.commit(&h.locker, &[]).unwrap();
    let mut expected = 0;
    for name in ["alice", "bob", "carol"] {
        for event in [
            Event::Command(signed_grant(&mut h, name)),
            Event::Undocked,
            Event::Docked {
                location: DockLocation::default(),
            },
            Event::AppLogoutFinished {
                app: AppId::new("com.epic.rover"),
                outcome: LogoutOutcome::Done,
            },
        ] {
            h.send(event);
            expected += records(&h.last);
            store.commit(&h.locker, &h.last).unwrap();
        }
    }
    drop(store);
    let mut store = Store::open(&path).unwrap();
    let all = store.outbox(10_000).unwrap();
    assert_eq!(all.len(), expected);
    assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(store.load_state().unwrap().as_ref(), Some(&h.locker));
    let cut = all[4].seq;
    assert_eq!(store.ack_through(cut).unwrap(), 5);
    assert_eq!(store.outbox(1).unwrap()[0].seq, cut + 1);
    assert_eq!(store.outbox_len().unwrap(), (expected - 5) as u64);
}

#[test]
fn a_repeated_or_skipped_sequence_is_refused_and_nothing_is_written() {
    let mut h = Harness::new();
    let mut store = Store::open_in_memory().unwrap();
    h.dock();
    store.commit(&h.locker, &h.last).unwrap();
    let before = store.load_state().unwrap();
    let dup = h.last.clone();
    h.undock();
    // Same records again: duplicate (device, seq).
    assert!(store.commit(&h.locker, &dup).is_err());
    assert_eq!(
        store.load_state().unwrap(),
        before,
        "state rolled back with the outbox"
    );
    // A gap.
    let mut skipped = h.last.clone();
    if let Some(Effect::Record(r)) = skipped.iter_mut().find(|e| matches!(e, Effect::Record(_))) {
        r.seq += 5;
    }
    assert!(matches!(
        store.commit(&h.locker, &skipped),
        Err(StoreError::SequenceGap { .. })
    ));
    store.commit(&h.locker, &h.last).unwrap();
}

#[test]
fn signed_payloads_are_kept_exactly_as_received() {
    let (key, _) = SigningKey::generate().unwrap();
    let signed = key
        .sign(&Policy {
            version: 4,
            ..Policy::default()
        })
        .unwrap();
    let mut store = Store::open_in_memory().unwrap();
    let h = Harness::new();
    store
        .commit_with(&h.locker, &[], Some((PayloadKind::Policy, 4, &signed)))
        .unwrap();
    let back = store.signed(PayloadKind::Policy).unwrap().unwrap();
    assert_eq!(back, signed);
    assert!(Verified::<Policy>::open(&back, &key.verifying_key()).is_ok());
    assert!(
        store
            .signed(PayloadKind::OfflineCredentials)
            .unwrap()
            .is_none()
    );
}

fn signed_grant(h: &mut Harness, name: &str) -> Verified<CommandEnvelope> {
    let env = h.envelope(ServerCommand::GrantCheckout(CheckoutGrant {
        grant_id: GrantId::new(format!("g-{name}-{}", h.now.as_millis())),
        request_id: h.pending_request(),
        user: user(name),
        method: UnlockMethod::CartBadge,
        display_text: None,
    }));
    let s = common::sign(&h.key, &env);
    Verified::open(&s, &h.key.verifying_key()).unwrap()
}

/// One checkout and one check-in, as the host would feed them, with the time of each.
fn journey(key: &SigningKey) -> Vec<(Event, Timestamp)> {
    let t = |s: u64| Timestamp(common::T0).plus_secs(s);
    let mut policy = Policy::default();
    policy.app_logouts = vec![AppLogout {
        app: AppId::new("com.epic.rover"),
        name: "Rover".into(),
    }];
    let policy = Verified::open(&key.sign(&policy).unwrap(), &key.verifying_key()).unwrap();
    let command = |n: u64, at: Timestamp, payload| {
        let env = CommandEnvelope {
            v: PROTOCOL_VERSION,
            device_id: DEVICE.into(),
            command_id: format!("c{n}").as_str().into(),
            issued_at: at,
            expires_at: at.plus_secs(60),
            payload,
        };
        Event::Command(Verified::open(&key.sign(&env).unwrap(), &key.verifying_key()).unwrap())
    };
    vec![
        (
            Event::Enrolled {
                device_id: DeviceId::new(DEVICE),
                server_key: key.verifying_key(),
                policy,
            },
            t(0),
        ),
        (
            Event::Docked {
                location: DockLocation {
                    launchpad: Some("cart-1".into()),
                    port: Some(2),
                },
            },
            t(1),
        ),
        (
            Event::BadgeTapped {
                badge: BadgeId::new("0012345"),
            },
            t(10),
        ),
        (
            command(
                1,
                t(11),
                ServerCommand::GrantCheckout(CheckoutGrant {
                    grant_id: GrantId::new("g1"),
                    request_id: None,
                    user: user("alice"),
                    method: UnlockMethod::CartBadge,
                    display_text: None,
                }),
            ),
            t(11),
        ),
        (Event::Undocked, t(20)),
        (Event::Tick, t(3600)),
        (
            Event::Docked {
                location: DockLocation::default(),
            },
            t(8 * 3600),
        ),
        (
            Event::AppLogoutFinished {
                app: AppId::new("com.epic.rover"),
                outcome: LogoutOutcome::Done,
            },
            t(8 * 3600 + 2),
        ),
        (Event::Tick, t(8 * 3600 + 30)),
        (
            command(
                2,
                t(8 * 3600 + 40),
                ServerCommand::PasscodeClearResult {
                    cleared: true,
                    detail: None,
                },
            ),
            t(8 * 3600 + 40),
        ),
    ]
}

fn open(path: &Path, now: Timestamp) -> (Agent, Vec<Effect>) {
    Agent::open(Store::open(path).unwrap(), now).unwrap()
}

#[test]
fn a_crash_after_any_step_of_checkout_and_check_in_restarts_in_a_safe_state() {
    let (key, _) = SigningKey::generate().unwrap();
    let steps = journey(&key);
    for crash_after in 0..=steps.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.db");
        let (mut agent, _) = open(&path, Timestamp(common::T0));
        let mut now = Timestamp(common::T0);
        for (event, at) in steps.iter().take(crash_after).cloned() {
            now = at;
            agent.handle(event, now).unwrap();
        }
        let committed = agent.locker().clone();
        let queued = agent.store().outbox_len().unwrap();
        drop(agent); // power cut

        let (mut agent, effects) = open(&path, now);
        let ctx = format!("crash after step {crash_after}");
        assert_eq!(agent.locker().phase, committed.phase, "{ctx}");
        assert_eq!(agent.locker().next_seq, committed.next_seq, "{ctx}");
        assert_eq!(
            agent.store().outbox_len().unwrap(),
            queued,
            "{ctx}: outbox kept"
        );
        let screen = effects
            .iter()
            .find_map(|e| {
                if let Effect::ShowScreen(s) = e {
                    Some(s.clone())
                } else {
                    None
                }
            })
            .unwrap_or_else(|| panic!("{ctx}: no screen re-issued"));
        assert_eq!(screen, agent.locker().screen(now), "{ctx}");
        if screen.is_unlocked() {
            assert!(
                agent.locker().user().is_some(),
                "{ctx}: unlocked with no user"
            );
        }
        let docked = agent.locker().dock.is_docked();
        let status = agent.locker().status();
        if docked && status != DeviceStatus::CheckoutPending {
            assert!(
                !screen.is_unlocked(),
                "{ctx}: docked phone unlocked in {status:?}"
            );
        }
        if status == DeviceStatus::Returning {
            assert!(
                effects
                    .iter()
                    .any(|e| matches!(e, Effect::LogOutApps { .. })),
                "{ctx}"
            );
        }

        // Whatever happened, a dock and some time end locked and checked in.
        agent
            .handle(
                Event::Docked {
                    location: DockLocation::default(),
                },
                now.plus_secs(1),
            )
            .unwrap();
        agent.handle(Event::Tick, now.plus_secs(120)).unwrap();
        let l = agent.locker();
        assert!(!l.screen(now.plus_secs(120)).is_unlocked(), "{ctx}");
        assert!(l.user().is_none(), "{ctx}");
    }
}

#[test]
fn a_failed_commit_moves_nothing_and_returns_no_effect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    let (key, _) = SigningKey::generate().unwrap();
    let steps = journey(&key);
    let (mut agent, _) = open(&path, Timestamp(common::T0));
    for (event, at) in steps.iter().take(5).cloned() {
        agent.handle(event, at).unwrap();
    }
    assert_eq!(agent.locker().status(), DeviceStatus::CheckedOut);
    let before = agent.locker().clone();
    // The disk "fills up": every outbox write now fails.
    let side = Connection::open(&path).unwrap();
    side.execute_batch(
        "CREATE TRIGGER disk_full BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    let dock_at = Timestamp(common::T0).plus_secs(100);
    let result = agent.handle(
        Event::Docked {
            location: DockLocation::default(),
        },
        dock_at,
    );
    assert!(result.is_err(), "commit must fail");
    assert_eq!(agent.locker(), &before, "in-memory state did not move");
    assert_eq!(
        Store::open(&path).unwrap().load_state().unwrap().as_ref(),
        Some(&before)
    );
    side.execute_batch("DROP TRIGGER disk_full;").unwrap();
    let effects = agent
        .handle(
            Event::Docked {
                location: DockLocation::default(),
            },
            dock_at,
        )
        .unwrap();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::ShowScreen(Screen::Locked { .. })))
    );
    assert_eq!(agent.locker().status(), DeviceStatus::Returning);
}

#[test]
fn idle_ticks_do_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    let (key, _) = SigningKey::generate().unwrap();
    let (mut agent, _) = open(&path, Timestamp(common::T0));
    for (event, at) in journey(&key).into_iter().take(2) {
        agent.handle(event, at).unwrap();
    }
    let side = Connection::open(&path).unwrap();
    let version = |c: &Connection| -> i64 {
        c.pragma_query_value(None, "data_version", |r| r.get(0))
            .unwrap()
    };
    let v0 = version(&side);
    let at = Timestamp(common::T0).plus_secs(5);
    let effects = agent.handle(Event::Tick, at).unwrap();
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(version(&side), v0, "no transaction for an idle tick");
    agent.handle(Event::Undocked, at).unwrap();
    assert_ne!(version(&side), v0, "a real change is written");
}
