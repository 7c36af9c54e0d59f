//! [`TapStore`] on SQLite (and PostgreSQL, through the shared SQL).

use crate::db::sql::params;

use super::{SqliteStorage, page};
use crate::model::{CartTapRecord, Page};
use crate::storage::StorageError;
use crate::storage::taps::{TapFilter, TapStore};

impl TapStore for SqliteStorage {
    async fn list_cart_taps(
        &self,
        filter: TapFilter,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<Page<CartTapRecord>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, launchpad_id, username, beep, reason, device_id, port, detail
                   FROM cart_tap
                  WHERE id < ?1 AND (launchpad_id = ?2 OR ?2 IS NULL)
                    AND (username = ?3 OR ?3 IS NULL) AND (reason = ?4 OR ?4 IS NULL)
                    AND (CAST(?5 AS BIGINT) IS NULL OR (?5 = 1 AND beep <> 1) OR (?5 = 0 AND beep = 1))
                    AND at >= ?6 AND at < ?7
                  ORDER BY id DESC LIMIT ?8",
            )?;
            let rows = stmt.query_map(
                params![
                    cursor.unwrap_or(i64::MAX),
                    filter.launchpad_id,
                    filter.username,
                    filter.reason,
                    filter.refused.map(i64::from),
                    filter.since.unwrap_or(i64::MIN),
                    filter.until.unwrap_or(i64::MAX),
                    i64::from(limit) + 1
                ],
                |r| {
                    Ok(CartTapRecord {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        launchpad_id: r.get(2)?,
                        username: r.get(3)?,
                        beep: u8::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                        reason: r.get(5)?,
                        device_id: r.get(6)?,
                        port: r
                            .get::<_, Option<i64>>(7)?
                            .and_then(|p| u32::try_from(p).ok()),
                        detail: r.get(8)?,
                    })
                },
            )?;
            let items = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(page(items, limit, |e| e.id.to_string()))
        })
        .await
    }
}
