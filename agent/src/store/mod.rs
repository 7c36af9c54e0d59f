//! The agent's crash-safe local store (SQLite, WAL, one writer).
//!
//! The rule it exists for: a state change and its outbox records commit in **one**
//! transaction, durably (`synchronous=FULL`), *before* any effect runs. After a crash
//! the agent reloads the last committed state and the core re-issues the effects that
//! are safe to repeat, so a crash cannot leave a docked phone unlocked.

pub mod migrations;

use std::path::Path;

use lanyard_protocol::events::PayloadKind;
use lanyard_protocol::{EventRecord, Signed};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::Effect;
use crate::state::Locker;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (I/O, corruption, full disk, ...).
    #[error("local database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row could not be decoded.
    #[error("stored {what} is unreadable: {detail}")]
    Corrupt {
        /// Which row kind.
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// The database was written by a newer build of the agent.
    #[error("database schema v{found} is newer than this build (v{supported})")]
    TooNew {
        /// Version on disk.
        found: i64,
        /// Newest this build knows.
        supported: i64,
    },
    /// A record's sequence number is not the next one; the outbox would get a gap.
    #[error("outbox sequence gap: expected {expected}, got {got}")]
    SequenceGap {
        /// The next sequence the outbox expects.
        expected: u64,
        /// The one offered.
        got: u64,
    },
}

fn corrupt(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

/// The local store. Holds the only write connection.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::setup(Connection::open(path)?)
    }

    /// An in-memory store, for tests and the simulator's throw-away devices.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Store, StoreError> {
        // First, so the pragmas below wait for another connection instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // journal_mode answers with the mode it ended up in; in-memory databases say "memory".
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Read the version under the write lock, so two openers never both migrate.
        let latest = migrations::latest();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = migrations::current(&tx)?;
        if found > latest {
            return Err(StoreError::TooNew {
                found,
                supported: latest,
            });
        }
        if found < latest {
            migrations::apply(&tx, found, latest)?;
        }
        tx.commit()?;
        Ok(Store { conn })
    }

    /// The schema version on disk.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(migrations::current(&self.conn)?)
    }

    /// The last committed locker state, if any.
    pub fn load_state(&self) -> Result<Option<Locker>, StoreError> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT state FROM locker_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        json.map(|j| serde_json::from_str(&j).map_err(corrupt("locker state")))
            .transpose()
    }

    /// Commits `state` and every [`Effect::Record`] in `effects` in one transaction.
    /// Nothing in `effects` may run before this returns `Ok`.
    pub fn commit(&mut self, state: &Locker, effects: &[Effect]) -> Result<(), StoreError> {
        self.commit_with(state, effects, None)
    }

    /// As [`Store::commit`], also storing a signed payload exactly as received, in the
    /// same transaction as the state that applied it.
    pub fn commit_with(
        &mut self,
        state: &Locker,
        effects: &[Effect],
        signed: Option<(PayloadKind, u64, &Signed)>,
    ) -> Result<(), StoreError> {
        let state_json = serde_json::to_string(state).map_err(corrupt("locker state"))?;
        let device = state
            .enrollment
            .as_ref()
            .map_or("", |e| e.device_id.as_str());
        let now = effects
            .iter()
            .find_map(|e| {
                if let Effect::Record(r) = e {
                    Some(r.at.as_millis())
                } else {
                    None
                }
            })
            .unwrap_or(0);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut next: Option<u64> = tx
                .query_row("SELECT MAX(seq) FROM outbox", [], |r| {
                    r.get::<_, Option<i64>>(0)
                })?
                .and_then(|s| u64::try_from(s).ok())
                .map(|s| s + 1);
            let mut insert = tx.prepare_cached(
                "INSERT INTO outbox (seq, device_id, at, record) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for record in effects.iter().filter_map(|e| match e {
                Effect::Record(r) => Some(r),
                _ => None,
            }) {
                if let Some(expected) = next
                    && record.seq != expected
                {
                    return Err(StoreError::SequenceGap {
                        expected,
                        got: record.seq,
                    });
                }
                let json = serde_json::to_string(record).map_err(corrupt("outbox record"))?;
                insert.execute(params![
                    seq_i64(record.seq),
                    device,
                    record.at.as_millis(),
                    json
                ])?;
                next = Some(record.seq + 1);
            }
            tx.execute(
                "INSERT INTO locker_state (id, state, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                params![state_json, now],
            )?;
            if let Some((kind, version, s)) = signed {
                tx.execute(
                    "INSERT INTO signed_payload (kind, version, payload, signature, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (kind) DO UPDATE SET version = excluded.version,
                       payload = excluded.payload, signature = excluded.signature,
                       received_at = excluded.received_at",
                    params![kind.as_str(), seq_i64(version), s.payload, s.signature, now],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` unacknowledged outbox records, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record FROM outbox ORDER BY seq LIMIT ?1")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            out.push(serde_json::from_str(&json?).map_err(corrupt("outbox record"))?);
        }
        Ok(out)
    }

    /// How many records wait for the server.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Trims every record up to and including `seq`, which the server has made durable.
    pub fn ack_through(&mut self, seq: u64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM outbox WHERE seq <= ?1", [seq_i64(seq)])?;
        Ok(n as u64)
    }

    /// The signed payload of `kind` as received, if any.
    pub fn signed(&self, kind: PayloadKind) -> Result<Option<Signed>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT payload, signature FROM signed_payload WHERE kind = ?1",
                [kind.as_str()],
                |r| {
                    Ok(Signed {
                        payload: r.get(0)?,
                        signature: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }
}

fn seq_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
