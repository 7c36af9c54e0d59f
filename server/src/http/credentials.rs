//! Every credential IT hands out can be listed, revoked and rotated: admin API tokens
//! (with expiry and last use), enrollment tokens and cart reader credentials. Phone
//! credentials end with the phone: retiring it revokes its credential, marking it lost
//! stops its records from counting (see the device actions).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::keys::{random_token, sha256};
use crate::model::Role;
use crate::state::AppState;
use crate::storage::Storage;
use crate::storage::credentials::{ApiTokenInfo, EnrollmentTokenInfo};
use crate::validate;

/// Longest lifetime of an API token made through the API, in days.
const MAX_TOKEN_DAYS: u32 = 3650;

/// `POST /api/v1/tokens` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// `admin`, `helpdesk` or `auditor`.
    pub role: Role,
    /// What the token is for, e.g. "IT automation".
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub label: String,
    /// Days until it stops working (1 to 3650); never when absent.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// A new API token (shown once; only its hash is stored).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiTokenCreated {
    /// The token as listed.
    #[serde(flatten)]
    pub info: ApiTokenInfo,
    /// What the caller presents as `Authorization: Bearer …`.
    pub token: String,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "admin", description = "Every admin API token, newest first, with its expiry, last use (to the minute) and revocation; never the token itself. Needs the admin role.", responses((status = 200, body = [ApiTokenInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/tokens`.
pub async fn list_tokens<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
) -> Result<Json<Vec<ApiTokenInfo>>, AppError> {
    caller.require_admin()?;
    Ok(Json(st.storage.list_api_tokens().await?))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", description = "Creates an admin API token, shown once. Needs the admin role; audited.", request_body = CreateApiToken, responses((status = 201, body = ApiTokenCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/tokens`.
pub async fn create_token<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApiToken>,
) -> Result<(StatusCode, Json<ApiTokenCreated>), AppError> {
    caller.require_admin()?;
    let role = body.role;
    let label = validate::text("label", &body.label, 128)?;
    let now = st.now();
    let expires_at = match body.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => Some(now.plus_secs(u64::from(d) * 86_400)),
        Some(_) => {
            return Err(AppError::invalid(
                "expires_in_days",
                format!("must be 1 to {MAX_TOKEN_DAYS}"),
            ));
        }
    };
    let token = random_token(32)?;
    let info = st
        .storage
        .create_api_token_with(
            sha256(token.as_bytes()),
            role,
            label,
            expires_at,
            caller.actor.clone(),
            now,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ApiTokenCreated { info, token })))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "admin", description = "Revokes an admin API token at once (also the caller's own). Needs the admin role; audited.", params(("id" = i64, Path)), responses((status = 200, body = ApiTokenInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiTokenInfo>, AppError> {
    caller.require_admin()?;
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::invalid("id", "must be a token id (a number)"))?;
    Ok(Json(
        st.storage
            .revoke_api_token(id, caller.actor.clone(), st.now())
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/enrollment-tokens", tag = "admin", description = "Every enrollment token, newest first, with uses left, expiry and revocation; never the token itself. Needs the admin role.", responses((status = 200, body = [EnrollmentTokenInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/enrollment-tokens`.
pub async fn list_enrollment_tokens<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
) -> Result<Json<Vec<EnrollmentTokenInfo>>, AppError> {
    caller.require_admin()?;
    Ok(Json(st.storage.list_enrollment_tokens().await?))
}

#[utoipa::path(delete, path = "/api/v1/enrollment-tokens/{id}", tag = "admin", description = "Revokes an enrollment token: no phone enrolls with it again (phones already enrolled keep their own credentials). Needs the admin role; audited.", params(("id" = String, Path)), responses((status = 200, body = EnrollmentTokenInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `DELETE /api/v1/enrollment-tokens/{id}`.
pub async fn revoke_enrollment_token<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EnrollmentTokenInfo>, AppError> {
    caller.require_admin()?;
    Ok(Json(
        st.storage
            .revoke_enrollment_token(id, caller.actor.clone(), st.now())
            .await?,
    ))
}

/// A cart reader's new credential (shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReaderCredential {
    /// What the cart's reader presents to `/launchpad/v1` as a Bearer token.
    pub credential: String,
}

#[utoipa::path(post, path = "/api/v1/launchpads/{id}/credential", tag = "admin", description = "Rotates the cart reader's credential: the old one stops working at once; the new one is shown once. Needs the admin role; audited.", params(("id" = String, Path)), responses((status = 201, body = ReaderCredential), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/launchpads/{id}/credential`.
pub async fn rotate_reader<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ReaderCredential>), AppError> {
    caller.require_admin()?;
    let credential = random_token(32)?;
    st.storage
        .set_reader_credential(
            id,
            Some(sha256(credential.as_bytes())),
            caller.actor.clone(),
            st.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ReaderCredential { credential })))
}

#[utoipa::path(delete, path = "/api/v1/launchpads/{id}/credential", tag = "admin", description = "Revokes the cart reader's credential (until rotated again). Needs the admin role; audited.", params(("id" = String, Path)), responses((status = 204, description = "revoked"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `DELETE /api/v1/launchpads/{id}/credential`.
pub async fn revoke_reader<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    st.storage
        .set_reader_credential(id, None, caller.actor.clone(), st.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
