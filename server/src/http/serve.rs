//! The HTTP listener, with the limits an exposed server needs that `axum::serve` does
//! not offer: a connection cap (past it a connection is answered `503` and closed at
//! once, so the process never runs out of file descriptors and the backlog never
//! stalls), and a header read timeout that also closes keep-alive connections idle
//! between requests (hyper ≥ 1.6 starts it again after each response). Bodies have
//! their own read timeout in the router.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// How long a client has to send a request's headers, and how long a keep-alive
    /// connection may sit idle between requests.
    pub header_timeout: Duration,
}

/// Descriptors kept back from the connection cap: the database and its WAL, the read
/// pool, outgoing connections (MDM, SMTP, PostgreSQL), the listener, logs.
const RESERVED_FDS: u64 = 128;

impl Limits {
    /// The connection cap this process's descriptor limit allows, after raising the soft
    /// limit to the hard one (as Go's runtime and nginx's `worker_rlimit_nofile` do):
    /// every held long-poll is a connection, so a fleet of phones needs thousands. `None`
    /// when the limit cannot be read or is unlimited (the default then stands).
    pub fn connections_the_fd_limit_allows() -> Option<usize> {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.maximum != limit.current {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                limit = raised;
            }
        }
        let soft = limit.current?;
        let cap = soft.saturating_sub(RESERVED_FDS).max(64);
        usize::try_from(cap).ok()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Below the common 1,024 file-descriptor limit, with room for the
            // database, its WAL and outgoing connections (MDM, SMTP).
            max_connections: 900,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections over the cap being answered at one time.
const REFUSING_AT_ONCE: usize = 32;

/// What a connection over the cap is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 72\r\n\r\n\
{\"code\":\"unavailable\",\"message\":\"too many connections, try again later\"}";

/// Serves `app` on `listener` until `shutdown` resolves, then lets the connections in
/// flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a reset before accept: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("lanyard_http_connections_refused_total").increment(1);
            // Answered after its request arrives (an answer before it confuses
            // clients); a few at a time, the rest closed at once.
            if let Ok(busy) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    let mut head = [0u8; 2048];
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut head)).await;
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
                    drop(busy);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer goes with each request, for [`super::client_addr`].
        let service = TowerToHyperService::new(tower_http::add_extension::AddExtension::new(
            app.clone().into_service::<hyper::body::Incoming>(),
            axum::extract::ConnectInfo(peer),
        ));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
