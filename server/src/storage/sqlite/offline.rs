//! [`OfflineStore`] on SQLite.

use lanyard_protocol::UserRef;
use rusqlite::{OptionalExtension, params};

use super::SqliteStorage;
use crate::storage::StorageError;
use crate::storage::offline::{OfflineBadge, OfflineListRow, OfflineStore};

impl OfflineStore for SqliteStorage {
    async fn set_offline_hash(
        &self,
        badge_hash: Vec<u8>,
        offline_hash: Vec<u8>,
        iterations: u32,
    ) -> Result<bool, StorageError> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE badge SET offline_hash = ?2, offline_iterations = ?3 WHERE badge_hash = ?1",
                params![badge_hash, offline_hash, i64::from(iterations)],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn needs_offline_hash(
        &self,
        badge_hash: Vec<u8>,
        iterations: u32,
    ) -> Result<bool, StorageError> {
        self.read(move |c| {
            let row: Option<(bool, Option<i64>)> = c
                .query_row(
                    "SELECT offline_hash IS NOT NULL, offline_iterations FROM badge WHERE badge_hash = ?1",
                    [&badge_hash],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(match row {
                None => false,
                Some((has, n)) => !has || n != Some(i64::from(iterations)),
            })
        })
        .await
    }

    async fn audit_mark(&self) -> Result<i64, StorageError> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT COALESCE(MAX(id), 0) FROM audit_log", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }

    async fn offline_list(
        &self,
        device_id: String,
    ) -> Result<Option<OfflineListRow>, StorageError> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT version, digest, audit_mark, built_at, valid_until FROM offline_list WHERE device_id = ?1",
                [&device_id],
                |r| {
                    Ok(OfflineListRow {
                        version: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        digest: r.get(1)?,
                        audit_mark: r.get(2)?,
                        built_at: r.get(3)?,
                        valid_until: r.get(4)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn offline_badges(&self) -> Result<Vec<OfflineBadge>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT b.offline_hash, b.offline_iterations, u.username, u.display_name, u.groups_json
                 FROM badge b JOIN app_user u ON u.username = b.username
                 WHERE b.offline_hash IS NOT NULL ORDER BY u.username, b.badge_hash",
            )?;
            let rows = stmt.query_map([], |r| {
                let groups: String = r.get(4)?;
                Ok(OfflineBadge {
                    hash: r.get(0)?,
                    iterations: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    user: UserRef {
                        username: r.get(2)?,
                        display_name: r.get(3)?,
                    },
                    groups: serde_json::from_str(&groups).unwrap_or_default(),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn save_offline_list(
        &self,
        device_id: String,
        row: OfflineListRow,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO offline_list (device_id, version, digest, audit_mark, built_at, valid_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, digest = excluded.digest,
                   audit_mark = excluded.audit_mark, built_at = excluded.built_at, valid_until = excluded.valid_until",
                params![
                    device_id,
                    i64::try_from(row.version).unwrap_or(i64::MAX),
                    row.digest,
                    row.audit_mark,
                    row.built_at,
                    row.valid_until
                ],
            )?;
            Ok(())
        })
        .await
    }
}
