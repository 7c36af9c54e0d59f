//! The two engines hold the same schema: every table and column SQLite's migrations
//! create exists in PostgreSQL's, with the matching type and nullability (checked in
//! the suite's PostgreSQL pass, where a cluster is at hand).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;

/// table → column → (type, not null), as each engine reports it, in SQLite's words.
type Schema = BTreeMap<String, BTreeMap<String, (String, bool)>>;

fn sqlite_schema() -> Schema {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    lanyard_server::db::migrate(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut schema = Schema::new();
    for t in tables {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{t}')"
            ))
            .unwrap();
        let cols = stmt
            .query_map([], |r| {
                let pk: i64 = r.get(3)?;
                let ty: String = r.get(1)?;
                // SQLite's INTEGER PRIMARY KEY is NOT NULL in effect.
                let not_null: bool = r.get::<_, bool>(2)? || pk > 0;
                Ok((r.get::<_, String>(0)?, (ty, not_null)))
            })
            .unwrap()
            .collect::<Result<BTreeMap<_, _>, _>>()
            .unwrap();
        schema.insert(t, cols);
    }
    schema
}

fn postgres_schema(url: &str) -> Schema {
    let url = url.to_owned();
    std::thread::spawn(move || {
        lanyard_server::db::migrate_postgres(&url).unwrap();
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let rows = client
            .query(
                "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text
                 FROM information_schema.columns WHERE table_schema = 'public'",
                &[],
            )
            .unwrap();
        let mut schema = Schema::new();
        for r in rows {
            let ty = match r.get::<_, String>(2).as_str() {
                "bigint" => "INTEGER".to_owned(),
                "text" => "TEXT".to_owned(),
                "bytea" => "BLOB".to_owned(),
                other => other.to_owned(),
            };
            schema
                .entry(r.get(0))
                .or_default()
                .insert(r.get(1), (ty, r.get::<_, String>(3) == "NO"));
        }
        schema
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn postgresql_holds_every_table_and_column_sqlite_does() {
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("needs the PostgreSQL pass's cluster");
        return;
    }
    let admin = std::env::var("LANYARD_TEST_PG_URL").unwrap();
    let url = lanyard_e2e::postgres_db::create_database(admin)
        .await
        .unwrap();
    let sqlite = sqlite_schema();
    let mut pg = postgres_schema(&url);
    // PostgreSQL's own bookkeeping, and SQLite's implicit rowid made explicit.
    assert!(pg.remove("lanyard_schema").is_some());
    assert!(
        pg.get_mut("mdm_command")
            .and_then(|c| c.remove("rowid"))
            .is_some()
    );
    assert_eq!(
        sqlite.keys().collect::<Vec<_>>(),
        pg.keys().collect::<Vec<_>>(),
        "the same tables"
    );
    for (table, columns) in &sqlite {
        assert_eq!(columns, &pg[table], "{table}: columns, types, NOT NULL");
    }
}
