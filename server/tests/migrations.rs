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

#[test]
fn upgrading_drops_the_site_salted_badge_hashes_and_no_page_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v21.db");
    // A recognisable 32-byte "site-salted hash", as v21 stored per badge.
    let hash = [0xA5u8; 32];
    {
        let mut conn = Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        migrations::apply(&tx, 0, 21).unwrap();
        tx.execute(
            "INSERT INTO app_user (username, display_name, groups_json, created_at)
             VALUES ('alice', 'Alice', '[\"ICU\"]', 1)",
            [],
        )
        .unwrap();
        // Enough badges for the table to span many pages, one of them with the hash.
        for i in 0..3000u32 {
            let filler = [i.to_be_bytes().as_slice(), &[0x5A; 28]].concat();
            let h: &[u8] = if i == 1500 { &hash } else { &filler };
            tx.execute(
                "INSERT INTO badge (badge_hash, username, created_at, offline_hash, offline_iterations)
                 VALUES (?1, 'alice', 1, ?2, 1000)",
                rusqlite::params![i.to_be_bytes(), h],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let contains = |p: &std::path::Path| {
        let bytes = std::fs::read(p).unwrap_or_default();
        bytes.windows(32).any(|w| w == hash)
    };
    assert!(contains(&path), "the v21 file holds the hash");
    assert_eq!(db::migrate(&path).unwrap(), migrations::latest());
    assert!(!contains(&path), "the vacuum left no copy of it");
    assert!(!contains(&dir.path().join("v21.db-wal")));
    let conn = Connection::open(&path).unwrap();
    let kept: i64 = conn
        .query_row(
            "SELECT count(*) FROM badge WHERE offline_sealed IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 3000, "the badges themselves stay");
}
