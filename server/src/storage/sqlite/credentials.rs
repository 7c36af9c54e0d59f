//! [`CredentialStore`] on SQLite.

use crate::db::sql::{Conn, OptionalExtension, Row, params};
use lanyard_protocol::Timestamp;
use serde_json::json;

use super::{SqliteStorage, audit};
use crate::keys::hex;
use crate::model::Role;
use crate::storage::StorageError;
use crate::storage::credentials::{ApiTokenInfo, CredentialStore, EnrollmentTokenInfo};

const API_TOKEN_COLUMNS: &str = "id, role, label, created_at, expires_at, last_used_at, revoked_at";

fn api_token_row(r: &Row) -> crate::db::sql::Result<ApiTokenInfo> {
    Ok(ApiTokenInfo {
        id: r.get(0)?,
        role: crate::model::stored_state(1, &r.get::<_, String>(1)?, Role::parse)?,
        label: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

/// An enrollment token's id: the first 8 bytes of its hash, in hex (stable, and
/// useless for enrolling).
fn enrollment_token_id(hash: &[u8]) -> String {
    hex(&hash[..hash.len().min(8)])
}

const ENROLLMENT_TOKEN_COLUMNS: &str =
    "token_hash, label, uses_left, expires_at, launchpad_id, department, created_at, revoked_at";

fn enrollment_token_row(r: &Row) -> crate::db::sql::Result<EnrollmentTokenInfo> {
    Ok(EnrollmentTokenInfo {
        id: enrollment_token_id(&r.get::<_, Vec<u8>>(0)?),
        label: r.get(1)?,
        uses_left: r
            .get::<_, Option<i64>>(2)?
            .and_then(|u| u32::try_from(u).ok()),
        expires_at: r.get(3)?,
        launchpad_id: r.get(4)?,
        department: r.get(5)?,
        created_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

fn api_token_by_id(c: &dyn Conn, id: i64) -> Result<ApiTokenInfo, StorageError> {
    c.query_row(
        &format!("SELECT {API_TOKEN_COLUMNS} FROM api_token WHERE id = ?1"),
        [id],
        api_token_row,
    )
    .optional()?
    .ok_or(StorageError::NotFound("API token"))
}

impl CredentialStore for SqliteStorage {
    async fn list_api_tokens(&self) -> Result<Vec<ApiTokenInfo>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {API_TOKEN_COLUMNS} FROM api_token ORDER BY id DESC"
            ))?;
            let rows = stmt.query_map((), api_token_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn create_api_token_with(
        &self,
        token_hash: Vec<u8>,
        role: Role,
        label: String,
        expires_at: Option<Timestamp>,
        actor: String,
        now: Timestamp,
    ) -> Result<ApiTokenInfo, StorageError> {
        self.write(move |tx| {
            let id: i64 = tx.query_row(
                "INSERT INTO api_token (token_hash, role, label, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                params![
                    token_hash,
                    role.as_str(),
                    label,
                    now.as_millis(),
                    expires_at.map(|t| t.as_millis())
                ],
                |r| r.get(0),
            )?;
            let created = api_token_by_id(tx, id)?;
            audit(
                tx,
                &actor,
                "api_token.create",
                "api_token",
                &id.to_string(),
                None,
                Some(json!(created)),
                now,
            )?;
            Ok(created)
        })
        .await
    }

    async fn revoke_api_token(
        &self,
        id: i64,
        actor: String,
        now: Timestamp,
    ) -> Result<ApiTokenInfo, StorageError> {
        self.write(move |tx| {
            let before = api_token_by_id(tx, id)?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            tx.execute(
                "UPDATE api_token SET revoked_at = ?2 WHERE id = ?1",
                params![id, now.as_millis()],
            )?;
            let after = api_token_by_id(tx, id)?;
            audit(
                tx,
                &actor,
                "api_token.revoke",
                "api_token",
                &id.to_string(),
                Some(json!(before)),
                Some(json!(after)),
                now,
            )?;
            Ok(after)
        })
        .await
    }

    async fn touch_api_token(&self, id: i64, now: Timestamp) -> Result<(), StorageError> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE api_token SET last_used_at = ?2 WHERE id = ?1",
                params![id, now.as_millis()],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenInfo>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ENROLLMENT_TOKEN_COLUMNS} FROM enrollment_token ORDER BY created_at DESC"
            ))?;
            let rows = stmt.query_map((), enrollment_token_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn revoke_enrollment_token(
        &self,
        id: String,
        actor: String,
        now: Timestamp,
    ) -> Result<EnrollmentTokenInfo, StorageError> {
        self.write(move |tx| {
            // Ids are hash prefixes: a scan, over a table IT keeps small.
            let mut stmt = tx.prepare(&format!(
                "SELECT {ENROLLMENT_TOKEN_COLUMNS} FROM enrollment_token"
            ))?;
            let found = stmt
                .query_map((), |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, enrollment_token_row(r)?))
                })?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .find(|(_, t)| t.id == id);
            drop(stmt);
            let Some((hash, before)) = found else {
                return Err(StorageError::NotFound("enrollment token"));
            };
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            tx.execute(
                "UPDATE enrollment_token SET revoked_at = ?2 WHERE token_hash = ?1",
                params![hash, now.as_millis()],
            )?;
            let mut after = before.clone();
            after.revoked_at = Some(now.as_millis());
            audit(
                tx,
                &actor,
                "enrollment_token.revoke",
                "enrollment_token",
                &id,
                Some(json!(before)),
                Some(json!(after)),
                now,
            )?;
            Ok(after)
        })
        .await
    }

    async fn set_reader_credential(
        &self,
        launchpad_id: String,
        credential_hash: Option<Vec<u8>>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE launchpad SET credential_hash = ?2 WHERE id = ?1",
                params![launchpad_id, credential_hash],
            )?;
            if n == 0 {
                return Err(StorageError::NotFound("launchpad"));
            }
            let action = if credential_hash.is_some() {
                "launchpad.credential_rotate"
            } else {
                "launchpad.credential_revoke"
            };
            audit(
                tx,
                &actor,
                action,
                "launchpad",
                &launchpad_id,
                None,
                None,
                now,
            )?;
            Ok(())
        })
        .await
    }
}
