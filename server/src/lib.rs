//! The Lanyard companion server.
//!
//! This is the Foundation skeleton: configuration, the HTTP listener, health, and the
//! JSON error contract every endpoint will share. Carts, devices, badges, sync and the
//! admin API arrive with the Server issue; nothing here pretends to offer them.

pub mod error;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::error::AppError;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Where the server keeps its state; created on first run.
    pub data_dir: PathBuf,
}

/// `GET /healthz` body.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    protocol_version: u32,
}

async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        protocol_version: lanyard_protocol::PROTOCOL_VERSION,
    })
}

async fn not_found(uri: axum::http::Uri) -> AppError {
    AppError::NotFound(format!("no route for {}", uri.path()))
}

/// The HTTP routes.
pub fn router() -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(not_found)
}

/// Prepares the data directory (creating it if needed).
pub fn prepare_data_dir(config: &ServerConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))
}

/// Serves on an already-bound listener until `shutdown` resolves. Tests bind port 0
/// and pass the listener in, so they never race for a port.
pub async fn launch_with_listener(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    prepare_data_dir(&config)?;
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
}

/// A server running on a background task, for tests and the embedded simulator.
/// Dropping it asks the server to stop.
pub struct EmbeddedServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl EmbeddedServer {
    /// Binds `config.listen` (port 0 picks a free port) and serves on a spawned task.
    /// Returns once the socket is bound, so requests can be sent straight away.
    pub async fn start(mut config: ServerConfig) -> anyhow::Result<EmbeddedServer> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr().context("reading bound address")?;
        config.listen = addr;
        prepare_data_dir(&config)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(launch_with_listener(listener, config, async {
            let _ = rx.await;
        }));
        Ok(EmbeddedServer {
            addr,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it to finish, returning how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("server task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
