//! Helpers for Lanyard's end-to-end tests: a real server on a free port, stopped on drop.

use std::net::SocketAddr;

use lanyard_server::{ServerConfig, launch_with_listener};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server running in this process on `127.0.0.1:<free port>`, with its own data dir.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory (deleted on drop).
    pub data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    /// The serving task; its error, if any, flattened to a string.
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl TestServer {
    /// Binds port 0 and starts serving; returns once the socket is listening.
    pub async fn start() -> std::io::Result<TestServer> {
        let data_dir = tempfile::tempdir()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let config = ServerConfig {
            listen: addr,
            data_dir: data_dir.path().join("data"),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            launch_with_listener(listener, config, async {
                let _ = rx.await;
            })
            .await
            .map_err(|e| format!("{e:#}"))
        });
        Ok(TestServer {
            addr,
            data_dir,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and reports how its task ended.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
