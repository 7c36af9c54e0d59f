//! [`SecurityStore`] on SQLite.

use crate::db::sql::{Conn, OptionalExtension, params};
use lanyard_protocol::Timestamp;

use super::{SqliteStorage, page};
use crate::model::{Page, SecurityEvent};
use crate::storage::StorageError;
use crate::storage::security::{SecurityFilter, SecurityStore};

impl SecurityStore for SqliteStorage {
    async fn list_security_events(
        &self,
        filter: SecurityFilter,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<Page<SecurityEvent>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, device_id, launchpad_id, kind, detail, seq FROM security_event
                 WHERE id < ?1 AND (device_id = ?2 OR ?2 IS NULL)
                   AND (launchpad_id = ?3 OR ?3 IS NULL) AND (kind = ?4 OR ?4 IS NULL)
                 ORDER BY id DESC LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![
                    cursor.unwrap_or(i64::MAX),
                    filter.device_id,
                    filter.launchpad_id,
                    filter.kind,
                    i64::from(limit) + 1
                ],
                |r| {
                    Ok(SecurityEvent {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        device_id: r.get(2)?,
                        launchpad_id: r.get(3)?,
                        kind: r.get(4)?,
                        detail: r.get(5)?,
                        seq: r
                            .get::<_, Option<i64>>(6)?
                            .and_then(|s| u64::try_from(s).ok()),
                    })
                },
            )?;
            let items = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(page(items, limit, |e| e.id.to_string()))
        })
        .await
    }

    async fn attempt_window(&self, key: String) -> Result<Option<(Timestamp, u32)>, StorageError> {
        self.read(move |c| attempt_window(c, &key)).await
    }
}

/// A failure counter's window start and count (one statement for the read pool and
/// the writer's transactions).
pub(super) fn attempt_window(
    c: &dyn Conn,
    key: &str,
) -> Result<Option<(Timestamp, u32)>, StorageError> {
    Ok(
        c.prepare_cached("SELECT window_start, failures FROM attempt_window WHERE key = ?1")?
            .query_row([key], |r| {
                Ok((
                    Timestamp(r.get(0)?),
                    u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
                ))
            })
            .optional()?,
    )
}
