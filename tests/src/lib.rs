//! Helpers for Lanyard's end-to-end tests: a real server on a free port with a
//! throw-away data directory, stopped on drop.

pub mod harness;
pub mod postgres_db;
pub mod replica;

use lanyard_server::keys::{random_token, sha256};
use lanyard_server::model::Role;
use lanyard_server::state::system_clock;
use lanyard_server::storage::Storage;
use lanyard_server::{EmbeddedServer, ServerConfig, open_state};

/// A server running in this process on `127.0.0.1:<free port>`, with its own data dir.
pub struct TestServer {
    /// The running server.
    pub server: EmbeddedServer,
    /// Its data directory (deleted on drop, after the server).
    pub data_dir: tempfile::TempDir,
    /// The PostgreSQL database it runs on, when the suite runs on PostgreSQL
    /// (`LANYARD_TEST_DATABASE=postgres`); `None`: the data directory's SQLite file.
    pub database_url: Option<String>,
}

/// An HTTP client for tests. Installs the ring TLS provider first (reqwest needs one as
/// soon as rustls is compiled in, which the agent's transport does).
pub fn http_client() -> reqwest::Client {
    lanyard_agent::sync::http::install_ring_provider();
    reqwest::Client::new()
}

impl TestServer {
    /// Binds port 0 and starts serving; returns once the socket is listening.
    pub async fn start() -> Result<TestServer, String> {
        TestServer::start_with(|_| {}).await
    }

    /// As [`TestServer::start`], letting the test adjust the configuration first.
    pub async fn start_with(
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Result<TestServer, String> {
        let data_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let database_url = postgres_db::fresh_database().await?;
        let mut config =
            ServerConfig::new(([127, 0, 0, 1], 0).into(), data_dir.path().join("data"));
        config.database_url = database_url.clone();
        config.key_encryption_key = Some(postgres_db::TEST_KEK.into());
        // Offline badge hashes cost what docs/BENCHMARKS.md measures; tests only need
        // them to be right.
        config.offline_iterations = 1_000;
        configure(&mut config);
        let database_url = config.database_url.clone();
        let server = EmbeddedServer::start(config)
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(TestServer {
            server,
            data_dir,
            database_url,
        })
    }

    /// The configuration of a one-shot command (or a second replica) on this server's
    /// data directory and database.
    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(self.server.addr, self.data_dir.path().join("data"));
        config.database_url = self.database_url.clone();
        config.key_encryption_key = Some(postgres_db::TEST_KEK.into());
        config.offline_iterations = 1_000;
        config
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Creates an admin API token with `role` ("admin", "helpdesk", "auditor") in this
    /// server's data directory, as `lanyard-server token create` does.
    pub async fn token(&self, role: &str) -> Result<String, String> {
        let role = Role::parse(role).ok_or_else(|| format!("unknown role {role}"))?;
        let config = self.config();
        let state = open_state(&config, system_clock()).map_err(|e| format!("{e:#}"))?;
        let token = random_token(32).map_err(|e| e.to_string())?;
        state
            .storage
            .create_api_token(sha256(token.as_bytes()), role, "test".into(), state.now())
            .await
            .map_err(|e| e.to_string())?;
        Ok(token)
    }

    /// An admin API client with a fresh admin token.
    pub async fn admin(&self) -> harness::Admin {
        harness::Admin {
            base: self.base_url(),
            token: self
                .token("admin")
                .await
                .unwrap_or_else(|e| panic!("admin token: {e}")),
            http: http_client(),
        }
    }

    /// Stops the server and starts a new one on the same data directory (a new port,
    /// the default test configuration): what an upgrade or a crash-restart does.
    pub async fn restart(self) -> Result<TestServer, String> {
        let mut config = self.config();
        config.listen = ([127, 0, 0, 1], 0).into();
        let TestServer {
            server,
            data_dir,
            database_url,
        } = self;
        server.stop().await.map_err(|e| format!("{e:#}"))?;
        let server = EmbeddedServer::start(config)
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(TestServer {
            server,
            data_dir,
            database_url,
        })
    }

    /// Every byte a copy of the database would hold: the SQLite file and its WAL, or a
    /// dump of the PostgreSQL database (see [`postgres_db::dump`]).
    pub fn database_copy(&self) -> Result<Vec<u8>, String> {
        if let Some(url) = &self.database_url {
            return postgres_db::dump(url);
        }
        let data = self.data_dir.path().join("data");
        let mut copy = Vec::new();
        for f in [lanyard_server::DB_FILE, "lanyard.db-wal"] {
            if let Ok(bytes) = std::fs::read(data.join(f)) {
                copy.extend(bytes);
            }
        }
        Ok(copy)
    }

    /// The server's key material, wherever it keeps it (the data directory's files, or
    /// sealed in the PostgreSQL database).
    pub async fn key_material(&self) -> Result<lanyard_server::keys::KeyMaterial, String> {
        let dir = self.data_dir.path().join("data");
        let Some(url) = self.database_url.clone() else {
            return lanyard_server::keys::KeyMaterial::from_files(&dir)
                .ok_or_else(|| "no key files".to_string());
        };
        tokio::task::spawn_blocking(move || {
            let kek = lanyard_server::db::pg_keys::Kek::parse(postgres_db::TEST_KEK)
                .map_err(|e| e.to_string())?;
            let config = lanyard_server::db::pg::config(&url).map_err(|e| e.to_string())?;
            lanyard_server::db::pg_keys::load_or_create(&config, &kek, &dir)
                .map_err(|e| format!("{e:#}"))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The first row of `sql` (one text parameter, `?1`) as integers, read straight from
    /// the database whichever engine it is.
    pub fn query_ints(&self, sql: &str, param: &str) -> Result<Vec<i64>, String> {
        if let Some(url) = &self.database_url {
            return postgres_db::query_ints(url, sql, param);
        }
        let db = self
            .data_dir
            .path()
            .join("data")
            .join(lanyard_server::DB_FILE);
        let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
        conn.query_row(sql, [param], |r| {
            (0..r.as_ref().column_count())
                .map(|i| r.get::<_, i64>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| e.to_string())
    }

    /// Stops the server and reports how it ended.
    pub async fn stop(self) -> Result<(), String> {
        self.server.stop().await.map_err(|e| format!("{e:#}"))
    }
}
