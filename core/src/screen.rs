//! The screen model: what the locker app shows, derived from state.

use lanyard_protocol::Timestamp;
use lanyard_protocol::policy::ConditionKind;
use serde::{Deserialize, Serialize};

use crate::state::{Block, Locker, Phase};

/// What the locker app displays. Only [`Screen::CheckoutPending`] and
/// [`Screen::CheckedOut`] leave the phone usable, and both always name a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum Screen {
    /// Not enrolled: the enrollment screen (no access to the phone).
    Enrollment,
    /// Locked.
    Locked {
        /// The lock-screen text from policy.
        text: String,
        /// A short message (a denial, "Checking in…"), if any.
        notice: Option<String>,
        /// True while something is in progress (authorizing, checking in).
        busy: bool,
    },
    /// Granted, waiting for the unplug.
    CheckoutPending {
        /// Whose it is.
        display_name: String,
        /// The checked-out text.
        text: String,
        /// When the grant lapses if the phone stays docked.
        expires_at: Timestamp,
    },
    /// In use.
    CheckedOut {
        /// Whose it is.
        display_name: String,
        /// The checked-out text.
        text: String,
        /// When it is due back.
        due_at: Timestamp,
        /// Past the due time.
        overdue: bool,
    },
    /// Held by compliance: locked, with the reasons.
    Blocked {
        /// Why.
        reasons: Vec<String>,
        /// The holder when the lock requires their re-authentication.
        display_name: Option<String>,
    },
}

impl Screen {
    /// True when the phone is usable (not behind the locker screen).
    pub fn is_unlocked(&self) -> bool {
        matches!(
            self,
            Screen::CheckoutPending { .. } | Screen::CheckedOut { .. }
        )
    }

    /// The name shown, if the screen shows one.
    pub fn display_name(&self) -> Option<&str> {
        match self {
            Screen::CheckoutPending { display_name, .. }
            | Screen::CheckedOut { display_name, .. } => Some(display_name),
            Screen::Blocked { display_name, .. } => display_name.as_deref(),
            _ => None,
        }
    }
}

/// A sentence per compliance condition, for the blocked screen.
pub fn condition_text(kind: ConditionKind) -> &'static str {
    match kind {
        ConditionKind::CheckoutOverdue => {
            "This device is overdue. Tap your badge to keep using it."
        }
        ConditionKind::OutOfContact => "This device has not reached the server for too long.",
        ConditionKind::OsBelowMinimum => "iOS on this device is below the required version.",
        ConditionKind::PasscodePresentWhileCheckedIn => "The passcode has not been cleared.",
        ConditionKind::Compromised => "This device reports signs of tampering.",
        ConditionKind::BatteryBelowCheckoutMinimum => "Battery too low to check out; charging.",
        ConditionKind::PolicyExpired => "Device policy is out of date.",
    }
}

/// Fills `[Display Name]` and `[Device User]` in a screen template.
pub fn fill_template(template: &str, display_name: &str, username: &str) -> String {
    template
        .replace("[Display Name]", display_name)
        .replace("[Device User]", username)
}

pub(crate) fn render(locker: &Locker, now: Timestamp) -> Screen {
    let notice = locker
        .notice
        .as_ref()
        .filter(|n| n.until > now)
        .map(|n| n.text.clone());
    let text = locker.policy.lock_screen_text.clone();
    match &locker.phase {
        Phase::Unenrolled => Screen::Enrollment,
        Phase::CheckedIn => Screen::Locked {
            text,
            notice,
            busy: locker.pending_auth.is_some(),
        },
        Phase::Returning(_) => Screen::Locked {
            text,
            notice: Some(notice.unwrap_or_else(|| "Checking in…".to_owned())),
            busy: true,
        },
        Phase::CheckoutPending(p) => Screen::CheckoutPending {
            display_name: p.assignment.user.display_name.clone(),
            text: p.assignment.display_text.clone(),
            expires_at: p.expires_at,
        },
        Phase::CheckedOut(c) => Screen::CheckedOut {
            display_name: c.assignment.user.display_name.clone(),
            text: c.assignment.display_text.clone(),
            due_at: c.due_at,
            overdue: now >= c.due_at,
        },
        Phase::Blocked(Block {
            conditions,
            held,
            remote_lock,
        }) => Screen::Blocked {
            reasons: remote_lock
                .iter()
                .map(|r| format!("Locked by IT: {r}. Tap your badge to unlock."))
                .chain(conditions.iter().map(|k| condition_text(*k).to_owned()))
                .collect(),
            display_name: held
                .as_ref()
                .map(|c| c.assignment.user.display_name.clone()),
        },
    }
}
