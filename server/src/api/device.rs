//! The device API: enrollment, sync (long-poll), authorization.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use lanyard_protocol::enroll::{EnrollRequest, EnrollResponse};
use lanyard_protocol::sync::{SyncRequest, SyncResponse};
use lanyard_protocol::{
    AuthorizeRequest, AuthorizeResponse, CheckoutGrant, CommandEnvelope, CommandId, Credential,
    DenialCode, GrantId, PROTOCOL_VERSION, ServerCommand, UnlockMethod, UserRef,
};

use crate::error::AppError;
use crate::extract::{ApiJson, DeviceCaller};
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
#[utoipa::path(post, path = "/device/v1/enroll", tag = "device", request_body = lanyard_protocol::enroll::EnrollRequest, responses((status = 200, body = lanyard_protocol::enroll::EnrollResponse), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn enroll<S: Storage>(
    State(st): State<AppState<S>>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, AppError> {
    check_version(req.v)?;
    let token = req.token.trim();
    if token.is_empty() || token.len() > 256 {
        return Err(AppError::invalid("token", "must be 1 to 256 characters"));
    }
    for (field, value) in [
        ("device.serial", &req.device.serial),
        ("device.udid", &req.device.udid),
        ("device.model", &req.device.model),
        ("device.name", &req.device.name),
    ] {
        if let Some(v) = value {
            crate::api::validate::text(field, v, 128)?;
        }
    }
    let id = format!("dev-{}", hex(&random_bytes(8)?));
    let credential = random_token(32)?;
    let device = NewDevice {
        id: id.clone(),
        credential_hash: sha256(credential.as_bytes()),
        info: req.device,
    };
    let now = st.now();
    match st
        .storage
        .enroll_device(sha256(token.as_bytes()), device, now)
        .await
    {
        Ok(_) => {}
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
    let wants_passcode_clear = req.events.iter().any(|r| {
        r.reports.iter().any(|x| {
            matches!(
                x,
                lanyard_protocol::events::Report::PasscodeClearRequested { .. }
            )
        })
    });
    metrics::counter!("lanyard_sync_events_received_total").increment(req.events.len() as u64);
    let applied = st
        .storage
        .apply_sync(device.id.clone(), req.events, req.handled_commands, now)
        .await?;
    if had_events {
        // A cart waiting on this phone's grant may be free now (unplugged or lapsed).
        if let Some(cart) = &device.last_launchpad {
            st.wake(&crate::api::launchpad::cart_key(cart));
        }
    }
    if wants_passcode_clear {
        crate::mdm::request_passcode_clear(&st, &device).await;
    }
    // Automation rules see each status change once; a failure to deploy is logged, never
    // a reason to refuse the phone's records (they are stored already).
    if let Err(e) =
        crate::workflows::triggers::on_transitions(&st, &device.id, &applied.transitions).await
    {
        tracing::warn!(device = %device.id, error = %e, "automation rules not evaluated");
    }
    if !applied.transitions.is_empty() || had_handled {
        // A run may be waiting on this phone's status or on a command it just handled
        // (the engine also looks every second, so other syncs need not wake it).
        crate::workflows::engine::wake(&st);
    }
    let mut commands = applied.commands;
    if commands.is_empty() && req.wait_secs > 0 {
        let wait = Duration::from_secs(u64::from(req.wait_secs.min(MAX_WAIT_SECS)));
        let waiter = st.waiter(&device.id);
        if tokio::time::timeout(wait, waiter.notified()).await.is_ok() {
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
) -> Result<Resolved, AppError> {
    match credential {
        Credential::Badge { badge } => {
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
                None => Resolved::Denied(DenialCode::BadgeNotFound),
            })
        }
        Credential::Password { username, password } => {
            let username = username.trim().to_owned();
            let now = st.now();
            if st.password_locked(&username, now) {
                return Ok(Resolved::Denied(DenialCode::TooManyAttempts));
            }
            let found = st.storage.user_password(username.clone()).await?;
            let Some((user, limit, Some(hash))) = found else {
                // Unknown users count too, so probing usernames is throttled the same way.
                st.record_password(&username, false, now);
                return Ok(Resolved::Denied(DenialCode::InvalidCredentials));
            };
            // PBKDF2 is slow on purpose: keep it off the async threads.
            let ok = tokio::task::spawn_blocking(move || hash.verify(password.expose().as_bytes()))
                .await
                .map_err(|e| AppError::Internal(anyhow::anyhow!("password check: {e}")))?;
            st.record_password(&username, ok, now);
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
    let payload = match resolve(&st, req.credential).await? {
        Resolved::Denied(code) => ServerCommand::DenyCheckout {
            request_id: req.request_id.clone(),
            code,
        },
        Resolved::User {
            user,
            limit,
            method,
        } => {
            let holder = device.device_user.as_deref();
            let code = if device.admin_state.is_some() {
                // Lost or retired phones are never handed out.
                Some(DenialCode::DeviceUnavailable)
            } else if holder.is_none() && st.storage.run_holding(device.id.clone()).await?.is_some()
            {
                // An OS update or an erase is under way on this phone.
                Some(DenialCode::DeviceUnavailable)
            } else if holder.is_some_and(|h| h != user.username) {
                Some(DenialCode::DeviceUnavailable)
            } else if holder != Some(user.username.as_str())
                && st
                    .storage
                    .devices_held_by(user.username.clone(), device.id.clone())
                    .await?
                    >= limit
            {
                Some(DenialCode::UserHasDevice)
            } else {
                None
            };
            match code {
                Some(code) => ServerCommand::DenyCheckout {
                    request_id: req.request_id.clone(),
                    code,
                },
                None => {
                    let display_text = crate::workflows::triggers::checkout_display_text(
                        &st,
                        Some(&device.id),
                        None,
                        &user,
                    )
                    .await?;
                    ServerCommand::GrantCheckout(CheckoutGrant {
                        grant_id: GrantId::new(format!("g-{}", hex(&random_bytes(8)?))),
                        request_id: Some(req.request_id.clone()),
                        user,
                        method,
                        display_text,
                    })
                }
            }
        }
    };
    let grant_to = match &payload {
        ServerCommand::GrantCheckout(g) => Some(g.user.username.clone()),
        _ => None,
    };
    let kind = if grant_to.is_some() {
        "grant_checkout"
    } else {
        "deny_checkout"
    };
    let now = st.now();
    let envelope = CommandEnvelope {
        v: PROTOCOL_VERSION,
        device_id: req.device_id,
        command_id: CommandId::new(format!("c-{}", hex(&random_bytes(8)?))),
        issued_at: now,
        expires_at: now.plus_secs(DECISION_TTL_SECS),
        payload,
    };
    let signed = st
        .keys
        .signing
        .sign(&envelope)
        .map_err(anyhow::Error::new)?;
    let command = NewCommand {
        id: envelope.command_id.clone(),
        device_id: device.id.clone(),
        kind,
        signed: signed.clone(),
        expires_at: envelope.expires_at,
        delivered: true,
    };
    st.storage
        .insert_command(command, grant_to, None, now)
        .await?;
    Ok(Json(AuthorizeResponse { command: signed }))
}
