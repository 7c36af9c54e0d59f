//! The device API: enrollment, sync (long-poll), authorization.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use lanyard_protocol::enroll::{EnrollRequest, EnrollResponse};
use lanyard_protocol::sync::{SyncRequest, SyncResponse};
use lanyard_protocol::{
    AuthorizeRequest, AuthorizeResponse, CheckoutGrant, Credential, DenialCode, PROTOCOL_VERSION,
    ServerCommand, UnlockMethod, UserRef,
};

use crate::domain::attempts::{self, Source};
use crate::domain::enrollment::Refused;
use crate::domain::grants::PhoneTap;
use crate::error::AppError;
use crate::extract::{ApiJson, DeviceCaller};
use crate::keys::ServerKeys;
use crate::keys::{hex, random_bytes, random_token, sha256};
use crate::state::AppState;
use crate::storage::{NewCommand, NewDevice, Storage, StorageError};

/// Longest a sync may wait for a command.
const MAX_WAIT_SECS: u32 = 30;
/// Most records in one sync request.
const MAX_EVENTS: usize = 1000;
/// How long a checkout decision stays valid for the device to apply.
const DECISION_TTL_SECS: u64 = 60;

fn check_version(v: u32) -> Result<(), AppError> {
    if v == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(AppError::BadRequest {
            code: "unsupported_version",
            message: format!(
                "protocol version {v} is not supported (this server speaks {PROTOCOL_VERSION})"
            ),
        })
    }
}

/// `POST /device/v1/enroll`: redeem an enrollment token.
#[utoipa::path(post, path = "/device/v1/enroll", tag = "device", request_body = lanyard_protocol::enroll::EnrollRequest, responses((status = 200, body = lanyard_protocol::enroll::EnrollResponse), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 409, description = "the UDID is enrolled as another phone, or belongs to another serial number", body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn enroll<S: Storage>(
    State(st): State<AppState<S>>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, AppError> {
    check_version(req.v)?;
    let token = req.token.trim();
    if token.is_empty() || token.len() > 256 {
        return Err(AppError::invalid("token", "must be 1 to 256 characters"));
    }
    let mut info = req.device;
    for (field, value) in [("device.model", &info.model), ("device.name", &info.name)] {
        if let Some(v) = value {
            crate::validate::text(field, v, 128)?;
        }
    }
    // Apple's forms (uppercase): what the MDM knows the phone by.
    if let Some(udid) = info.udid.as_deref() {
        info.udid = Some(lanyard_mdm::normalize_udid(udid).ok_or_else(|| {
            AppError::invalid(
                "device.udid",
                "must be a device UDID: 40 hex digits, 8-16 hex digits, or a UUID",
            )
        })?);
    }
    if let Some(serial) = info.serial.as_deref() {
        info.serial = Some(lanyard_mdm::normalize_serial(serial).ok_or_else(|| {
            AppError::invalid("device.serial", "must be 8 to 14 letters and digits")
        })?);
    }
    let id = format!("dev-{}", hex(&random_bytes(8)?));
    let credential = random_token(32)?;
    let device = NewDevice {
        id: id.clone(),
        credential_hash: sha256(credential.as_bytes()),
        info,
    };
    let now = st.now();
    match st
        .storage
        .transact({
            let token_hash = sha256(token.as_bytes());
            move |tx| crate::domain::enrollment::enroll(tx, &token_hash, &device, now)
        })
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(Refused::UdidInUse { holder })) => {
            return Err(AppError::ConflictWith {
                code: "udid_in_use",
                message: format!(
                    "this UDID is already enrolled as device {holder}; retire that device first, \
                     enroll with a re-enrollment token (replaces_existing), or, after an erase, \
                     let the phone enroll in the MDM again"
                ),
            });
        }
        Ok(Err(Refused::UdidSerialMismatch { mdm_serial })) => {
            return Err(AppError::ConflictWith {
                code: "udid_serial_mismatch",
                message: format!("the MDM reported this UDID for serial number {mdm_serial}"),
            });
        }
        Err(StorageError::NotFound(_)) => {
            return Err(AppError::Unauthorized(
                "enrollment token is not valid".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let policy = st.policy().await?.signed.clone();
    tracing::info!(device = %id, "device enrolled");
    Ok(Json(EnrollResponse {
        v: PROTOCOL_VERSION,
        device_id: id.as_str().into(),
        device_credential: credential,
        server_key: st.keys.signing.verifying_key(),
        policy,
    }))
}

/// `POST /device/v1/sync`: store the device's records, answer with commands and policy.
#[utoipa::path(post, path = "/device/v1/sync", tag = "device", request_body = SyncRequest, responses((status = 200, body = SyncResponse), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)), security(("device_credential" = [])))]
pub async fn sync<S: Storage>(
    State(st): State<AppState<S>>,
    DeviceCaller(device): DeviceCaller,
    ApiJson(req): ApiJson<SyncRequest>,
) -> Result<Json<SyncResponse>, AppError> {
    check_version(req.v)?;
    if req.device_id.as_str() != device.id {
        return Err(AppError::Forbidden(
            "device_id does not match the credential".into(),
        ));
    }
    if req.events.len() > MAX_EVENTS {
        return Err(AppError::invalid(
            "events",
            format!("at most {MAX_EVENTS} per request"),
        ));
    }
    if let Some(bad) = req.events.iter().find(|e| e.seq == 0) {
        return Err(AppError::invalid(
            "events",
            format!("sequence numbers start at 1 (got {})", bad.seq),
        ));
    }
    let now = st.now();
    let had_events = !req.events.is_empty();
    let had_handled = !req.handled_commands.is_empty();
    metrics::counter!("lanyard_sync_events_received_total").increment(req.events.len() as u64);
    // Subscribed before the commands are taken: one queued after that wakes the
    // long-poll below instead of waiting for the next sync.
    let waiter = (req.wait_secs > 0).then(|| st.waiter(&crate::notify::device_topic(&device.id)));
    let (events, handled, device_id) = (req.events, req.handled_commands, device.id.clone());
    let cx = crate::domain::claims::ClaimContext {
        emergency_user: st
            .policy()
            .await?
            .policy
            .emergency_pin
            .as_ref()
            .map(|p| p.user.username.clone()),
    };
    // An empty re-poll of an idle phone is answered from reads alone.
    let quiet = !had_events
        && !had_handled
        && crate::domain::sync::quiet(&device, false, now)
        && crate::domain::sync::quiet(
            &device,
            st.storage.commands_outstanding(device.id.clone()).await?,
            now,
        );
    let applied = if quiet {
        crate::domain::sync::SyncApplied::nothing(device.last_seq)
    } else {
        st.storage
            .transact(move |tx| {
                crate::domain::sync::apply(tx, &device_id, events, &handled, &cx, now)
            })
            .await?
    };
    if applied.passcode_clear_requested {
        crate::mdm::request_passcode_clear(&st, &device).await;
    }
    let transitions_applied = !applied.transitions.is_empty();
    // Automation rules see each status change once: the sync queued them in its own
    // transaction; draining them here is the fast path (the outbox job retries what a
    // failure or a crash leaves). A failure never refuses the phone's records.
    if transitions_applied
        && let Err(e) =
            crate::workflows::triggers::drain(&st, &device.id, Some(applied.transitions)).await
    {
        tracing::warn!(device = %device.id, error = %e, "automation rules not evaluated yet");
    }
    if transitions_applied || had_handled {
        // A run may be waiting on this phone's status or on a command it just handled
        // (the engine also looks every second, so other syncs need not wake it).
        crate::workflows::engine::wake(&st);
    }
    let mut commands = applied.commands;
    if let Some(waiter) = waiter.filter(|_| commands.is_empty()) {
        let wait = Duration::from_secs(u64::from(req.wait_secs.min(MAX_WAIT_SECS)));
        // One long-poll per phone: this one ends any earlier one still waiting (a
        // credential holder cannot pile up held requests). Waking only current waiters
        // leaves no permit behind for this poll's own wait.
        let polls = st.waiter(&crate::notify::poll_topic(&device.id));
        polls.notify_waiters();
        // A stopping server answers at once (with nothing): the phone syncs again,
        // with this server's successor or another replica.
        let woken = tokio::select! {
            r = tokio::time::timeout(wait, waiter.notified()) => r.is_ok(),
            () = polls.notified() => false,
            () = st.stopping() => false,
        };
        if woken {
            commands = st
                .storage
                .take_commands(device.id.clone(), st.now())
                .await?;
        }
    }
    let current = st.policy().await?;
    let policy = (current.policy.version > req.policy_version).then(|| current.signed.clone());
    // A list problem must not cost the phone its sync: log it and try again next time.
    let offline_credentials =
        match crate::offline::list_for_sync(&st, &device, req.credentials_version).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(device = %device.id, error = %e, "offline list not built");
                None
            }
        };
    Ok(Json(SyncResponse {
        v: PROTOCOL_VERSION,
        acked_seq: applied.acked_seq,
        commands,
        policy,
        offline_credentials,
        server_time: st.now(),
    }))
}

/// Longest username a password request may carry.
const MAX_USERNAME: usize = 128;

async fn record_password<S: Storage>(
    st: &AppState<S>,
    username: &str,
    ok: bool,
    now: lanyard_protocol::Timestamp,
) -> Result<(), AppError> {
    let u = username.to_owned();
    st.storage
        .transact(move |tx| crate::domain::lockouts::record(tx, &u, ok, now))
        .await?;
    Ok(())
}

/// Who presented what, once resolved.
enum Resolved {
    User {
        user: UserRef,
        limit: u32,
        method: UnlockMethod,
    },
    Denied(DenialCode),
}

async fn resolve<S: Storage>(
    st: &AppState<S>,
    credential: Credential,
    device_id: &str,
) -> Result<Resolved, AppError> {
    let now = st.now();
    match credential {
        Credential::Badge { badge } => {
            // Past its limit of unknown badges, the phone is refused every badge until
            // the window ends: guessing is throttled, and nothing is learnt meanwhile.
            let source = Source::PhoneBadge(device_id.to_owned());
            if attempts::limited(&st.storage, &source, now).await? {
                return Ok(Resolved::Denied(DenialCode::TooManyAttempts));
            }
            let hash = st.keys.badge_hash(&badge);
            Ok(match st.storage.user_by_badge(hash).await? {
                Some((user, limit)) => {
                    crate::offline::learn(st, &badge);
                    Resolved::User {
                        user,
                        limit,
                        method: UnlockMethod::PhoneBadge,
                    }
                }
                None => {
                    attempts::count_failure(&st.storage, source, now).await?;
                    Resolved::Denied(DenialCode::BadgeNotFound)
                }
            })
        }
        Credential::Password { username, password } => {
            let username = username.trim().to_owned();
            if username.is_empty() || username.len() > MAX_USERNAME {
                return Err(AppError::invalid(
                    "credential.username",
                    format!("must be 1 to {MAX_USERNAME} characters"),
                ));
            }
            let source = Source::PhonePassword(device_id.to_owned());
            if attempts::limited(&st.storage, &source, now).await? {
                return Ok(Resolved::Denied(DenialCode::TooManyAttempts));
            }
            // The lockout is read, and the attempt recorded, in transactions of their
            // own: the PBKDF2 check between them must not hold the single writer. Two
            // attempts racing past the check are both counted.
            let u = username.clone();
            let locked = st
                .storage
                .transact(move |tx| crate::domain::lockouts::locked_until(tx, &u, now))
                .await?;
            if locked.is_some() {
                return Ok(Resolved::Denied(DenialCode::TooManyAttempts));
            }
            let found = st.storage.user_password(username.clone()).await?;
            // An unknown user (or one without a password) costs the same slow check
            // against a stand-in hash: the answer's timing does not tell which names
            // exist. Unknown users count as failures too.
            let (user, hash) = match found {
                Some((user, limit, Some(hash))) => (Some((user, limit)), hash),
                _ => (
                    None,
                    crate::domain::directory::stand_in_password_hash().clone(),
                ),
            };
            // PBKDF2 is slow on purpose: keep it off the async threads.
            let matches =
                tokio::task::spawn_blocking(move || hash.verify(password.expose().as_bytes()))
                    .await
                    .map_err(|e| AppError::Internal(anyhow::anyhow!("password check: {e}")))?;
            let ok = matches && user.is_some();
            record_password(st, &username, ok, now).await?;
            if !ok {
                attempts::count_failure(&st.storage, source, now).await?;
            }
            let Some((user, limit)) = user else {
                return Ok(Resolved::Denied(DenialCode::InvalidCredentials));
            };
            Ok(if ok {
                Resolved::User {
                    user,
                    limit,
                    method: UnlockMethod::Password,
                }
            } else {
                Resolved::Denied(DenialCode::InvalidCredentials)
            })
        }
    }
}

/// `POST /device/v1/authorize`: a badge tapped on the phone, or a password.
#[utoipa::path(post, path = "/device/v1/authorize", tag = "device", request_body = AuthorizeRequest, responses((status = 200, body = AuthorizeResponse), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)), security(("device_credential" = [])))]
pub async fn authorize<S: Storage>(
    State(st): State<AppState<S>>,
    DeviceCaller(device): DeviceCaller,
    ApiJson(req): ApiJson<AuthorizeRequest>,
) -> Result<Json<AuthorizeResponse>, AppError> {
    if req.device_id.as_str() != device.id {
        return Err(AppError::Forbidden(
            "device_id does not match the credential".into(),
        ));
    }
    if req.request_id.as_str().is_empty() || req.request_id.as_str().len() > 128 {
        return Err(AppError::invalid(
            "request_id",
            "must be 1 to 128 characters",
        ));
    }
    let now = st.now();
    let (user, limit, method) = match resolve(&st, req.credential, &device.id).await? {
        Resolved::User {
            user,
            limit,
            method,
        } => (user, limit, method),
        Resolved::Denied(code) => {
            let payload = ServerCommand::DenyCheckout {
                request_id: req.request_id.clone(),
                code,
            };
            let command = decision_command(&st.keys, &device.id, payload, now)?;
            let signed = command.signed.clone();
            st.storage.insert_command(command, None, now).await?;
            return Ok(Json(AuthorizeResponse { command: signed }));
        }
    };
    // Read before the transaction: rules and templates only shape the grant's text.
    let display_text =
        crate::workflows::triggers::checkout_display_text(&st, Some(&device.id), None, &user)
            .await?;
    let keys = st.keys.clone();
    let device_id = device.id.clone();
    let request_id = req.request_id.clone();
    let decision = st
        .storage
        .transact(move |tx| {
            let answer = |denial: Option<DenialCode>| {
                let payload = match denial {
                    Some(code) => ServerCommand::DenyCheckout {
                        request_id: request_id.clone(),
                        code,
                    },
                    None => ServerCommand::GrantCheckout(CheckoutGrant {
                        grant_id: crate::domain::commands::new_grant_id()?,
                        request_id: Some(request_id.clone()),
                        user: user.clone(),
                        method,
                        display_text: display_text.clone(),
                    }),
                };
                decision_command(&keys, &device_id, payload, now)
            };
            let tap = PhoneTap {
                device_id: &device_id,
                request_id: request_id.as_str(),
                username: &user.username,
                limit,
            };
            crate::domain::grants::authorize_phone(tx, &tap, &answer, now)
        })
        .await?;
    let signed = decision.command.signed;
    Ok(Json(AuthorizeResponse { command: signed }))
}

/// Signs an answer to a phone's authorize request (answered inline, so delivered).
fn decision_command(
    keys: &ServerKeys,
    device_id: &str,
    payload: ServerCommand,
    now: lanyard_protocol::Timestamp,
) -> Result<NewCommand, StorageError> {
    let expires_at = now.plus_secs(DECISION_TTL_SECS);
    crate::domain::commands::new_command(keys, device_id, payload, now, expires_at, true)
}
