//! A phone's sync: its records stored and mirrored, what they settle, what they
//! trigger, and the commands it takes back — one transaction.

use lanyard_protocol::events::{Report, Transition};
use lanyard_protocol::{CommandId, DeviceStatus, EventRecord, Signed, Timestamp};

use super::claims::{self, ClaimContext};
use super::grants::{self, Freed};
use super::mirror;
use crate::storage::tx::{CommandState, MirrorUpdate};
use crate::storage::{StorageError, Tx};

/// How far past the last stored record a phone's records may reach (a phone sends its
/// outbox oldest first, at most 1,000 a request).
pub const SEQUENCE_WINDOW: u64 = 2_000;

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

/// How stale a phone's recorded contact may get before an empty sync records it again.
/// Contact only has to be as fine as what reads it: a port is held for 15 minutes
/// ([`claims::PORT_HOLD_MS`]) and the console shows minutes.
pub(crate) const CONTACT_EVERY_MS: i64 = 60_000;

impl SyncApplied {
    /// What an empty sync that changed nothing comes to.
    pub(crate) fn nothing(acked_seq: u64) -> SyncApplied {
        SyncApplied {
            acked_seq,
            commands: Vec::new(),
            transitions: Vec::new(),
            freed: Vec::new(),
            passcode_clear_requested: false,
        }
    }
}

/// Whether a sync with no records and no handled commands, from `device` as read when
/// its credential was checked, may be answered without a write transaction: the phone is
/// in service, rests on no grant, nothing waits for it (`outstanding`: commands not
/// yet acknowledged), and its contact was recorded within [`CONTACT_EVERY_MS`]. Each
/// held long-poll re-arms this way, so an idle fleet costs reads, not writes. A command
/// queued after the read wakes the long-poll, which then takes it in a write.
pub(crate) fn quiet(device: &crate::model::Device, outstanding: bool, now: Timestamp) -> bool {
    device.admin_state.is_none()
        && device.status != DeviceStatus::CheckoutPending
        && !outstanding
        && device
            .last_contact
            .is_some_and(|t| (0..CONTACT_EVERY_MS).contains(&(now.as_millis() - t)))
}

/// Applies one sync of `device_id`, in the caller's transaction.
pub fn apply(
    tx: &dyn Tx,
    device_id: &str,
    events: Vec<EventRecord>,
    handled: &[CommandId],
    cx: &ClaimContext,
    now: Timestamp,
) -> Result<SyncApplied, StorageError> {
    let before = tx
        .device(device_id)?
        .ok_or(StorageError::NotFound("device"))?;
    // Records far past what is stored would be kept for ever waiting for the gap to
    // fill: a phone sends at most this many ahead.
    if let Some(r) = events
        .iter()
        .find(|r| r.seq > before.last_seq.saturating_add(SEQUENCE_WINDOW))
    {
        return Err(StorageError::Rejected(format!(
            "record {} is more than {SEQUENCE_WINDOW} past the last one stored ({}): send the records in between first",
            r.seq, before.last_seq
        )));
    }
    if before.admin_state.is_some() {
        return out_of_service(tx, device_id, &before, events, handled, now);
    }
    // Only a pending phone can rest on a server grant: the grant bookkeeping below is
    // skipped for every other sync (most of them).
    let was_pending = before.status == DeviceStatus::CheckoutPending;
    let held = if was_pending {
        tx.held_grant(device_id)?.map(|g| (before.clone(), g))
    } else {
        None
    };
    let (acked_seq, applied) = tx.store_records(device_id, before.last_seq, events, now)?;
    // Stored as sent (the phone's own history); mirrored and acted on only as far as
    // the server can check it.
    let vetted = claims::vet(tx, &before, applied, cx, now)?;
    claims::record(tx, device_id, &vetted.refused, now)?;
    let applied = vetted.records;
    let observed = mirror::observe(&applied);
    // Refusals first: a refused grant is no longer on its way.
    for (command, state) in &observed.refused {
        tx.settle_command(device_id, command.as_str(), *state, now)?;
    }
    // Whether the status still rests on the grant it rested on before these records.
    let mut still_held = held.is_some();
    if let Some((status, user)) = observed.status.clone() {
        let in_flight = status == DeviceStatus::CheckedIn
            && was_pending
            && grant_in_flight(tx, device_id, handled, now)?;
        // Records the phone made before it received a grant still say "checked in,
        // nobody": they must not undo the pending checkout (else the cart could hand
        // the same phone, or the user a second one, meanwhile). The phone's own
        // record of the grant, its refusal, or the grant's lapse settles it.
        let (status, user) = if in_flight {
            (before.status, before.device_user.clone())
        } else {
            (status, user)
        };
        let update = MirrorUpdate {
            // A checkout that ended is no longer overdue, whatever the last report said.
            overdue: if user.is_none() && !in_flight {
                Some(false)
            } else {
                observed.overdue
            },
            status,
            user,
            keep_grant: in_flight,
            location: observed.location.clone(),
            docked: observed.docked,
            battery: observed.battery,
            os_version: observed.os_version.clone(),
            passcode: mirror::passcode_after(before.passcode, observed.passcode),
            last_seq: acked_seq,
            last_contact: now,
        };
        tx.set_mirror(device_id, &update)?;
        still_held &= in_flight;
    } else {
        tx.touch_device(device_id, acked_seq, now)?;
    }
    tx.acknowledge(device_id, handled, now)?;
    let mut freed: Vec<Freed> = Vec::new();
    if let Some((device, grant)) = held.filter(|_| !still_held) {
        freed.extend(grants::settle_after_records(tx, device, &grant, now)?);
    }
    let mut passcode_clear_requested = false;
    for record in &applied {
        if record.reports.is_empty() {
            continue;
        }
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
    if still_held {
        freed.extend(grants::release_if_lapsed(tx, device_id, now)?);
    }
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

/// Whether the grant the phone rests on is still on its way to it: outstanding, not
/// expired, and not among the commands this very sync reports handled.
fn grant_in_flight(
    tx: &dyn Tx,
    device_id: &str,
    handled: &[CommandId],
    now: Timestamp,
) -> Result<bool, StorageError> {
    Ok(tx.held_grant(device_id)?.is_some_and(|g| {
        matches!(g.state, CommandState::Pending | CommandState::Delivered)
            && g.expires_at > now
            && !handled.iter().any(|h| h.as_str() == g.command_id)
    }))
}

/// A phone marked lost (or retired, until it has collected its Unenroll) still syncs —
/// it must hear the commands IT sends it — and its records are kept, but nothing it
/// says changes what the server holds: only when it was last heard from, which IT sees
/// (once an hour) as a security event.
fn out_of_service(
    tx: &dyn Tx,
    device_id: &str,
    before: &crate::model::Device,
    events: Vec<EventRecord>,
    handled: &[CommandId],
    now: Timestamp,
) -> Result<SyncApplied, StorageError> {
    let (acked_seq, _) = tx.store_records(device_id, before.last_seq, events, now)?;
    tx.touch_device(device_id, acked_seq, now)?;
    tx.acknowledge(device_id, handled, now)?;
    let state = before.admin_state.as_deref().unwrap_or("out of service");
    claims::note_once(
        tx,
        device_id,
        "out_of_service_contact",
        &format!("a phone marked {state} synced (its records are kept, not applied)"),
        now,
    )?;
    Ok(SyncApplied {
        acked_seq,
        commands: tx.take_commands(device_id, now)?,
        transitions: Vec::new(),
        freed: Vec::new(),
        passcode_clear_requested: false,
    })
}
