//! What sits on the server's disk and what leaves it: the data directory and database
//! files readable by their owner only, CSV exports that a spreadsheet cannot run, and
//! `/metrics` behind a token when one is configured.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_e2e::harness::RawPhone;
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::DeviceStatus;
use lanyard_protocol::enroll::DeviceInfo;
use serde_json::json;

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_database_are_the_owners_alone() {
    if lanyard_e2e::postgres_db::on_postgres() {
        // What it checks is SQLite's own file (its modes; an earlier SQLite version's
        // leftovers); the suite's SQLite run covers it.
        eprintln!("not applicable on PostgreSQL: checks the SQLite file");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    // A write, so the WAL exists.
    admin
        .ok(
            "/api/v1/users",
            json!({"username": "u1", "display_name": "U"}),
        )
        .await;
    let dir = server.data_dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "data dir");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("lanyard.db") {
            assert_eq!(mode(&path), 0o600, "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "the database and its WAL were checked");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_reported_formula_is_text_in_the_csv_export() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let token = admin
        .ok("/api/v1/enrollment-tokens", json!({"label": "t"}))
        .await;
    let mut phone = RawPhone::enroll(
        token["link"].as_str().unwrap(),
        DeviceInfo {
            serial: Some("FORMULA00001".into()),
            udid: Some("00008030-00000000000000BB".into()),
            ..DeviceInfo::default()
        },
    )
    .await
    .unwrap();
    let formula = "=HYPERLINK(\"http://evil.example/x\",\"open\")";
    let (status, _) = phone
        .send(DeviceStatus::CheckedOut, Some(formula), None, vec![])
        .await;
    assert_eq!(status, 200);
    let r = http_client()
        .get(format!(
            "{}/api/v1/devices/{}/activity.csv",
            admin.base, phone.id
        ))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let users: Vec<String> = rows
        .records()
        .map(|r| r.unwrap().get(3).unwrap().to_owned())
        .collect();
    assert_eq!(users, [format!("'{formula}")], "{csv}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token() {
    let server = TestServer::start_with(|c| c.metrics_token = Some("scrape-me".into()))
        .await
        .unwrap();
    let url = format!("{}/metrics", server.base_url());
    let status = |token: Option<&'static str>| {
        let url = url.clone();
        async move {
            let mut req = http_client().get(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some("wrong")).await, 401);
    assert_eq!(status(Some("scrape-me")).await, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wifi_passphrase_is_sealed_at_rest_and_shown_to_admins_only() {
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let passphrase = "provision-me-7f3a9";
    admin
        .ok(
            "/api/v1/workflows/install-standard",
            json!({"dep_profile": "St Mary DEP",
            "wifi_ssid": "StMary-Provisioning", "wifi_password": passphrase}),
        )
        .await;
    let auditor = lanyard_e2e::harness::Admin {
        base: admin.base.clone(),
        token: server.token("auditor").await.unwrap(),
        http: http_client(),
    };
    let (_, mine) = admin.get("/api/v1/workflows").await;
    let (_, theirs) = auditor.get("/api/v1/workflows").await;
    assert!(mine.to_string().contains(passphrase), "an admin reads it");
    assert!(!theirs.to_string().contains(passphrase));
    assert!(theirs.to_string().contains("********"));
    for who in [&admin, &auditor] {
        let (_, audit) = who.get("/api/v1/audit?limit=500").await;
        assert!(!audit.to_string().contains(passphrase), "audit log");
        let csv = http_client()
            .get(format!("{}/api/v1/audit.csv", who.base))
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!csv.contains(passphrase), "audit export");
    }
    // At rest: a copy of the database (SQLite's file and WAL, or a PostgreSQL dump)
    // holds only ciphertext.
    let copy = server.database_copy().unwrap();
    assert!(copy.len() > 4096, "the database was read");
    assert!(
        !copy
            .windows(passphrase.len())
            .any(|w| w == passphrase.as_bytes()),
        "the database holds the passphrase in clear"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passphrase_stored_before_sealing_is_sealed_at_the_next_start() {
    if lanyard_e2e::postgres_db::on_postgres() {
        // What it checks is SQLite's own file (its modes; an earlier SQLite version's
        // leftovers); the suite's SQLite run covers it.
        eprintln!("not applicable on PostgreSQL: checks the SQLite file");
        return;
    }
    let server = TestServer::start().await.unwrap();
    let admin = server.admin().await;
    let passphrase = "legacy-clear-5b1e";
    admin
        .ok(
            "/api/v1/workflows/install-standard",
            json!({"dep_profile": "St Mary DEP",
            "wifi_ssid": "StMary-Provisioning", "wifi_password": passphrase}),
        )
        .await;
    // What an earlier version left: the passphrase in clear in the stored workflow and
    // in the audit entry that recorded it.
    let db = server.data_dir.path().join("data").join("lanyard.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let sealed: String = conn
        .query_row(
            "SELECT json_extract(a.value, '$.password') FROM workflow w, json_each(w.spec_json, '$.actions') a
              WHERE json_extract(a.value, '$.password') IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sealed.starts_with("sealed:v1:"));
    let mut planted = 0;
    for (table, column) in [
        ("workflow", "spec_json"),
        ("audit_log", "before_json"),
        ("audit_log", "after_json"),
    ] {
        planted += conn
            .execute(
                &format!("UPDATE {table} SET {column} = replace({column}, ?1, ?2) WHERE instr({column}, ?1) > 0"),
                [&sealed, passphrase],
            )
            .unwrap();
    }
    assert!(planted >= 2, "the workflow and its audit entry");
    // An earlier version's database has not been through the one-time sealing either.
    conn.execute("DELETE FROM upgrade_done", []).unwrap();
    drop(conn);
    let in_clear = |db: &std::path::Path| {
        let mut bytes = std::fs::read(db).unwrap();
        bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
        bytes
            .windows(passphrase.len())
            .any(|w| w == passphrase.as_bytes())
    };
    assert!(in_clear(&db));

    let server = server.restart().await.unwrap();
    assert!(!in_clear(&db), "sealed at start, everywhere it was stored");
    let admin = server.admin().await;
    let (_, mine) = admin.get("/api/v1/workflows").await;
    assert!(
        mine.to_string().contains(passphrase),
        "an admin still reads it"
    );
    let (_, audit) = admin.get("/api/v1/audit?limit=50").await;
    assert!(
        audit.to_string().contains("secrets.seal"),
        "the sealing is audited: {audit}"
    );
    server.stop().await.unwrap();
}
