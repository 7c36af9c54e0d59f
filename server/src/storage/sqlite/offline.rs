//! [`OfflineStore`] on SQLite.

use crate::db::sql::{OptionalExtension, params};
use lanyard_protocol::UserRef;

use super::SqliteStorage;
use crate::storage::StorageError;
use crate::storage::offline::{OfflineBadge, OfflineListRow, OfflineStore, SealedEntry};

impl OfflineStore for SqliteStorage {
    async fn set_offline_sealed(
        &self,
        badge_hash: Vec<u8>,
        sealed: Vec<u8>,
    ) -> Result<bool, StorageError> {
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE badge SET offline_sealed = ?2 WHERE badge_hash = ?1",
                params![badge_hash, sealed],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn needs_offline_sealed(&self, badge_hash: Vec<u8>) -> Result<bool, StorageError> {
        self.read(move |c| {
            let has: Option<bool> = c
                .query_row(
                    "SELECT offline_sealed IS NOT NULL FROM badge WHERE badge_hash = ?1",
                    [&badge_hash],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(has == Some(false))
        })
        .await
    }

    async fn audit_mark(&self) -> Result<i64, StorageError> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT COALESCE(MAX(id), 0) FROM audit_log", (), |r| {
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
                "SELECT b.badge_hash, b.offline_sealed, u.username, u.display_name, u.groups_json
                 FROM badge b JOIN app_user u ON u.username = b.username
                 WHERE b.offline_sealed IS NOT NULL ORDER BY u.username, b.badge_hash",
            )?;
            let rows = stmt.query_map((), |r| {
                let groups: String = r.get(4)?;
                Ok(OfflineBadge {
                    badge_hash: r.get(0)?,
                    sealed: r.get(1)?,
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

    async fn offline_entries(
        &self,
        device_id: String,
        iterations: u32,
    ) -> Result<Vec<SealedEntry>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT badge_hash, sealed FROM offline_entry WHERE device_id = ?1 AND iterations = ?2",
            )?;
            let rows = stmt.query_map(params![device_id, i64::from(iterations)], |r| {
                Ok(SealedEntry {
                    badge_hash: r.get(0)?,
                    sealed: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn save_offline_entries(
        &self,
        device_id: String,
        iterations: u32,
        entries: Vec<SealedEntry>,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO offline_entry (device_id, badge_hash, iterations, sealed)
                 SELECT ?1, ?2, ?3, ?4
                  WHERE EXISTS (SELECT 1 FROM badge WHERE badge_hash = ?2)
                    AND EXISTS (SELECT 1 FROM device WHERE id = ?1)
                 ON CONFLICT (device_id, badge_hash) DO UPDATE
                   SET iterations = excluded.iterations, sealed = excluded.sealed",
            )?;
            for e in &entries {
                stmt.execute(params![
                    device_id,
                    e.badge_hash,
                    i64::from(iterations),
                    e.sealed
                ])?;
            }
            tx.execute(
                "UPDATE offline_list SET audit_mark = -1 WHERE device_id = ?1",
                [&device_id],
            )?;
            Ok(())
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
