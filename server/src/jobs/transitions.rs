//! Drains the transition outbox of what a sync left behind: the sync drains its own
//! changes right away, so this only finds those of a sync whose drain failed or whose
//! process died between the two transactions. Consuming is idempotent
//! ([`crate::workflows::triggers::drain`]), so running beside the syncs is safe.

use std::time::Duration;

use crate::state::AppState;
use crate::storage::Storage;

/// How often leftovers are looked for (and once at start).
pub(crate) const EVERY: Duration = Duration::from_secs(15);
/// Most devices drained in one pass.
const PASS_LIMIT: u32 = 200;

/// One pass.
pub(crate) async fn drain<S: Storage>(st: &AppState<S>) -> Result<usize, crate::error::AppError> {
    let created = crate::workflows::triggers::drain_leftovers(st, PASS_LIMIT).await?;
    if created > 0 {
        tracing::info!(runs = created, "automation runs from queued transitions");
    }
    Ok(created)
}
