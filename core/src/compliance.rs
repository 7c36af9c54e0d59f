//! Offline local compliance: conditions the phone checks itself, escalating through
//! tiers with cumulative delays (the model is seed 002's tiered compliance), with
//! actions it can enforce without the server: alert, block checkout, lock, report.
//!
//! Time-based conditions carry the instant they *started* holding (the due time, the
//! last contact plus the allowance, ...), not the instant a tick happened to notice
//! them, so tiers fire at the same moments however coarse the ticks are.

use lanyard_protocol::Timestamp;
use lanyard_protocol::events::Report;
use lanyard_protocol::policy::{ComplianceAction, ComplianceRule, Condition, ConditionKind};
use serde::{Deserialize, Serialize};

use crate::state::{Block, Checkout, Locker, Phase};

/// The conditions currently holding, and how far each has escalated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceTracker {
    /// One entry per condition that holds.
    pub active: Vec<Violation>,
}

/// A condition that holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Which condition.
    pub kind: ConditionKind,
    /// When it started holding.
    pub since: Timestamp,
    /// How many tiers have fired (0 = none yet).
    pub tiers_fired: u8,
}

/// What one evaluation asks of the machine.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub reports: Vec<Report>,
    pub alerts: Vec<String>,
    pub urgent: bool,
}

/// The checkout whose user is subject to overdue and lock rules, if any.
pub(crate) fn current_checkout(phase: &Phase) -> Option<&Checkout> {
    match phase {
        Phase::CheckedOut(c) | Phase::Blocked(Block { held: Some(c), .. }) => Some(c),
        _ => None,
    }
}

fn is_checked_in(phase: &Phase) -> bool {
    matches!(
        phase,
        Phase::CheckedIn | Phase::Blocked(Block { held: None, .. })
    )
}

/// When `cond` started holding, or `None` if it does not hold at `now`.
/// `prev` is the start already recorded, for conditions that have no natural start time.
fn holds_since(
    cond: &Condition,
    l: &Locker,
    prev: Option<Timestamp>,
    now: Timestamp,
) -> Option<Timestamp> {
    let observed = || Some(prev.unwrap_or(now));
    let at = starts_at(cond, l)?;
    match cond {
        Condition::OsBelowMinimum { .. }
        | Condition::Compromised
        | Condition::BatteryBelowCheckoutMinimum { .. } => observed(),
        _ => (at <= now).then_some(at),
    }
}

/// When `cond` holds or will hold by the passage of time alone. For state conditions
/// (OS, compromise, battery) this is `EPOCH` when they hold and `None` otherwise.
fn starts_at(cond: &Condition, l: &Locker) -> Option<Timestamp> {
    let enrolled = l.enrollment.as_ref()?;
    match cond {
        Condition::CheckoutOverdue => current_checkout(&l.phase).map(|c| c.due_at),
        Condition::OutOfContact { max_secs } => Some(
            l.link
                .last_contact
                .unwrap_or(enrolled.enrolled_at)
                .plus_secs(*max_secs),
        ),
        Condition::OsBelowMinimum { minimum } => l
            .facts
            .os_version
            .filter(|v| v < minimum)
            .map(|_| Timestamp::EPOCH),
        Condition::PasscodePresentWhileCheckedIn { grace_secs } => (is_checked_in(&l.phase)
            && l.facts.passcode_present == Some(true))
        .then(|| l.checked_in_since.plus_secs(*grace_secs)),
        Condition::Compromised => {
            (!l.facts.compromise_signals.is_empty()).then_some(Timestamp::EPOCH)
        }
        Condition::BatteryBelowCheckoutMinimum { min_percent } => l
            .facts
            .battery_percent
            .filter(|b| b < min_percent)
            .map(|_| Timestamp::EPOCH),
        Condition::PolicyExpired => l.policy.valid_until,
    }
}

/// Instant tier `index` is reached for a violation that started at `since`.
fn tier_at(rule: &ComplianceRule, since: Timestamp, index: usize) -> Timestamp {
    let total: u64 = rule
        .tiers
        .iter()
        .take(index + 1)
        .map(|t| t.delay_secs)
        .sum();
    since.plus_secs(total)
}

fn tiers_reached(rule: &ComplianceRule, since: Timestamp, now: Timestamp) -> u8 {
    let n = (0..rule.tiers.len())
        .take_while(|&i| tier_at(rule, since, i) <= now)
        .count();
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// Re-evaluates every rule at `now`, firing newly reached tiers and resolving
/// conditions that stopped holding.
pub(crate) fn evaluate(l: &mut Locker, now: Timestamp) -> Outcome {
    let mut out = Outcome::default();
    let mut next: Vec<Violation> = Vec::with_capacity(l.compliance.active.len());
    for rule in &l.policy.compliance {
        let kind = rule.condition.kind();
        let prev = l.compliance.active.iter().find(|v| v.kind == kind);
        let Some(since) = holds_since(&rule.condition, l, prev.map(|v| v.since), now) else {
            continue;
        };
        let fired = prev.map_or(0, |v| v.tiers_fired);
        let reached = tiers_reached(rule, since, now);
        for tier in fired..reached {
            let actions = rule.tiers[usize::from(tier)].actions.clone();
            for action in &actions {
                match action {
                    ComplianceAction::Alert { message } => out.alerts.push(message.clone()),
                    ComplianceAction::Report => out.urgent = true,
                    ComplianceAction::BlockCheckout | ComplianceAction::Lock => {}
                }
            }
            out.reports.push(Report::ComplianceTier {
                condition: kind,
                tier,
                actions,
            });
        }
        next.push(Violation {
            kind,
            since,
            tiers_fired: reached.max(fired),
        });
    }
    for old in &l.compliance.active {
        if !next.iter().any(|v| v.kind == old.kind) {
            out.reports.push(Report::ComplianceResolved {
                condition: old.kind,
            });
        }
    }
    if next != l.compliance.active {
        l.compliance.active = next;
    }
    out
}

fn rule_for(l: &Locker, kind: ConditionKind) -> Option<&ComplianceRule> {
    l.policy
        .compliance
        .iter()
        .find(|r| r.condition.kind() == kind)
}

fn first_tier_with(rule: &ComplianceRule, action: &ComplianceAction) -> Option<usize> {
    rule.tiers.iter().position(|t| t.actions.contains(action))
}

/// Conditions whose reached tiers include "block checkout".
pub(crate) fn blocking(l: &Locker) -> Vec<ConditionKind> {
    l.compliance
        .active
        .iter()
        .filter(|v| {
            rule_for(l, v.kind)
                .and_then(|r| first_tier_with(r, &ComplianceAction::BlockCheckout))
                .is_some_and(|t| t < usize::from(v.tiers_fired))
        })
        .map(|v| v.kind)
        .collect()
}

/// When a "lock" for violation `v` takes (or took) effect, given the holder's last
/// re-authentication. A re-authentication after the lock postpones the next lock by
/// the lock tier's own delay; a zero delay means re-authentication cannot lift it.
fn lock_at(rule: &ComplianceRule, v: &Violation, reauth: Option<Timestamp>) -> Option<Timestamp> {
    let tier = first_tier_with(rule, &ComplianceAction::Lock)?;
    let at = tier_at(rule, v.since, tier);
    Some(match reauth {
        Some(r) if r >= at => r.plus_secs(rule.tiers[tier].delay_secs),
        _ => at,
    })
}

/// Conditions that lock a checked-out phone at `now`.
pub(crate) fn locking(l: &Locker, reauth: Option<Timestamp>, now: Timestamp) -> Vec<ConditionKind> {
    l.compliance
        .active
        .iter()
        .filter(|v| {
            rule_for(l, v.kind)
                .and_then(|r| lock_at(r, v, reauth))
                .is_some_and(|at| at <= now)
        })
        .map(|v| v.kind)
        .collect()
}

/// The earliest future instant at which compliance could change on its own.
pub(crate) fn next_change(l: &Locker, now: Timestamp) -> Option<Timestamp> {
    let reauth = current_checkout(&l.phase).and_then(|c| c.reauthenticated_at);
    let mut best: Option<Timestamp> = None;
    let mut consider = |t: Timestamp| {
        if t > now && best.is_none_or(|b| t < b) {
            best = Some(t);
        }
    };
    for rule in &l.policy.compliance {
        let kind = rule.condition.kind();
        match l.compliance.active.iter().find(|v| v.kind == kind) {
            Some(v) => {
                let fired = usize::from(v.tiers_fired);
                if fired < rule.tiers.len() {
                    consider(tier_at(rule, v.since, fired));
                }
                if let Some(at) = lock_at(rule, v, reauth) {
                    consider(at);
                }
            }
            None => {
                if let Some(at) = starts_at(&rule.condition, l) {
                    consider(at);
                }
            }
        }
    }
    best
}
