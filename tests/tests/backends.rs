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
        let plain = lanyard_e2e::postgres_db::plain(&url);
        let mut client = postgres::Client::connect(&plain, postgres::NoTls).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_started_on_sqlite_moves_to_postgresql_and_carries_on() {
    use lanyard_agent::Event;
    use lanyard_e2e::TestServer;
    use lanyard_e2e::harness::{Phone, now};
    use lanyard_protocol::DeviceStatus;
    use serde_json::json;
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("needs the PostgreSQL pass's cluster");
        return;
    }
    // A site on SQLite: a clinician with a badge, a phone checked out to her.
    let site = TestServer::start_with(|c| c.database_url = None)
        .await
        .unwrap();
    assert!(site.database_url.is_none());
    let admin = site.admin().await;
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "alice", "display_name": "Alice"}),
        )
        .await;
    admin
        .ok("/api/v1/users/alice/badges", json!({"badge": "0012345"}))
        .await;
    let token = admin
        .ok("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    phone.tap("0012345").await;
    phone.agent.handle(Event::Undocked, now()).unwrap();
    phone.sync().await;
    assert_eq!(phone.status(), DeviceStatus::CheckedOut);
    let (_, audit_before) = admin.get("/api/v1/audit?limit=100").await;
    let mut config = site.config();
    let TestServer {
        server, data_dir, ..
    } = site;
    server.stop().await.unwrap();

    // The copy, checked table by table.
    let admin_url = std::env::var("LANYARD_TEST_PG_URL").unwrap();
    let url = lanyard_e2e::postgres_db::create_database(admin_url)
        .await
        .unwrap();
    let file = data_dir.path().join("data").join(lanyard_server::DB_FILE);
    let (copy_file, copy_url) = (file.clone(), url.clone());
    let report = tokio::task::spawn_blocking(move || {
        lanyard_server::db::copy::sqlite_to_postgres(&copy_file, &copy_url)
    })
    .await
    .unwrap()
    .unwrap();
    let rows = |t: &str| report.iter().find(|r| r.table == t).unwrap().rows;
    assert_eq!(rows("app_user"), 1);
    assert_eq!(rows("device"), 1);
    assert!(rows("audit_log") >= 3);
    assert!(rows("device_event") >= 2);
    // Copying twice would mix two sites: refused, nothing written.
    let (again_file, again_url) = (file.clone(), url.clone());
    let again = tokio::task::spawn_blocking(move || {
        lanyard_server::db::copy::sqlite_to_postgres(&again_file, &again_url)
    })
    .await
    .unwrap();
    assert!(
        matches!(again, Err(lanyard_server::db::copy::CopyError::NotEmpty(_))),
        "{again:?}"
    );

    // The same site served from PostgreSQL: the phone carries on, history is whole,
    // and new rows continue the old ids.
    // On the address the phone knows (the SQLite server's, free since it stopped).
    config.database_url = Some(url);
    let moved = lanyard_server::EmbeddedServer::start(config).await.unwrap();
    let admin = lanyard_e2e::harness::Admin {
        base: moved.base_url(),
        token: admin.token.clone(),
        http: lanyard_e2e::http_client(),
    };
    let (_, audit_after) = admin.get("/api/v1/audit?limit=100").await;
    assert_eq!(audit_after, audit_before, "the audit log, entry for entry");
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    assert_eq!(device["status"], "checked_out");
    assert_eq!(device["device_user"], "alice");
    let mut phone = phone;
    phone
        .agent
        .handle(
            Event::Docked {
                location: Default::default(),
            },
            now(),
        )
        .unwrap();
    phone.sync().await;
    assert_eq!(phone.status(), DeviceStatus::CheckedIn);
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "bob", "display_name": "Bob"}),
        )
        .await;
    let (_, audit) = admin.get("/api/v1/audit?limit=1").await;
    let newest = audit["items"][0]["id"].as_i64().unwrap();
    let oldest_copied = audit_before["items"][0]["id"].as_i64().unwrap();
    assert!(
        newest > oldest_copied,
        "ids continue: {newest} > {oldest_copied}"
    );
    moved.stop().await.unwrap();
    drop(data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_given_another_key_encryption_key_does_not_start() {
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("needs the PostgreSQL pass's cluster");
        return;
    }
    let a = lanyard_e2e::TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = a.config();
    config.listen = ([127, 0, 0, 1], 0).into();
    config.data_dir = dir.path().join("data");
    config.key_encryption_key = Some("b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItMDE=".into());
    let refused = lanyard_server::EmbeddedServer::start(config.clone()).await;
    let message = format!("{:#}", refused.err().expect("refused"));
    assert!(
        message.contains("every replica must be given the same one"),
        "{message}"
    );
    config.key_encryption_key = None;
    let refused = lanyard_server::EmbeddedServer::start(config).await;
    let message = format!("{:#}", refused.err().expect("refused"));
    assert!(message.contains("LANYARD_KEY_ENCRYPTION_KEY"), "{message}");
    // Nothing of the keys is on disk in the database's copy.
    let copy = a.database_copy().unwrap();
    let signing = std::fs::read(a.data_dir.path().join("data").join("badge-key.bin"));
    assert!(
        signing.is_err(),
        "a server on PostgreSQL writes no key files"
    );
    let stored = lanyard_e2e::postgres_db::query_ints(
        a.database_url.as_deref().unwrap(),
        "SELECT COUNT(*) FROM server_key WHERE name <> ?1",
        "",
    )
    .unwrap();
    assert_eq!(stored, [4], "four keys, sealed");
    assert!(copy.len() > 1000);
    a.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_postgresql_drops_every_connection_requests_say_try_again_then_work() {
    use serde_json::json;
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("needs the PostgreSQL pass's cluster");
        return;
    }
    let server = lanyard_e2e::TestServer::start().await.unwrap();
    let admin = server.admin().await;
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "before", "display_name": "Before"}),
        )
        .await;
    // What a database restart or failover does to the server's connections.
    let url = server.database_url.clone().unwrap();
    let cluster = std::env::var("LANYARD_TEST_PG_URL").unwrap();
    let dropped = tokio::task::spawn_blocking(move || {
        let name = lanyard_e2e::postgres_db::plain(&url)
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let mut c = postgres::Client::connect(&cluster, postgres::NoTls).unwrap();
        c.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .unwrap()
        .len()
    })
    .await
    .unwrap();
    assert!(
        dropped >= 2,
        "the writer's and the readers' connections: {dropped}"
    );
    // Each answer is a success or a clean "try again" — never a 500 — and the server
    // reconnects by itself.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let (status, body) = admin
            .post(
                "/api/v1/users",
                json!({"username": format!("after{i}"), "display_name": "After"}),
            )
            .await;
        statuses.push(status);
        assert!(status == 201 || status == 503, "{status} {body}");
        if status == 503 {
            assert_eq!(body["code"], "unavailable", "{body}");
        }
        let (status, body) = admin.get("/api/v1/users?limit=50").await;
        assert!(status == 200 || status == 503, "{status} {body}");
    }
    assert!(
        statuses.contains(&503),
        "the dropped connections were noticed: {statuses:?}"
    );
    assert!(
        statuses[statuses.len() - 3..].iter().all(|s| *s == 201),
        "reconnected: {statuses:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_reach_postgresql_over_tls_they_verify() {
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("needs the PostgreSQL pass's cluster");
        return;
    }
    let Ok(ca) = std::env::var("LANYARD_TEST_PG_CA") else {
        panic!("scripts/with-postgres.sh starts the cluster with TLS");
    };
    // The suite's servers are given `sslmode=verify-full&sslrootcert=<the cluster's CA>`.
    let a = lanyard_e2e::TestServer::start().await.unwrap();
    let url = a.database_url.clone().unwrap();
    assert!(url.contains("sslmode=verify-full"), "{url}");
    let db = lanyard_e2e::postgres_db::plain(&url)
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let encrypted = lanyard_e2e::postgres_db::query_ints(
        &url,
        "SELECT COUNT(*) FILTER (WHERE s.ssl), COUNT(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
         WHERE a.datname = ?1 AND a.application_name = 'lanyard-server'",
        &db,
    )
    .unwrap();
    assert!(encrypted[0] >= 1, "the server's connections: {encrypted:?}");
    assert_eq!(encrypted[1], 0, "none in plain text: {encrypted:?}");

    // A replica that does not trust the database's certificate does not connect, and
    // says why.
    let dir = tempfile::tempdir().unwrap();
    let mut config = a.config();
    config.listen = ([127, 0, 0, 1], 0).into();
    config.data_dir = dir.path().join("data");
    config.database_url = Some(format!(
        "{}?sslmode=verify-full",
        lanyard_e2e::postgres_db::plain(&url)
    ));
    let refused = lanyard_server::EmbeddedServer::start(config.clone()).await;
    let message = format!("{:#}", refused.err().expect("refused"));
    assert!(message.contains("certificate"), "{message}");
    // Nor does one given a CA file that is not one.
    let bogus = dir.path().join("not-a-ca.pem");
    std::fs::write(&bogus, "hello").unwrap();
    config.database_url = Some(format!(
        "{}?sslmode=require&sslrootcert={}",
        lanyard_e2e::postgres_db::plain(&url),
        bogus.display()
    ));
    let refused = lanyard_server::EmbeddedServer::start(config.clone()).await;
    let message = format!("{:#}", refused.err().expect("refused"));
    assert!(message.contains("not-a-ca.pem"), "{message}");
    // With the CA, a second replica starts.
    config.database_url = Some(format!(
        "{}?sslmode=verify-full&sslrootcert={ca}",
        lanyard_e2e::postgres_db::plain(&url)
    ));
    let b = lanyard_server::EmbeddedServer::start(config).await.unwrap();
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}
