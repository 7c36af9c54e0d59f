//! A database created at the first schema version and migrated forward has exactly the
//! schema of a fresh one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_server::db::{self, migrations};
use rusqlite::Connection;

fn schema(path: &std::path::Path) -> Vec<(String, String, String)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn migrated_from_v1_equals_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    {
        let mut conn = Connection::open(&old).unwrap();
        let tx = conn.transaction().unwrap();
        migrations::apply(&tx, 0, 1).unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(db::migrate(&old).unwrap(), migrations::latest());
    let fresh = dir.path().join("fresh.db");
    db::migrate(&fresh).unwrap();
    assert_eq!(schema(&old), schema(&fresh));
    // Running it again is a no-op.
    assert_eq!(db::migrate(&fresh).unwrap(), migrations::latest());
}

#[test]
fn a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    db::migrate(&path).unwrap();
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    assert!(matches!(
        db::migrate(&path),
        Err(db::DbError::TooNew { found: 999, .. })
    ));
}
