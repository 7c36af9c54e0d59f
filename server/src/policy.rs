//! The phones' policy as IT sees and changes it: `GET`/`PATCH /api/v1/policy` and
//! `lanyard-server policy show|set`. A change is checked, made the next version and
//! audited in one transaction ([`crate::domain::policy::change`]); phones receive it,
//! signed, at their next sync. What the check-in rules' workflows put in the policy
//! (apps to log out, a blank page first) is changed through those workflows only.

use axum::Json;
use axum::extract::State;
use lanyard_protocol::policy::{AppLogout, CheckoutPolicy, ComplianceRule, EmergencyPin};
use lanyard_protocol::{Policy, Timestamp, UserRef};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;
use crate::storage::Storage;

/// The policy in force, as IT sees it (the emergency PIN's hash is never shown).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyView {
    /// Version; every change makes the next one.
    pub version: u64,
    /// When this version was made.
    pub issued_at: Timestamp,
    /// After this instant phones treat the policy as stale.
    pub valid_until: Option<Timestamp>,
    /// Checkout and return timings.
    pub checkout: CheckoutPolicy,
    /// Text on the locked screen.
    pub lock_screen_text: String,
    /// Template for the checked-out screen (`[Display Name]`, `[Device User]`).
    pub checkout_text_template: String,
    /// Apps logged out at check-in: set by the check-in rules' workflows (read only).
    pub app_logouts: Vec<AppLogout>,
    /// A blank page before check-in: set by the check-in rules' workflows (read only).
    pub blank_page_before_check_in: bool,
    /// The emergency unlock PIN, when one is set: who an emergency unlock is recorded as.
    pub emergency_pin: Option<EmergencyPinView>,
    /// Local compliance rules, checked on the phone (offline too).
    pub compliance: Vec<ComplianceRule>,
}

/// Whether an emergency PIN is set, and for whom.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EmergencyPinView {
    /// Always true (absent when no PIN is set).
    pub set: bool,
    /// The Device User an emergency unlock records.
    pub user: UserRef,
}

impl From<&Policy> for PolicyView {
    fn from(p: &Policy) -> Self {
        PolicyView {
            version: p.version,
            issued_at: p.issued_at,
            valid_until: p.valid_until,
            checkout: p.checkout.clone(),
            lock_screen_text: p.lock_screen_text.clone(),
            checkout_text_template: p.checkout_text_template.clone(),
            app_logouts: p.app_logouts.clone(),
            blank_page_before_check_in: p.blank_page_before_check_in,
            emergency_pin: p.emergency_pin.as_ref().map(|pin| EmergencyPinView {
                set: true,
                user: pin.user.clone(),
            }),
            compliance: p.compliance.clone(),
        }
    }
}

/// A change to the policy: only the fields given change.
#[derive(utoipa::ToSchema, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// Timings to change (each optional).
    #[serde(default)]
    pub checkout: Option<CheckoutPatch>,
    /// Text on the locked screen (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub lock_screen_text: Option<String>,
    /// Template for the checked-out screen (at most 200 characters).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub checkout_text_template: Option<String>,
    /// The compliance rules, replacing the current list (each condition once, 1 to 4
    /// tiers, battery thresholds 0–100).
    #[serde(default)]
    pub compliance: Option<Vec<ComplianceRule>>,
    /// A new emergency PIN (`{"pin": "4 to 8 digits", "user": {...}}`), or `null` to
    /// remove it. The server keeps only a slow hash.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PinPatch>)]
    pub emergency_pin: Option<Option<PinPatch>>,
    /// Refused: set by the check-in rules' workflows (Check In Device's Logout Actions).
    #[serde(default)]
    #[schema(ignore)]
    pub app_logouts: Option<serde_json::Value>,
    /// Refused: set by the check-in rules' workflows (Launch a blank page).
    #[serde(default)]
    #[schema(ignore)]
    pub blank_page_before_check_in: Option<serde_json::Value>,
}

/// Distinguishes a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Checkout timings to change.
#[derive(utoipa::ToSchema, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutPatch {
    /// Seconds to unplug a granted phone (1–3600).
    #[schema(minimum = 1, maximum = 3600)]
    pub undock_window_secs: Option<u64>,
    /// Seconds a checkout may last before it is overdue (1 s – 7 days).
    #[schema(minimum = 1, maximum = 604800)]
    pub lending_period_secs: Option<u64>,
    /// Seconds an app may take to log out at check-in (1–600).
    #[schema(minimum = 1, maximum = 600)]
    pub app_logout_timeout_secs: Option<u64>,
    /// Seconds a phone waits for the server's answer to a tap (1–60).
    #[schema(minimum = 1, maximum = 60)]
    pub authorize_timeout_secs: Option<u64>,
    /// First retry of an unconfirmed passcode clear (1–3600 s).
    #[schema(minimum = 1, maximum = 3600)]
    pub passcode_clear_retry_secs: Option<u64>,
    /// Ceiling of that retry (1 s – 1 day, not below the first retry).
    #[schema(minimum = 1, maximum = 86400)]
    pub passcode_clear_retry_max_secs: Option<u64>,
    /// Allowed clock difference between phone and server (0–3600 s).
    #[schema(minimum = 0, maximum = 3600)]
    pub clock_skew_secs: Option<u64>,
    /// Wrong emergency PINs before delays start (0–10).
    #[schema(minimum = 0, maximum = 10)]
    pub pin_free_attempts: Option<u32>,
    /// First emergency PIN lockout (1–3600 s).
    #[schema(minimum = 1, maximum = 3600)]
    pub pin_lockout_base_secs: Option<u64>,
}

/// A new emergency PIN.
#[derive(utoipa::ToSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinPatch {
    /// 4 to 8 digits.
    #[schema(pattern = "^[0-9]{4,8}$")]
    pub pin: String,
    /// The Device User an emergency unlock records (default `emergency`, "Emergency
    /// access").
    pub user: Option<UserRef>,
}

/// `(field, value, lowest, highest)` of each timing given.
fn timings(c: &CheckoutPatch) -> [(&'static str, Option<u64>, u64, u64); 9] {
    [
        ("undock_window_secs", c.undock_window_secs, 1, 3600),
        ("lending_period_secs", c.lending_period_secs, 1, 7 * 86_400),
        ("app_logout_timeout_secs", c.app_logout_timeout_secs, 1, 600),
        ("authorize_timeout_secs", c.authorize_timeout_secs, 1, 60),
        (
            "passcode_clear_retry_secs",
            c.passcode_clear_retry_secs,
            1,
            3600,
        ),
        (
            "passcode_clear_retry_max_secs",
            c.passcode_clear_retry_max_secs,
            1,
            86_400,
        ),
        ("clock_skew_secs", c.clock_skew_secs, 0, 3600),
        (
            "pin_free_attempts",
            c.pin_free_attempts.map(u64::from),
            0,
            10,
        ),
        ("pin_lockout_base_secs", c.pin_lockout_base_secs, 1, 3600),
    ]
}

/// Checks `patch` field by field (every bad field named in one error) and hashes a new
/// PIN; returns the edit to apply.
async fn checked(patch: PolicyPatch) -> Result<impl FnOnce(&mut Policy) + Send, AppError> {
    let mut bad = Vec::new();
    for (field, given) in [
        ("app_logouts", patch.app_logouts.is_some()),
        (
            "blank_page_before_check_in",
            patch.blank_page_before_check_in.is_some(),
        ),
    ] {
        if given {
            bad.push(format!(
                "{field}: set by the check-in rules' workflows (Check In Device), not here"
            ));
        }
    }
    if let Some(c) = &patch.checkout {
        for (field, value, low, high) in timings(c) {
            if value.is_some_and(|v| !(low..=high).contains(&v)) {
                bad.push(format!("checkout.{field}: must be {low} to {high}"));
            }
        }
    }
    for (field, value, max) in [
        ("lock_screen_text", &patch.lock_screen_text, 500),
        ("checkout_text_template", &patch.checkout_text_template, 200),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            bad.push(format!("{field}: must be at most {max} characters"));
        }
    }
    let pin = match patch.emergency_pin {
        Some(Some(p)) => {
            if !(4..=8).contains(&p.pin.len()) || !p.pin.bytes().all(|b| b.is_ascii_digit()) {
                bad.push("emergency_pin.pin: must be 4 to 8 digits".into());
            }
            Some(Some(p))
        }
        other => other,
    };
    if !bad.is_empty() {
        return Err(AppError::BadRequest {
            code: "invalid_field",
            message: bad.join("; "),
        });
    }
    let pin = match pin {
        Some(Some(p)) => {
            let salt = crate::keys::random_bytes(16)?;
            // Slow on purpose: off the async threads.
            let hash = tokio::task::spawn_blocking(move || {
                lanyard_protocol::kdf::SlowHash::new(
                    p.pin.as_bytes(),
                    salt,
                    lanyard_protocol::kdf::RECOMMENDED_OFFLINE_ITERATIONS,
                )
            })
            .await
            .map_err(|e| anyhow::anyhow!("hashing the PIN: {e}"))?;
            let user = p.user.unwrap_or_else(|| UserRef {
                username: lanyard_protocol::policy::MANAGED_PIN_USER.into(),
                display_name: "Emergency access".into(),
            });
            Some(Some(EmergencyPin { hash, user }))
        }
        Some(None) => Some(None),
        None => None,
    };
    let (checkout, lock, template, compliance) = (
        patch.checkout,
        patch.lock_screen_text,
        patch.checkout_text_template,
        patch.compliance,
    );
    Ok(move |p: &mut Policy| {
        if let Some(c) = checkout {
            let t = &mut p.checkout;
            let set = |slot: &mut u64, v: Option<u64>| {
                if let Some(v) = v {
                    *slot = v;
                }
            };
            set(&mut t.undock_window_secs, c.undock_window_secs);
            set(&mut t.lending_period_secs, c.lending_period_secs);
            set(&mut t.app_logout_timeout_secs, c.app_logout_timeout_secs);
            set(&mut t.authorize_timeout_secs, c.authorize_timeout_secs);
            set(
                &mut t.passcode_clear_retry_secs,
                c.passcode_clear_retry_secs,
            );
            set(
                &mut t.passcode_clear_retry_max_secs,
                c.passcode_clear_retry_max_secs,
            );
            set(&mut t.clock_skew_secs, c.clock_skew_secs);
            set(&mut t.pin_lockout_base_secs, c.pin_lockout_base_secs);
            if let Some(v) = c.pin_free_attempts {
                t.pin_free_attempts = v;
            }
        }
        if let Some(v) = lock {
            p.lock_screen_text = v;
        }
        if let Some(v) = template {
            p.checkout_text_template = v;
        }
        if let Some(v) = compliance {
            p.compliance = v;
        }
        if let Some(v) = pin {
            p.emergency_pin = v;
        }
    })
}

/// The policy in force.
pub async fn view<S: Storage>(st: &AppState<S>) -> Result<PolicyView, AppError> {
    Ok(PolicyView::from(&st.policy().await?.policy))
}

/// Changes the policy as `actor`; returns the policy in force after (unchanged when
/// the patch changed nothing).
pub async fn update<S: Storage>(
    st: &AppState<S>,
    patch: PolicyPatch,
    actor: &str,
) -> Result<PolicyView, AppError> {
    let edit = checked(patch).await?;
    let (actor, now) = (actor.to_owned(), st.now());
    let changed = st
        .storage
        .transact(move |tx| {
            crate::domain::policy::change(tx, &actor, "policy.update", now, |p| {
                edit(p);
                Ok(())
            })
        })
        .await?;
    match changed {
        Some(p) => {
            st.invalidate_policy();
            Ok(PolicyView::from(&p))
        }
        None => view(st).await,
    }
}

/// `GET /api/v1/policy`.
#[utoipa::path(get, path = "/api/v1/policy", tag = "admin", description = "The phones' policy in force: checkout timings (undock window, lending period, …), lock screen text, the checked-out screen's template, compliance rules with their tiers, whether an emergency PIN is set, and what the check-in rules' workflows put in it. Any role.", responses((status = 200, body = PolicyView), (status = 401, body = ErrorBody)), security(("api_token" = [])))]
pub async fn get<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
) -> Result<Json<PolicyView>, AppError> {
    Ok(Json(view(&st).await?))
}

/// `PATCH /api/v1/policy`.
#[utoipa::path(patch, path = "/api/v1/policy", tag = "admin", description = "Changes the phones' policy: only the fields given change (compliance replaces the whole list). Checked as a phone checks it, made the next version, audited (`policy.update`), and delivered signed at each phone's next sync. Every bad field is named. Needs the admin role.", request_body = PolicyPatch, responses((status = 200, body = PolicyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_token" = [])))]
pub async fn patch<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ApiJson(body): ApiJson<PolicyPatch>,
) -> Result<Json<PolicyView>, AppError> {
    caller.require_admin()?;
    Ok(Json(update(&st, body, &caller.actor).await?))
}
