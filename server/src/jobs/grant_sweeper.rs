//! Frees phones held by grants that lapsed: a cart grant whose phone never synced, a
//! phone grant whose answer was lost. A tap frees the clinician's own lapsed grants at
//! once; this pass frees the rest, so a phone nobody takes goes back into service and
//! its cart stops waiting.

use std::time::Duration;

use crate::domain::grants;
use crate::state::AppState;
use crate::storage::Storage;

/// How often the sweeper looks. A lapsed grant is freed within its window plus this.
pub(crate) const EVERY: Duration = Duration::from_secs(10);
/// Most phones looked at in one pass (the rest wait for the next).
const PASS_LIMIT: u32 = 500;

/// One pass: frees what lapsed and wakes the carts that waited on it.
pub(crate) async fn sweep<S: Storage>(st: &AppState<S>) -> Result<usize, crate::error::AppError> {
    let now = st.now();
    let freed = st
        .storage
        .transact(move |tx| grants::sweep_lapsed(tx, PASS_LIMIT, now))
        .await?;
    if !freed.is_empty() {
        tracing::info!(freed = freed.len(), "lapsed grants freed");
    }
    Ok(freed.len())
}
