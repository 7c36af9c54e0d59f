//! The launchpad API (`/launchpad/v1`): a badge tapped at a cart's reader.
//!
//! The server resolves the badge (its own table of keyed hashes, or an external lookup
//! service so raw ids can stay on the hospital network), picks the best phone in that
//! cart, grants it, and answers with the beep code and the port to flash. While a grant
//! waits for its phone to be unplugged, further taps at that cart are answered at once
//! with "wait for port N". Every tap is recorded in the cart tap log with its reason.

use axum::Json;
use axum::extract::State;
use lanyard_protocol::policy::Condition;
use lanyard_protocol::{BadgeId, CheckoutGrant, Policy, ServerCommand, UnlockMethod, UserRef};
use serde::{Deserialize, Serialize};

use crate::domain::attempts::{self, Source};
use crate::domain::grants::{CartClaim, CartTap, claim_at_cart};
use crate::domain::taps::{self, reason};
use crate::error::AppError;
use crate::extract::{ApiJson, LaunchpadCaller};
use crate::keys::ServerKeys;
use crate::state::AppState;
use crate::storage::tx::NewCartTap;
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
    /// 1 success, 2 badge not found, 3 no device available now (cart busy, no phone,
    /// lookup down) or automation error, 4 user already has a device.
    pub beep: u8,
    /// Why, stable: `granted`, `badge_not_found`, `lookup_unavailable`,
    /// `too_many_unknown_badges`, `user_has_device`, `cart_busy`, `no_device`.
    pub reason: &'static str,
    /// The port to flash: on success the phone to take; when the cart is busy, the
    /// phone the previous clinician must take first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// When the cart is busy: the most seconds until it can hand out another phone
    /// (sooner once the waiting phone is unplugged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
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

/// A refusal before any claim was made: recorded in the tap log, then answered.
async fn refuse<S: Storage>(
    st: &AppState<S>,
    cart: &str,
    username: Option<&str>,
    beep: u8,
    reason: &'static str,
    message: String,
) -> Result<Json<TapResponse>, AppError> {
    let (cart, username, detail) = (
        cart.to_owned(),
        username.map(str::to_owned),
        message.clone(),
    );
    let now = st.now();
    st.storage
        .transact(move |tx| {
            taps::record(
                tx,
                &NewCartTap {
                    launchpad_id: &cart,
                    username: username.as_deref(),
                    beep,
                    reason,
                    device_id: None,
                    port: None,
                    detail: &detail,
                },
                now,
            )
        })
        .await?;
    Ok(answered(TapResponse {
        beep,
        reason,
        port: None,
        retry_after_secs: None,
        device_id: None,
        led: None,
        message,
    }))
}

/// Counts the answer for the metrics.
fn answered(r: TapResponse) -> Json<TapResponse> {
    metrics::counter!("lanyard_cart_taps_total", "beep" => r.beep.to_string(), "reason" => r.reason)
        .increment(1);
    Json(r)
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
        return refuse(
            &st,
            &cart.id,
            None,
            BEEP_NO_DEVICE,
            reason::TOO_MANY_UNKNOWN_BADGES,
            "too many unknown badges at this cart: try again in a few minutes".into(),
        )
        .await;
    }
    let (user, limit) = match resolve(&st, &badge).await? {
        Resolved::User(user, limit) => (user, limit),
        Resolved::Unknown => {
            attempts::count_failure(&st.storage, source, st.now()).await?;
            return refuse(
                &st,
                &cart.id,
                None,
                BEEP_BADGE_NOT_FOUND,
                reason::BADGE_NOT_FOUND,
                "badge not found".into(),
            )
            .await;
        }
        Resolved::LookupUnavailable => {
            return refuse(
                &st,
                &cart.id,
                None,
                BEEP_NO_DEVICE,
                reason::LOOKUP_UNAVAILABLE,
                "badge lookup service unavailable: try again".into(),
            )
            .await;
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
    let min_battery = min_battery(policy);
    let now = st.now();
    let keys = st.keys.clone();
    let grant_user = user.clone();
    let (cart_id, username) = (cart.id.clone(), user.username.clone());
    // The cart holds a grant for one undock window (and a little slack), then frees.
    let expires_at = now.plus_secs(window + HOLD_SLACK_SECS);
    let response = st
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
            let (claim, _freed) = claim_at_cart(tx, &tap, &sign, now)?;
            let response = answer(claim, led, now);
            taps::record(
                tx,
                &NewCartTap {
                    launchpad_id: &cart_id,
                    username: Some(&username),
                    beep: response.body.beep,
                    reason: response.body.reason,
                    device_id: response.device.as_deref(),
                    port: response.body.port,
                    detail: &response.body.message,
                },
                now,
            )?;
            Ok(response)
        })
        .await?;
    if response.body.beep == BEEP_SUCCESS
        && let Some(device) = &response.device
    {
        st.wake(&crate::notify::device_topic(device));
    }
    tracing::info!(cart = %cart.id, user = %user.username, beep = response.body.beep, reason = response.body.reason, detail = %response.body.message, "cart tap");
    Ok(answered(response.body))
}

/// A claim's answer, and the phone it concerns (granted, or waited on).
struct Answer {
    device: Option<String>,
    body: TapResponse,
}

/// What the reader is told about `claim`.
fn answer(claim: CartClaim, led: &'static str, now: lanyard_protocol::Timestamp) -> Answer {
    let refused = |beep: u8, reason: &'static str, message: String| Answer {
        device: None,
        body: TapResponse {
            beep,
            reason,
            port: None,
            retry_after_secs: None,
            device_id: None,
            led: None,
            message,
        },
    };
    match claim {
        CartClaim::Granted { device_id, port } => Answer {
            device: Some(device_id.clone()),
            body: TapResponse {
                beep: BEEP_SUCCESS,
                reason: reason::GRANTED,
                port,
                retry_after_secs: None,
                device_id: Some(device_id),
                led: Some(led),
                message: format!("take the phone at port {}", port_name(port)),
            },
        },
        CartClaim::UserHasDevice => refused(
            BEEP_USER_HAS_DEVICE,
            reason::USER_HAS_DEVICE,
            "user already has a device".into(),
        ),
        CartClaim::NoDevice { why } => refused(BEEP_NO_DEVICE, reason::NO_DEVICE, why),
        // Answered at once: the clinician hears why and taps again once the phone at
        // that port is taken (the reader flashes it), rather than a reader that hangs.
        CartClaim::Busy {
            until,
            device_id,
            port,
        } => {
            let secs = until.millis_since(now).div_ceil(1000);
            let message = format!(
                "wait: the phone at port {} is for the previous badge; tap again once it is taken (at most {secs} s)",
                port_name(port)
            );
            Answer {
                device: Some(device_id),
                body: TapResponse {
                    beep: BEEP_NO_DEVICE,
                    reason: reason::CART_BUSY,
                    port,
                    retry_after_secs: Some(secs.max(1)),
                    device_id: None,
                    led: Some("white"),
                    message,
                },
            }
        }
    }
}

fn port_name(port: Option<u32>) -> String {
    port.map_or("?".into(), |p| p.to_string())
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
    Ok(Json(PortEventResult { device_id }))
}
