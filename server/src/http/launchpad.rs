//! The launchpad API (`/launchpad/v1`): a badge tapped at a cart's reader.
//!
//! The server resolves the badge (its own table of keyed hashes, or an external lookup
//! service so raw ids can stay on the hospital network), picks the best phone in that
//! cart, grants it, and answers with the beep code and the port to flash. While a grant
//! waits for its phone to be unplugged, further taps at that cart wait too.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use lanyard_protocol::policy::Condition;
use lanyard_protocol::{BadgeId, CheckoutGrant, Policy, ServerCommand, UnlockMethod, UserRef};
use serde::{Deserialize, Serialize};

use crate::domain::attempts::{self, Source};
use crate::domain::grants::{CartClaim, CartTap, claim_at_cart};
use crate::error::AppError;
use crate::extract::{ApiJson, LaunchpadCaller};
use crate::keys::ServerKeys;
use crate::state::AppState;
use crate::storage::{NewCommand, Storage, StorageError};

/// Beep: checked out, take the phone at the flashing port.
pub const BEEP_SUCCESS: u8 = 1;
/// Beep: badge not found.
pub const BEEP_BADGE_NOT_FOUND: u8 = 2;
/// Beep: no device available, or automation error.
pub const BEEP_NO_DEVICE: u8 = 3;
/// Beep: the user already has a device.
pub const BEEP_USER_HAS_DEVICE: u8 = 4;

/// Extra time a grant holds the cart beyond the phone's own undock window (clock skew,
/// the phone's sync).
const HOLD_SLACK_SECS: u64 = 5;
/// Lowest battery for a checkout when the policy sets none.
const DEFAULT_MIN_BATTERY: u8 = 20;

/// `POST /launchpad/v1/tap` body.
#[derive(utoipa::ToSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapRequest {
    /// The raw badge id read at the cart. Never stored or logged.
    badge: String,
}

/// What the cart's reader does next.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct TapResponse {
    /// 1 success, 2 badge not found, 3 no device available or automation error,
    /// 4 user already has a device.
    pub beep: u8,
    /// The port to flash (success only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// The device granted (success only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The LED the hub lights at that port (success only): `white` (ready to be
    /// removed: the checkout workflow suppresses the blue LED) or `blue` (deployment
    /// in progress).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub led: Option<&'static str>,
    /// For the reader's display or the log.
    pub message: String,
}

fn beep(code: u8, message: impl Into<String>) -> Json<TapResponse> {
    metrics::counter!("lanyard_cart_taps_total", "beep" => code.to_string()).increment(1);
    Json(TapResponse {
        beep: code,
        port: None,
        device_id: None,
        led: None,
        message: message.into(),
    })
}

fn min_battery(policy: &Policy) -> u8 {
    policy
        .compliance
        .iter()
        .find_map(|r| match r.condition {
            Condition::BatteryBelowCheckoutMinimum { min_percent } => Some(min_percent),
            _ => None,
        })
        .unwrap_or(DEFAULT_MIN_BATTERY)
}

/// Who a badge belongs to.
enum Resolved {
    /// A user, with their device limit.
    User(UserRef, u32),
    /// Nobody.
    Unknown,
    /// The external lookup service did not answer: the reader beeps 3 and the clinician
    /// tries again. (A failure of Lanyard's own database is a 500 instead, which the
    /// reader reports as a server fault.)
    LookupUnavailable,
}

/// The user behind a badge: local table first, then the external lookup service.
async fn resolve<S: Storage>(st: &AppState<S>, badge: &BadgeId) -> Result<Resolved, AppError> {
    if let Some((user, limit)) = st.storage.user_by_badge(st.keys.badge_hash(badge)).await? {
        crate::offline::learn(st, badge);
        return Ok(Resolved::User(user, limit));
    }
    let Some(lookup) = &st.badge_lookup else {
        return Ok(Resolved::Unknown);
    };
    let username = match lookup.lookup(badge).await {
        Ok(Some(username)) => username,
        Ok(None) => return Ok(Resolved::Unknown),
        Err(e) => {
            tracing::warn!(error = %e, "badge lookup failed");
            return Ok(Resolved::LookupUnavailable);
        }
    };
    Ok(match st.storage.user_password(username).await? {
        Some((user, limit, _)) => Resolved::User(user, limit),
        None => Resolved::Unknown,
    })
}

/// `POST /launchpad/v1/tap`.
#[utoipa::path(post, path = "/launchpad/v1/tap", tag = "launchpad", description = "A badge tapped at a cart reader. Beep 1 success (port, device_id), 2 badge not found, 3 no device or lookup failure, 4 user already has a device.", request_body = TapRequest, responses((status = 200, body = TapResponse), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)), security(("launchpad_credential" = [])))]
pub async fn tap<S: Storage>(
    State(st): State<AppState<S>>,
    LaunchpadCaller(cart): LaunchpadCaller,
    ApiJson(body): ApiJson<TapRequest>,
) -> Result<Json<TapResponse>, AppError> {
    let badge = crate::validate::badge("badge", &body.badge)?;
    // Past its limit of unknown badges, the reader is refused every badge until the
    // window ends (it still beeps): guessing is throttled and IT hears of it.
    let source = Source::CartBadge(cart.id.clone());
    if attempts::limited(&st.storage, &source, st.now()).await? {
        metrics::counter!("lanyard_cart_taps_total", "beep" => BEEP_NO_DEVICE.to_string())
            .increment(1);
        return Ok(beep(
            BEEP_NO_DEVICE,
            "too many unknown badges at this cart: try again in a few minutes",
        ));
    }
    let (user, limit) = match resolve(&st, &badge).await? {
        Resolved::User(user, limit) => (user, limit),
        Resolved::Unknown => {
            attempts::count_failure(&st.storage, source, st.now()).await?;
            return Ok(beep(BEEP_BADGE_NOT_FOUND, "badge not found"));
        }
        Resolved::LookupUnavailable => {
            return Ok(beep(BEEP_NO_DEVICE, "badge lookup service unavailable"));
        }
    };
    let presentation =
        crate::workflows::triggers::checkout_presentation(&st, None, Some(&cart.id), &user).await?;
    let led = if presentation.suppress_blue_led {
        "white"
    } else {
        "blue"
    };
    let display_text = presentation.display_text;
    let policy = &st.policy().await?.policy;
    let window = policy.checkout.undock_window_secs;
    // A tap waits behind an earlier grant at this cart, but never longer than one window.
    let give_up = st.now().plus_secs(window + HOLD_SLACK_SECS);
    let min_battery = min_battery(policy);
    loop {
        // Subscribed before looking: an unplug reported between the look and the wait
        // still wakes this tap (else it would wait out the whole window).
        let waiter = st.waiter(&cart_key(&cart.id));
        let now = st.now();
        let keys = st.keys.clone();
        let grant_user = user.clone();
        let display_text = display_text.clone();
        let (cart_id, username) = (cart.id.clone(), user.username.clone());
        let expires_at = now.plus_secs(window + HOLD_SLACK_SECS);
        let claimed = st
            .storage
            .transact(move |tx| {
                let sign = |device_id: &str| {
                    cart_grant(
                        &keys,
                        device_id,
                        &grant_user,
                        &display_text,
                        now,
                        expires_at,
                    )
                };
                let tap = CartTap {
                    launchpad_id: &cart_id,
                    username: &username,
                    limit,
                    min_battery,
                    hold_until: expires_at,
                };
                claim_at_cart(tx, &tap, &sign, now)
            })
            .await?;
        let (claim, freed) = claimed;
        st.wake_freed(&freed);
        match claim {
            CartClaim::Granted { device_id, port } => {
                st.wake(&crate::notify::device_topic(&device_id));
                tracing::info!(cart = %cart.id, device = %device_id, user = %user.username, "cart tap granted");
                metrics::counter!("lanyard_cart_taps_total", "beep" => BEEP_SUCCESS.to_string())
                    .increment(1);
                return Ok(Json(TapResponse {
                    beep: BEEP_SUCCESS,
                    port,
                    device_id: Some(device_id),
                    led: Some(led),
                    message: format!(
                        "take the phone at port {}",
                        port.map_or("?".into(), |p| p.to_string())
                    ),
                }));
            }
            CartClaim::UserHasDevice => {
                return Ok(beep(BEEP_USER_HAS_DEVICE, "user already has a device"));
            }
            CartClaim::NoDevice => return Ok(beep(BEEP_NO_DEVICE, "no device available")),
            CartClaim::Busy { until } => {
                let deadline = until.min(give_up);
                if now >= give_up {
                    return Ok(beep(
                        BEEP_NO_DEVICE,
                        "cart is busy with an earlier checkout",
                    ));
                }
                let wait = Duration::from_millis(deadline.millis_since(now).max(50));
                tokio::select! {
                    _ = tokio::time::timeout(wait, waiter.notified()) => {}
                    () = st.stopping() => {
                        return Err(AppError::Unavailable(
                            "the server is stopping; tap again".into(),
                        ));
                    }
                }
            }
        }
    }
}

/// Signs a cart grant for the phone the cart picked.
fn cart_grant(
    keys: &ServerKeys,
    device_id: &str,
    user: &UserRef,
    display_text: &Option<String>,
    now: lanyard_protocol::Timestamp,
    expires_at: lanyard_protocol::Timestamp,
) -> Result<NewCommand, StorageError> {
    let payload = ServerCommand::GrantCheckout(CheckoutGrant {
        grant_id: crate::domain::commands::new_grant_id()?,
        request_id: None,
        user: user.clone(),
        method: UnlockMethod::CartBadge,
        display_text: display_text.clone(),
    });
    crate::domain::commands::new_command(keys, device_id, payload, now, expires_at, false)
}

/// The wake-up key for taps waiting at a cart.
pub fn cart_key(cart: &str) -> String {
    crate::notify::cart_topic(cart)
}

/// `POST /launchpad/v1/ports` body: what the cart's hub saw at one port.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortEvent {
    /// The port, from 1.
    pub port: u32,
    /// `true`: a phone was connected; `false`: it was removed.
    pub docked: bool,
    /// The phone's serial number, when the hub can read it.
    pub serial: Option<String>,
}

/// The device the event was matched to, if any.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortEventResult {
    /// The device, when the serial (or the port's last occupant) is known.
    pub device_id: Option<String>,
}

#[utoipa::path(post, path = "/launchpad/v1/ports", tag = "launchpad", description = "A cart hub reports a phone connected to or removed from a port. A removal frees a cart waiting on that phone's grant at once, before the phone itself syncs.", request_body = PortEvent, responses((status = 200, body = PortEventResult), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)), security(("launchpad_credential" = [])))]
/// `POST /launchpad/v1/ports`.
pub async fn port_event<S: Storage>(
    State(st): State<AppState<S>>,
    LaunchpadCaller(cart): LaunchpadCaller,
    ApiJson(body): ApiJson<PortEvent>,
) -> Result<Json<PortEventResult>, AppError> {
    if body.port == 0 || body.port > cart.ports {
        return Err(AppError::invalid(
            "port",
            format!("must be 1 to {} for this cart", cart.ports),
        ));
    }
    let serial = crate::validate::optional_text("serial", body.serial.as_deref(), 128)?;
    let device_id = st
        .storage
        .launchpad_port_event(cart.id.clone(), body.port, serial, body.docked, st.now())
        .await?;
    if !body.docked {
        st.wake(&cart_key(&cart.id));
    }
    Ok(Json(PortEventResult { device_id }))
}
