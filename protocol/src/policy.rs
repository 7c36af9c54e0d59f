//! Device policy: checkout timings, screen texts, app logouts, offline unlock and local
//! compliance rules. Policy is data, signed by the server and evaluated by the agent core.

use serde::{Deserialize, Serialize};

use crate::ids::{AppId, DeviceId};
use crate::kdf::SlowHash;
use crate::os_version::OsVersion;
use crate::status::UserRef;
use crate::time::Timestamp;

/// Everything a device needs to decide on its own. Unknown fields are ignored so an
/// older agent can read a newer policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Monotonic version; a device ignores a policy older than the one it has.
    pub version: u64,
    /// When the server issued it.
    pub issued_at: Timestamp,
    /// After this instant the policy is stale (a compliance condition). `None`: never stale.
    pub valid_until: Option<Timestamp>,
    /// Checkout and return timings.
    pub checkout: CheckoutPolicy,
    /// Text on the locked screen, placeholders already resolved by the server
    /// (e.g. "If found, return this device to 4 West. F2LXK0XXHG7F").
    pub lock_screen_text: String,
    /// Template for the checked-out screen. `[Display Name]` and `[Device User]` are
    /// filled in on the device, so offline unlocks show the right name too.
    pub checkout_text_template: String,
    /// Apps to log out on check-in, in order.
    pub app_logouts: Vec<AppLogout>,
    /// Bring a blank page to the front before logging apps out at check-in (seed 000:
    /// "Launch a blank page before Check In", for iOS 17 and below).
    pub blank_page_before_check_in: bool,
    /// Emergency unlock PIN (4 to 8 digits, set by IT), stored only as a slow hash.
    pub emergency_pin: Option<EmergencyPin>,
    /// Local compliance rules, evaluated on every event and tick.
    pub compliance: Vec<ComplianceRule>,
}

/// Checkout and return timings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckoutPolicy {
    /// A grant that is not followed by an unplug within this window expires (seed 001: 60 s).
    pub undock_window_secs: u64,
    /// How long a checkout may last before it is overdue (longest shift + 1 h).
    pub lending_period_secs: u64,
    /// How long an app may take to log out on check-in before check-in proceeds without it.
    pub app_logout_timeout_secs: u64,
    /// How long to wait for the server to answer a badge or password before giving up
    /// (a badge then falls back to the offline credential list).
    pub authorize_timeout_secs: u64,
    /// First retry delay for an unconfirmed passcode clear; doubles up to the maximum.
    pub passcode_clear_retry_secs: u64,
    /// Ceiling of the passcode-clear retry delay.
    pub passcode_clear_retry_max_secs: u64,
    /// Allowed clock difference between phone and server when checking command validity.
    pub clock_skew_secs: u64,
    /// Wrong emergency PINs allowed before delays start.
    pub pin_free_attempts: u32,
    /// First lockout after the free attempts; doubles with each further failure (max 1 h).
    pub pin_lockout_base_secs: u64,
}

impl Default for CheckoutPolicy {
    fn default() -> Self {
        CheckoutPolicy {
            undock_window_secs: 60,
            lending_period_secs: 13 * 3600,
            app_logout_timeout_secs: 30,
            authorize_timeout_secs: 5,
            passcode_clear_retry_secs: 30,
            passcode_clear_retry_max_secs: 15 * 60,
            clock_skew_secs: 300,
            pin_free_attempts: 3,
            pin_lockout_base_secs: 30,
        }
    }
}

/// One app to log out on check-in ("Logout Actions" of the Check In Device action).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppLogout {
    /// Bundle id of the app.
    pub app: AppId,
    /// Human name for reports, e.g. "Epic Rover".
    pub name: String,
}

/// The Device User a phone records for an unlock with the emergency PIN the MDM
/// configured (rather than the policy's): the server accepts it as an offline unlock's
/// user.
pub const MANAGED_PIN_USER: &str = "emergency";

/// The emergency unlock PIN and who the device is assigned to when it is used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyPin {
    /// PBKDF2 hash of the PIN digits.
    pub hash: SlowHash,
    /// The Device User recorded for an emergency unlock (the screen is never unlocked
    /// without one), e.g. `emergency` / "Emergency access".
    pub user: UserRef,
}

/// A local compliance rule: a condition and escalating tiers of actions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceRule {
    /// What is checked.
    pub condition: Condition,
    /// Up to four tiers. Each tier's delay counts from the previous tier (delays are
    /// cumulative), the first from the moment the condition became true.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 4))]
    pub tiers: Vec<Tier>,
}

/// A condition the device can check on its own.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ComplianceCondition))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Condition {
    /// Checked out for longer than the lending period.
    CheckoutOverdue,
    /// No successful sync for longer than `max_secs`.
    OutOfContact {
        /// Allowed silence.
        #[cfg_attr(feature = "openapi", schema(maximum = 2592000))]
        max_secs: u64,
    },
    /// OS older than `minimum`.
    OsBelowMinimum {
        /// Lowest acceptable version.
        #[cfg_attr(feature = "openapi", schema(value_type = String, example = "17.4"))]
        minimum: OsVersion,
    },
    /// A passcode is still set `grace_secs` after check-in (the MDM clear has not landed).
    PasscodePresentWhileCheckedIn {
        /// Time allowed for the clear to land.
        #[cfg_attr(feature = "openapi", schema(maximum = 2592000))]
        grace_secs: u64,
    },
    /// The platform reports jailbreak or tampering signals.
    Compromised,
    /// Battery under `min_percent` while not checked out.
    BatteryBelowCheckoutMinimum {
        /// Lowest battery level for a checkout.
        #[cfg_attr(feature = "openapi", schema(maximum = 100))]
        min_percent: u8,
    },
    /// The cached policy is past its `valid_until`.
    PolicyExpired,
}

impl Condition {
    /// A stable name for reports and logs.
    pub fn kind(&self) -> ConditionKind {
        match self {
            Condition::CheckoutOverdue => ConditionKind::CheckoutOverdue,
            Condition::OutOfContact { .. } => ConditionKind::OutOfContact,
            Condition::OsBelowMinimum { .. } => ConditionKind::OsBelowMinimum,
            Condition::PasscodePresentWhileCheckedIn { .. } => {
                ConditionKind::PasscodePresentWhileCheckedIn
            }
            Condition::Compromised => ConditionKind::Compromised,
            Condition::BatteryBelowCheckoutMinimum { .. } => {
                ConditionKind::BatteryBelowCheckoutMinimum
            }
            Condition::PolicyExpired => ConditionKind::PolicyExpired,
        }
    }
}

/// The name of a [`Condition`], without its parameters.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// See [`Condition::CheckoutOverdue`].
    CheckoutOverdue,
    /// See [`Condition::OutOfContact`].
    OutOfContact,
    /// See [`Condition::OsBelowMinimum`].
    OsBelowMinimum,
    /// See [`Condition::PasscodePresentWhileCheckedIn`].
    PasscodePresentWhileCheckedIn,
    /// See [`Condition::Compromised`].
    Compromised,
    /// See [`Condition::BatteryBelowCheckoutMinimum`].
    BatteryBelowCheckoutMinimum,
    /// See [`Condition::PolicyExpired`].
    PolicyExpired,
}

/// One step of escalation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ComplianceTier))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Delay after the previous tier (after the condition, for the first tier).
    #[cfg_attr(feature = "openapi", schema(maximum = 2592000))]
    pub delay_secs: u64,
    /// What to do when this tier is reached.
    pub actions: Vec<ComplianceAction>,
}

/// What a device can enforce on its own.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ComplianceAction {
    /// A local notification / banner for the person holding the phone.
    Alert {
        /// The text shown.
        message: String,
    },
    /// No new checkout while the condition holds; a checked-in device shows as blocked.
    BlockCheckout,
    /// Lock a checked-out phone until its user authenticates again.
    Lock,
    /// Report to the server at once (a sync is requested).
    Report,
}

/// Maximum number of tiers a rule may have, as in seed 002's tiered compliance.
pub const MAX_TIERS: usize = 4;

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A rule has no tiers or more than [`MAX_TIERS`].
    #[error("compliance rule {index} ({kind:?}) must have 1 to 4 tiers")]
    TierCount {
        /// Index of the rule.
        index: usize,
        /// Its condition.
        kind: ConditionKind,
    },
    /// The same condition appears twice.
    #[error("compliance condition {0:?} appears more than once")]
    DuplicateCondition(ConditionKind),
    /// A timing that must be positive is zero.
    #[error("checkout.{0} must be greater than zero")]
    ZeroTiming(&'static str),
    /// A battery threshold above 100 %.
    #[error("battery threshold {0} is above 100")]
    BatteryOutOfRange(u8),
    /// A compliance duration (a tier's delay, a grace, an allowed silence) over
    /// [`MAX_COMPLIANCE_SECS`].
    #[error("compliance rule {index} ({kind:?}): {what} of {secs} s is over 30 days")]
    DurationTooLong {
        /// Index of the rule.
        index: usize,
        /// Its condition.
        kind: ConditionKind,
        /// Which duration.
        what: &'static str,
        /// Its value.
        secs: u64,
    },
}

/// Longest duration a compliance rule may name (30 days): a longer one is a mistake
/// (a timestamp pasted as a delay) and would never fire.
pub const MAX_COMPLIANCE_SECS: u64 = 30 * 86_400;

impl Policy {
    /// Checks the rules a device relies on; the server runs the same check before signing.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let c = &self.checkout;
        for (name, v) in [
            ("undock_window_secs", c.undock_window_secs),
            ("lending_period_secs", c.lending_period_secs),
            ("app_logout_timeout_secs", c.app_logout_timeout_secs),
            ("authorize_timeout_secs", c.authorize_timeout_secs),
            ("passcode_clear_retry_secs", c.passcode_clear_retry_secs),
            (
                "passcode_clear_retry_max_secs",
                c.passcode_clear_retry_max_secs,
            ),
        ] {
            if v == 0 {
                return Err(PolicyError::ZeroTiming(name));
            }
        }
        let mut seen = Vec::new();
        for (index, rule) in self.compliance.iter().enumerate() {
            let kind = rule.condition.kind();
            if rule.tiers.is_empty() || rule.tiers.len() > MAX_TIERS {
                return Err(PolicyError::TierCount { index, kind });
            }
            if seen.contains(&kind) {
                return Err(PolicyError::DuplicateCondition(kind));
            }
            if let Condition::BatteryBelowCheckoutMinimum { min_percent } = rule.condition
                && min_percent > 100
            {
                return Err(PolicyError::BatteryOutOfRange(min_percent));
            }
            let named = match rule.condition {
                Condition::OutOfContact { max_secs } => Some(("max_secs", max_secs)),
                Condition::PasscodePresentWhileCheckedIn { grace_secs } => {
                    Some(("grace_secs", grace_secs))
                }
                _ => None,
            };
            let delays = rule
                .tiers
                .iter()
                .map(|t| ("a tier's delay_secs", t.delay_secs));
            for (what, secs) in named.into_iter().chain(delays) {
                if secs > MAX_COMPLIANCE_SECS {
                    return Err(PolicyError::DurationTooLong {
                        index,
                        kind,
                        what,
                        secs,
                    });
                }
            }
            seen.push(kind);
        }
        Ok(())
    }
}

fn tier(delay_secs: u64, actions: Vec<ComplianceAction>) -> Tier {
    Tier {
        delay_secs,
        actions,
    }
}

impl Default for Policy {
    /// A conservative starting policy for a hospital fleet; IT replaces it from the server.
    fn default() -> Self {
        use ComplianceAction::*;
        Policy {
            version: 0,
            issued_at: Timestamp::EPOCH,
            valid_until: None,
            checkout: CheckoutPolicy::default(),
            lock_screen_text: "Tap your badge to check out this device.".into(),
            checkout_text_template: "Checked out to [Display Name]".into(),
            app_logouts: Vec::new(),
            blank_page_before_check_in: false,
            emergency_pin: None,
            compliance: vec![
                ComplianceRule {
                    condition: Condition::CheckoutOverdue,
                    tiers: vec![
                        tier(
                            0,
                            vec![
                                Alert {
                                    message:
                                        "This device is overdue. Please return it to its cart."
                                            .into(),
                                },
                                Report,
                            ],
                        ),
                        tier(3600, vec![Lock]),
                    ],
                },
                ComplianceRule {
                    condition: Condition::OutOfContact {
                        max_secs: 24 * 3600,
                    },
                    tiers: vec![tier(0, vec![Report]), tier(48 * 3600, vec![BlockCheckout])],
                },
                ComplianceRule {
                    condition: Condition::PasscodePresentWhileCheckedIn { grace_secs: 600 },
                    tiers: vec![tier(0, vec![Report]), tier(3000, vec![BlockCheckout])],
                },
                ComplianceRule {
                    condition: Condition::Compromised,
                    tiers: vec![tier(0, vec![Report, BlockCheckout, Lock])],
                },
                ComplianceRule {
                    condition: Condition::BatteryBelowCheckoutMinimum { min_percent: 20 },
                    tiers: vec![tier(0, vec![BlockCheckout])],
                },
                ComplianceRule {
                    condition: Condition::PolicyExpired,
                    tiers: vec![tier(0, vec![Report])],
                },
            ],
        }
    }
}

/// The signed list of badges a device may accept while the server is unreachable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineCredentialList {
    /// The device this list was built for (its salt is per device).
    pub device_id: DeviceId,
    /// Monotonic version.
    pub version: u64,
    /// The list is ignored after this instant.
    pub valid_until: Timestamp,
    /// Per-device salt for the badge hashes.
    #[serde(with = "crate::b64::bytes")]
    pub salt: Vec<u8>,
    /// PBKDF2 iterations for the badge hashes.
    pub iterations: u32,
    /// One entry per badge allowed offline.
    pub entries: Vec<OfflineCredential>,
}

/// One badge allowed offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineCredential {
    /// PBKDF2-HMAC-SHA256(badge id, list salt, list iterations).
    #[serde(with = "crate::b64::array32")]
    pub badge_hash: [u8; 32],
    /// The user the badge belongs to.
    pub user: UserRef,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid_and_roundtrips() {
        let p = Policy::default();
        p.validate().unwrap();
        let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn partial_json_fills_defaults() {
        let p: Policy = serde_json::from_str(r#"{"version": 3, "future_field": 1}"#).unwrap();
        assert_eq!(p.version, 3);
        assert_eq!(p.checkout.undock_window_secs, 60);
    }

    #[test]
    fn validate_rejects_bad_rules() {
        let mut p = Policy::default();
        p.compliance.push(ComplianceRule {
            condition: Condition::Compromised,
            tiers: vec![tier(0, vec![])],
        });
        assert_eq!(
            p.validate(),
            Err(PolicyError::DuplicateCondition(ConditionKind::Compromised))
        );
        let mut p = Policy::default();
        p.compliance[0].tiers = vec![tier(0, vec![]); 5];
        assert!(matches!(
            p.validate(),
            Err(PolicyError::TierCount { index: 0, .. })
        ));
        let mut p = Policy::default();
        p.checkout.undock_window_secs = 0;
        assert_eq!(
            p.validate(),
            Err(PolicyError::ZeroTiming("undock_window_secs"))
        );
        let mut p = Policy::default();
        p.compliance[0].tiers[0].delay_secs = MAX_COMPLIANCE_SECS + 1;
        assert!(matches!(
            p.validate(),
            Err(PolicyError::DurationTooLong { index: 0, .. })
        ));
        p.compliance[0].tiers[0].delay_secs = MAX_COMPLIANCE_SECS;
        assert_eq!(p.validate(), Ok(()));
    }
}
