//! `lanyard-server`: the command-line entry point.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lanyard_server::config::{DEFAULT_DATA_DIR, DEFAULT_LISTEN, FileConfig, LogFormat};
use lanyard_server::model::Role;
use lanyard_server::state::system_clock;
use lanyard_server::storage::Storage;
use lanyard_server::{ServerConfig, open_state};
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

#[derive(clap::Args)]
struct DataDir {
    /// Directory for the server's state (created on first run).
    #[arg(long, env = "LANYARD_DATA_DIR", default_value = "lanyard-data")]
    data_dir: PathBuf,
    /// PostgreSQL database to use instead of the SQLite file in the data directory,
    /// e.g. `postgres://lanyard@db.hospital.org/lanyard`.
    #[arg(long, env = "LANYARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// With --database-url: the key-encryption key (base64 of 32 bytes, from
    /// `lanyard-server keygen`) the server's keys are sealed under in the database;
    /// the same on every replica. Prefer the environment variable.
    #[arg(long, env = "LANYARD_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    key_encryption_key: Option<String>,
}

impl DataDir {
    /// The configuration of a one-shot command on this data directory and database.
    fn config(self) -> ServerConfig {
        let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into(), self.data_dir);
        config.database_url = self.database_url;
        config.key_encryption_key = self.key_encryption_key;
        config
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an admin API token and print it once (only its hash is stored).
    Create {
        /// admin, helpdesk (read + device actions) or auditor (read only).
        #[arg(long)]
        role: String,
        /// What the token is for, e.g. "IT automation".
        #[arg(long, default_value = "created from the command line")]
        label: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List the API tokens: id, role, label, created, expiry, last use, revocation.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Revoke an API token by id (it stops working at once).
    Revoke {
        /// The token's id (from `token list`).
        id: i64,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
enum WorkflowsCommand {
    /// Install seed 000's standard workflows and automation rules (MAM Reference
    /// Architecture for iOS) into a server that has none of them.
    InstallStandard {
        /// The DEP profile iOS Provisioning assigns.
        #[arg(long)]
        dep_profile: String,
        /// The provisioning network's SSID.
        #[arg(long)]
        wifi_ssid: String,
        /// wpa_personal, wpa_enterprise or none.
        #[arg(long, default_value = "wpa_personal")]
        wifi_security: String,
        /// The provisioning network's passphrase (or set LANYARD_WIFI_PASSWORD).
        #[arg(long, env = "LANYARD_WIFI_PASSWORD", hide_env_values = true)]
        wifi_password: Option<String>,
        /// Language set during provisioning.
        #[arg(long, default_value = "en")]
        language: String,
        /// Locale set during provisioning.
        #[arg(long, default_value = "en_US")]
        locale: String,
        /// An app Check In logs out, `BUNDLE_ID=Name` (e.g. `com.epic.rover=Epic Rover`);
        /// repeat for several.
        #[arg(long = "logout-app")]
        logout_apps: Vec<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Print the workflows by folder and the automation rules in evaluation order.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the phones' policy in force (JSON; the emergency PIN's hash is never shown).
    Show {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Change the phones' policy from a JSON patch (the body of `PATCH /api/v1/policy`,
    /// e.g. `{"checkout": {"undock_window_secs": 90}}`); prints the policy after. Safe
    /// while the server runs: phones receive the new version at their next sync.
    Set {
        /// The patch file, or `-` for standard input.
        file: PathBuf,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand)]
enum Command {
    /// The phones' policy: checkout timings, lock screen text, compliance rules.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Workflows and automation rules.
    Workflows {
        #[command(subcommand)]
        command: WorkflowsCommand,
    },
    /// Create or upgrade the database schema, then exit.
    /// With `--to`: copy the data directory's SQLite database into an empty PostgreSQL
    /// database (stop the server first), checking every table's row count and digest.
    Migrate {
        #[command(flatten)]
        dir: DataDir,
        /// The PostgreSQL database to copy this site's SQLite data into, e.g.
        /// `postgres://lanyard@db.hospital.org/lanyard`; then serve with
        /// `--database-url` set to it.
        #[arg(long, env = "LANYARD_MIGRATE_TO", hide_env_values = true)]
        to: Option<String>,
    },
    /// Prints a new key-encryption key (base64) for servers sharing a PostgreSQL
    /// database: give the same one to every replica (LANYARD_KEY_ENCRYPTION_KEY).
    Keygen,
    /// Reads an emergency PIN (4–8 digits) from stdin and prints its hash for the MDM's
    /// managed app configuration (key `LanyardEmergencyPinHash`); the PIN itself is
    /// never stored or printed.
    EmergencyPinHash,
    /// Manage admin API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run the server.
    Serve(ServeArgs),
    /// Run the server with demo carts, users, badges and devices (seeded once).
    Demo(ServeArgs),
    /// Bulk import from CSV; nothing is imported if any row is invalid.
    Import {
        /// `users` (username,display_name,email,groups,device_limit,badge,password),
        /// `launchpads` (id,name,ports,department,facility,manager,timezone), or
        /// `devices` (serial, device_home, and one column per custom device attribute).
        kind: ImportKind,
        /// The CSV file, with a header row.
        file: PathBuf,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportKind {
    Users,
    Launchpads,
    Devices,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file. Keys: listen, data_dir, database_url, key_encryption_key,
    /// public_url, trusted_proxies, badge_lookup_url, log_format, nanomdm_url,
    /// nanomdm_api_key, nanomdm_webhook_key, mdm_deadline_mins, smtp_url, smtp_from,
    /// metrics_token, retention_days, email_retention_days, max_connections,
    /// header_timeout_secs. Flags and environment variables override it.
    #[arg(long, env = "LANYARD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "LANYARD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the server's state, created on first run [default: lanyard-data].
    #[arg(long, env = "LANYARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL database to use instead of the SQLite file in the data directory,
    /// e.g. `postgres://lanyard@db.hospital.org/lanyard`; replicas may share one.
    #[arg(long, env = "LANYARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// With --database-url: the key-encryption key (base64 of 32 bytes, from
    /// `lanyard-server keygen`) the server's keys are sealed under in the database;
    /// the same on every replica. Prefer the environment variable.
    #[arg(long, env = "LANYARD_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    key_encryption_key: Option<String>,
    /// The URL phones and staff reach the server at, e.g. the load balancer's
    /// `https://lanyard.stmary.org`, for enrollment links and QR codes [default: each
    /// request's Host header].
    #[arg(long, env = "LANYARD_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// A load balancer or reverse proxy (address or CIDR block, e.g. 10.0.0.0/8) whose
    /// X-Forwarded-For names the client in logs; repeat, or comma-separate in the
    /// environment [default: none, every client is its connection's peer].
    #[arg(
        long = "trusted-proxy",
        env = "LANYARD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// External badge lookup service: `GET {url}?id={badge}` answers `{"user": "alice"}`.
    #[arg(long, env = "LANYARD_BADGE_LOOKUP_URL")]
    badge_lookup_url: Option<url::Url>,
    /// Log format [default: text].
    #[arg(long, env = "LANYARD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// NanoMDM base URL (MDM commands such as Clear Passcode go there).
    #[arg(long, env = "LANYARD_NANOMDM_URL")]
    nanomdm_url: Option<url::Url>,
    /// NanoMDM API key (prefer the environment variable to keep it out of `ps`).
    #[arg(long, env = "LANYARD_NANOMDM_API_KEY", hide_env_values = true)]
    nanomdm_api_key: Option<String>,
    /// Key NanoMDM signs its webhook bodies with (`X-Hmac-Signature`).
    #[arg(long, env = "LANYARD_NANOMDM_WEBHOOK_KEY", hide_env_values = true)]
    nanomdm_webhook_key: Option<String>,
    /// Minutes an MDM command (e.g. Clear Passcode answered NotNow by a locked phone)
    /// may go unanswered before it is given up with a reason [default: 60].
    #[arg(long, env = "LANYARD_MDM_DEADLINE_MINS")]
    mdm_deadline_mins: Option<u64>,
    /// SMTP relay for Send Email, e.g. `smtp://relay.hospital.org:25`,
    /// `smtp://user:pass@relay:587?tls=required` or `smtps://relay:465`.
    #[arg(long, env = "LANYARD_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// From address of Lanyard's emails [default: Lanyard <lanyard@localhost>].
    #[arg(long, env = "LANYARD_SMTP_FROM")]
    smtp_from: Option<String>,
    /// Days phones' records, settled commands, the MDM log, security events and
    /// finished workflow runs are kept [default: 365]; the audit log is kept.
    #[arg(long, env = "LANYARD_RETENTION_DAYS")]
    retention_days: Option<u32>,
    /// Days sent or failed emails are kept [default: 90].
    #[arg(long, env = "LANYARD_EMAIL_RETENTION_DAYS")]
    email_retention_days: Option<u32>,
    /// A token `/metrics` then requires as `Authorization: Bearer <token>` (open without).
    #[arg(long, env = "LANYARD_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Open HTTP connections at most; more are answered 503 (each phone's long-poll holds
    /// one) [default: the open-file limit, raised to its hard maximum, less 128].
    #[arg(long, env = "LANYARD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers; also how long a keep-alive
    /// connection may sit idle [default: 10].
    #[arg(long, env = "LANYARD_HEADER_TIMEOUT_SECS")]
    header_timeout_secs: Option<u64>,
}

/// Binds, optionally seeds the demo, prints the address, and serves until a signal.
async fn serve(args: ServeArgs, demo: bool) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    init_logging(
        args.log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Text),
    );
    let listen = match args.listen.or(file.listen) {
        Some(l) => l,
        None => DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr().context("reading bound address")?;
    let mut config = ServerConfig::new(addr, data_dir);
    config.database_url = args.database_url.or(file.database_url);
    config.key_encryption_key = args.key_encryption_key.or(file.key_encryption_key);
    config.public_url = args.public_url.or(file.public_url);
    let trusted = if args.trusted_proxies.is_empty() {
        file.trusted_proxies.unwrap_or_default()
    } else {
        args.trusted_proxies
    };
    config.trusted_proxies = lanyard_server::http::client_addr::TrustedProxies::parse(&trusted)?;
    config.badge_lookup_url = args.badge_lookup_url.or(file.badge_lookup_url);
    config.nanomdm_url = args.nanomdm_url.or(file.nanomdm_url);
    config.nanomdm_api_key = args.nanomdm_api_key.or(file.nanomdm_api_key);
    config.nanomdm_webhook_key = args.nanomdm_webhook_key.or(file.nanomdm_webhook_key);
    config.smtp_url = args.smtp_url.or(file.smtp_url);
    config.metrics_token = args.metrics_token.or(file.metrics_token);
    if let Some(days) = args.retention_days.or(file.retention_days) {
        anyhow::ensure!(days >= 1, "--retention-days must be at least 1");
        config.retention.history_days = days;
    }
    if let Some(days) = args.email_retention_days.or(file.email_retention_days) {
        anyhow::ensure!(days >= 1, "--email-retention-days must be at least 1");
        config.retention.email_days = days;
    }
    if let Some(from) = args.smtp_from.or(file.smtp_from) {
        config.smtp_from = from;
    }
    if let Some(n) = args.max_connections.or(file.max_connections) {
        anyhow::ensure!(n >= 1, "--max-connections must be at least 1");
        config.limits.max_connections = n;
    } else if let Some(n) = lanyard_server::http::serve::Limits::connections_the_fd_limit_allows() {
        config.limits.max_connections = n;
    }
    if let Some(secs) = args.header_timeout_secs.or(file.header_timeout_secs) {
        anyhow::ensure!(secs >= 1, "--header-timeout-secs must be at least 1");
        config.limits.header_timeout = std::time::Duration::from_secs(secs);
    }
    if let Some(mins) = args.mdm_deadline_mins.or(file.mdm_deadline_mins) {
        config.mdm_deadline_secs = mins.saturating_mul(60);
    }
    // Signals first, then the data directory: "listening" is printed only once a
    // SIGTERM would be handled and the database is open (a script that waits for the
    // line may then stop us cleanly or send requests).
    let shutdown = shutdown_signal()?;
    let server = lanyard_server::Server::open(&config)?;
    server.upgrade_stored().await?;
    // One line on stdout with the real address, for scripts and tests using port 0.
    println!("lanyard-server listening on http://{addr}");
    if demo {
        for line in lanyard_server::demo::seed(server.state(), &format!("http://{addr}"))
            .await?
            .lines
        {
            println!("{line}");
        }
    }
    tracing::info!(%addr, data_dir = %config.data_dir.display(), max_connections = config.limits.max_connections, "serving");
    server.serve(listener, shutdown).await
}

/// SIGINT or SIGTERM, registered now (not when first awaited), so a signal that
/// arrives while the data directory opens is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::info!("shutting down");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a person at a terminal, plain text for log files and collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen => {
            use base64::Engine as _;
            let key = lanyard_server::keys::random_bytes(32)?;
            println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
            Ok(())
        }
        Command::Migrate { dir, to: Some(url) } => {
            init_logging(LogFormat::Text);
            anyhow::ensure!(
                dir.database_url.is_none(),
                "--to copies the data directory's SQLite database; leave --database-url out"
            );
            // No server may write the file while it is copied: what it wrote after the
            // copy would be lost.
            let _lock = lanyard_server::DataDirLock::acquire(&dir.data_dir)
                .context("stop the server before copying its data")?;
            let file = dir.data_dir.join(lanyard_server::DB_FILE);
            anyhow::ensure!(file.exists(), "no database at {}", file.display());
            let report = tokio::task::spawn_blocking(move || {
                lanyard_server::db::copy::sqlite_to_postgres(&file, &url)
            })
            .await
            .context("the copy stopped")??;
            println!(
                "{:<20} {:>10}  digest (SQLite = PostgreSQL)",
                "table", "rows"
            );
            for t in &report {
                println!("{:<20} {:>10}  {}", t.table, t.rows, &t.digest[..16]);
            }
            println!(
                "copied {} tables, {} rows; serve with --database-url to use PostgreSQL \
                 (the data directory keeps the keys)",
                report.len(),
                report.iter().map(|t| t.rows).sum::<u64>()
            );
            Ok(())
        }
        Command::Migrate { dir, to: None } => {
            init_logging(LogFormat::Text);
            let version = match &dir.database_url {
                Some(url) => lanyard_server::db::migrate_postgres(url)?,
                None => {
                    std::fs::create_dir_all(&dir.data_dir)
                        .with_context(|| format!("creating {}", dir.data_dir.display()))?;
                    lanyard_server::db::migrate(&dir.data_dir.join(lanyard_server::DB_FILE))?
                }
            };
            println!("database schema is at version {version}");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { role, label, dir },
        } => {
            init_logging(LogFormat::Text);
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role must be admin, helpdesk or auditor"))?;
            let config = dir.config();
            let state = open_state(&config, system_clock())?;
            let token = lanyard_server::keys::random_token(32)?;
            let hash = lanyard_server::keys::sha256(token.as_bytes());
            state
                .storage
                .create_api_token(hash, role, label, state.now())
                .await?;
            println!("{token}");
            eprintln!("This {} token is shown once; store it now.", role.as_str());
            Ok(())
        }
        Command::Token {
            command: TokenCommand::List { dir },
        } => {
            use lanyard_server::storage::credentials::CredentialStore;
            init_logging(LogFormat::Text);
            let config = dir.config();
            let state = open_state(&config, system_clock())?;
            let when = |ms: Option<i64>| {
                ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                    .map_or_else(|| "-".to_owned(), |t| t.to_string())
            };
            println!("id\trole\tlabel\tcreated\texpires\tlast used\trevoked");
            for t in state.storage.list_api_tokens().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.role.as_str(),
                    t.label,
                    when(Some(t.created_at)),
                    when(t.expires_at),
                    when(t.last_used_at),
                    when(t.revoked_at)
                );
            }
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Revoke { id, dir },
        } => {
            use lanyard_server::storage::credentials::CredentialStore;
            init_logging(LogFormat::Text);
            let config = dir.config();
            let state = open_state(&config, system_clock())?;
            let actor = format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            );
            let t = state
                .storage
                .revoke_api_token(id, actor, state.now())
                .await?;
            eprintln!("token {} ({}) revoked", t.id, t.label);
            Ok(())
        }
        Command::EmergencyPinHash => {
            let mut pin = String::new();
            std::io::stdin().read_line(&mut pin)?;
            let pin = pin.trim();
            if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                anyhow::bail!("the emergency PIN is 4 to 8 digits");
            }
            let hash = lanyard_protocol::kdf::SlowHash::new(
                pin.as_bytes(),
                lanyard_server::keys::random_bytes(16)?,
                lanyard_protocol::kdf::RECOMMENDED_OFFLINE_ITERATIONS,
            );
            println!("{}", hash.to_text());
            Ok(())
        }
        Command::Workflows { command } => workflows(command).await,
        Command::Policy { command } => policy(command).await,
        Command::Serve(args) => serve(args, false).await,
        Command::Demo(args) => serve(args, true).await,
        Command::Import { kind, file, dir } => {
            init_logging(LogFormat::Text);
            let config = dir.config();
            let state = open_state(&config, system_clock())?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let actor = format!("import:{}", file.display());
            match kind {
                ImportKind::Users => {
                    let n = lanyard_server::import::users(&state, input, &actor).await?;
                    println!(
                        "imported {} users: {} created, {} updated",
                        n.created + n.updated,
                        n.created,
                        n.updated
                    );
                }
                ImportKind::Devices => {
                    let n = lanyard_server::import::devices(&state, input, &actor).await?;
                    println!("updated {n} devices");
                }
                ImportKind::Launchpads => {
                    let (created, updated) =
                        lanyard_server::import::launchpads(&state, input, &actor).await?;
                    println!("id,reader_credential");
                    for (id, credential) in &created {
                        println!("{id},{credential}");
                    }
                    eprintln!(
                        "imported {} launchpads: {} created (their reader credentials above are shown once), {updated} updated",
                        created.len() + updated,
                        created.len()
                    );
                }
            }
            Ok(())
        }
    }
}

async fn policy(command: PolicyCommand) -> anyhow::Result<()> {
    init_logging(LogFormat::Text);
    let (dir, patch) = match command {
        PolicyCommand::Show { dir } => (dir, None),
        PolicyCommand::Set { file, dir } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let patch: lanyard_server::policy::PolicyPatch =
                serde_json::from_str(&text).context("the policy patch")?;
            (dir, Some(patch))
        }
    };
    let state = open_state(&dir.config(), system_clock())?;
    let shown = match patch {
        None => lanyard_server::policy::view(&state).await,
        Some(patch) => {
            lanyard_server::policy::update(&state, patch, "command line (policy set)").await
        }
    };
    let shown = shown.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

async fn workflows(command: WorkflowsCommand) -> anyhow::Result<()> {
    use lanyard_server::storage::WorkflowStore;
    use lanyard_server::workflows::model::Folder;
    init_logging(LogFormat::Text);
    match command {
        WorkflowsCommand::InstallStandard {
            dep_profile,
            wifi_ssid,
            wifi_security,
            wifi_password,
            language,
            locale,
            logout_apps,
            dir,
        } => {
            let logout_apps = logout_apps
                .iter()
                .map(|a| {
                    let (app, name) = a.split_once('=').unwrap_or((a, a));
                    lanyard_server::workflows::model::LogoutApp {
                        app: app.trim().to_owned(),
                        name: name.trim().to_owned(),
                    }
                })
                .collect();
            let security = serde_json::from_value(serde_json::Value::String(wifi_security.clone()))
                .map_err(|_| anyhow::anyhow!("--wifi-security must be wpa_personal, wpa_enterprise or none, not {wifi_security:?}"))?;
            let site = lanyard_server::workflows::standard::SiteSettings {
                dep_profile,
                wifi_ssid,
                wifi_security: security,
                wifi_password,
                language,
                locale,
                logout_apps,
            };
            let config = dir.config();
            let state = open_state(&config, system_clock())?;
            let actor = "command line (workflows install-standard)".to_owned();
            let done =
                lanyard_server::http::workflows::install_standard_set(&state, &site, actor.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            lanyard_server::workflows::policy::sync_check_in_policy(&state, &actor)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "Installed {} workflows and {} automation rules.",
                done.workflows.len(),
                done.rules.len()
            );
            // This command does not read the running server's MDM and SMTP settings:
            // say what the set needs, for the admin to check against them.
            println!(
                "Needs an MDM (serve --nanomdm-url), or these fail at their MDM steps: {}.",
                done.needs_mdm.join(", ")
            );
            println!(
                "Needs an SMTP relay (serve --smtp-url), or these fail at their Send Email steps: {}.",
                done.needs_email.join(", ")
            );
            Ok(())
        }
        WorkflowsCommand::List { dir } => {
            let config = dir.config();
            let state = open_state(&config, system_clock())?;
            let all = state.storage.list_workflows().await?;
            for folder in Folder::ALL {
                let ro = if folder.read_only() {
                    " (read-only)"
                } else {
                    ""
                };
                println!("{}{ro}", folder.title());
                for w in all.iter().filter(|w| w.spec.folder == folder) {
                    let actions: Vec<&str> = w.spec.actions.iter().map(|a| a.kind()).collect();
                    println!("  {} [{}]: {}", w.spec.name, w.id, actions.join(", "));
                }
            }
            let mut rules = state.storage.list_rules().await?;
            rules.sort_by(|a, b| {
                (a.spec.trigger.kind(), a.position).cmp(&(b.spec.trigger.kind(), b.position))
            });
            println!("Automation rules (first match wins within a trigger)");
            for r in rules {
                let on = if r.spec.enabled { "on" } else { "off" };
                println!(
                    "  {} #{} {} [{on}] -> {}",
                    r.spec.trigger.kind(),
                    r.position,
                    r.spec.name,
                    r.spec.workflows.join(", ")
                );
            }
            Ok(())
        }
    }
}
