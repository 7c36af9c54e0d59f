//! The admin API (`/api/v1`): users, badges, carts, enrollment tokens, devices.
//! Reads are open to every role; configuration changes need `admin`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header::HOST};
use lanyard_protocol::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller};
use crate::keys::{random_token, sha256};
use crate::model::{Device, Launchpad, Page, User};
use crate::state::AppState;
use crate::storage::{DeviceFilter, NewEnrollmentToken, Storage};
use crate::validate;

pub use crate::domain::directory::{
    CreateLaunchpad, CreateUser, PASSWORD_ITERATIONS, checked_launchpad, checked_user,
    hash_password,
};
use crate::domain::directory::{checked_ports, checked_timezone};

/// Paging parameters.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Continue after this cursor.
    pub cursor: Option<String>,
    /// Page size (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// `POST /api/v1/users`.
#[utoipa::path(post, path = "/api/v1/users", tag = "admin", description = "Needs the admin role.", request_body = CreateUser, responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 201, description = "created", body = User), (status = 403, body = ErrorBody), (status = 409, description = "username taken", body = ErrorBody)), security(("api_token" = [])))]
pub async fn create_user<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<User>), AppError> {
    caller.require_admin()?;
    let (mut user, password) = checked_user(body)?;
    if let Some(p) = password {
        user.password = Some(hash_password(p).await?);
    }
    let created = st
        .storage
        .create_user(user, caller.actor.clone(), st.now())
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Search and paging of the users.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Only users whose username, display name or email contains this (any case).
    #[param(max_length = 128)]
    q: Option<String>,
    /// Continue after this cursor.
    cursor: Option<String>,
    /// Page size (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// `GET /api/v1/users`.
#[utoipa::path(get, path = "/api/v1/users", tag = "admin", description = "Users in username order; `q` searches username, display name and email. Any role.", params(UserQuery), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, body = Page<User>)), security(("api_token" = [])))]
pub async fn list_users<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Json<Page<User>>, AppError> {
    let limit = validate::limit(q.limit)?;
    let search = validate::search("q", q.q)?;
    Ok(Json(st.storage.list_users(search, q.cursor, limit).await?))
}

/// `GET /api/v1/users/{username}`.
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "admin", description = "Any role.", params(("username" = String, Path)), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, body = User), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
pub async fn get_user<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<User>, AppError> {
    let username = validate::lookup_key("user", &username)?;
    Ok(Json(st.storage.get_user(username).await?))
}

/// `POST /api/v1/users/{username}/badges` body.
#[derive(utoipa::ToSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBadge {
    /// The raw badge id as the reader gives it.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    badge: String,
}

/// `POST /api/v1/users/{username}/badges`: registers a badge. Only its keyed hash is
/// stored; the raw id is never kept, logged or returned.
#[utoipa::path(post, path = "/api/v1/users/{username}/badges", tag = "admin", description = "Needs the admin role.", params(("username" = String, Path)), request_body = AddBadge, responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 201, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "badge already registered", body = ErrorBody)), security(("api_token" = [])))]
pub async fn add_badge<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<AddBadge>,
) -> Result<(StatusCode, Json<User>), AppError> {
    caller.require_admin()?;
    let username = validate::lookup_key("user", &username)?;
    let id = validate::badge("badge", &body.badge)?;
    let hash = st.keys.badge_hash(&id);
    st.storage
        .add_badge(username.clone(), hash, caller.actor.clone(), st.now())
        .await?;
    // The only moment the server holds this id: derive its offline hash now.
    crate::offline::learn_now(&st, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(st.storage.get_user(username).await?),
    ))
}

/// `POST /api/v1/launchpads`.
#[utoipa::path(post, path = "/api/v1/launchpads", tag = "admin", description = "Needs the admin role.", request_body = CreateLaunchpad, responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 201, body = LaunchpadCreated), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_token" = [])))]
pub async fn create_launchpad<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateLaunchpad>,
) -> Result<(StatusCode, Json<LaunchpadCreated>), AppError> {
    caller.require_admin()?;
    let launchpad = checked_launchpad(body)?;
    let credential = random_token(32)?;
    let created = st
        .storage
        .create_launchpad(
            launchpad,
            sha256(credential.as_bytes()),
            caller.actor.clone(),
            st.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(LaunchpadCreated {
            launchpad: created,
            credential,
        }),
    ))
}

/// A new cart, with its reader's credential (shown once; only its hash is stored).
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct LaunchpadCreated {
    /// The cart.
    #[serde(flatten)]
    pub launchpad: Launchpad,
    /// What the cart's badge reader presents to `/launchpad/v1` as a Bearer token.
    pub credential: String,
}

/// `GET /api/v1/launchpads`.
#[utoipa::path(get, path = "/api/v1/launchpads", tag = "admin", description = "Any role.", params(PageQuery), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, body = Page<Launchpad>)), security(("api_token" = [])))]
pub async fn list_launchpads<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<Launchpad>>, AppError> {
    let limit = validate::limit(q.limit)?;
    Ok(Json(st.storage.list_launchpads(q.cursor, limit).await?))
}

/// `POST /api/v1/enrollment-tokens` body.
#[derive(utoipa::ToSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    /// What it is for.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    label: String,
    /// How many devices may enroll with it (at most 1,000,000); absent = unlimited
    /// until expiry.
    #[schema(minimum = 1, maximum = 1000000)]
    uses: Option<u32>,
    /// Lifetime in seconds (default 7 days, at most 90 days).
    #[schema(minimum = 60, maximum = 7776000)]
    expires_in_secs: Option<u64>,
    /// The cart whose phones enroll with it (sets their Device Home).
    #[schema(pattern = r"^\s*[a-z0-9-]{1,64}\s*$")]
    launchpad_id: Option<String>,
    /// The Device Home of phones enrolled with it, when no cart is given.
    #[schema(
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    department: Option<String>,
    /// Re-enrollment: a phone enrolling with this token replaces (and inherits from)
    /// the record holding its UDID and serial number — for phones erased without an MDM
    /// to vouch for it. Give such a token few uses and a short life.
    replaces_existing: Option<bool>,
}

/// A new enrollment token, shown once.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct EnrollmentTokenCreated {
    /// The token itself (only its hash is stored).
    pub token: String,
    /// The `lanyard://enroll?…` link for a QR code.
    pub link: String,
    /// The link as a QR code PNG (`data:image/png;base64,…`), to show on a staging screen
    /// or print; like the token, available only now.
    pub qr_png: String,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// The server URL devices should use: the configured public URL (behind a load
/// balancer, every replica hands out the same address), else from the Host header
/// (https unless loopback).
fn public_url(configured: Option<&str>, headers: &HeaderMap) -> Result<String, AppError> {
    if let Some(url) = configured {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| AppError::BadRequest {
            code: "missing_host",
            message: "Host header required".into(),
        })?;
    let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = bare == "localhost" || bare.starts_with("127.") || bare == "[::1]";
    Ok(format!(
        "{}://{host}",
        if loopback { "http" } else { "https" }
    ))
}

/// `POST /api/v1/enrollment-tokens`.
#[utoipa::path(post, path = "/api/v1/enrollment-tokens", tag = "admin", description = "Needs the admin role.", request_body = CreateEnrollmentToken, responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 201, body = EnrollmentTokenCreated), (status = 403, body = ErrorBody), (status = 404, description = "unknown launchpad", body = ErrorBody)), security(("api_token" = [])))]
pub async fn create_enrollment_token<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateEnrollmentToken>,
) -> Result<(StatusCode, Json<EnrollmentTokenCreated>), AppError> {
    caller.require_admin()?;
    let label = validate::text("label", &body.label, 128)?;
    let lifetime = body.expires_in_secs.unwrap_or(7 * 86_400);
    if !(60..=90 * 86_400).contains(&lifetime) {
        return Err(AppError::invalid(
            "expires_in_secs",
            "must be 60 seconds to 90 days",
        ));
    }
    if body.uses.is_some_and(|n| !(1..=1_000_000).contains(&n)) {
        return Err(AppError::invalid(
            "uses",
            "must be 1 to 1,000,000 (omit for unlimited)",
        ));
    }
    let launchpad_id = match body.launchpad_id.as_deref() {
        Some(id) => Some(validate::ident("launchpad_id", id)?),
        None => None,
    };
    let department = validate::optional_text("department", body.department.as_deref(), 128)?;
    let token = random_token(24)?;
    let now = st.now();
    let expires_at = now.plus_secs(lifetime);
    let record = NewEnrollmentToken {
        token_hash: sha256(token.as_bytes()),
        label,
        uses: body.uses,
        expires_at,
        launchpad_id,
        department,
        replaces_existing: body.replaces_existing.unwrap_or(false),
    };
    st.storage
        .create_enrollment_token(record, caller.actor.clone(), now)
        .await?;
    let server = public_url(st.public_url.as_deref(), &headers)?;
    let link = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("server", &server)
        .append_pair("token", &token)
        .finish();
    let link = format!("lanyard://enroll?{link}");
    let qr_png = crate::qr::png_data_url(&link)?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentTokenCreated {
            token,
            link,
            qr_png,
            expires_at,
        }),
    ))
}

/// `GET /api/v1/devices` filters.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Checkout status (wire name).
    status: Option<lanyard_protocol::DeviceStatus>,
    /// Last cart.
    launchpad: Option<String>,
    /// Holder (Device User).
    user: Option<String>,
    /// Department of the last cart.
    department: Option<String>,
    /// Only overdue (`true`) or only not overdue (`false`) devices.
    overdue: Option<bool>,
    /// Only devices docked in a cart of another department than their Device Home.
    wandering: Option<bool>,
    /// `lost` or `retired`.
    admin_state: Option<AdminState>,
    /// `present`, `clearing`, `clear_failed` (the phones IT should look at) or `absent`.
    passcode: Option<crate::model::PasscodeState>,
    /// Only phones that left the MDM (`true`: its CheckOut, no MDM command reaches them)
    /// or only the others (`false`).
    mdm_checked_out: Option<bool>,
    /// Only phones on a charger now (`true`) or only those off one (`false`).
    docked: Option<bool>,
    /// Search: a device id, serial number or UDID (any case), the holder's username or
    /// email, or part of the device's name.
    #[param(max_length = 128)]
    q: Option<String>,
    /// Continue after this device id.
    cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// What IT marked a device.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminState {
    /// Missing.
    Lost,
    /// Out of service for good.
    Retired,
}

/// `GET /api/v1/devices`.
#[utoipa::path(get, path = "/api/v1/devices", tag = "admin", description = "Devices in id order, filtered; `q` finds a phone by id, serial number or UDID, by its holder's username or email, or by part of its name. Any role.", params(DeviceQuery), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, body = Page<Device>)), security(("api_token" = [])))]
pub async fn list_devices<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> Result<Json<Page<Device>>, AppError> {
    let limit = validate::limit(q.limit)?;
    let filter = DeviceFilter {
        search: validate::search("q", q.q)?,
        docked: q.docked,
        passcode: q.passcode.map(|p| p.as_str().to_owned()),
        status: q.status.map(|s| s.as_str().to_owned()),
        launchpad: q.launchpad,
        user: q.user,
        department: q.department,
        overdue: q.overdue,
        wandering: q.wandering,
        mdm_checked_out: q.mdm_checked_out,
        admin_state: q.admin_state.map(|a| {
            match a {
                AdminState::Lost => "lost",
                AdminState::Retired => "retired",
            }
            .to_owned()
        }),
    };
    Ok(Json(
        st.storage.list_devices(filter, q.cursor, limit).await?,
    ))
}

/// `GET /api/v1/devices/{id}`.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "admin", description = "Any role.", params(("id" = String, Path)), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, body = Device), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
pub async fn get_device<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Device>, AppError> {
    Ok(Json(st.storage.get_device(id).await?))
}

/// `POST /api/v1/devices/{id}/check-in` body.
#[derive(utoipa::ToSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInAction {
    /// Why (shown to the user, kept with the command).
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    reason: String,
}

pub use crate::domain::commands::{ActionQueued, queue_command};

/// How long a queued device action stays valid.
const ACTION_TTL_SECS: u64 = 24 * 3600;

/// `POST /api/v1/devices/{id}/check-in`: IT checks a device in remotely (logs the user
/// out and locks it). Delivered on the device's next sync, at once if it is long-polling.
#[utoipa::path(post, path = "/api/v1/devices/{id}/check-in", tag = "admin", description = "Needs the admin or helpdesk role.", params(("id" = String, Path)), request_body = CheckInAction, responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 202, description = "queued; delivered at the next sync", body = ActionQueued), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
pub async fn check_in_device<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CheckInAction>,
) -> Result<(StatusCode, Json<ActionQueued>), AppError> {
    let make = |reason| lanyard_protocol::ServerCommand::CheckIn {
        reason,
        as_of: None,
    };
    queue_reasoned_action(&st, &caller, id, &body, make).await
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/lock", tag = "admin", description = "Locks a checked-out phone in its user's hands until they authenticate again (a phone still in the cart is checked in). Needs the admin or helpdesk role.", params(("id" = String, Path)), request_body = CheckInAction, responses((status = 202, description = "queued; delivered at the next sync", body = ActionQueued), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/devices/{id}/lock`.
pub async fn lock_device<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CheckInAction>,
) -> Result<(StatusCode, Json<ActionQueued>), AppError> {
    let make = |reason| lanyard_protocol::ServerCommand::Lock { reason };
    queue_reasoned_action(&st, &caller, id, &body, make).await
}

/// Queues a device action that carries IT's reason, on behalf of `caller`.
async fn queue_reasoned_action<S: Storage>(
    st: &AppState<S>,
    caller: &Caller,
    id: String,
    body: &CheckInAction,
    make: impl FnOnce(String) -> lanyard_protocol::ServerCommand,
) -> Result<(StatusCode, Json<ActionQueued>), AppError> {
    caller.require_device_actions()?;
    let reason = validate::text("reason", &body.reason, 256)?;
    let payload = make(reason);
    let kind = payload.kind();
    let (now, keys, actor) = (st.now(), st.keys.clone(), caller.actor.clone());
    let device_id = id.clone();
    let (queued, new) = st
        .storage
        .transact(move |tx| {
            let sign = || {
                crate::domain::commands::new_command(
                    &keys,
                    &id,
                    payload.clone(),
                    now,
                    now.plus_secs(ACTION_TTL_SECS),
                    false,
                )
            };
            crate::domain::commands::queue_once(tx, &id, kind, &actor, &sign, now)
        })
        .await?;
    if new {
        st.wake(&crate::notify::device_topic(&device_id));
    }
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// `POST /api/v1/devices/{id}/lost` and `/found` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceNote {
    /// Why (kept in the audit log).
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/lost", tag = "admin", description = "Marks a device lost: it is never granted until found. Needs the admin or helpdesk role.", params(("id" = String, Path)), request_body = DeviceNote, responses((status = 200, body = Device), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/devices/{id}/lost`.
pub async fn mark_lost<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeviceNote>,
) -> Result<Json<Device>, AppError> {
    caller.require_device_actions()?;
    validate::text("reason", &body.reason, 256)?;
    Ok(Json(
        st.storage
            .set_admin_state(id, Some("lost"), caller.actor.clone(), st.now())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/found", tag = "admin", description = "Clears the lost mark. Needs the admin or helpdesk role.", params(("id" = String, Path)), request_body = DeviceNote, responses((status = 200, body = Device), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, description = "the device is retired", body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/devices/{id}/found`.
pub async fn mark_found<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeviceNote>,
) -> Result<Json<Device>, AppError> {
    caller.require_device_actions()?;
    validate::text("reason", &body.reason, 256)?;
    if st
        .storage
        .get_device(id.clone())
        .await?
        .admin_state
        .as_deref()
        == Some("retired")
    {
        return Err(AppError::Unprocessable(
            "a retired device cannot be marked found".into(),
        ));
    }
    Ok(Json(
        st.storage
            .set_admin_state(id, None, caller.actor.clone(), st.now())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/retire", tag = "admin", description = "Retires a device: never granted again, and told to unenroll at its next sync (one transaction, audited). Retiring a retired device changes nothing and queues nothing. Needs the admin role.", params(("id" = String, Path)), request_body = DeviceNote, responses((status = 200, body = Device), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/devices/{id}/retire`.
pub async fn retire<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeviceNote>,
) -> Result<Json<Device>, AppError> {
    caller.require_admin()?;
    let reason = validate::text("reason", &body.reason, 256)?;
    let (now, keys, actor) = (st.now(), st.keys.clone(), caller.actor.clone());
    let (device, queued) = st
        .storage
        .transact(move |tx| {
            // The phone may be off for weeks: the unenroll stays valid for a month.
            let unenroll = || {
                crate::domain::commands::new_command(
                    &keys,
                    &id,
                    lanyard_protocol::ServerCommand::Unenroll,
                    now,
                    now.plus_secs(ACTION_TTL_SECS * 30),
                    false,
                )
            };
            crate::domain::commands::retire(tx, &id, &actor, &reason, &unenroll, now)
        })
        .await?;
    if queued {
        st.wake(&crate::notify::device_topic(&device.id));
    }
    Ok(Json(device))
}

/// `PATCH /api/v1/users/{username}` body: only the fields given change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Display name.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub display_name: Option<String>,
    /// Email; `""` clears it.
    #[schema(
        max_length = 254,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*(|[^@\s\u0000-\u001F\u007F-\u009F]+@[^@\s\u0000-\u001F\u007F-\u009F]+\.[^@\s\u0000-\u001F\u007F-\u009F]+)[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub email: Option<String>,
    /// Directory groups (replaces the list), each 1 to 128 characters.
    #[schema(schema_with = crate::openapi::groups_patch)]
    pub groups: Option<Vec<String>>,
    /// Device limit (0 to 10).
    #[schema(maximum = 10)]
    pub device_limit: Option<u32>,
    /// New password (8–256 characters); `""` removes password checkouts for the user.
    #[schema(max_length = 256, pattern = r"^(|[\s\S]{8,})$")]
    pub password: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "admin", description = "Changes a user. Needs the admin role.", params(("username" = String, Path)), request_body = UpdateUser, responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `PATCH /api/v1/users/{username}`.
pub async fn update_user<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<User>, AppError> {
    caller.require_admin()?;
    let username = validate::lookup_key("user", &username)?;
    let mut patch = crate::storage::UserPatch::default();
    if let Some(v) = &body.display_name {
        patch.display_name = Some(validate::text("display_name", v, 128)?);
    }
    if let Some(v) = &body.email {
        patch.email = Some(validate::email("email", Some(v))?);
    }
    if let Some(groups) = &body.groups {
        patch.groups = Some(
            groups
                .iter()
                .map(|g| validate::text("groups", g, 128))
                .collect::<Result<_, _>>()?,
        );
    }
    if let Some(limit) = body.device_limit {
        if limit > 10 {
            return Err(AppError::invalid("device_limit", "must be 0 to 10"));
        }
        patch.device_limit = Some(limit);
    }
    match body.password {
        None => {}
        Some(p) if p.is_empty() => patch.password = Some(None),
        Some(p) if p.chars().count() < 8 || p.len() > 256 => {
            return Err(AppError::invalid(
                "password",
                "must be 8 to 256 characters, or empty to remove it",
            ));
        }
        Some(p) => patch.password = Some(Some(hash_password(p).await?)),
    }
    Ok(Json(
        st.storage
            .update_user(username, patch, caller.actor.clone(), st.now())
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "admin", description = "Deletes a user and their badges. Needs the admin role.", params(("username" = String, Path)), responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `DELETE /api/v1/users/{username}`.
pub async fn delete_user<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    let username = validate::lookup_key("user", &username)?;
    st.storage
        .delete_user(username, caller.actor.clone(), st.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/users/{username}/badges/revoke` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBadge {
    /// The badge to revoke (sent in the body, never in the URL, so it is never logged);
    /// absent: revoke every badge of the user.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub badge: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/users/{username}/badges/revoke", tag = "admin", description = "Revokes a lost badge (or all of a user's badges); it stops working at once. Needs the admin or helpdesk role.", params(("username" = String, Path)), request_body = RevokeBadge, responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/users/{username}/badges/revoke`.
pub async fn revoke_badges<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<RevokeBadge>,
) -> Result<Json<User>, AppError> {
    caller.require_device_actions()?;
    let username = validate::lookup_key("user", &username)?;
    let hash = match body.badge.as_deref() {
        None => None,
        Some(b) => Some(st.keys.badge_hash(&validate::badge("badge", b)?)),
    };
    Ok(Json(
        st.storage
            .revoke_badges(username, hash, caller.actor.clone(), st.now())
            .await?,
    ))
}

/// `PATCH /api/v1/launchpads/{id}` body: only the fields given change; `""` clears an
/// attribute.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLaunchpad {
    /// Display name.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub name: Option<String>,
    /// Number of ports (1 to 64).
    #[schema(minimum = 1, maximum = 64)]
    pub ports: Option<u32>,
    /// Launchpad Attribute: Department.
    #[schema(
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub department: Option<String>,
    /// Launchpad Attribute: Facility.
    #[schema(
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub facility: Option<String>,
    /// Launchpad Attribute: Launchpad Manager (email).
    #[schema(
        max_length = 254,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*(|[^@\s\u0000-\u001F\u007F-\u009F]+@[^@\s\u0000-\u001F\u007F-\u009F]+\.[^@\s\u0000-\u001F\u007F-\u009F]+)[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub manager: Option<String>,
    /// Launchpad Attribute: Timezone (IANA; `""` clears it).
    #[schema(schema_with = crate::openapi::timezone)]
    pub timezone: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/launchpads/{id}", tag = "admin", description = "Changes a cart or its attributes. Needs the admin role.", params(("id" = String, Path)), request_body = UpdateLaunchpad, responses((status = 200, body = Launchpad), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_token" = [])))]
/// `PATCH /api/v1/launchpads/{id}`.
pub async fn update_launchpad<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateLaunchpad>,
) -> Result<Json<Launchpad>, AppError> {
    caller.require_admin()?;
    let id = validate::lookup_key("launchpad", &id)?;
    let mut patch = crate::storage::LaunchpadPatch::default();
    if let Some(v) = &body.name {
        patch.name = Some(validate::text("name", v, 128)?);
    }
    if let Some(p) = body.ports {
        patch.ports = Some(checked_ports(p)?);
    }
    if let Some(v) = &body.department {
        patch.department = Some(validate::optional_text("department", Some(v), 128)?);
    }
    if let Some(v) = &body.facility {
        patch.facility = Some(validate::optional_text("facility", Some(v), 128)?);
    }
    if let Some(v) = &body.manager {
        patch.manager = Some(validate::email("manager", Some(v))?);
    }
    if let Some(v) = &body.timezone {
        patch.timezone = Some(checked_timezone(Some(v))?);
    }
    Ok(Json(
        st.storage
            .update_launchpad(id, patch, caller.actor.clone(), st.now())
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/launchpads/{id}", tag = "admin", description = "Deletes a cart; its reader credential and enrollment tokens stop working. Needs the admin role.", params(("id" = String, Path)), responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `DELETE /api/v1/launchpads/{id}`.
pub async fn delete_launchpad<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    let id = validate::lookup_key("launchpad", &id)?;
    st.storage
        .delete_launchpad(id, caller.actor.clone(), st.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
