//! Request extractors whose failures are JSON errors with stable codes, and the two
//! kinds of caller: admin API tokens (with roles) and enrolled devices.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::keys::sha256;
use crate::model::{Device, Role};
use crate::state::AppState;
use crate::storage::Storage;

/// `Json<T>` whose rejection is an [`AppError`]. A number written with a zero fraction
/// (`2780.0`) is the integer it equals, as JSON Schema says: a body refused only for
/// that is read again with such numbers as integers.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(AppError::UnsupportedMediaType(
                "send the body as application/json".into(),
            ));
        }
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(AppError::TooLarge(format!(
                    "request body rejected: {}",
                    e.body_text()
                )));
            }
            Err(e) => {
                return Err(AppError::BadRequest {
                    code: "body_unreadable",
                    message: format!("request body could not be read: {}", e.body_text()),
                });
            }
        };
        // Every body is a JSON object: serde would otherwise read a struct from an
        // array of its fields in order (`[null, null]` as a patch of nothing).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(AppError::BadRequest {
                code: "invalid_json",
                message: "the body must be a JSON object".into(),
            });
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(first) => match integral_numbers_as_integers(&bytes)
                .and_then(|b| axum::Json::<T>::from_bytes(&b).ok())
            {
                Some(axum::Json(v)) => Ok(ApiJson(v)),
                None => Err(AppError::BadRequest {
                    code: "invalid_json",
                    message: first.body_text(),
                }),
            },
        }
    }
}

/// `application/json` or `application/*+json`, as axum's `Json` accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// The body again with every number that has a zero fraction and fits an integer
/// written as that integer; `None` when there is none (or the body is not JSON).
fn integral_numbers_as_integers(body: &[u8]) -> Option<Vec<u8>> {
    fn walk(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // Within ±2^53 a float is exact, so the integer is the number sent.
                if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    *v = serde_json::Value::from(i);
                    return true;
                }
                false
            }
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |c, i| walk(i) | c),
            serde_json::Value::Object(map) => map.values_mut().fold(false, |c, i| walk(i) | c),
            _ => false,
        }
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if walk(&mut v) {
        serde_json::to_vec(&v).ok()
    } else {
        None
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

#[cfg(test)]
mod tests {
    use super::integral_numbers_as_integers;

    #[test]
    fn numbers_with_a_zero_fraction_are_read_as_integers_and_others_are_left() {
        let fixed = integral_numbers_as_integers(br#"{"a": 2780.0, "b": [1.0, -3.0], "c": 1.5}"#)
            .expect("changed");
        let v: serde_json::Value = serde_json::from_slice(&fixed).unwrap_or_default();
        assert_eq!(v, serde_json::json!({"a": 2780, "b": [1, -3], "c": 1.5}));
        assert_eq!(integral_numbers_as_integers(br#"{"a": 1, "c": 1.5}"#), None);
        assert_eq!(integral_numbers_as_integers(b"not json"), None);
        assert_eq!(
            integral_numbers_as_integers(br#"{"a": 1e300}"#),
            None,
            "too big to be exact"
        );
    }
}
