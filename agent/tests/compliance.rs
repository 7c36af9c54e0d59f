//! Offline local compliance: conditions, cumulative tiers, and the four actions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

mod common;

use common::Harness;
use lanyard_agent::{Effect, Event, FactsUpdate, Screen};
use lanyard_protocol::events::Report;
use lanyard_protocol::policy::{ComplianceAction, ComplianceRule, Condition, ConditionKind, Tier};
use lanyard_protocol::{Cause, DeviceStatus, OsVersion, Policy, ServerCommand, UnlockMethod};

const HOUR: u64 = 3600;

fn policy(rules: Vec<ComplianceRule>) -> Policy {
    Policy {
        compliance: rules,
        ..Policy::default()
    }
}

fn rule(condition: Condition, tiers: &[(u64, Vec<ComplianceAction>)]) -> ComplianceRule {
    ComplianceRule {
        condition,
        tiers: tiers
            .iter()
            .map(|(d, a)| Tier {
                delay_secs: *d,
                actions: a.clone(),
            })
            .collect(),
    }
}

fn alert(m: &str) -> ComplianceAction {
    ComplianceAction::Alert { message: m.into() }
}

fn tiers_in(h: &Harness) -> Vec<(ConditionKind, u8)> {
    h.last_reports()
        .iter()
        .filter_map(|r| match r {
            Report::ComplianceTier {
                condition, tier, ..
            } => Some((*condition, *tier)),
            _ => None,
        })
        .collect()
}

fn check_out(h: &mut Harness, name: &str) {
    h.grant(name, UnlockMethod::PhoneBadge);
    h.undock();
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
}

#[test]
fn overdue_alerts_then_locks_until_the_user_authenticates_again() {
    let mut h = Harness::with_policy(Policy::default());
    check_out(&mut h, "alice");
    h.advance_secs(13 * HOUR - 1);
    assert!(tiers_in(&h).is_empty());
    assert_eq!(
        h.locker.scheduled_wake,
        Some(h.now.plus_secs(1)),
        "woken exactly at the due time"
    );
    h.advance_secs(1);
    assert_eq!(tiers_in(&h), vec![(ConditionKind::CheckoutOverdue, 0)]);
    assert!(h.has(|e| matches!(e, Effect::RaiseAlert { .. })));
    assert!(
        h.has(|e| matches!(e, Effect::RequestSync)),
        "Report action syncs at once"
    );
    assert!(matches!(
        h.screen(),
        Screen::CheckedOut { overdue: true, .. }
    ));
    assert_eq!(h.status(), DeviceStatus::CheckedOut);

    h.advance_secs(HOUR);
    assert_eq!(h.status(), DeviceStatus::Blocked);
    assert!(!h.screen().is_unlocked());
    assert_eq!(
        h.username().as_deref(),
        Some("alice"),
        "the lock keeps the assignment"
    );
    assert_eq!(h.screen().display_name(), Some("alice (display)"));

    // Someone else cannot take it over; alice can, by authenticating again.
    h.grant("bob", UnlockMethod::PhoneBadge);
    assert_eq!(h.status(), DeviceStatus::Blocked);
    h.grant("alice", UnlockMethod::PhoneBadge);
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
    let t = h
        .last_record()
        .and_then(|r| r.transition.clone())
        .expect("transition");
    assert_eq!(t.cause, Cause::Reauthenticated);

    // The lock comes back one lock-tier delay later while still overdue.
    h.advance_secs(HOUR - 1);
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
    h.advance_secs(1);
    assert_eq!(h.status(), DeviceStatus::Blocked);

    // Docking still checks it in.
    h.dock();
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert_eq!(h.username(), None);
}

#[test]
fn tier_delays_are_cumulative_and_coarse_ticks_fire_tiers_in_order() {
    let p = policy(vec![rule(
        Condition::OutOfContact { max_secs: 100 },
        &[
            (0, vec![alert("t0")]),
            (10, vec![alert("t1")]),
            (20, vec![alert("t2")]),
            (30, vec![ComplianceAction::BlockCheckout]),
        ],
    )]);
    let mut h = Harness::with_policy(p.clone());
    h.advance_secs(100);
    assert_eq!(tiers_in(&h), vec![(ConditionKind::OutOfContact, 0)]);
    h.advance_secs(10);
    assert_eq!(tiers_in(&h), vec![(ConditionKind::OutOfContact, 1)]);
    h.advance_secs(19);
    assert!(tiers_in(&h).is_empty());
    h.advance_secs(1);
    assert_eq!(tiers_in(&h), vec![(ConditionKind::OutOfContact, 2)]);
    h.advance_secs(29);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    h.advance_secs(1);
    assert_eq!(
        h.status(),
        DeviceStatus::Blocked,
        "tier 4 at 100+10+20+30 s"
    );

    // One tick long after: every tier fires, once each, in order.
    let mut h = Harness::with_policy(p);
    h.advance_secs(10_000);
    let tiers: Vec<u8> = tiers_in(&h).into_iter().map(|(_, t)| t).collect();
    assert_eq!(tiers, vec![0, 1, 2, 3]);
    let alerts = h
        .last
        .iter()
        .filter(|e| matches!(e, Effect::RaiseAlert { .. }))
        .count();
    assert_eq!(alerts, 3);
    h.advance_secs(10);
    assert!(tiers_in(&h).is_empty(), "tiers never fire twice");
}

#[test]
fn out_of_contact_blocks_checkout_and_a_sync_releases_it() {
    let mut h = Harness::with_policy(Policy::default());
    h.advance_secs(24 * HOUR);
    assert_eq!(tiers_in(&h), vec![(ConditionKind::OutOfContact, 0)]);
    h.advance_secs(48 * HOUR);
    assert_eq!(h.status(), DeviceStatus::Blocked);
    h.grant("alice", UnlockMethod::CartBadge);
    assert_eq!(h.status(), DeviceStatus::Blocked);
    h.tap("0012345");
    assert!(
        !h.has(|e| matches!(e, Effect::Authorize(_))),
        "blocked: no authorization"
    );
    h.send(Event::SyncSucceeded);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert!(h.last_reports().contains(&Report::ComplianceResolved {
        condition: ConditionKind::OutOfContact
    }));
    let t = h
        .last_record()
        .and_then(|r| r.transition.clone())
        .expect("transition");
    assert_eq!(t.cause, Cause::ComplianceCleared);
}

#[test]
fn os_below_minimum_blocks_checkout() {
    let p = policy(vec![rule(
        Condition::OsBelowMinimum {
            minimum: OsVersion::new(17, 4, 0),
        },
        &[(
            0,
            vec![ComplianceAction::BlockCheckout, ComplianceAction::Report],
        )],
    )]);
    let mut h = Harness::with_policy(p);
    h.facts(FactsUpdate {
        os_version: Some(OsVersion::new(17, 3, 1)),
        ..Default::default()
    });
    assert_eq!(h.status(), DeviceStatus::Blocked);
    assert!(
        matches!(h.screen(), Screen::Blocked { ref reasons, .. } if reasons[0].contains("iOS"))
    );
    h.facts(FactsUpdate {
        os_version: Some(OsVersion::new(17, 4, 0)),
        ..Default::default()
    });
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
}

#[test]
fn passcode_still_present_after_check_in_is_reported_then_blocks() {
    let mut h = Harness::with_policy(Policy::default());
    h.facts(FactsUpdate {
        passcode_present: Some(true),
        ..Default::default()
    });
    assert!(
        h.has(|e| matches!(e, Effect::RequestPasscodeClear { .. })),
        "asks the MDM to clear it"
    );
    h.advance_secs(599);
    assert!(tiers_in(&h).is_empty());
    h.advance_secs(1);
    assert_eq!(
        tiers_in(&h),
        vec![(ConditionKind::PasscodePresentWhileCheckedIn, 0)]
    );
    h.advance_secs(3000);
    assert_eq!(h.status(), DeviceStatus::Blocked);
    h.command(ServerCommand::PasscodeClearResult {
        cleared: true,
        detail: None,
    });
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
}

#[test]
fn compromised_blocks_and_locks_and_re_authentication_cannot_lift_it() {
    let mut h = Harness::with_policy(Policy::default());
    check_out(&mut h, "alice");
    h.facts(FactsUpdate {
        compromise_signals: Some(vec!["jailbreak".into()]),
        ..Default::default()
    });
    assert_eq!(h.status(), DeviceStatus::Blocked);
    assert!(h.has(|e| matches!(e, Effect::RequestSync)));
    h.grant("alice", UnlockMethod::PhoneBadge);
    assert_eq!(h.status(), DeviceStatus::Blocked);
    assert!(!h.screen().is_unlocked());
    h.dock();
    assert_eq!(
        h.status(),
        DeviceStatus::Blocked,
        "checked in, still blocked for checkout"
    );
    assert_eq!(h.username(), None);
    h.facts(FactsUpdate {
        compromise_signals: Some(vec![]),
        ..Default::default()
    });
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
}

#[test]
fn low_battery_blocks_checkout_until_charged() {
    let mut h = Harness::with_policy(Policy::default());
    h.facts(FactsUpdate {
        battery_percent: Some(12),
        ..Default::default()
    });
    assert_eq!(h.status(), DeviceStatus::Blocked);
    h.grant("alice", UnlockMethod::CartBadge);
    assert_eq!(h.status(), DeviceStatus::Blocked);
    h.facts(FactsUpdate {
        battery_percent: Some(20),
        ..Default::default()
    });
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    h.grant("alice", UnlockMethod::CartBadge);
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
}

#[test]
fn a_block_cancels_a_pending_grant_but_not_a_checkout_in_progress() {
    let mut h = Harness::with_policy(Policy::default());
    h.grant("alice", UnlockMethod::CartBadge);
    h.facts(FactsUpdate {
        battery_percent: Some(5),
        ..Default::default()
    });
    assert_eq!(h.status(), DeviceStatus::Blocked);
    assert_eq!(h.username(), None);

    let mut h = Harness::with_policy(Policy::default());
    check_out(&mut h, "alice");
    h.facts(FactsUpdate {
        battery_percent: Some(5),
        ..Default::default()
    });
    assert_eq!(
        h.status(),
        DeviceStatus::CheckedOut,
        "block checkout only stops new checkouts"
    );
    h.dock();
    assert_eq!(h.status(), DeviceStatus::Blocked);
}

#[test]
fn stale_policy_is_reported() {
    let mut p = Policy::default();
    p.valid_until = Some(lanyard_protocol::Timestamp(common::T0).plus_secs(HOUR));
    let mut h = Harness::with_policy(p);
    h.advance_secs(HOUR);
    assert_eq!(tiers_in(&h), vec![(ConditionKind::PolicyExpired, 0)]);
    let mut fresh = h.locker.policy.clone();
    fresh.version += 1;
    fresh.valid_until = Some(h.now.plus_secs(HOUR));
    h.policy(fresh);
    assert!(h.last_reports().contains(&Report::ComplianceResolved {
        condition: ConditionKind::PolicyExpired
    }));
}

#[test]
fn policy_is_data_an_older_or_invalid_policy_is_refused() {
    let mut h = Harness::with_policy(Policy {
        version: 5,
        ..Policy::default()
    });
    h.policy(Policy {
        version: 4,
        ..Policy::default()
    });
    assert_eq!(h.locker.policy.version, 5);
    assert!(
        h.last_reports()
            .iter()
            .any(|r| matches!(r, Report::PolicyRejected { version: 4, .. }))
    );
    let mut bad = Policy {
        version: 6,
        ..Policy::default()
    };
    bad.checkout.undock_window_secs = 0;
    h.policy(bad);
    assert_eq!(h.locker.policy.version, 5);
    // An empty rule set switches local compliance off.
    h.policy(Policy {
        version: 7,
        compliance: vec![],
        ..Policy::default()
    });
    h.facts(FactsUpdate {
        battery_percent: Some(1),
        ..Default::default()
    });
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
}

#[test]
fn extending_a_checkout_moves_the_due_time() {
    let mut h = Harness::with_policy(Policy::default());
    check_out(&mut h, "alice");
    let due = h.now.plus_secs(20 * HOUR);
    h.command(ServerCommand::ExtendCheckout { due_at: due });
    h.advance_secs(14 * HOUR);
    assert!(matches!(
        h.screen(),
        Screen::CheckedOut { overdue: false, .. }
    ));
    h.advance_secs(6 * HOUR);
    assert!(matches!(
        h.screen(),
        Screen::CheckedOut { overdue: true, .. }
    ));
}
