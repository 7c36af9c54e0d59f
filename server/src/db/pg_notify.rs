//! [`Notifier`] across replicas over PostgreSQL's LISTEN/NOTIFY: a wake-up raised on one
//! server reaches the waiters of every server on the same database (a phone
//! long-polling replica B hears the check-in an admin made on replica A).
//!
//! Each wake-up is delivered locally at once and published on the `lanyard_wake`
//! channel by a sender thread; a listener thread wakes this process's subscriptions
//! for wake-ups other replicas publish. When the listening connection is lost,
//! everything waiting here is woken once after it is back (a notification may have
//! been missed meanwhile; a waiter that finds nothing new simply waits again).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::Notify;

use crate::notify::{LocalNotifier, Notifier};

/// The channel every replica listens on.
const CHANNEL: &str = "lanyard_wake";
/// Wake-ups waiting to be published at most; past it they are dropped (and counted):
/// a waiter then finds its news at its next look, at most one long-poll later.
const QUEUE: usize = 10_000;
/// Most wake-ups sent in one round trip.
const BATCH: usize = 256;

/// Wake-ups within this process and, through PostgreSQL, in every other replica.
pub struct PgNotifier {
    local: Arc<LocalNotifier>,
    outbox: SyncSender<String>,
    /// Marks this process's own messages, which it has delivered already.
    origin: String,
}

impl PgNotifier {
    /// Starts the sender and listener threads on `config`'s database.
    pub fn start(config: super::pg::PgTarget) -> Result<PgNotifier, super::DbError> {
        let local = Arc::new(LocalNotifier::default());
        let origin = crate::keys::hex(
            &crate::keys::random_bytes(8)
                .map_err(|e| super::DbError::Connect(format!("randomness: {e:#}")))?,
        );
        let (outbox, rx) = sync_channel::<String>(QUEUE);
        let sender_config = config.clone();
        std::thread::Builder::new()
            .name("lanyard-pg-notify".into())
            .spawn(move || send_loop(&sender_config, &rx))
            .map_err(|e| super::DbError::Join(e.to_string()))?;
        // Weak: the listener ends once the server's state (and this notifier) is gone.
        let listener_local = Arc::downgrade(&local);
        let listener_origin = origin.clone();
        std::thread::Builder::new()
            .name("lanyard-pg-listen".into())
            .spawn(move || listen_loop(&config, &listener_local, &listener_origin))
            .map_err(|e| super::DbError::Join(e.to_string()))?;
        Ok(PgNotifier {
            local,
            outbox,
            origin,
        })
    }
}

impl Notifier for PgNotifier {
    fn notify(&self, topic: &str) {
        self.local.notify(topic);
        match self.outbox.try_send(format!("{}|{topic}", self.origin)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("lanyard_wakeups_dropped_total").increment(1);
                tracing::warn!(topic, "wake-up queue full; other replicas hear of it late");
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!(topic, "the wake-up sender has stopped");
            }
        }
    }

    fn subscribe(&self, topic: &str) -> Arc<Notify> {
        self.local.subscribe(topic)
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(5)))
}

fn send_loop(config: &super::pg::PgTarget, rx: &Receiver<String>) {
    let mut client: Option<postgres::Client> = None;
    let mut failures = 0u32;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        batch.sort();
        batch.dedup();
        loop {
            if client.as_ref().is_none_or(postgres::Client::is_closed) {
                client = config
                    .connect()
                    .map_err(|e| {
                        let error = super::pg_target::describe(&e);
                        tracing::warn!(%error, "wake-up sender cannot connect");
                    })
                    .ok();
            }
            let Some(c) = client.as_mut() else {
                failures += 1;
                std::thread::sleep(backoff(failures));
                if failures > 8 {
                    // Waiters elsewhere find the news at their next look.
                    tracing::error!(dropped = batch.len(), "wake-ups not published");
                    break;
                }
                continue;
            };
            match c.execute(
                "SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m",
                &[&CHANNEL, &batch],
            ) {
                Ok(_) => {
                    failures = 0;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "publishing wake-ups failed");
                    client = None;
                    failures += 1;
                    if failures > 8 {
                        break;
                    }
                    std::thread::sleep(backoff(failures));
                }
            }
        }
    }
}

/// How often the listener checks whether its server is still there.
const LISTEN_TICK: Duration = Duration::from_secs(1);

fn listen_loop(config: &super::pg::PgTarget, local: &std::sync::Weak<LocalNotifier>, origin: &str) {
    let mut attempt = 0u32;
    let mut connected_before = false;
    while local.strong_count() > 0 {
        let mut client = match config.connect() {
            Ok(c) => c,
            Err(e) => {
                attempt += 1;
                let error = super::pg_target::describe(&e);
                tracing::warn!(%error, "wake-up listener cannot connect");
                std::thread::sleep(backoff(attempt));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!(error = %e, "LISTEN failed");
            attempt += 1;
            std::thread::sleep(backoff(attempt));
            continue;
        }
        attempt = 0;
        if connected_before && let Some(local) = local.upgrade() {
            // Anything published while we were away is lost: every waiter looks again.
            local.notify_all();
        }
        connected_before = true;
        while !client.is_closed() {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(LISTEN_TICK);
            let Some(local) = local.upgrade() else {
                return;
            };
            loop {
                match iter.next() {
                    Ok(Some(n)) => {
                        if let Some((from, topic)) = n.payload().split_once('|')
                            && from != origin
                        {
                            local.notify(topic);
                        }
                    }
                    // A quiet tick: see whether the server is still there.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "wake-up listener lost its connection");
                        break;
                    }
                }
            }
        }
    }
}
