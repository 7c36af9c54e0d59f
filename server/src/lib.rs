//! The Lanyard companion server.
//!
//! This is the Foundation skeleton: configuration, the HTTP listener, health, and the
//! JSON error contract every endpoint will share. Carts, devices, badges, sync and the
//! admin API arrive with the Server issue; nothing here pretends to offer them.

pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod email;
pub mod error;
pub mod extract;
pub mod http;
pub mod import;
pub(crate) mod jobs;
pub mod keys;
pub mod lookup;
pub mod mdm;
pub mod mdm_actions;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod offline;
pub mod openapi;
pub mod policy;
pub mod qr;
pub mod state;
pub mod storage;
pub mod validate;
pub mod workflows;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::error::AppError;
use crate::keys::ServerKeys;
use crate::state::{AppState, Clock, system_clock};
use crate::storage::Storage;
use crate::storage::sqlite::SqliteStorage;

/// The database file inside the data directory.
pub const DB_FILE: &str = "lanyard.db";
/// Largest request body accepted (a full sync batch fits with room to spare).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Where the server keeps its state; created on first run.
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://user:pass@host/db`) to use instead of the
    /// SQLite file in the data directory; several servers may share one.
    pub database_url: Option<String>,
    /// With a database URL: the key-encryption key (base64, 32 bytes) the server's keys
    /// are sealed under in the database; every replica is given the same one.
    pub key_encryption_key: Option<String>,
    /// The URL phones and staff reach the server at (a load balancer's), used in
    /// enrollment links and QR codes; without it, each request's Host header.
    pub public_url: Option<url::Url>,
    /// Proxies whose `X-Forwarded-For` is believed: the load balancer's addresses.
    pub trusted_proxies: http::client_addr::TrustedProxies,
    /// External badge lookup service (`GET {url}?id={badge}` → `{"user": …}`), if any.
    pub badge_lookup_url: Option<url::Url>,
    /// The NanoMDM server the MDM commands go to, if any.
    pub nanomdm_url: Option<url::Url>,
    /// NanoMDM's API key (HTTP Basic password).
    pub nanomdm_api_key: Option<String>,
    /// The key NanoMDM signs its webhook bodies with (`X-Hmac-Signature`), if configured.
    pub nanomdm_webhook_key: Option<String>,
    /// A token `/metrics` then requires (`Authorization: Bearer …`); open without one.
    pub metrics_token: Option<String>,
    /// How long an MDM command may go unanswered (NotNow from a locked phone) before
    /// it is given up with a reason.
    pub mdm_deadline_secs: u64,
    /// The SMTP relay Send Email uses, e.g. `smtp://relay.hospital.org:25`; without it
    /// Send Email actions fail with that reason.
    pub smtp_url: Option<String>,
    /// The From address of Lanyard's emails.
    pub smtp_from: String,
    /// A clock other than the wall clock (tests, and the simulator's compressed day).
    pub clock: Option<ClockOverride>,
    /// PBKDF2 iterations of offline badge hashes.
    pub offline_iterations: u32,
    /// Connection cap and header/idle timeout.
    pub limits: http::serve::Limits,
    /// How long what grows with use is kept.
    pub retention: domain::retention::Retention,
}

/// A replacement clock for [`ServerConfig::clock`].
#[derive(Clone)]
pub struct ClockOverride(pub Clock);

impl std::fmt::Debug for ClockOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClockOverride(..)")
    }
}

/// Default for [`ServerConfig::smtp_from`].
pub const DEFAULT_SMTP_FROM: &str = "Lanyard <lanyard@localhost>";

/// Default for [`ServerConfig::mdm_deadline_secs`]: one hour.
pub const DEFAULT_MDM_DEADLINE_SECS: u64 = 3600;

impl ServerConfig {
    /// A configuration with no optional services.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen,
            data_dir: data_dir.into(),
            database_url: None,
            key_encryption_key: None,
            public_url: None,
            trusted_proxies: Default::default(),
            badge_lookup_url: None,
            nanomdm_url: None,
            nanomdm_api_key: None,
            nanomdm_webhook_key: None,
            metrics_token: None,
            mdm_deadline_secs: DEFAULT_MDM_DEADLINE_SECS,
            smtp_url: None,
            smtp_from: DEFAULT_SMTP_FROM.into(),
            clock: None,
            offline_iterations: offline::DEFAULT_ITERATIONS,
            limits: http::serve::Limits::default(),
            retention: domain::retention::Retention::default(),
        }
    }
}

/// `GET /healthz` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    version: &'static str,
    protocol_version: u32,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        protocol_version: lanyard_protocol::PROTOCOL_VERSION,
    })
}

/// `GET /readyz`: the database takes a write (the writer is alive, the disk is not
/// full) and the server is not stopping.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Health), (status = 503, body = crate::error::ErrorBody)))]
async fn readyz<S: Storage>(State(st): State<AppState<S>>) -> Result<Json<Health>, AppError> {
    if st.is_stopping() {
        return Err(AppError::Unavailable("the server is stopping".into()));
    }
    let now = st.now();
    if let Err(e) = st.storage.transact(move |tx| tx.mark_ready(now)).await {
        tracing::error!(error = %e, "not ready: the database does not take writes");
        return Err(AppError::Unavailable(
            "the database does not take writes".into(),
        ));
    }
    Ok(healthz().await)
}

async fn not_found(uri: axum::http::Uri) -> AppError {
    AppError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// The HTTP routes over `state`.
pub fn router<S: Storage>(state: AppState<S>) -> Router {
    use http::{admin, device, launchpad};
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route(
            lanyard_protocol::enroll::paths::ENROLL,
            post(device::enroll::<S>),
        )
        .route(
            lanyard_protocol::enroll::paths::SYNC,
            post(device::sync::<S>),
        )
        .route(
            lanyard_protocol::enroll::paths::AUTHORIZE,
            post(device::authorize::<S>),
        )
        .route("/launchpad/v1/tap", post(launchpad::tap::<S>))
        .route("/launchpad/v1/ports", post(launchpad::port_event::<S>))
        .route(
            "/api/v1/users",
            get(admin::list_users::<S>).post(admin::create_user::<S>),
        )
        .route(
            "/api/v1/users/{username}",
            get(admin::get_user::<S>)
                .patch(admin::update_user::<S>)
                .delete(admin::delete_user::<S>),
        )
        .route(
            "/api/v1/users/{username}/badges/revoke",
            post(admin::revoke_badges::<S>),
        )
        .route(
            "/api/v1/launchpads/{id}",
            axum::routing::patch(admin::update_launchpad::<S>).delete(admin::delete_launchpad::<S>),
        )
        .route(
            "/api/v1/users/{username}/badges",
            post(admin::add_badge::<S>),
        )
        .route(
            "/api/v1/launchpads",
            get(admin::list_launchpads::<S>).post(admin::create_launchpad::<S>),
        )
        .route(
            "/api/v1/enrollment-tokens",
            post(admin::create_enrollment_token::<S>)
                .get(http::credentials::list_enrollment_tokens::<S>),
        )
        .route(
            "/api/v1/enrollment-tokens/{id}",
            axum::routing::delete(http::credentials::revoke_enrollment_token::<S>),
        )
        .route(
            "/api/v1/tokens",
            get(http::credentials::list_tokens::<S>).post(http::credentials::create_token::<S>),
        )
        .route(
            "/api/v1/tokens/{id}",
            axum::routing::delete(http::credentials::revoke_token::<S>),
        )
        .route(
            "/api/v1/launchpads/{id}/credential",
            post(http::credentials::rotate_reader::<S>)
                .delete(http::credentials::revoke_reader::<S>),
        )
        .route("/api/v1/devices", get(admin::list_devices::<S>))
        .route("/api/v1/devices/{id}", get(admin::get_device::<S>))
        .route(
            "/api/v1/devices/{id}/check-in",
            post(admin::check_in_device::<S>),
        )
        .route("/api/v1/devices/{id}/lock", post(admin::lock_device::<S>))
        .route("/api/v1/devices/{id}/lost", post(admin::mark_lost::<S>))
        .route("/api/v1/devices/{id}/found", post(admin::mark_found::<S>))
        .route("/api/v1/devices/{id}/retire", post(admin::retire::<S>))
        .route(
            "/api/v1/attributes",
            get(http::attributes::list::<S>).post(http::attributes::create::<S>),
        )
        .route(
            "/api/v1/devices/{id}/attributes",
            get(http::attributes::get_device::<S>),
        )
        .route(
            "/api/v1/devices/{id}/attributes/{name}",
            put(http::attributes::set_device::<S>),
        )
        .route(
            "/api/v1/launchpads/{id}/attributes",
            get(http::attributes::get_launchpad::<S>),
        )
        .route(
            "/api/v1/launchpads/{id}/attributes/{name}",
            put(http::attributes::set_launchpad::<S>),
        )
        .route(
            "/api/v1/devices/{id}/commands",
            get(http::logs::commands::<S>),
        )
        .route("/api/v1/audit", get(http::logs::audit::<S>))
        .route("/api/v1/audit.csv", get(http::logs::audit_csv::<S>))
        .route(
            "/api/v1/security-events",
            get(http::logs::security_events::<S>),
        )
        .route("/api/v1/cart-taps", get(http::logs::cart_taps::<S>))
        .route(
            "/api/v1/policy",
            get(crate::policy::get::<S>).patch(crate::policy::patch::<S>),
        )
        .route(
            "/api/v1/devices/{id}/activity",
            get(http::logs::activity::<S>),
        )
        .route(
            "/api/v1/devices/{id}/activity.csv",
            get(http::logs::activity_csv::<S>),
        )
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/webhooks/nanomdm", post(mdm::webhook::<S>))
        .route("/api/v1/devices/{id}/mdm-activity", get(mdm::activity::<S>))
        .route("/api/v1/devices/{id}/mdm-commands", get(mdm::commands::<S>))
        .route(
            "/api/v1/devices/{id}/mdm-commands",
            post(mdm_actions::send::<S>),
        )
        .route(
            "/api/v1/workflows",
            get(http::workflows::list::<S>).post(http::workflows::create::<S>),
        )
        .route(
            "/api/v1/workflows/install-standard",
            post(http::workflows::install_standard::<S>),
        )
        .route(
            "/api/v1/workflows/{id}",
            get(http::workflows::get::<S>)
                .put(http::workflows::replace::<S>)
                .patch(http::workflow_edits::patch_workflow::<S>)
                .delete(http::workflows::delete::<S>),
        )
        .route(
            "/api/v1/workflows/{id}/move",
            post(http::workflow_edits::move_workflow::<S>),
        )
        .route(
            "/api/v1/workflows/{id}/clone",
            post(http::workflows::clone::<S>),
        )
        .route(
            "/api/v1/workflows/{id}/deploy",
            post(http::workflows::deploy::<S>),
        )
        .route(
            "/api/v1/workflow-folders",
            get(http::workflows::folders::<S>),
        )
        .route(
            "/api/v1/rules",
            get(http::workflows::list_rules::<S>).post(http::workflows::create_rule::<S>),
        )
        .route(
            "/api/v1/rules/{id}",
            put(http::workflows::replace_rule::<S>)
                .patch(http::workflow_edits::patch_rule::<S>)
                .delete(http::workflows::delete_rule::<S>),
        )
        .route(
            "/api/v1/rules/{id}/move",
            post(http::workflows::move_rule::<S>),
        )
        .route("/api/v1/runs", get(http::workflows::runs::<S>))
        .route("/api/v1/runs/{id}", get(http::workflows::run::<S>))
        .route(
            "/api/v1/runs/{id}/cancel",
            post(http::workflows::cancel_run::<S>),
        )
        .route(
            "/api/v1/devices/{id}/runs",
            get(http::workflows::device_runs::<S>),
        )
        .route("/api/v1/emails", get(http::workflows::emails::<S>))
        .route(
            "/api/v1/devices/{id}/journey",
            get(http::workflows::journey::<S>),
        )
        .route("/metrics", get(metrics::render::<S>))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A client trickling its body holds a connection: it has this long to send it.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            std::time::Duration::from_secs(30),
        ))
        // One span per request (method, path, client; status and latency as it ends);
        // never the query, the body or headers, which carry credentials.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::http::Request<axum::body::Body>| {
                    let client = req
                        .extensions()
                        .get::<http::client_addr::ClientAddr>()
                        .map(|c| c.0);
                    // Its own target, so a filter can keep it (`lanyard_server::request=info`)
                    // while quieting the rest.
                    tracing::info_span!(
                        target: "lanyard_server::request",
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        client = client.map(tracing::field::display),
                    )
                },
            ),
        )
        // Outermost: who sent the request, before anything logs it.
        .layer(axum::middleware::from_fn_with_state(
            state.trusted_proxies.clone(),
            http::client_addr::resolve,
        ))
        .with_state(state)
}

/// Prepares the data directory (creating it if needed).
pub fn prepare_data_dir(config: &ServerConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    // The directory holds the keys and the database: its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("securing data directory {}", config.data_dir.display()))?;
    }
    Ok(())
}

/// Opens the data directory: database (migrated) and keys (created on first run).
pub fn open_state(config: &ServerConfig, clock: Clock) -> anyhow::Result<AppState<SqliteStorage>> {
    prepare_data_dir(config)?;
    let db = match &config.database_url {
        Some(url) => db::Db::open_postgres(url).context("opening the PostgreSQL database")?,
        None => db::Db::open(&config.data_dir.join(DB_FILE)).context("opening the database")?,
    };
    let keys = match &config.database_url {
        Some(url) => {
            let kek = config.key_encryption_key.as_deref().ok_or_else(|| {
                anyhow::anyhow!(
                    "--database-url needs LANYARD_KEY_ENCRYPTION_KEY (the same on every \
                     replica; `lanyard-server keygen` prints a new one)"
                )
            })?;
            let kek = db::pg_keys::Kek::parse(kek)?;
            let material =
                db::pg_keys::load_or_create(&db::pg::config(url)?, &kek, &config.data_dir)
                    .context("loading the server keys from the database")?;
            ServerKeys::from_material(&material)?
        }
        None => ServerKeys::load_or_create(&config.data_dir)?,
    };
    let mut state = AppState::new(SqliteStorage::new(db), keys, clock);
    if let Some(url) = &config.database_url {
        // Replicas share the database: their wake-ups travel through it too.
        let notifier = db::pg_notify::PgNotifier::start(db::pg::config(url)?)
            .context("starting the PostgreSQL wake-up channel")?;
        state.notifier = std::sync::Arc::new(notifier);
    }
    if let Some(url) = &config.nanomdm_url {
        let key = config
            .nanomdm_api_key
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--nanomdm-api-key is required with --nanomdm-url"))?;
        let connector = lanyard_mdm::nanomdm::NanoMdm::new(url.clone(), key)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        state.mdm = Some(std::sync::Arc::new(connector));
    }
    state.mdm_deadline_secs = config.mdm_deadline_secs;
    state.public_url = config.public_url.as_ref().map(|u| u.as_str().into());
    state.trusted_proxies = config.trusted_proxies.clone();
    state.retention = config.retention;
    state.offline_iterations = config.offline_iterations.max(1);
    state.metrics_token_hash = config
        .metrics_token
        .as_deref()
        .map(|t| std::sync::Arc::new(keys::sha256(t.as_bytes())));
    state.mdm_webhook_key = config
        .nanomdm_webhook_key
        .clone()
        .map(|k| std::sync::Arc::new(k.into_bytes()));
    if let Some(url) = &config.smtp_url {
        let mailer = email::Mailer::new(url, &config.smtp_from)?;
        state.smtp = Some(std::sync::Arc::new(mailer));
    }
    if let Some(url) = &config.badge_lookup_url {
        state.badge_lookup = Some(std::sync::Arc::new(lookup::BadgeLookup::new(url.clone())?));
    }
    Ok(state)
}

/// The lock file that keeps a second `serve` off a data directory.
pub const LOCK_FILE: &str = "lanyard.lock";

/// Exclusive hold of a data directory by one serving process (an OS file lock: a
/// crashed holder releases it with its last file descriptor). The CLI's one-shot
/// commands (tokens, imports, workflow installs) do not take it: they are safe beside
/// a running server.
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir`, or says who holds it.
    pub fn acquire(data_dir: &std::path::Path) -> anyhow::Result<DataDirLock> {
        use std::io::Write;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let path = data_dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                anyhow::bail!(
                    "another lanyard-server (pid {}) is already serving {}; stop it first or give \
                     this one its own --data-dir (two servers on one data directory would \
                     each act on their own)",
                    holder.trim(),
                    data_dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e).context(format!("locking {}", path.display())));
            }
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(DataDirLock { _file: file })
    }
}

/// A server whose data directory is open (locked, database migrated, keys loaded),
/// ready to serve.
pub struct Server {
    state: AppState<SqliteStorage>,
    limits: http::serve::Limits,
    _lock: Option<DataDirLock>,
    /// The only server on its database (SQLite, under the lock file).
    lone: bool,
}

impl Server {
    /// Locks and opens the data directory of `config`.
    pub fn open(config: &ServerConfig) -> anyhow::Result<Server> {
        // One SQLite file takes one server; on PostgreSQL, replicas share the database.
        let lock = match config.database_url {
            None => Some(DataDirLock::acquire(&config.data_dir)?),
            Some(_) => {
                prepare_data_dir(config)?;
                None
            }
        };
        let lone = lock.is_some();
        let clock = config.clock.clone().map_or_else(system_clock, |c| c.0);
        let state = open_state(config, clock)?;
        Ok(Server {
            state,
            limits: config.limits,
            _lock: lock,
            lone,
        })
    }

    /// Brings what earlier runs and versions stored up to this one before serving: a
    /// lone server clears the job leases a crashed run left, and secrets earlier
    /// versions kept in clear are sealed (an audited change by `system`).
    pub async fn upgrade_stored(&self) -> anyhow::Result<()> {
        if self.lone {
            // Whatever leases a crashed run left are its own: nobody else can hold one.
            // Cleared here, before serving, so nothing taken after the start is lost.
            if let Err(e) = self.state.storage.release_leases(None).await {
                tracing::warn!(error = %e, "could not clear the job leases of an earlier run");
            }
        }
        let n = workflows::secrets::seal_stored(&self.state)
            .await
            .map_err(|e| anyhow::anyhow!("sealing secrets stored in clear: {e}"))?;
        if n > 0 {
            tracing::info!(
                documents = n,
                "sealed secrets an earlier version stored in clear"
            );
        }
        Ok(())
    }

    /// The open state (to seed demo data before serving).
    pub fn state(&self) -> &AppState<SqliteStorage> {
        &self.state
    }

    /// Serves on `listener` until `shutdown` resolves; then answers what waits (long
    /// polls, cart taps), lets requests in flight finish and the background jobs end
    /// their pass, and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        metrics::handle();
        let jobs = jobs::start(&self.state);
        let st = self.state.clone();
        let served = http::serve::serve(
            listener,
            router(self.state.clone()),
            self.limits,
            async move {
                shutdown.await;
                st.begin_stop();
            },
        )
        .await
        .context("serving HTTP");
        self.state.begin_stop();
        jobs.drain().await;
        // Replicas still running take this server's jobs over at their next pass.
        if let Err(e) = self
            .state
            .storage
            .release_leases(Some(self.state.instance.to_string()))
            .await
        {
            tracing::warn!(error = %e, "could not release the job leases");
        }
        served
    }
}

/// Serves on an already-bound listener until `shutdown` resolves. Tests bind port 0
/// and pass the listener in, so they never race for a port.
pub async fn launch_with_listener(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let server = Server::open(&config)?;
    server.upgrade_stored().await?;
    server.serve(listener, shutdown).await
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
        // Opened before returning: a caller may open the same data directory at once
        // (as the CLI would) and must find it migrated.
        let server = Server::open(&config)?;
        server.upgrade_stored().await?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
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
