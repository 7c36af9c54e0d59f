//! `lanyard-server`: the command-line entry point.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lanyard_server::{ServerConfig, launch_with_listener};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "lanyard-server",
    version,
    about = "The Lanyard companion server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "LANYARD_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Directory for the server's state (created on first run).
        #[arg(long, env = "LANYARD_DATA_DIR", default_value = "lanyard-data")]
        data_dir: PathBuf,
    },
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { listen, data_dir } => {
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let addr = listener.local_addr().context("reading bound address")?;
            let config = ServerConfig {
                listen: addr,
                data_dir,
            };
            // One line on stdout with the real address, for scripts and tests using port 0.
            println!("lanyard-server listening on http://{addr}");
            tracing::info!(%addr, data_dir = %config.data_dir.display(), "serving");
            launch_with_listener(listener, config, shutdown_signal()).await
        }
    }
}
