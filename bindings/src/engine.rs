//! The agent behind the object: the core and its store under one lock, the sync client,
//! and the loop that carries out effects. Host callbacks are never made while the lock is
//! held, so a host may read the agent from inside a callback.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use lanyard_agent::runtime::Agent;
use lanyard_agent::secrets::DeviceCredential;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_agent::sync::{SyncClient, SyncConfig, SyncOutcome, Transport};
use lanyard_agent::{Effect, Event};
use lanyard_protocol::events::LogoutOutcome;
use lanyard_protocol::sync::SyncRequest;
use lanyard_protocol::{AuthorizeRequest, Timestamp};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::ApiError;
use crate::host::Host;
use crate::model::{AppToLogOut, ScreenModel, SyncReport, SyncSettings, timestamp};

/// Requests time out after this long (long-polls get their wait on top).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The core and its sync client, changed only under [`Shared::inner`].
pub(crate) struct Inner {
    pub(crate) agent: Agent,
    pub(crate) client: Option<SyncClient<HttpTransport>>,
}

/// What the status record reports beyond the core's state.
#[derive(Default)]
pub(crate) struct Health {
    pub(crate) last_sync_at: Option<SystemTime>,
    pub(crate) last_sync_error: Option<String>,
    pub(crate) host_errors: u64,
    pub(crate) last_host_error: Option<String>,
}

/// Everything the object's methods and its background tasks share.
pub(crate) struct Shared {
    pub(crate) inner: Mutex<Inner>,
    /// Held while a screen is rendered and shown, so screens reach the host in order.
    present: Mutex<()>,
    pub(crate) host: Host,
    pub(crate) runtime: Handle,
    /// Wakes the sync task: records wait (a passcode clear, an urgent report).
    pub(crate) sync_wanted: Notify,
    /// The id of the running sync loop (0: none). Stopping a handle frees the slot at
    /// once, even before the aborted task is dropped, so a new loop can start.
    pub(crate) sync_run: AtomicU64,
    pub(crate) next_run: AtomicU64,
    /// Set by `LockerAgent::shutdown`: background work has stopped, so no event is taken
    /// whose effects could no longer be carried out.
    pub(crate) closed: AtomicBool,
    wake: Mutex<Option<JoinHandle<()>>>,
    pub(crate) health: Mutex<Health>,
}

/// A lock that survives a panic elsewhere: the agent commits before it changes its
/// in-memory state, so what a panicking thread left behind is still consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The transport and credential for one request, cloned out so no lock is held while
/// the server answers.
struct Sender {
    transport: HttpTransport,
    credential: DeviceCredential,
}

impl Sender {
    fn of(client: &SyncClient<HttpTransport>) -> Sender {
        Sender {
            transport: client.transport().clone(),
            credential: client.credential().clone(),
        }
    }
}

impl Shared {
    pub(crate) fn new(inner: Inner, host: Host, runtime: Handle) -> Shared {
        Shared {
            inner: Mutex::new(inner),
            present: Mutex::new(()),
            host,
            runtime,
            sync_wanted: Notify::new(),
            sync_run: AtomicU64::new(0),
            next_run: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            wake: Mutex::new(None),
            health: Mutex::new(Health::default()),
        }
    }

    /// Now, from the host's clock if it gave one (the system clock if that fails).
    pub(crate) fn now(&self) -> Timestamp {
        match &self.host.clock {
            None => timestamp(SystemTime::now()),
            Some(clock) => match clock.now_millis() {
                Ok(ms) => Timestamp(ms),
                Err(e) => {
                    self.host_failed("clock", &e.to_string());
                    timestamp(SystemTime::now())
                }
            },
        }
    }

    pub(crate) fn host_failed(&self, what: &str, why: &str) {
        let mut health = lock(&self.health);
        health.host_errors += 1;
        health.last_host_error = Some(format!("{what}: {why}"));
    }

    /// Feeds one event, then carries out what it asked for.
    pub(crate) fn feed(self: &Arc<Self>, event: Event) -> Result<ScreenModel, ApiError> {
        self.open()?;
        let now = self.now();
        let effects = lock(&self.inner).agent.handle(event, now)?;
        self.carry_out(effects);
        Ok(self.screen())
    }

    /// `Closed` once the agent was shut down.
    pub(crate) fn open(&self) -> Result<(), ApiError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ApiError::Closed);
        }
        Ok(())
    }

    /// The screen as of now.
    pub(crate) fn screen(&self) -> ScreenModel {
        let now = self.now();
        lock(&self.inner).agent.locker().screen(now).into()
    }

    /// Carries out effects in order; effects of events they cause (a failed app logout)
    /// are carried out after them.
    pub(crate) fn carry_out(self: &Arc<Self>, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                // Already durable: the sync task sends it.
                Effect::Record(_) => {}
                Effect::ShowScreen(_) => self.present_screen(),
                Effect::Authorize(req) => self.spawn_authorization(req),
                Effect::OpenBlankPage => {
                    if let Err(e) = self.host.presenter.open_blank_page() {
                        self.host_failed("open_blank_page", e.reason());
                    }
                }
                Effect::LogOutApps { apps } => {
                    for app in apps {
                        queue.extend(self.log_out(app.into()));
                    }
                }
                // The request is a record in the outbox: send it now.
                Effect::RequestPasscodeClear { .. } | Effect::RequestSync => {
                    self.sync_wanted.notify_one();
                }
                Effect::RaiseAlert { message } => {
                    if let Err(e) = self.host.notifier.notify(message) {
                        self.host_failed("notify", e.reason());
                    }
                }
                Effect::ScheduleWake { at } => self.schedule_wake(at),
            }
        }
    }

    /// Shows the current screen rather than the effect's copy: two threads carrying out
    /// effects cannot then leave an older screen on top.
    fn present_screen(&self) {
        let _order = lock(&self.present);
        let screen = self.screen();
        if let Err(e) = self.host.presenter.show_screen(screen) {
            self.host_failed("show_screen", e.reason());
        }
    }

    /// Asks the host to log `app` out; a refusal is a failed logout, reported at once.
    fn log_out(&self, app: AppToLogOut) -> Vec<Effect> {
        let bundle_id = app.bundle_id.clone();
        let Err(e) = self.host.apps.log_out(app) else {
            return Vec::new();
        };
        self.host_failed("log_out", e.reason());
        let event = Event::AppLogoutFinished {
            app: bundle_id.as_str().into(),
            outcome: LogoutOutcome::Failed {
                detail: e.reason().to_owned(),
            },
        };
        let now = self.now();
        match lock(&self.inner).agent.handle(event, now) {
            Ok(effects) => effects,
            Err(e) => {
                self.host_failed("log_out", &format!("recording the failure: {e}"));
                Vec::new()
            }
        }
    }

    fn sender(&self) -> Option<Sender> {
        lock(&self.inner).client.as_ref().map(Sender::of)
    }

    /// Asks the server in the background; the answer (or its absence, which falls back
    /// to the offline list) reaches the host as a new screen.
    fn spawn_authorization(self: &Arc<Self>, req: AuthorizeRequest) {
        let shared = Arc::clone(self);
        self.runtime.spawn(async move {
            let result = match shared.sender() {
                Some(s) => Some(s.transport.authorize(&s.credential, &req).await),
                None => None,
            };
            let now = shared.now();
            let applied = {
                let mut inner = lock(&shared.inner);
                let Inner { agent, client } = &mut *inner;
                match (client, result) {
                    (Some(client), Some(result)) => {
                        client.apply_authorization(agent, &req, result, now)
                    }
                    _ => agent.handle(
                        Event::AuthorizationFailed {
                            request_id: req.request_id.clone(),
                        },
                        now,
                    ),
                }
            };
            match applied {
                Ok(effects) => shared.carry_out(effects),
                Err(e) => shared.host_failed("authorize", &e.to_string()),
            }
        });
    }

    /// Delivers a tick at `at`, replacing any earlier wake-up.
    fn schedule_wake(self: &Arc<Self>, at: Timestamp) {
        let delay =
            u64::try_from(at.as_millis().saturating_sub(self.now().as_millis())).unwrap_or(0);
        let shared = Arc::clone(self);
        let task = self.runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            // Only this task's own slot: a newer wake-up replaces it before it fires.
            drop(lock(&shared.wake).take());
            if let Err(e) = shared.feed(Event::Tick) {
                shared.host_failed("tick", &e.to_string());
            }
        });
        if let Some(old) = lock(&self.wake).replace(task) {
            old.abort();
        }
    }

    /// The next sync request and who sends it, or `None` when not enrolled.
    fn prepare_sync(&self, wait_secs: u32) -> Result<Option<(SyncRequest, Sender)>, ApiError> {
        let inner = lock(&self.inner);
        let Some(client) = inner.client.as_ref() else {
            return Ok(None);
        };
        let mut req = client.prepare(&inner.agent)?;
        req.wait_secs = if req.events.is_empty() { wait_secs } else { 0 };
        Ok(Some((req, Sender::of(client))))
    }

    fn apply_sync(
        self: &Arc<Self>,
        req: &SyncRequest,
        result: Result<lanyard_protocol::sync::SyncResponse, lanyard_agent::sync::TransportError>,
    ) -> Result<SyncOutcome, ApiError> {
        let now = self.now();
        let (outcome, effects) = {
            let mut inner = lock(&self.inner);
            let Inner { agent, client } = &mut *inner;
            let client = client.as_mut().ok_or(ApiError::NotEnrolled)?;
            client.apply(agent, req, result, now)?
        };
        {
            let mut health = lock(&self.health);
            match &outcome {
                SyncOutcome::Synced { .. } => {
                    health.last_sync_at = Some(SystemTime::now());
                    health.last_sync_error = None;
                }
                SyncOutcome::Failed { error, .. } => {
                    health.last_sync_error = Some(error.to_string());
                }
            }
        }
        self.carry_out(effects);
        Ok(outcome)
    }

    /// One round trip without a long-poll.
    pub(crate) async fn sync_round(self: &Arc<Self>) -> Result<SyncReport, ApiError> {
        let (req, sender) = self.prepare_sync(0)?.ok_or(ApiError::NotEnrolled)?;
        let result = sender.transport.sync(&sender.credential, &req).await;
        SyncReport::of(self.apply_sync(&req, result)?)
    }

    /// The background sync task: long-polls while idle, sends at once when records wait,
    /// backs off on failure. Runs until aborted.
    pub(crate) async fn sync_loop(self: Arc<Self>, settings: SyncSettings) {
        let idle_pause = Duration::from_secs(u64::from(settings.idle_pause_secs));
        loop {
            let prepared = match self.prepare_sync(settings.long_poll_secs) {
                Ok(Some(p)) => p,
                // Not enrolled yet: enrollment wakes the task.
                Ok(None) => {
                    self.sync_wanted.notified().await;
                    continue;
                }
                Err(e) => {
                    lock(&self.health).last_sync_error = Some(e.to_string());
                    self.pause(SyncConfig::default().backoff_cap).await;
                    continue;
                }
            };
            let (req, sender) = prepared;
            let send = sender.transport.sync(&sender.credential, &req);
            let result = if req.wait_secs > 0 {
                // New records interrupt an idle long-poll; the server resends anything
                // the dropped answer carried.
                tokio::select! {
                    r = send => r,
                    () = self.sync_wanted.notified() => continue,
                }
            } else {
                send.await
            };
            match self.apply_sync(&req, result) {
                Ok(SyncOutcome::Synced { more: true, .. }) => {}
                Ok(SyncOutcome::Synced { .. }) => {
                    if !idle_pause.is_zero() || req.wait_secs == 0 && req.events.is_empty() {
                        self.pause(idle_pause.max(Duration::from_secs(1))).await;
                    }
                }
                Ok(SyncOutcome::Failed { retry_in, .. }) => self.pause(retry_in).await,
                Err(e) => {
                    lock(&self.health).last_sync_error = Some(e.to_string());
                    self.pause(SyncConfig::default().backoff_cap).await;
                }
            }
        }
    }

    /// Waits `d`, or less if records want sending.
    async fn pause(&self, d: Duration) {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.sync_wanted.notified() => {}
        }
    }
}

/// Resets the "sync task running" flag however the task ends (an abort drops it).
pub(crate) struct RunningGuard(pub(crate) Arc<Shared>, pub(crate) u64);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.end_sync_run(self.1);
    }
}

impl Shared {
    /// Frees the sync slot if loop `run` still holds it.
    pub(crate) fn end_sync_run(&self, run: u64) {
        let _ = self
            .sync_run
            .compare_exchange(run, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}
