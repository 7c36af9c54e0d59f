//! Request extractors whose failures are JSON errors with stable codes, and the two
//! kinds of caller: admin API tokens (with roles) and enrolled devices.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::keys::sha256;
use crate::model::{Device, Role};
use crate::state::AppState;
use crate::storage::Storage;

/// `Json<T>` whose rejection is an [`AppError`].
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::UnsupportedMediaType(
                "send the body as application/json".into(),
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(AppError::TooLarge(format!(
                    "request body rejected: {}",
                    e.body_text()
                )))
            }
            Err(JsonRejection::BytesRejection(e)) => Err(AppError::BadRequest {
                code: "body_unreadable",
                message: format!("request body could not be read: {}", e.body_text()),
            }),
            Err(e) => Err(AppError::BadRequest {
                code: "invalid_json",
                message: e.body_text(),
            }),
        }
    }
}

/// `Query<T>` whose rejection is an [`AppError`].
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| AppError::BadRequest {
                code: "invalid_query",
                message: e.body_text(),
            })
    }
}

pub(crate) fn bearer(parts: &Parts) -> Result<&str, AppError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| AppError::Unauthorized("missing Authorization: Bearer token".into()))?;
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` works too.
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AppError::Unauthorized("Authorization must be `Bearer <token>`".into()))
}

/// An admin API caller and its role.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's role.
    pub role: Role,
    /// Who, for the audit log: `api-token:<id> (<label>)`.
    pub actor: String,
}

impl Caller {
    /// Only admins may change configuration.
    pub fn require_admin(&self) -> Result<(), AppError> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(AppError::Forbidden(format!(
                "the {} role cannot change configuration",
                self.role.as_str()
            ))),
        }
    }

    /// Admins and helpdesk may act on devices.
    pub fn require_device_actions(&self) -> Result<(), AppError> {
        match self.role {
            Role::Admin | Role::Helpdesk => Ok(()),
            Role::Auditor => Err(AppError::Forbidden("the auditor role is read-only".into())),
        }
    }
}

impl<S: Storage> FromRequestParts<AppState<S>> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let now = state.now();
        match state
            .storage
            .api_token(sha256(token.as_bytes()), now)
            .await?
        {
            Some(t) => {
                // Last use to the minute: IT sees which tokens are still in use without
                // a write per request.
                if t.last_used_at
                    .is_none_or(|at| now.as_millis() - at >= 60_000)
                {
                    state.storage.touch_api_token(t.id, now).await?;
                }
                Ok(Caller {
                    role: t.role,
                    actor: format!("api-token:{} ({})", t.id, t.label),
                })
            }
            None => Err(AppError::Unauthorized(
                "unknown, expired or revoked API token".into(),
            )),
        }
    }
}

/// An enrolled device, identified by its credential.
#[derive(Debug, Clone)]
pub struct DeviceCaller(pub Device);

impl<S: Storage> FromRequestParts<AppState<S>> for DeviceCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match state
            .storage
            .device_by_credential(sha256(token.as_bytes()))
            .await?
        {
            // A retired phone's credential is revoked for good, once the phone has
            // collected what IT sent it (the Unenroll of its retirement); its later
            // attempts are kept (once an hour) for IT, who may want to know where it
            // turned up.
            Some(device) if device.admin_state.as_deref() == Some("retired") => {
                let (id, now) = (device.id.clone(), state.now());
                let collecting = state
                    .storage
                    .transact(move |tx| {
                        if tx.has_outstanding_commands(&id)? {
                            return Ok(true);
                        }
                        crate::domain::claims::note_once(
                            tx,
                            &id,
                            "revoked_credential_used",
                            "a retired phone's credential was used",
                            now,
                        )?;
                        Ok(false)
                    })
                    .await?;
                if collecting {
                    Ok(DeviceCaller(device))
                } else {
                    Err(AppError::Unauthorized(
                        "this phone was retired: its credential is revoked".into(),
                    ))
                }
            }
            Some(device) => Ok(DeviceCaller(device)),
            None => Err(AppError::Unauthorized("unknown device credential".into())),
        }
    }
}

/// A cart's badge reader, identified by the credential issued when the cart was created.
#[derive(Debug, Clone)]
pub struct LaunchpadCaller(pub crate::model::Launchpad);

impl<S: Storage> FromRequestParts<AppState<S>> for LaunchpadCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match state
            .storage
            .launchpad_by_credential(sha256(token.as_bytes()))
            .await?
        {
            Some(cart) => Ok(LaunchpadCaller(cart)),
            None => Err(AppError::Unauthorized(
                "unknown launchpad credential".into(),
            )),
        }
    }
}
