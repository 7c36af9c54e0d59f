//! The schema as migrations build it, compared with the checked-in snapshot
//! (`server/tests/schema.sql`; after adding a migration, bless it with
//! `LANYARD_BLESS_SCHEMA=1 cargo test -p lanyard-server --test schema` and review the
//! diff), and every stored state checked against the enum the server reads it into.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_protocol::DeviceStatus;
use lanyard_server::db;
use lanyard_server::model::PasscodeState;
use lanyard_server::storage::tx::CommandState;
use lanyard_server::workflows::run::{EmailState, RunState};
use rusqlite::{Connection, params};

fn fresh() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lanyard.db");
    db::migrate(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    (dir, conn)
}

fn dump(conn: &Connection) -> String {
    let mut stmt = conn
        .prepare(
            "SELECT type, name, COALESCE(sql, '') FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "-- {} {}\n{};\n",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?
            ))
        })
        .unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    let mut out = format!("-- schema version {version}\n");
    for row in rows {
        out.push_str(&row.unwrap());
    }
    out
}

#[test]
fn the_migrated_schema_is_the_checked_in_snapshot() {
    let (_dir, conn) = fresh();
    let got = dump(&conn);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schema.sql");
    if std::env::var_os("LANYARD_BLESS_SCHEMA").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "the migrated schema differs from {}: a migration changed it. Review, then bless \
         with LANYARD_BLESS_SCHEMA=1.\n--- migrated ---\n{got}",
        path.display()
    );
}

/// Whether the database accepts `value` through `write` (which binds it as ?1).
fn accepts(conn: &Connection, write: &str, value: &str) -> bool {
    conn.execute("SAVEPOINT probe", []).unwrap();
    let ok = conn.execute(write, params![value]).is_ok();
    conn.execute("ROLLBACK TO probe", []).unwrap();
    conn.execute("RELEASE probe", []).unwrap();
    ok
}

fn check(conn: &Connection, what: &str, write: &str, names: &[&str]) {
    for name in names {
        assert!(accepts(conn, write, name), "{what}: {name} refused");
    }
    assert!(
        !accepts(conn, write, "not_a_state"),
        "{what}: an unknown state was stored"
    );
}

#[test]
fn every_state_the_server_writes_is_one_the_database_accepts_and_no_other() {
    let (_dir, conn) = fresh();
    conn.execute(
        "INSERT INTO device (id, credential_hash, status, enrolled_at)
         VALUES ('d1', x'00', 'checked_in', 0)",
        [],
    )
    .unwrap();
    let statuses: Vec<&str> = DeviceStatus::ALL.iter().map(|s| s.as_str()).collect();
    check(
        &conn,
        "device.status (update)",
        "UPDATE device SET status = ?1 WHERE id = 'd1'",
        &statuses,
    );
    check(
        &conn,
        "device.status (insert)",
        "INSERT INTO device (id, credential_hash, status, enrolled_at)
         VALUES ('d2', x'01', ?1, 0)",
        &statuses,
    );
    let passcodes: Vec<&str> = PasscodeState::ALL.iter().map(|s| s.as_str()).collect();
    check(
        &conn,
        "device.passcode",
        "UPDATE device SET passcode = ?1 WHERE id = 'd1'",
        &passcodes,
    );
    let commands: Vec<&str> = CommandState::ALL.iter().map(|s| s.as_str()).collect();
    check(
        &conn,
        "command.state",
        "INSERT INTO command (id, device_id, kind, payload, signature, state, created_at,
            expires_at, updated_at) VALUES ('c1', 'd1', 'lock', '{}', 's', ?1, 0, 0, 0)",
        &commands,
    );
    let runs: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
    check(
        &conn,
        "workflow_run.state",
        "INSERT INTO workflow_run (device_id, workflow_id, origin, actor, state, attempt,
            workflow_json, steps_json, created_at, updated_at)
         VALUES ('d1', 'w', 'manual', 'a', ?1, 1, '{}', '[]', 0, 0)",
        &runs,
    );
    let emails: Vec<&str> = EmailState::ALL.iter().map(|s| s.as_str()).collect();
    check(
        &conn,
        "email_outbox.state",
        "INSERT INTO email_outbox (to_json, subject, body, state, next_attempt_at, created_at)
         VALUES ('[]', 's', 'b', ?1, 0, 0)",
        &emails,
    );
}
