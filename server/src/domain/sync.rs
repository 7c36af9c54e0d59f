//! A phone's sync: its records stored and mirrored, what they settle, what they
//! trigger, and the commands it takes back — one transaction.

use lanyard_protocol::events::{Report, Transition};
use lanyard_protocol::{CommandId, EventRecord, Signed, Timestamp};

use super::grants::{self, Freed};
use crate::storage::{StorageError, Tx};

/// What applying a sync did.
#[derive(Debug, Clone)]
pub struct SyncApplied {
    /// Highest contiguous sequence stored.
    pub acked_seq: u64,
    /// Commands to deliver now (marked delivered in the same transaction).
    pub commands: Vec<Signed>,
    /// The status changes this sync applied for the first time, by sequence, now in
    /// the transition outbox (what automation rules trigger on; a repeated batch
    /// yields none).
    pub transitions: Vec<(u64, Transition)>,
    /// Phones freed because their grant lapsed (their carts may wake).
    pub freed: Vec<Freed>,
    /// The phone asked for its passcode to be cleared.
    pub passcode_clear_requested: bool,
}

/// Applies one sync of `device_id`, in the caller's transaction.
pub fn apply(
    tx: &dyn Tx,
    device_id: &str,
    events: Vec<EventRecord>,
    handled: &[CommandId],
    now: Timestamp,
) -> Result<SyncApplied, StorageError> {
    let held = grants::holding(tx, device_id)?;
    let (acked_seq, applied) = tx.apply_records(device_id, events, handled, now)?;
    let mut freed = Vec::new();
    freed.extend(grants::settle_after_records(tx, held, now)?);
    let mut passcode_clear_requested = false;
    for record in &applied {
        for report in &record.reports {
            match report {
                Report::AuthorizationAbandoned { request_id } => {
                    freed.extend(grants::abandon_request(
                        tx,
                        device_id,
                        request_id.as_str(),
                        now,
                    )?);
                }
                Report::PasscodeClearRequested { .. } => passcode_clear_requested = true,
                _ => {}
            }
        }
    }
    // A refusal of the grant (or its expiry) ends what it held, now rather than at the
    // sweeper's next pass.
    freed.extend(grants::release_if_lapsed(tx, device_id, now)?);
    let transitions: Vec<(u64, Transition)> = applied
        .into_iter()
        .filter_map(|r| r.transition.map(|t| (r.seq, t)))
        .collect();
    if !transitions.is_empty() {
        tx.queue_transitions(device_id, &transitions, now)?;
    }
    let commands = tx.take_commands(device_id, now)?;
    Ok(SyncApplied {
        acked_seq,
        commands,
        transitions,
        freed,
        passcode_clear_requested,
    })
}
