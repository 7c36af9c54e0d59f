//! Schema migrations, one per `PRAGMA user_version` step.
//!
//! Append only: a migration that has shipped is never edited. `tests/store.rs` checks
//! that a database created at the first version and migrated forward has exactly the
//! schema of a fresh one.

use rusqlite::{Connection, Transaction};

/// `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // v1: the locker state (one row) and the outbox.
    "CREATE TABLE locker_state (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        state      TEXT    NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE outbox (
        seq       INTEGER PRIMARY KEY,
        device_id TEXT    NOT NULL,
        at        INTEGER NOT NULL,
        record    TEXT    NOT NULL
    ) STRICT;",
    // v2: signed server payloads kept exactly as received, checked again on load.
    "CREATE TABLE signed_payload (
        kind        TEXT    PRIMARY KEY,
        version     INTEGER NOT NULL,
        payload     TEXT    NOT NULL,
        signature   TEXT    NOT NULL,
        received_at INTEGER NOT NULL
    ) STRICT;",
];

/// The schema version this build writes.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Reads `PRAGMA user_version`.
pub fn current(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Applies migrations `from..to` inside `tx`, bumping `user_version` with each.
pub fn apply(tx: &Transaction<'_>, from: i64, to: i64) -> rusqlite::Result<()> {
    for v in from..to {
        let Some(sql) = usize::try_from(v).ok().and_then(|i| MIGRATIONS.get(i)) else {
            break;
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", v + 1)?;
    }
    Ok(())
}
