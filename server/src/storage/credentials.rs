//! The storage of credentials as IT manages them: admin API tokens, enrollment tokens
//! and cart reader credentials — listed, revoked and rotated, each change audited.

use std::future::Future;

use lanyard_protocol::Timestamp;
use serde::Serialize;

use super::StorageError;
use crate::model::Role;

/// An admin API token as listed (never the token itself).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiTokenInfo {
    /// Token id.
    pub id: i64,
    /// Its role.
    pub role: Role,
    /// What it is for.
    pub label: String,
    /// Created (ms since epoch).
    pub created_at: i64,
    /// Expires (ms since epoch); never when empty.
    pub expires_at: Option<i64>,
    /// Last used, to the minute (ms since epoch).
    pub last_used_at: Option<i64>,
    /// Revoked (ms since epoch).
    pub revoked_at: Option<i64>,
}

/// An enrollment token as listed (never the token itself).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollmentTokenInfo {
    /// Token id (the start of its hash).
    pub id: String,
    /// What it is for.
    pub label: String,
    /// Uses left; unlimited until expiry when empty.
    pub uses_left: Option<u32>,
    /// Expires (ms since epoch).
    pub expires_at: i64,
    /// The cart its phones belong to.
    pub launchpad_id: Option<String>,
    /// The department that becomes their Device Home.
    pub department: Option<String>,
    /// Created (ms since epoch).
    pub created_at: i64,
    /// Revoked (ms since epoch).
    pub revoked_at: Option<i64>,
}

/// Credentials.
pub trait CredentialStore: Clone + Send + Sync + 'static {
    /// Every API token, newest first.
    fn list_api_tokens(
        &self,
    ) -> impl Future<Output = Result<Vec<ApiTokenInfo>, StorageError>> + Send;
    /// Stores a new API token (`expires_at`: never when empty); returns it as listed.
    fn create_api_token_with(
        &self,
        token_hash: Vec<u8>,
        role: Role,
        label: String,
        expires_at: Option<Timestamp>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<ApiTokenInfo, StorageError>> + Send;
    /// Revokes an API token (`NotFound` when unknown; revoking twice is a no-op).
    fn revoke_api_token(
        &self,
        id: i64,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<ApiTokenInfo, StorageError>> + Send;
    /// Records that a token was used now (callers do so at most once a minute).
    fn touch_api_token(
        &self,
        id: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Every enrollment token, newest first.
    fn list_enrollment_tokens(
        &self,
    ) -> impl Future<Output = Result<Vec<EnrollmentTokenInfo>, StorageError>> + Send;
    /// Revokes an enrollment token by id.
    fn revoke_enrollment_token(
        &self,
        id: String,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<EnrollmentTokenInfo, StorageError>> + Send;
    /// Sets (`Some`: rotated) or removes (`None`: revoked) a cart reader's credential.
    fn set_reader_credential(
        &self,
        launchpad_id: String,
        credential_hash: Option<Vec<u8>>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}
