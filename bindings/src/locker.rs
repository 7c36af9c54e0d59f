//! `LockerAgent`: the object the locker app creates once and feeds events to.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_agent::runtime::Agent;
use lanyard_agent::secrets::{DeviceCredential, SecretStore};
use lanyard_agent::store::Store;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_agent::sync::{SyncClient, SyncConfig, Transport, TransportError};
use lanyard_agent::{Event, FactsUpdate};
use lanyard_protocol::enroll::EnrollResponse;
use lanyard_protocol::events::LogoutOutcome;
use lanyard_protocol::{BadgeId, DockLocation, Password, Pin};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use url::Url;

use crate::engine::{Inner, REQUEST_TIMEOUT, RunningGuard, Shared, lock};
use crate::error::ApiError;
use crate::host::{
    AppSessions, Host, HostClock, HostSecrets, Notifier, ScreenPresenter, SecretStorage,
};
use crate::model::{
    AgentStatus, DeviceDetails, DeviceFacts, ScreenModel, SyncReport, SyncSettings,
};

/// File name of the agent's database inside the data directory.
pub const DATABASE_FILE: &str = "lanyard-agent.sqlite";
/// Secret-store key of the server URL the device enrolled with (kept beside the
/// credential it belongs to).
pub const SERVER_URL_KEY: &str = "lanyard.server-url";

/// Longest badge id, username or password the agent accepts from a reader or keyboard.
const MAX_INPUT_LEN: usize = 256;

/// The locker core as the app sees it. Methods are safe to call from any thread; the
/// ones that reach the server (`enroll…`, `syncNow`) block, so call them off the main
/// thread. Badge taps and passwords return at once and the answer arrives through
/// `ScreenPresenter.showScreen`.
#[derive(uniffi::Object)]
pub struct LockerAgent {
    shared: Arc<Shared>,
    /// Owned here, not by the tasks, so the last reference is never dropped on one of
    /// its own threads.
    runtime: Mutex<Option<Runtime>>,
}

impl Drop for LockerAgent {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::InvalidInput {
        field: field.into(),
        reason: reason.into(),
    }
}

fn checked(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if value.len() > MAX_INPUT_LEN {
        return Err(invalid(field, "is longer than 256 bytes"));
    }
    Ok(())
}

#[uniffi::export]
impl LockerAgent {
    /// Opens (or creates) the agent in `data_dir`, restoring the last committed state,
    /// and shows its screen. An enrolled phone finds its credential in `secrets`.
    #[uniffi::constructor]
    pub fn new(
        data_dir: String,
        presenter: Arc<dyn ScreenPresenter>,
        apps: Arc<dyn AppSessions>,
        secrets: Arc<dyn SecretStorage>,
        notifier: Arc<dyn Notifier>,
        clock: Option<Arc<dyn HostClock>>,
    ) -> Result<Arc<Self>, ApiError> {
        let dir = PathBuf::from(&data_dir);
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::Storage {
            reason: format!("creating {data_dir}: {e}"),
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lanyard-agent")
            .enable_all()
            .build()
            .map_err(|e| ApiError::Storage {
                reason: format!("starting the agent's runtime: {e}"),
            })?;
        let host = Host {
            presenter,
            apps,
            secrets: HostSecrets(secrets),
            notifier,
            clock,
        };
        let store = Store::open(&dir.join(DATABASE_FILE))?;
        // The store must exist before the clock is asked; the host's clock is cheap.
        let now = match &host.clock {
            Some(c) => c.now_millis().map(lanyard_protocol::Timestamp).ok(),
            None => None,
        }
        .unwrap_or_else(|| crate::model::timestamp(std::time::SystemTime::now()));
        let (agent, effects) = Agent::open(store, now)?;
        let client = if agent.locker().enrollment.is_some() {
            Some(client_for(&host.secrets)?)
        } else {
            None
        };
        let shared = Arc::new(Shared::new(
            Inner { agent, client },
            host,
            runtime.handle().clone(),
        ));
        shared.carry_out(effects);
        Ok(Arc::new(LockerAgent {
            shared,
            runtime: Mutex::new(Some(runtime)),
        }))
    }

    /// Enrolls from a `lanyard://enroll?server=…&token=…` link (QR code). Blocks until
    /// the server answers.
    pub fn enroll_with_link(
        &self,
        link: String,
        device: DeviceDetails,
    ) -> Result<ScreenModel, ApiError> {
        let invite: EnrollmentInvite = link.parse()?;
        self.enroll(invite, device)
    }

    /// Enrolls from MDM managed app configuration (`LanyardServerURL`,
    /// `LanyardEnrollmentToken`). Blocks until the server answers.
    pub fn enroll_with_managed_config(
        &self,
        config: HashMap<String, String>,
        device: DeviceDetails,
    ) -> Result<ScreenModel, ApiError> {
        let config: BTreeMap<String, String> = config.into_iter().collect();
        let invite = EnrollmentInvite::from_managed_config(&config)?;
        self.enroll(invite, device)
    }

    /// A badge read by the phone's reader. Returns the screen at once (busy while the
    /// server decides); the answer arrives through `ScreenPresenter.showScreen`.
    pub fn badge_tapped(&self, badge: String) -> Result<ScreenModel, ApiError> {
        self.enrolled()?;
        checked("badge", &badge)?;
        self.shared.feed(Event::BadgeTapped {
            badge: BadgeId::new(badge.trim()),
        })
    }

    /// Username and password typed at the locker screen; answered like a badge.
    pub fn password_entered(
        &self,
        username: String,
        password: String,
    ) -> Result<ScreenModel, ApiError> {
        self.enrolled()?;
        checked("username", &username)?;
        checked("password", &password)?;
        self.shared.feed(Event::PasswordEntered {
            username: username.trim().to_owned(),
            password: Password::new(password),
        })
    }

    /// The emergency unlock PIN, checked on the phone against the policy's hash.
    pub fn pin_entered(&self, pin: String) -> Result<ScreenModel, ApiError> {
        self.enrolled()?;
        if pin.is_empty() || pin.len() > 32 || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("pin", "must be 1–32 digits"));
        }
        self.shared.feed(Event::PinEntered { pin: Pin::new(pin) })
    }

    /// Put on a charger; `cart` and `port` when the dock reports them.
    pub fn docked(&self, cart: Option<String>, port: Option<u32>) -> Result<ScreenModel, ApiError> {
        if let Some(c) = &cart {
            checked("cart", c)?;
        }
        if port == Some(0) {
            return Err(invalid("port", "ports are counted from 1"));
        }
        self.shared.feed(Event::Docked {
            location: DockLocation {
                launchpad: cart.map(|c| c.trim().into()),
                port,
            },
        })
    }

    /// Taken off the charger: completes a pending checkout.
    pub fn undocked(&self) -> Result<ScreenModel, ApiError> {
        self.shared.feed(Event::Undocked)
    }

    /// Platform facts the host measured (OS version, passcode, battery, tampering).
    pub fn platform_facts(&self, facts: DeviceFacts) -> Result<ScreenModel, ApiError> {
        let os_version = facts
            .os_version
            .map(|v| {
                v.parse()
                    .map_err(|_| invalid("os_version", "is not a version like 17.4.1"))
            })
            .transpose()?;
        if facts.battery_percent.is_some_and(|b| b > 100) {
            return Err(invalid("battery_percent", "must be 0–100"));
        }
        self.shared.feed(Event::PlatformFacts(FactsUpdate {
            os_version,
            passcode_present: facts.passcode_present,
            compromise_signals: facts.compromise_signals,
            battery_percent: facts.battery_percent,
        }))
    }

    /// The emergency PIN hash from MDM managed app configuration
    /// (`LanyardEmergencyPinHash`, as `lanyard-server emergency-pin-hash` prints it), or
    /// `None` when the key is absent. Used only while the signed policy sets no PIN.
    pub fn set_managed_emergency_pin(&self, hash: Option<String>) -> Result<ScreenModel, ApiError> {
        let hash = hash
            .filter(|h| !h.trim().is_empty())
            .map(|h| {
                lanyard_protocol::kdf::SlowHash::from_text(&h)
                    .map_err(|e| invalid("emergency_pin_hash", &e.to_string()))
            })
            .transpose()?;
        self.shared.feed(Event::ManagedEmergencyPin { hash })
    }

    /// The result of an `AppSessions.logOut` request: `failure` is `None` when the app
    /// confirmed, or what went wrong.
    pub fn app_logout_finished(
        &self,
        bundle_id: String,
        failure: Option<String>,
    ) -> Result<ScreenModel, ApiError> {
        checked("bundle_id", &bundle_id)?;
        let outcome = match failure {
            None => LogoutOutcome::Done,
            Some(detail) => LogoutOutcome::Failed { detail },
        };
        self.shared.feed(Event::AppLogoutFinished {
            app: bundle_id.trim().into(),
            outcome,
        })
    }

    /// Time passed (the app came to the foreground, a timer fired). The agent schedules
    /// its own wake-ups while it runs; this is for when the host was suspended.
    pub fn tick(&self) -> Result<ScreenModel, ApiError> {
        self.shared.feed(Event::Tick)
    }

    /// The screen to show now.
    pub fn current_screen(&self) -> ScreenModel {
        self.shared.screen()
    }

    /// Phase, identity, outbox and sync health.
    pub fn status(&self) -> Result<AgentStatus, ApiError> {
        let (phase, device_id, username, outbox_len) = {
            let inner = lock(&self.shared.inner);
            let locker = inner.agent.locker();
            (
                locker.status().into(),
                locker.enrollment.as_ref().map(|e| e.device_id.to_string()),
                locker.user().map(|u| u.username.clone()),
                inner.agent.store().outbox_len()?,
            )
        };
        let health = lock(&self.shared.health);
        Ok(AgentStatus {
            phase,
            device_id,
            username,
            outbox_len,
            syncing: self.shared.sync_run.load(Ordering::SeqCst) != 0,
            last_sync_at: health.last_sync_at,
            last_sync_error: health.last_sync_error.clone(),
            host_errors: health.host_errors,
            last_host_error: health.last_host_error.clone(),
        })
    }

    /// One sync round trip now (no long-poll). Blocks until the server answers.
    pub fn sync_now(&self) -> Result<SyncReport, ApiError> {
        self.enrolled()?;
        let shared = Arc::clone(&self.shared);
        self.block_on(async move { shared.sync_round().await })?
    }

    /// Stops all background work (sync, authorizations in flight, wake-ups) and refuses
    /// further events with `Closed`. Everything committed stays committed; a new agent
    /// on the same data directory carries on. Hosts that exit while the agent is alive
    /// (tests, command-line tools) call it first so no background thread calls into a
    /// runtime that is going away. Idempotent.
    pub fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(rt) = lock(&self.runtime).take() {
            rt.shutdown_background();
        }
    }

    /// Starts the background sync task. It runs until the returned handle is stopped or
    /// released; only one runs at a time.
    pub fn start_sync(&self, settings: SyncSettings) -> Result<Arc<SyncHandle>, ApiError> {
        self.shared.open()?;
        let run = self.shared.next_run.fetch_add(1, Ordering::SeqCst);
        if self
            .shared
            .sync_run
            .compare_exchange(0, run, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(ApiError::SyncAlreadyRunning);
        }
        let guard = RunningGuard(Arc::clone(&self.shared), run);
        let shared = Arc::clone(&self.shared);
        let task = self.shared.runtime.spawn(async move {
            let _running = guard;
            shared.sync_loop(settings).await;
        });
        Ok(Arc::new(SyncHandle {
            task: Mutex::new(Some(task)),
            shared: Arc::clone(&self.shared),
            run,
        }))
    }
}

impl LockerAgent {
    fn enrolled(&self) -> Result<(), ApiError> {
        self.shared.open()?;
        match lock(&self.shared.inner).client {
            Some(_) => Ok(()),
            None => Err(ApiError::NotEnrolled),
        }
    }

    fn block_on<F: std::future::Future + Send + 'static>(
        &self,
        fut: F,
    ) -> Result<F::Output, ApiError>
    where
        F::Output: Send + 'static,
    {
        // Runs on the runtime's workers; this (foreign) thread only waits. Never called
        // from a runtime thread: host callbacks must not call back synchronously.
        self.shared.open()?;
        let task = self.shared.runtime.spawn(fut);
        self.shared
            .runtime
            .block_on(task)
            .map_err(|e| ApiError::Storage {
                reason: format!("agent task failed: {e}"),
            })
    }

    fn enroll(
        &self,
        invite: EnrollmentInvite,
        device: DeviceDetails,
    ) -> Result<ScreenModel, ApiError> {
        if lock(&self.shared.inner).agent.locker().enrollment.is_some() {
            return Err(ApiError::AlreadyEnrolled);
        }
        let info = device.into_info()?;
        let transport = HttpTransport::new(invite.server.clone(), REQUEST_TIMEOUT)?;
        let shared = Arc::clone(&self.shared);
        let server = invite.server.clone();
        let req = lanyard_agent::sync::enroll_request(&invite, info);
        // No lock is held while the server answers; the answer is applied under it.
        self.block_on(async move {
            let response = transport.enroll(&req).await;
            finish_enrollment(&shared, transport, server, response)
        })?
    }
}

/// Applies the server's enrollment answer: keeps the credential and server URL in the
/// secret store, pins the key, applies the policy, and wakes the sync task.
fn finish_enrollment(
    shared: &Arc<Shared>,
    transport: HttpTransport,
    server: Url,
    response: Result<EnrollResponse, TransportError>,
) -> Result<ScreenModel, ApiError> {
    let resp = response?;
    let now = shared.now();
    let secrets = &shared.host.secrets;
    // The server URL belongs with the credential: a restarted app needs both.
    secrets.put(SERVER_URL_KEY, server.as_str().as_bytes())?;
    let effects = {
        let mut inner = lock(&shared.inner);
        if inner.agent.locker().enrollment.is_some() {
            return Err(ApiError::AlreadyEnrolled);
        }
        let (credential, effects) =
            lanyard_agent::sync::complete_enrollment(resp, secrets, &mut inner.agent, now)?;
        inner.client = Some(SyncClient::new(
            transport,
            credential,
            SyncConfig::default(),
            seed(),
        ));
        effects
    };
    shared.carry_out(effects);
    shared.sync_wanted.notify_one();
    Ok(shared.screen())
}

/// The sync client of an enrolled phone, from what enrollment kept in the secret store.
fn client_for(secrets: &HostSecrets) -> Result<SyncClient<HttpTransport>, ApiError> {
    let credential = DeviceCredential::load(secrets)?.ok_or_else(|| ApiError::SecretStore {
        reason: "the device is enrolled but its credential is missing from the secret store".into(),
    })?;
    let url = secrets
        .get(SERVER_URL_KEY)?
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| Url::parse(&s).ok())
        .ok_or_else(|| ApiError::SecretStore {
            reason: "the device is enrolled but its server URL is missing from the secret store"
                .into(),
        })?;
    let transport = HttpTransport::new(url, REQUEST_TIMEOUT)?;
    Ok(SyncClient::new(
        transport,
        credential,
        SyncConfig::default(),
        seed(),
    ))
}

/// Jitter seed for the backoff, different per process so a fleet does not retry in step.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(32)
}

/// The running sync task. Stopping it, or releasing the last reference, cancels it.
#[derive(uniffi::Object)]
pub struct SyncHandle {
    task: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    run: u64,
}

#[uniffi::export]
impl SyncHandle {
    /// Stops the sync task (an in-flight request is abandoned; nothing is lost, the
    /// outbox is trimmed only through what the server acknowledged).
    pub fn stop(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
        self.shared.end_sync_run(self.run);
    }

    /// True until stopped.
    pub fn is_running(&self) -> bool {
        lock(&self.task).as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
