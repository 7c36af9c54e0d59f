//! Property tests: the core's invariants over random event sequences.
//!
//! - the screen is never unlocked without an assigned user;
//! - never two users: the Device User only changes by passing through "no user";
//! - any sequence ending with a dock plus enough ticks ends locked and checked in;
//! - every status change yields exactly one outbox record, and sequence numbers
//!   increase by exactly one;
//! - the core never reads time: replaying the same inputs gives the same outputs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

mod common;

use common::{DEVICE, Harness, user};
use lanyard_agent::{Effect, Event, FactsUpdate, Locker, Screen, handle};
use lanyard_protocol::events::LogoutOutcome;
use lanyard_protocol::kdf::SlowHash;
use lanyard_protocol::policy::{AppLogout, EmergencyPin};
use lanyard_protocol::{
    AppId, BadgeId, CheckoutGrant, DenialCode, DeviceStatus, DockLocation, GrantId, OsVersion,
    Password, Pin, Policy, ServerCommand, Timestamp, UnlockMethod,
};
use proptest::prelude::*;

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const APPS: [&str; 2] = ["com.epic.rover", "com.vocera.app"];

#[derive(Clone, Debug)]
enum Op {
    Tap(u8),
    Password(u8),
    Pin(u8),
    AuthFailed,
    Grant {
        user: u8,
        answer_pending: bool,
        method: u8,
    },
    Deny,
    RemoteCheckIn,
    RemoteLock,
    PasscodeResult(bool),
    Extend(u32),
    Unenroll,
    Enroll,
    ReplayLast,
    Dock(Option<u32>),
    Undock,
    AppLogout(u8, u8),
    Facts {
        battery: Option<u8>,
        passcode: Option<bool>,
        compromised: Option<bool>,
        os: Option<u8>,
    },
    SyncOk,
    SyncFail,
    NewPolicy {
        apps: u8,
        window: u16,
        lending: u32,
    },
    Crash,
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4).prop_map(Op::Tap),
        1 => (0u8..3).prop_map(Op::Password),
        2 => (0u8..3).prop_map(Op::Pin),
        2 => Just(Op::AuthFailed),
        6 => (0u8..3, any::<bool>(), 0u8..5)
            .prop_map(|(user, answer_pending, method)| Op::Grant { user, answer_pending, method }),
        1 => Just(Op::Deny),
        1 => Just(Op::RemoteCheckIn),
        1 => Just(Op::RemoteLock),
        1 => any::<bool>().prop_map(Op::PasscodeResult),
        1 => (0u32..100_000).prop_map(Op::Extend),
        1 => Just(Op::Unenroll),
        1 => Just(Op::Enroll),
        1 => Just(Op::ReplayLast),
        5 => proptest::option::of(1u32..20).prop_map(Op::Dock),
        5 => Just(Op::Undock),
        3 => (0u8..3, 0u8..3).prop_map(|(a, o)| Op::AppLogout(a, o)),
        3 => (
            proptest::option::of(0u8..=120),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(0u8..3)
        )
            .prop_map(|(battery, passcode, compromised, os)| Op::Facts { battery, passcode, compromised, os }),
        2 => Just(Op::SyncOk),
        2 => Just(Op::SyncFail),
        1 => (0u8..3, 1u16..300, 60u32..200_000)
            .prop_map(|(apps, window, lending)| Op::NewPolicy { apps, window, lending }),
        1 => Just(Op::Crash),
        4 => Just(Op::Tick),
    ]
}

/// Seconds passing before each op: mostly short, sometimes hours, and now and then
/// backwards (a phone's wall clock can be corrected).
fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![
        60 => 0i64..20,
        30 => 20i64..400,
        10 => 400i64..200_000,
        3 => -7200i64..0,
    ]
}

fn policy_for(apps: u8, window: u16, lending: u32, version: u64) -> Policy {
    let mut p = Policy::default();
    p.version = version;
    p.checkout.undock_window_secs = u64::from(window);
    p.checkout.lending_period_secs = u64::from(lending);
    p.app_logouts = APPS
        .iter()
        .take(usize::from(apps))
        .map(|a| AppLogout {
            app: AppId::new(*a),
            name: (*a).to_owned(),
        })
        .collect();
    p.emergency_pin = Some(EmergencyPin {
        hash: SlowHash::new(b"2468", b"s".to_vec(), 1000),
        user: user("emergency"),
    });
    p
}

/// Turns an abstract op into a concrete event (signing commands as the server would).
struct Driver {
    h: Harness,
    last_command: Option<lanyard_protocol::CommandEnvelope>,
    policy_version: u64,
    /// Every (event, now) fed, for the determinism replay.
    log: Vec<(Event, Timestamp)>,
}

impl Driver {
    fn new() -> Self {
        let h = Harness::unenrolled();
        let mut d = Driver {
            h,
            last_command: None,
            policy_version: 1,
            log: Vec::new(),
        };
        d.enroll();
        d.h.offline_list(&[("b0", "alice"), ("b1", "bob")], 400_000);
        d
    }

    fn enroll(&mut self) {
        let policy = policy_for(1, 60, 13 * 3600, self.policy_version);
        let signed = common::sign(&self.h.key, &policy);
        let verified = lanyard_agent::Verified::open(&signed, &self.h.key.verifying_key()).unwrap();
        self.feed(Event::Enrolled {
            device_id: DEVICE.into(),
            server_key: self.h.key.verifying_key(),
            policy: verified,
        });
    }

    fn command(&mut self, payload: ServerCommand) {
        let env = self.h.envelope(payload);
        self.last_command = Some(env.clone());
        self.signed(&env);
    }

    fn signed(&mut self, env: &lanyard_protocol::CommandEnvelope) {
        let s = common::sign(&self.h.key, env);
        let v = lanyard_agent::Verified::open(&s, &self.h.key.verifying_key()).unwrap();
        self.feed(Event::Command(v));
    }

    fn feed(&mut self, event: Event) {
        self.log.push((event.clone(), self.h.now));
        self.h.send(event);
    }

    fn apply(&mut self, op: &Op) {
        // Ops that feed nothing must not be judged by the previous call's effects.
        self.h.last.clear();
        match op.clone() {
            Op::Tap(b) => self.feed(Event::BadgeTapped {
                badge: BadgeId::new(format!("b{b}")),
            }),
            Op::Password(u) => self.feed(Event::PasswordEntered {
                username: USERS[usize::from(u)].into(),
                password: Password::new("pw"),
            }),
            Op::Pin(k) => {
                let pin = ["2468", "1111", "12"][usize::from(k)];
                self.feed(Event::PinEntered { pin: Pin::new(pin) })
            }
            Op::AuthFailed => {
                if let Some(request_id) = self.h.pending_request() {
                    self.feed(Event::AuthorizationFailed { request_id });
                }
            }
            Op::Grant {
                user: u,
                answer_pending,
                method,
            } => {
                let method = [
                    UnlockMethod::PhoneBadge,
                    UnlockMethod::CartBadge,
                    UnlockMethod::Password,
                    UnlockMethod::PhoneBadge,
                    UnlockMethod::CartBadge,
                ][usize::from(method)];
                let request_id = if answer_pending {
                    self.h.pending_request()
                } else {
                    None
                };
                let n = self.log.len();
                self.command(ServerCommand::GrantCheckout(CheckoutGrant {
                    grant_id: GrantId::new(format!("g{n}")),
                    request_id,
                    user: user(USERS[usize::from(u)]),
                    method,
                    display_text: None,
                }))
            }
            Op::Deny => {
                if let Some(request_id) = self.h.pending_request() {
                    self.command(ServerCommand::DenyCheckout {
                        request_id,
                        code: DenialCode::BadgeNotFound,
                    });
                }
            }
            Op::RemoteCheckIn => self.command(ServerCommand::CheckIn {
                reason: "IT".into(),
                as_of: None,
            }),
            Op::RemoteLock => self.command(ServerCommand::Lock {
                reason: "IT".into(),
            }),
            Op::PasscodeResult(cleared) => self.command(ServerCommand::PasscodeClearResult {
                cleared,
                detail: None,
            }),
            Op::Extend(s) => {
                let due_at = self.h.now.plus_secs(u64::from(s));
                self.command(ServerCommand::ExtendCheckout { due_at })
            }
            Op::Unenroll => self.command(ServerCommand::Unenroll),
            Op::Enroll => self.enroll(),
            Op::ReplayLast => {
                if let Some(env) = self.last_command.clone() {
                    self.signed(&env);
                }
            }
            Op::Dock(port) => self.feed(Event::Docked {
                location: DockLocation {
                    launchpad: port.map(|_| "cart-1".into()),
                    port,
                },
            }),
            Op::Undock => self.feed(Event::Undocked),
            Op::AppLogout(a, o) => {
                let app = AppId::new(*APPS.get(usize::from(a)).unwrap_or(&"com.other"));
                let outcome = match o {
                    0 => LogoutOutcome::Done,
                    1 => LogoutOutcome::Failed { detail: "x".into() },
                    _ => LogoutOutcome::TimedOut,
                };
                self.feed(Event::AppLogoutFinished { app, outcome })
            }
            Op::Facts {
                battery,
                passcode,
                compromised,
                os,
            } => self.feed(Event::PlatformFacts(FactsUpdate {
                os_version: os.map(|m| OsVersion::new(16 + u32::from(m), 0, 0)),
                passcode_present: passcode,
                compromise_signals: compromised
                    .map(|c| if c { vec!["jailbreak".into()] } else { vec![] }),
                battery_percent: battery,
            })),
            Op::SyncOk => self.feed(Event::SyncSucceeded),
            Op::SyncFail => self.feed(Event::SyncFailed),
            Op::NewPolicy {
                apps,
                window,
                lending,
            } => {
                self.policy_version += 1;
                let p = policy_for(apps, window, lending, self.policy_version);
                let s = common::sign(&self.h.key, &p);
                let v = lanyard_agent::Verified::open(&s, &self.h.key.verifying_key()).unwrap();
                self.feed(Event::PolicyUpdated(v));
            }
            Op::Crash => {
                let json = serde_json::to_string(&self.h.locker).unwrap();
                self.h.locker = serde_json::from_str(&json).unwrap();
                self.log.push((Event::HostStarted, self.h.now));
                // The replay below cannot crash; mark it so the replay reloads too.
                self.h.send(Event::HostStarted);
            }
            Op::Tick => self.feed(Event::Tick),
        }
    }
}

/// Checks the per-step invariants on the effects of one call.
fn check_step(
    before: &Locker,
    after: &Locker,
    effects: &[Effect],
    next_seq: &mut u64,
) -> Result<(), TestCaseError> {
    let records: Vec<_> = effects
        .iter()
        .filter_map(|e| {
            if let Effect::Record(r) = e {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    // Each status change is one record whose `from` is where the previous one left off.
    let mut status = before.status();
    let mut holder = before.user().cloned();
    for r in &records {
        prop_assert_eq!(r.seq, *next_seq, "sequence numbers increase by exactly one");
        *next_seq += 1;
        match &r.transition {
            Some(t) => {
                prop_assert_eq!(t.from, status, "transition chain broken");
                prop_assert_ne!(t.from, t.to, "a transition must change the status");
                prop_assert_eq!(r.status, t.to);
                status = t.to;
            }
            None => prop_assert_eq!(r.status, status, "status changed without a transition"),
        }
        // Never two users: the Device User changes only through "no user".
        if let (Some(x), Some(y)) = (&holder, &r.user) {
            prop_assert_eq!(&x.username, &y.username, "user replaced without a check-in");
        }
        holder = r.user.clone();
    }
    prop_assert_eq!(
        status,
        after.status(),
        "final status not explained by the records"
    );
    prop_assert_eq!(
        holder.as_ref(),
        after.user(),
        "final user not explained by the records"
    );
    let transitions = records.iter().filter(|r| r.transition.is_some()).count();
    prop_assert!(
        records.len() <= transitions + 1,
        "at most one record without a transition"
    );
    for e in effects {
        if let Effect::ShowScreen(s) = e
            && s.is_unlocked()
        {
            let u = after.user().expect("unlocked screen with no assigned user");
            prop_assert_eq!(s.display_name(), Some(u.display_name.as_str()));
        }
    }
    Ok(())
}

fn fully_locked(l: &Locker, now: Timestamp) -> bool {
    let s = l.screen(now);
    !s.is_unlocked()
        && l.user().is_none()
        && matches!(
            l.status(),
            DeviceStatus::CheckedIn | DeviceStatus::Blocked | DeviceStatus::Unenrolled
        )
        && !matches!(
            s,
            Screen::CheckedOut { .. } | Screen::CheckoutPending { .. }
        )
}

proptest! {
    // 256 cases in the suite; `PROPTEST_CASES=20000` for a deeper soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_over_random_sequences(steps in proptest::collection::vec((gap(), op()), 1..60)) {
        let mut d = Driver::new();
        let mut next_seq = d.h.locker.next_seq;
        for (dt, op) in &steps {
            d.h.now = Timestamp(d.h.now.as_millis() + dt * 1000);
            let before = d.h.locker.clone();
            d.apply(op);
            check_step(&before, &d.h.locker, &d.h.last, &mut next_seq)?;
            let derived = d.h.screen();
            if derived.is_unlocked() {
                prop_assert!(d.h.locker.user().is_some(), "derived screen unlocked with no user");
            }
            if let Some(shown) = &d.h.locker.shown {
                prop_assert_eq!(shown.is_unlocked(), d.h.locker.user().is_some() && shown.is_unlocked());
            }
        }

        // Dock, then let time pass: always ends locked and checked in.
        let before = d.h.locker.clone();
        d.feed(Event::Docked { location: DockLocation::default() });
        check_step(&before, &d.h.locker, &d.h.last, &mut next_seq)?;
        for secs in [60, 600, 3600, 86_400, 86_400] {
            d.h.now = d.h.now.plus_secs(secs);
            let before = d.h.locker.clone();
            d.feed(Event::Tick);
            check_step(&before, &d.h.locker, &d.h.last, &mut next_seq)?;
        }
        prop_assert!(fully_locked(&d.h.locker, d.h.now), "not locked after dock + ticks: {:?}", d.h.locker.phase);

        // Same inputs, same outputs: nothing inside reads a clock.
        let mut replay = Harness::unenrolled().locker;
        let mut first = Harness::unenrolled().locker;
        let mut outputs_a = Vec::new();
        let mut outputs_b = Vec::new();
        for (event, now) in d.log.iter().cloned() {
            let (s, e) = handle(std::mem::take(&mut replay), event.clone(), now);
            replay = s;
            outputs_a.push(e);
            let (s, e) = handle(std::mem::take(&mut first), event, now);
            first = s;
            outputs_b.push(e);
        }
        prop_assert_eq!(&replay, &first);
        prop_assert_eq!(outputs_a, outputs_b);
    }
}

#[test]
fn the_driver_reaches_every_state() {
    // Guards the property test against a driver that never exercises the machine.
    let mut d = Driver::new();
    let mut seen = std::collections::BTreeSet::new();
    let script = [
        Op::Tap(0),
        Op::Grant {
            user: 0,
            answer_pending: true,
            method: 0,
        },
        Op::Undock,
        Op::Dock(Some(3)),
        Op::AppLogout(0, 0),
        Op::Facts {
            battery: Some(3),
            passcode: None,
            compromised: None,
            os: None,
        },
        Op::Facts {
            battery: Some(90),
            passcode: None,
            compromised: None,
            os: None,
        },
        Op::Unenroll,
    ];
    for op in &script {
        d.h.now = d.h.now.plus_secs(5);
        d.apply(op);
        seen.insert(format!("{:?}", d.h.status()));
    }
    for s in [
        "CheckoutPending",
        "CheckedOut",
        "Returning",
        "CheckedIn",
        "Blocked",
        "Unenrolled",
    ] {
        assert!(seen.contains(s), "never reached {s}: {seen:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Tiers fire at instants fixed by the condition and the delays, so the state
    /// reached at a given time is the same however often the host ticked on the way.
    #[test]
    fn compliance_does_not_depend_on_tick_granularity(
        max_secs in 0u64..5_000,
        delays in proptest::collection::vec(0u64..5_000, 1..=4),
        ticks in proptest::collection::vec(1u64..3_000, 1..40),
    ) {
        use lanyard_protocol::policy::{ComplianceAction, ComplianceRule, Condition, Tier};
        let last = delays.len() - 1;
        let tiers = delays
            .iter()
            .enumerate()
            .map(|(i, d)| Tier {
                delay_secs: *d,
                actions: if i == last {
                    vec![ComplianceAction::BlockCheckout]
                } else {
                    vec![ComplianceAction::Alert { message: format!("tier {i}") }]
                },
            })
            .collect();
        let policy = Policy {
            compliance: vec![ComplianceRule { condition: Condition::OutOfContact { max_secs }, tiers }],
            ..Policy::default()
        };
        let mut fine = Harness::with_policy(policy.clone());
        let mut coarse = Harness::with_policy(policy);
        let mut fine_tiers = Vec::new();
        for t in &ticks {
            fine.advance_secs(*t);
            fine_tiers.extend(fine.last_reports());
        }
        coarse.advance_secs(ticks.iter().sum());
        let coarse_tiers = coarse.last_reports();
        prop_assert_eq!(&fine.locker.compliance, &coarse.locker.compliance);
        prop_assert_eq!(fine.status(), coarse.status());
        prop_assert_eq!(fine_tiers, coarse_tiers, "same tiers, same order");
    }
}
