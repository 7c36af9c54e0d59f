//! Prunes what is past its retention ([`crate::domain::retention`]), in small
//! transactions so the writer is never held for long.

use std::time::Duration;

use crate::domain::retention;
use crate::state::AppState;
use crate::storage::Storage;

/// How often the job looks.
pub(crate) const EVERY: Duration = Duration::from_secs(3600);
/// Rows of each kind per transaction.
const BATCH: u32 = 1000;
/// Transactions per pass (the rest waits for the next pass).
const BATCHES: usize = 100;

/// One pass: prunes until nothing is past retention or the pass has done its share.
pub(crate) async fn prune<S: Storage>(st: &AppState<S>) -> Result<usize, crate::error::AppError> {
    let retention = st.retention;
    let mut total = 0;
    for _ in 0..BATCHES {
        if st.is_stopping() {
            break;
        }
        let now = st.now();
        let pruned = st
            .storage
            .transact(move |tx| retention::prune(tx, &retention, now, BATCH))
            .await?;
        let more = pruned.iter().any(|(_, n)| *n as u32 == BATCH);
        for (what, n) in pruned {
            metrics::counter!("lanyard_pruned_rows_total", "what" => what.as_str())
                .increment(n as u64);
            total += n;
        }
        if !more {
            break;
        }
    }
    if total > 0 {
        tracing::info!(rows = total, "pruned what is past its retention");
    }
    Ok(total)
}
