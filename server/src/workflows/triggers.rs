//! Automation rules: which rule a device event (or a schedule) deploys, by the rules'
//! conditions. Within a trigger, rules are evaluated top-down and the first enabled rule
//! whose conditions all hold wins: that is how seed 000's "Incorrect Device Home" rule,
//! placed first, replaces the plain "Check In" rule for a wandering phone (its workflow
//! list ends with Check In, so the phone is still checked in).

use lanyard_protocol::events::{Cause, Transition};
use lanyard_protocol::{DeviceStatus, UnlockMethod};

use super::model::{Condition, ConditionField, Operator, Rule};
use super::placeholder::Context;
use super::run::NewRun;
use crate::error::AppError;
use crate::model::AttributeTarget;
use crate::state::AppState;
use crate::storage::{Storage, StorageError};

/// The triggers a status change fires, in order. A grant that lapsed (or was given
/// up) while the phone stayed in the cart puts it back to checked in, but it never
/// left: that is no check-in, and must not run Check In or mail the cart's manager
/// about a wrong cart again.
pub fn fired(t: &Transition) -> Vec<&'static str> {
    let mut out = Vec::new();
    if t.to == DeviceStatus::CheckedIn
        && !matches!(
            t.from,
            DeviceStatus::CheckedIn | DeviceStatus::CheckoutPending
        )
    {
        out.push("checked_in");
    }
    if let Cause::Granted { method, .. } = &t.cause {
        out.push("checked_out");
        if *method == UnlockMethod::Password {
            out.push("unlocked_via_password");
        }
    }
    out
}

/// Loads what conditions and placeholders read for a device.
pub async fn context<S: Storage>(
    st: &AppState<S>,
    device_id: &str,
) -> Result<Context, StorageError> {
    let device = st.storage.get_device(device_id.to_owned()).await?;
    let launchpad = match &device.last_launchpad {
        Some(id) => match st.storage.get_launchpad(id.clone()).await {
            Ok(l) => Some(l),
            Err(StorageError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let user = match &device.device_user {
        Some(u) => match st.storage.get_user(u.clone()).await {
            Ok(u) => Some(u),
            Err(StorageError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let device_attributes = st
        .storage
        .attribute_values(AttributeTarget::Device, device.id.clone())
        .await?;
    let launchpad_attributes = match &launchpad {
        Some(l) => {
            st.storage
                .attribute_values(AttributeTarget::Launchpad, l.id.clone())
                .await?
        }
        None => Default::default(),
    };
    Ok(Context {
        device: Some(device),
        user,
        launchpad,
        device_attributes,
        launchpad_attributes,
    })
}

fn field_value(c: &Condition, cx: &Context) -> Option<serde_json::Value> {
    use serde_json::Value;
    let d = cx.device.as_ref()?;
    let lp = cx.launchpad.as_ref();
    let s = |v: Option<String>| v.map(Value::String);
    match c.field {
        ConditionField::CheckoutStatus => Some(Value::String(d.status.as_str().into())),
        ConditionField::BatteryLevel => d.battery.map(Value::from),
        ConditionField::PortNumber => d.last_port.map(Value::from),
        ConditionField::DeviceHome => s(d.device_home.clone()),
        ConditionField::DeviceUser => s(d.device_user.clone()),
        ConditionField::Department => s(lp.and_then(|l| l.department.clone())),
        ConditionField::Facility => s(lp.and_then(|l| l.facility.clone())),
        ConditionField::LaunchpadName => s(lp.map(|l| l.name.clone())),
        ConditionField::OsVersion => s(d.os_version.clone()),
        ConditionField::DeviceModel => s(d.model.clone()),
        ConditionField::Attribute => {
            let name = c.attribute.as_deref()?;
            let find = |m: &std::collections::BTreeMap<String, Value>| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            find(&cx.device_attributes).or_else(|| find(&cx.launchpad_attributes))
        }
    }
}

/// Whether one condition holds. A field with no value (a phone with no Device Home, a
/// cart with no Department) matches nothing, not even "is not": an unknown is not
/// evidence that a phone wandered. A placeholder with no value counts the same way.
pub fn holds(c: &Condition, cx: &Context) -> bool {
    use serde_json::Value;
    let Some(actual) = field_value(c, cx) else {
        return false;
    };
    if c.op.numeric() {
        let (Some(a), Some(b)) = (actual.as_i64(), c.value.as_i64()) else {
            return false;
        };
        return match c.op {
            Operator::GreaterThan => a > b,
            Operator::GreaterThanOrEqual => a >= b,
            Operator::LessThan => a < b,
            Operator::LessThanOrEqual => a <= b,
            Operator::Is | Operator::IsNot => false,
        };
    }
    let expected = match &c.value {
        Value::String(s) => match cx.render(s) {
            Ok(v) => Value::String(v),
            Err(_) => return false,
        },
        other => other.clone(),
    };
    let equal = match (&actual, &expected) {
        (Value::String(a), Value::String(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        (a, Value::String(b)) => a.to_string().eq_ignore_ascii_case(b.trim()),
        (a, b) => a == b,
    };
    match c.op {
        Operator::Is => equal,
        _ => !equal,
    }
}

/// The first enabled rule of `trigger` (rules sorted by position) whose conditions hold.
pub fn first_match<'a>(rules: &'a [Rule], trigger: &str, cx: &Context) -> Option<&'a Rule> {
    rules
        .iter()
        .filter(|r| r.spec.enabled && r.spec.trigger.kind() == trigger)
        .find(|r| r.spec.conditions.iter().all(|c| holds(c, cx)))
}

/// The runs a matched rule deploys to a device, one per workflow, in order.
pub fn runs_for(rule: &Rule, device_id: &str, origin: &str) -> Vec<NewRun> {
    rule.spec
        .workflows
        .iter()
        .map(|w| NewRun {
            device_id: device_id.to_owned(),
            workflow_id: w.clone(),
            rule_id: Some(rule.id.clone()),
            origin: origin.to_owned(),
            parent_run: None,
            actor: format!("rule:{} ({})", rule.id, rule.spec.name),
        })
        .collect()
}

/// Consumes a device's queued status changes (the transition outbox the sync wrote in
/// its own transaction): deploys what the rules say, removing each change in the same
/// transaction that creates its runs. Each change triggers exactly once, whoever drains
/// it (the sync that queued it, or [`crate::jobs`] after a crash) and however many
/// drain at once. `known`: the changes the caller just queued, saving a read.
pub async fn drain<S: Storage>(
    st: &AppState<S>,
    device_id: &str,
    known: Option<Vec<(u64, Transition)>>,
) -> Result<usize, AppError> {
    let queued = match known {
        Some(t) => t,
        None => {
            let d = device_id.to_owned();
            st.storage
                .transact(move |tx| tx.queued_transitions(&d))
                .await?
        }
    };
    if queued.is_empty() {
        return Ok(0);
    }
    let mut rules = st.storage.list_rules().await?;
    rules.sort_by_key(|r| r.position);
    let fires =
        queued.iter().any(|(_, t)| !fired(t).is_empty()) && rules.iter().any(|r| r.spec.enabled);
    let cx = if fires {
        Some(context(st, device_id).await?)
    } else {
        None
    };
    let mut per_seq: Vec<(u64, Vec<NewRun>)> = Vec::with_capacity(queued.len());
    for (seq, t) in &queued {
        let mut runs = Vec::new();
        if let Some(cx) = &cx {
            for trigger in fired(t) {
                if let Some(rule) = first_match(&rules, trigger, cx) {
                    tracing::info!(device = %device_id, rule = %rule.id, trigger, "automation rule matched");
                    runs.extend(runs_for(rule, device_id, trigger));
                }
            }
        }
        per_seq.push((*seq, runs));
    }
    let d = device_id.to_owned();
    let now = st.now();
    let created = st
        .storage
        .transact(move |tx| {
            let mut created = 0;
            for (seq, runs) in per_seq {
                // Another drain took this change first: its runs are its own.
                if tx.consume_transition(&d, seq)? && !runs.is_empty() {
                    created += tx.create_runs(runs, now)?.len();
                }
            }
            Ok(created)
        })
        .await?;
    if created > 0 {
        super::engine::wake(st);
    }
    Ok(created)
}

/// Drains every device's leftover transitions (a crash between a sync and its drain),
/// at most `limit` devices a pass. Returns how many runs were created.
pub async fn drain_leftovers<S: Storage>(st: &AppState<S>, limit: u32) -> Result<usize, AppError> {
    let devices = st
        .storage
        .transact(move |tx| tx.devices_with_transitions(limit))
        .await?;
    let mut created = 0;
    for d in devices {
        created += drain(st, &d, None).await?;
    }
    Ok(created)
}

/// The text a phone shows when unlocked for `user`: the Check Out Device action of the
/// workflows the checked-out rule would deploy (seed 000: `[Imprivata Display Name]`),
/// filled for this user and phone. The grant carries it, so the phone shows it the
/// moment it unlocks.
pub async fn checkout_display_text<S: Storage>(
    st: &AppState<S>,
    device_id: Option<&str>,
    cart_id: Option<&str>,
    user: &lanyard_protocol::UserRef,
) -> Result<Option<String>, AppError> {
    Ok(checkout_presentation(st, device_id, cart_id, user)
        .await?
        .display_text)
}

/// How a checkout presents itself, from the Check Out Device action the checked-out
/// rule would run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutPresentation {
    /// Text to display when unlocked, filled in.
    pub display_text: Option<String>,
    /// Suppress the cart's blue "deployment in progress" LED: the hub flashes white,
    /// "ready to be removed" (seed 001's best practice).
    pub suppress_blue_led: bool,
}

/// As [`checkout_display_text`], with the LED choice. `device_id` is unknown for a cart
/// tap until the cart picks a phone: device conditions then do not hold, and the cart's
/// own attributes decide.
pub async fn checkout_presentation<S: Storage>(
    st: &AppState<S>,
    device_id: Option<&str>,
    cart_id: Option<&str>,
    user: &lanyard_protocol::UserRef,
) -> Result<CheckoutPresentation, AppError> {
    let mut rules = st.storage.list_rules().await?;
    if !rules
        .iter()
        .any(|r| r.spec.enabled && r.spec.trigger.kind() == "checked_out")
    {
        return Ok(CheckoutPresentation::default());
    }
    rules.sort_by_key(|r| r.position);
    let mut cx = match device_id {
        Some(id) => context(st, id).await?,
        None => Context::default(),
    };
    if cx.launchpad.is_none()
        && let Some(cart) = cart_id
    {
        cx.launchpad = st.storage.get_launchpad(cart.to_owned()).await.ok();
    }
    cx.user = match st.storage.get_user(user.username.clone()).await {
        Ok(u) => Some(u),
        Err(StorageError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(d) = cx.device.as_mut() {
        d.device_user = Some(user.username.clone());
    }
    let Some(rule) = first_match(&rules, "checked_out", &cx) else {
        return Ok(CheckoutPresentation::default());
    };
    for id in &rule.spec.workflows {
        let Ok(w) = st.storage.get_workflow(id.clone()).await else {
            continue;
        };
        for a in &w.spec.actions {
            if let super::model::Action::CheckOutDevice {
                display_text,
                suppress_blue_led,
            } = a
            {
                return Ok(CheckoutPresentation {
                    display_text: display_text.as_ref().and_then(|t| cx.render(t).ok()),
                    suppress_blue_led: *suppress_blue_led,
                });
            }
        }
    }
    Ok(CheckoutPresentation::default())
}

#[cfg(test)]
mod fired_tests {
    use super::*;

    fn t(from: DeviceStatus, to: DeviceStatus, cause: Cause) -> Transition {
        Transition { from, to, cause }
    }

    #[test]
    fn a_return_is_a_check_in_and_a_lapsed_grant_is_not() {
        use DeviceStatus::*;
        assert_eq!(
            fired(&t(Returning, CheckedIn, Cause::ReturnCompleted)),
            ["checked_in"]
        );
        assert_eq!(
            fired(&t(Blocked, CheckedIn, Cause::ComplianceCleared)),
            ["checked_in"]
        );
        assert!(fired(&t(CheckoutPending, CheckedIn, Cause::GrantExpired)).is_empty());
        assert!(fired(&t(CheckedIn, CheckedIn, Cause::Docked)).is_empty());
    }
}
