//! The suite on PostgreSQL: with `LANYARD_TEST_DATABASE=postgres`, every test server gets
//! a database of its own in the throw-away cluster `scripts/with-postgres.sh` started
//! (its admin URL in `LANYARD_TEST_PG_URL`).

use std::sync::atomic::{AtomicU32, Ordering};

/// The key-encryption key of the test servers on PostgreSQL (32 bytes, base64).
pub const TEST_KEK: &str = "bGFueWFyZC10ZXN0LWtleS1lbmNyeXB0aW9uLWtleSE=";

/// Which engine the suite runs on, from `LANYARD_TEST_DATABASE` (`sqlite` by default).
pub fn on_postgres() -> bool {
    std::env::var("LANYARD_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// A new empty database's URL when the suite runs on PostgreSQL; `None` on SQLite.
pub async fn fresh_database() -> Result<Option<String>, String> {
    if !on_postgres() {
        return Ok(None);
    }
    let admin = std::env::var("LANYARD_TEST_PG_URL").map_err(|_| {
        "LANYARD_TEST_DATABASE=postgres needs LANYARD_TEST_PG_URL: run the tests under \
         scripts/with-postgres.sh"
            .to_string()
    })?;
    create_database(admin).await.map(Some)
}

/// Creates a uniquely named database in the cluster at `admin` and returns its URL —
/// with `sslmode=verify-full` against the cluster's CA when it offers TLS
/// (`LANYARD_TEST_PG_CA`), so every server of the suite reaches it over verified TLS.
pub async fn create_database(admin: String) -> Result<String, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "lanyard_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let url = {
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b)
            .ok_or_else(|| format!("not a database URL: {admin}"))?;
        match std::env::var("LANYARD_TEST_PG_CA") {
            Ok(ca) => format!("{base}/{name}?sslmode=verify-full&sslrootcert={ca}"),
            Err(_) => format!("{base}/{name}"),
        }
    };
    // The client runs a runtime of its own: off the async threads.
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .map_err(|e| format!("connecting to the test cluster: {e}"))?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("creating {name}: {e}"))?;
        Ok::<_, String>(())
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(url)
}

/// What a copy of the database holds, to search for values that must never be stored
/// in clear: `pg_dump`'s text of every row, with each `bytea` value also decoded back to
/// its bytes (so a binary needle is found the way a file search finds it in SQLite).
pub fn dump(url: &str) -> Result<Vec<u8>, String> {
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", "--dbname", url])
        .output()
        .map_err(|e| format!("running pg_dump: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = out.stdout;
    let mut copy = text.clone();
    let mut i = 0;
    while i + 2 < text.len() {
        if text[i] == b'\\' && text[i + 1] == b'x' {
            let start = i + 2;
            let mut end = start;
            while end < text.len() && text[end].is_ascii_hexdigit() {
                end += 1;
            }
            let hex = &text[start..end - (end - start) % 2];
            copy.extend(hex.chunks(2).filter_map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
            }));
            copy.push(0);
            i = end;
        } else {
            i += 1;
        }
    }
    Ok(copy)
}

/// `url` without its query (the TLS parameters only the server understands), for the
/// tests' own plain connections on loopback.
pub fn plain(url: &str) -> String {
    url.split_once('?').map_or(url, |(u, _)| u).to_owned()
}

/// The first row of `sql` (one text parameter) as integers.
pub fn query_ints(url: &str, sql: &str, param: &str) -> Result<Vec<i64>, String> {
    let (url, sql, param) = (plain(url), sql.to_owned(), param.to_owned());
    // The client runs a runtime of its own: on a plain thread.
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)
            .map_err(|e| format!("connecting: {e}"))?;
        let sql = sql.replace("?1", "$1");
        let row = client
            .query_one(sql.as_str(), &[&param])
            .map_err(|e| format!("{sql}: {e}"))?;
        (0..row.len())
            .map(|i| row.try_get::<_, i64>(i).map_err(|e| e.to_string()))
            .collect()
    })
    .join()
    .map_err(|_| "query thread panicked".to_string())?
}
