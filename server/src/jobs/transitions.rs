//! Drains the transition outbox of what a sync left behind: the sync drains its own
//! changes right away, so this only finds those of a sync whose drain failed or whose
//! process died between the two transactions. Consuming is idempotent
//! ([`crate::workflows::triggers::drain`]), so running beside the syncs is safe.

use std::time::Duration;

use crate::state::AppState;
use crate::storage::Storage;

/// How often leftovers are looked for (and once at start).
const EVERY: Duration = Duration::from_secs(15);
/// Most devices drained in one pass.
const PASS_LIMIT: u32 = 200;

/// Runs the drain at start and every [`EVERY`].
pub(crate) fn spawn<S: Storage>(st: AppState<S>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match crate::workflows::triggers::drain_leftovers(&st, PASS_LIMIT).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "automation runs from queued transitions"),
                Err(e) => tracing::warn!(error = %e, "transition outbox drain failed"),
            }
        }
    })
}
