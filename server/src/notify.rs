//! Wake-ups: a long-poll waiting for its phone's commands,
//! the workflow engine and the mailer. Whoever changes something notifies its topic;
//! whoever waits subscribes to it first, then looks, then waits (so a change between
//! the look and the wait is never missed).
//!
//! [`LocalNotifier`] wakes tasks of this process; a backend shared by several replicas
//! implements [`Notifier`] over its own channel (PostgreSQL's LISTEN/NOTIFY) and wakes
//! the same local subscriptions when a message arrives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// The topic of a device's long-poll.
pub fn device_topic(device_id: &str) -> String {
    format!("device:{device_id}")
}

/// The topic a phone's new long-poll signals to end its earlier ones (this process's).
pub fn poll_topic(device_id: &str) -> String {
    format!("poll:{device_id}")
}

/// The workflow engine's topic (a run was created, or something a run waits on).
pub const ENGINE: &str = "job:engine";
/// The mailer's topic (an email was queued).
pub const MAILER: &str = "job:mailer";

/// Publishes and subscribes to wake-ups.
pub trait Notifier: Send + Sync + 'static {
    /// Wakes one waiter of `topic`, or lets the next wait of a current subscription
    /// return at once.
    fn notify(&self, topic: &str);
    /// A subscription to `topic`; keep it while looking and waiting.
    fn subscribe(&self, topic: &str) -> Arc<Notify>;
}

/// Subscriptions kept before dead ones are swept from the map.
const SWEEP_AT: usize = 4096;

/// Wake-ups within this process. The map holds only subscriptions someone still
/// keeps (weakly), so it stays as small as the set of current waiters.
#[derive(Default)]
pub struct LocalNotifier {
    topics: Mutex<HashMap<String, Weak<Notify>>>,
}

impl LocalNotifier {
    /// Wakes every current subscription once: what a replica does when it may have
    /// missed wake-ups from the others (each waiter looks again).
    pub fn notify_all(&self) {
        let live: Vec<Arc<Notify>> = self
            .topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for n in live {
            n.notify_one();
        }
    }
}

impl Notifier for LocalNotifier {
    fn notify(&self, topic: &str) {
        let live = self
            .topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .and_then(Weak::upgrade);
        if let Some(n) = live {
            n.notify_one();
        }
    }

    fn subscribe(&self, topic: &str) -> Arc<Notify> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = topics.get(topic).and_then(Weak::upgrade) {
            return n;
        }
        if topics.len() >= SWEEP_AT {
            topics.retain(|_, w| w.strong_count() > 0);
        }
        let n = Arc::new(Notify::new());
        topics.insert(topic.to_owned(), Arc::downgrade(&n));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_notification_reaches_a_subscriber_that_waits_later() {
        let n = LocalNotifier::default();
        let sub = n.subscribe("device:a");
        n.notify("device:a");
        // Stored as a permit: the wait returns at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), sub.notified())
            .await
            .unwrap();
        // Nobody subscribed: nothing is kept.
        n.notify("device:b");
        assert_eq!(n.topics.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_map_keeps_only_live_subscriptions() {
        let n = LocalNotifier::default();
        let kept = n.subscribe("device:kept");
        for i in 0..(SWEEP_AT * 2) {
            drop(n.subscribe(&format!("device:{i}")));
        }
        let len = n.topics.lock().unwrap().len();
        assert!(len <= SWEEP_AT + 1, "{len}");
        assert!(Arc::ptr_eq(&kept, &n.subscribe("device:kept")));
    }
}
