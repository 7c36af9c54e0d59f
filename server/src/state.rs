//! Shared state of the HTTP handlers.

use std::sync::Arc;

use lanyard_protocol::Timestamp;
use tokio::sync::Notify;

use crate::keys::ServerKeys;
use crate::storage::Storage;

/// How long a cached policy is trusted before its version is read again.
pub const POLICY_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A source of the current time (injectable for tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(ms)
    })
}

/// A random name for this server process (ids of other replicas differ), falling back
/// to the process id and start time if randomness is unavailable.
fn instance_id() -> String {
    crate::keys::random_bytes(8).map_or_else(
        |_| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{}-{t}", std::process::id())
        },
        |b| crate::keys::hex(&b),
    )
}

/// What every handler can reach.
pub struct AppState<S> {
    /// The database.
    pub storage: S,
    /// Signing and badge keys.
    pub keys: Arc<ServerKeys>,
    /// The time.
    pub clock: Clock,
    /// The external badge lookup service, if configured.
    pub badge_lookup: Option<Arc<crate::lookup::BadgeLookup>>,
    /// The MDM connector, if configured.
    pub mdm: Option<Arc<lanyard_mdm::nanomdm::NanoMdm>>,
    /// The key NanoMDM's webhook bodies are signed with, if configured.
    pub mdm_webhook_key: Option<Arc<Vec<u8>>>,
    /// SHA-256 of the token `/metrics` requires, when one is configured.
    pub metrics_token_hash: Option<Arc<Vec<u8>>>,
    /// How long what grows with use is kept.
    pub retention: crate::domain::retention::Retention,
    /// How long an MDM command may go unanswered before it is given up.
    pub mdm_deadline_secs: u64,
    /// Wake-ups: long-polls, the engine and the mailer.
    pub notifier: Arc<dyn crate::notify::Notifier>,
    /// The address phones and staff reach the server at, for links and QR codes
    /// (`None`: taken from each request's Host header).
    pub public_url: Option<Arc<str>>,
    /// Proxies (the load balancer) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::http::client_addr::TrustedProxies,
    /// This server process among the replicas of one database (random at start): the
    /// holder of the background jobs' leases it takes.
    pub instance: Arc<str>,
    /// The SMTP relay, if configured.
    pub smtp: Option<Arc<crate::email::Mailer>>,
    /// PBKDF2 iterations of offline badge hashes.
    pub offline_iterations: u32,
    /// Offline list bookkeeping kept in memory between syncs.
    pub offline: Arc<crate::offline::OfflineCache>,
    /// The policy in force and its signed form, with when its version was last checked
    /// against the database (every sync compares versions; a change made by the CLI
    /// or another process is seen within [`POLICY_RECHECK`]).
    policy: Arc<std::sync::RwLock<Option<CheckedPolicy>>>,
    /// Set once the server is stopping: long-polls answer, jobs finish
    /// their pass and stop.
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

/// A cached policy and when its version was last compared with the database's.
type CheckedPolicy = (Arc<SignedPolicy>, std::time::Instant);

/// The policy in force, with its signature made once.
pub struct SignedPolicy {
    /// The policy.
    pub policy: lanyard_protocol::Policy,
    /// Its signed form, as devices receive it.
    pub signed: lanyard_protocol::Signed,
}

impl<S: Clone> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            storage: self.storage.clone(),
            keys: self.keys.clone(),
            clock: self.clock.clone(),
            badge_lookup: self.badge_lookup.clone(),
            mdm: self.mdm.clone(),
            mdm_webhook_key: self.mdm_webhook_key.clone(),
            metrics_token_hash: self.metrics_token_hash.clone(),
            retention: self.retention,
            mdm_deadline_secs: self.mdm_deadline_secs,
            notifier: self.notifier.clone(),
            instance: self.instance.clone(),
            public_url: self.public_url.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            smtp: self.smtp.clone(),
            offline_iterations: self.offline_iterations,
            offline: self.offline.clone(),
            policy: self.policy.clone(),
            stop: self.stop.clone(),
        }
    }
}

impl<S: Storage> AppState<S> {
    /// State over `storage` with `keys`.
    pub fn new(storage: S, keys: ServerKeys, clock: Clock) -> Self {
        AppState {
            storage,
            keys: Arc::new(keys),
            clock,
            badge_lookup: None,
            mdm: None,
            mdm_webhook_key: None,
            metrics_token_hash: None,
            retention: Default::default(),
            mdm_deadline_secs: crate::DEFAULT_MDM_DEADLINE_SECS,
            notifier: Arc::new(crate::notify::LocalNotifier::default()),
            instance: instance_id().into(),
            public_url: None,
            trusted_proxies: Default::default(),
            smtp: None,
            offline_iterations: crate::offline::DEFAULT_ITERATIONS,
            offline: Arc::default(),
            policy: Arc::default(),
            stop: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Asks everything waiting on this server to finish: it is stopping.
    pub fn begin_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Whether the server is stopping.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once the server is stopping.
    pub async fn stopping(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// The policy in force, signed. The cached copy is checked against the database's
    /// version at most every [`POLICY_RECHECK`] (one indexed read), so a policy changed
    /// by the CLI or another process reaches syncing phones within about a second.
    pub async fn policy(&self) -> Result<Arc<SignedPolicy>, crate::error::AppError> {
        let cached = self.policy.read().ok().and_then(|p| p.clone());
        if let Some((p, checked)) = &cached {
            if checked.elapsed() < POLICY_RECHECK {
                return Ok(p.clone());
            }
            if self.storage.policy_version().await? == Some(p.policy.version) {
                if let Ok(mut slot) = self.policy.write() {
                    *slot = Some((p.clone(), std::time::Instant::now()));
                }
                return Ok(p.clone());
            }
        }
        let policy = self.storage.current_policy().await?;
        let signed = self
            .keys
            .signing
            .sign(&policy)
            .map_err(anyhow::Error::new)?;
        let fresh = Arc::new(SignedPolicy { policy, signed });
        if let Ok(mut slot) = self.policy.write() {
            *slot = Some((fresh.clone(), std::time::Instant::now()));
        }
        Ok(fresh)
    }

    /// Forgets the cached policy after it changed here (other processes' changes are
    /// found by the version check).
    pub fn invalidate_policy(&self) {
        if let Ok(mut slot) = self.policy.write() {
            *slot = None;
        }
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// A subscription to `topic` (see [`crate::notify`]): take it before looking,
    /// then wait on it.
    pub fn waiter(&self, topic: &str) -> Arc<Notify> {
        self.notifier.subscribe(topic)
    }

    /// Wakes `topic`'s waiter (or lets its next wait return at once).
    pub fn wake(&self, topic: &str) {
        self.notifier.notify(topic);
    }
}
