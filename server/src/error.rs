//! API errors: every error response is JSON `{"code": ..., "message": ...}` with a stable
//! machine-readable code. Server-side failures are logged once, here, and answered with a
//! generic body so internals never leak to a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::storage::StorageError;

/// The body of every error response.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct ErrorBody {
    /// Stable code a client can branch on, e.g. `not_found`.
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
}

/// An error an API handler returns.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or a field is invalid (400).
    #[error("{message}")]
    BadRequest {
        /// Stable code, e.g. `invalid_field`.
        code: &'static str,
        /// What is wrong, naming the field.
        message: String,
    },
    /// No or unknown credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the needed role (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such route or resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method (405).
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A unique value is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// A conflict with its own stable code (409), e.g. `udid_in_use`.
    #[error("{message}")]
    ConflictWith {
        /// Stable code.
        code: &'static str,
        /// What is in the way and what to do.
        message: String,
    },
    /// The body is larger than the server takes (413).
    #[error("{0}")]
    TooLarge(String),
    /// The body is not JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request is understood but cannot be honoured now (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The server cannot answer now (503): it is stopping, or its database is not
    /// ready. The client tries again (another replica, or this one after a restart).
    #[error("{0}")]
    Unavailable(String),
    /// Something failed on the server's side (500).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// A 400 naming the offending field.
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        AppError::BadRequest {
            code: "invalid_field",
            message: format!("{field}: {why}"),
        }
    }
}

impl From<StorageError> for AppError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
            StorageError::Conflict(what) => AppError::Conflict(format!("{what} already exists")),
            StorageError::Rejected(why) => AppError::Unprocessable(why),
            StorageError::Changed(what) => AppError::ConflictWith {
                code: "changed",
                message: format!("{what} changed meanwhile; read it again and retry"),
            },
            StorageError::InUse(why) => AppError::ConflictWith {
                code: "in_use",
                message: why,
            },
            // The database is away (a PostgreSQL restart, a network cut): "try again",
            // not a server bug.
            StorageError::Unavailable(
                e @ (crate::db::DbError::Connect(_)
                | crate::db::DbError::WriterGone
                | crate::db::DbError::Sql(crate::db::SqlError::Unreachable(_))),
            ) => {
                tracing::warn!(error = %e, "database unreachable");
                AppError::Unavailable("the database cannot be reached; try again".into())
            }
            StorageError::Unavailable(e) => AppError::Internal(anyhow::Error::new(e)),
            StorageError::Corrupt(e) => {
                AppError::Internal(anyhow::anyhow!("stored data is unreadable: {e}"))
            }
            StorageError::Internal(e) => AppError::Internal(anyhow::anyhow!(e)),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            AppError::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, *code, message.clone())
            }
            AppError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone()),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            AppError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                self.to_string(),
            ),
            AppError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            AppError::ConflictWith { code, message } => {
                (StatusCode::CONFLICT, *code, message.clone())
            }
            AppError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", m.clone()),
            AppError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m.clone(),
            ),
            AppError::Unprocessable(m) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", m.clone())
            }
            AppError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m.clone()),
            AppError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error".into(),
                )
            }
        };
        (status, Json(ErrorBody { code, message })).into_response()
    }
}
