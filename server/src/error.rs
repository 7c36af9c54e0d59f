//! API errors: every error response is JSON `{"code": ..., "message": ...}` with a stable
//! machine-readable code. Server-side failures are logged once, here, and answered with a
//! generic body so internals never leak to a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable code a client can branch on, e.g. `not_found`.
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
}

/// An error an API handler returns.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// Something failed on the server's side.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            AppError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
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
