//! Helpers for Lanyard's end-to-end tests: a real server on a free port with a
//! throw-away data directory, stopped on drop.

pub mod harness;

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
        let mut config =
            ServerConfig::new(([127, 0, 0, 1], 0).into(), data_dir.path().join("data"));
        // Offline badge hashes cost what docs/BENCHMARKS.md measures; tests only need
        // them to be right.
        config.offline_iterations = 1_000;
        configure(&mut config);
        let server = EmbeddedServer::start(config)
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(TestServer { server, data_dir })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Creates an admin API token with `role` ("admin", "helpdesk", "auditor") in this
    /// server's data directory, as `lanyard-server token create` does.
    pub async fn token(&self, role: &str) -> Result<String, String> {
        let role = Role::parse(role).ok_or_else(|| format!("unknown role {role}"))?;
        let config = ServerConfig::new(self.server.addr, self.data_dir.path().join("data"));
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
        let TestServer { server, data_dir } = self;
        server.stop().await.map_err(|e| format!("{e:#}"))?;
        let mut config =
            ServerConfig::new(([127, 0, 0, 1], 0).into(), data_dir.path().join("data"));
        config.offline_iterations = 1_000;
        let server = EmbeddedServer::start(config)
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(TestServer { server, data_dir })
    }

    /// Stops the server and reports how it ended.
    pub async fn stop(self) -> Result<(), String> {
        self.server.stop().await.map_err(|e| format!("{e:#}"))
    }
}
