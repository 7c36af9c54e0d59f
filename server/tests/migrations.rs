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

#[test]
fn the_command_table_rebuild_keeps_every_command_and_allows_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v11.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        migrations::apply(&tx, 0, 11).unwrap();
        tx.execute(
            "INSERT INTO device (id, credential_hash, status, enrolled_at)
             VALUES ('dev-1', x'01', 'checked_in', 1)",
            [],
        )
        .unwrap();
        for (id, state) in [
            ("c-1", "acknowledged"),
            ("c-2", "failed"),
            ("c-3", "pending"),
        ] {
            tx.execute(
                "INSERT INTO command (id, device_id, kind, payload, signature, state,
                                      created_at, expires_at, updated_at)
                 VALUES (?1, 'dev-1', 'check_in', '{}', 'sig', ?2, 1, 2, 3)",
                rusqlite::params![id, state],
            )
            .unwrap();
        }
        assert!(
            tx.execute(
                "UPDATE command SET state = 'superseded' WHERE id = 'c-3'",
                []
            )
            .is_err(),
            "v11 has no such state"
        );
        tx.commit().unwrap();
    }
    assert_eq!(db::migrate(&path).unwrap(), migrations::latest());
    let conn = Connection::open(&path).unwrap();
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT id, state FROM command ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            ("c-1".to_owned(), "acknowledged".to_owned()),
            ("c-2".to_owned(), "failed".to_owned()),
            ("c-3".to_owned(), "pending".to_owned())
        ]
    );
    conn.execute(
        "UPDATE command SET state = 'superseded' WHERE id = 'c-3'",
        [],
    )
    .unwrap();
}
