//! Where each MDM command stands, kept by CommandUUID. What the server hears about a
//! command — NanoMDM's answer to the enqueue, the device's reports through the webhook,
//! the deadline — can arrive in any order (a device that is already checking in can
//! acknowledge a command before the enqueue call that queued it returns). The state
//! only ever moves up a fixed precedence, so arrival order cannot undo an answer:
//!
//! `requested` < `uncertain` < `queued` < `not_now` < settled by the server (`expired`,
//! `not_queued`, `unknown_enrollment`) < answered by the device (`acknowledged`,
//! `error`, `format_error`).
//!
//! A command is settled once it reaches either of the last two tiers; the first time it
//! does, a Clear Passcode's phone gets its one result. A device's answer after the
//! server gave up is still recorded (the state is the truth) but sends nothing again.

use lanyard_protocol::{ServerCommand, Timestamp};

use crate::domain::commands::new_command;
use crate::keys::ServerKeys;
use crate::model::MdmActivity;
use crate::storage::StorageError;
use crate::storage::tx::{MdmCommandRow, Tx};

/// A command's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MdmState {
    /// Logged; the enqueue call is under way.
    Requested,
    /// The enqueue call got no answer: queued or not, nobody knows.
    Uncertain,
    /// In the device's queue at the MDM.
    Queued,
    /// The device answered NotNow (typically locked); the MDM offers it again.
    NotNow,
    /// No answer from the device by the deadline.
    Expired,
    /// The MDM refused to queue it.
    NotQueued,
    /// The MDM knows no such enrollment.
    UnknownEnrollment,
    /// The device did it.
    Acknowledged,
    /// The device could not do it.
    Error,
    /// The device found the command malformed.
    FormatError,
}

impl MdmState {
    /// Every state, for tests and checks.
    pub const ALL: [MdmState; 10] = [
        MdmState::Requested,
        MdmState::Uncertain,
        MdmState::Queued,
        MdmState::NotNow,
        MdmState::Expired,
        MdmState::NotQueued,
        MdmState::UnknownEnrollment,
        MdmState::Acknowledged,
        MdmState::Error,
        MdmState::FormatError,
    ];

    fn rank(self) -> u8 {
        match self {
            MdmState::Requested => 0,
            MdmState::Uncertain => 1,
            MdmState::Queued => 2,
            MdmState::NotNow => 3,
            MdmState::Expired | MdmState::NotQueued | MdmState::UnknownEnrollment => 4,
            MdmState::Acknowledged | MdmState::Error | MdmState::FormatError => 5,
        }
    }

    /// Answered by the device itself (not settled by the server).
    pub fn answered(self) -> bool {
        self.rank() == 5
    }

    /// Settled: nothing more is waited for (a result went to the phone, if it waits).
    pub fn settled(self) -> bool {
        self.rank() >= 4
    }

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            MdmState::Requested => "requested",
            MdmState::Uncertain => "uncertain",
            MdmState::Queued => "queued",
            MdmState::NotNow => "not_now",
            MdmState::Expired => "expired",
            MdmState::NotQueued => "not_queued",
            MdmState::UnknownEnrollment => "unknown_enrollment",
            MdmState::Acknowledged => "acknowledged",
            MdmState::Error => "error",
            MdmState::FormatError => "format_error",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<MdmState> {
        MdmState::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The state after hearing `next`, or `None` when it changes nothing: only a move
    /// up the precedence counts.
    pub fn after(self, next: MdmState) -> Option<MdmState> {
        (next.rank() > self.rank()).then_some(next)
    }
}

/// The RequestType of the passcode-clear loop: its phone waits for one result.
pub const CLEAR: &str = "ClearPasscode";

/// How long the phone has to apply an MDM outcome.
pub const RESULT_TTL_SECS: u64 = 24 * 3600;

/// What hearing about a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Not a command Lanyard sent (or one pruned long ago): only logged.
    Unknown,
    /// It changed nothing (an answer that arrived after a stronger one).
    Unchanged(MdmState),
    /// It moved the command on; `wake` is the phone that has a result to collect.
    Moved {
        /// Before.
        from: MdmState,
        /// After.
        to: MdmState,
        /// The phone a passcode result was queued for.
        wake: Option<String>,
    },
}

/// Records what was heard about command `uuid` — the activity entry always, the state
/// only if `state` outranks it — and, the first time a Clear Passcode settles, queues
/// the phone's one result (cleared only when the device acknowledged). One
/// transaction: no arrival order can send two results or undo an answer.
pub fn hear(
    tx: &dyn Tx,
    keys: &ServerKeys,
    uuid: &str,
    state: MdmState,
    entry: &MdmActivity,
    now: Timestamp,
) -> Result<Heard, StorageError> {
    tx.insert_mdm_activity(entry, now)?;
    let Some(row) = tx.mdm_command(uuid)? else {
        return Ok(Heard::Unknown);
    };
    let Some(to) = row.state.after(state) else {
        return Ok(Heard::Unchanged(row.state));
    };
    tx.set_mdm_command_state(uuid, to, entry.detail.as_deref(), now)?;
    let mut wake = None;
    if to.settled()
        && !row.state.settled()
        && row.request_type == CLEAR
        && let Some(device_id) = &row.device_id
    {
        let cleared = to == MdmState::Acknowledged;
        let result = ServerCommand::PasscodeClearResult {
            cleared,
            detail: (!cleared).then(|| {
                entry
                    .detail
                    .clone()
                    .unwrap_or_else(|| to.as_str().to_owned())
            }),
        };
        let cmd = new_command(
            keys,
            device_id,
            result,
            now,
            now.plus_secs(RESULT_TTL_SECS),
            false,
        )?;
        tx.insert_command(&cmd, None, now)?;
        wake = Some(device_id.clone());
    }
    Ok(Heard::Moved {
        from: row.state,
        to,
        wake,
    })
}

/// Logs a new command as requested and starts its state.
pub fn start(
    tx: &dyn Tx,
    uuid: &str,
    entry: &MdmActivity,
    now: Timestamp,
) -> Result<(), StorageError> {
    tx.insert_mdm_activity(entry, now)?;
    tx.insert_mdm_command(&MdmCommandRow {
        uuid: uuid.to_owned(),
        device_id: entry.device_id.clone(),
        udid: entry.udid.clone(),
        request_type: entry.request_type.clone().unwrap_or_default(),
        state: MdmState::Requested,
        detail: None,
        requested_at: now.as_millis(),
        updated_at: now.as_millis(),
        probe: None,
        push_failed_at: None,
    })
}

/// What the passcode loop does at a phone's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearStep {
    /// Enqueue this new ClearPasscode (already logged as requested).
    Send(String),
    /// The phone's ClearPasscode is still waiting on the device: push it, never queue a
    /// second copy.
    Remind(String),
    /// Nothing is waiting and no new one can be built (no UnlockToken yet).
    CannotSend,
    /// The waiting one passed its deadline: it is expired and the phone told.
    GaveUp {
        /// The phone to wake for its result.
        wake: Option<String>,
    },
}

/// At a phone's request for its passcode to be cleared: remind the device of the
/// ClearPasscode it still waits on, give up on it past `deadline_ms`, or start a new
/// one when `can_send` — decided and recorded in one transaction, so two requests never
/// start two.
pub fn begin_clear(
    tx: &dyn Tx,
    keys: &ServerKeys,
    device_id: &str,
    udid: &str,
    can_send: bool,
    deadline_ms: i64,
    now: Timestamp,
) -> Result<ClearStep, StorageError> {
    let log = |uuid: &str, kind: &str, detail: Option<String>| MdmActivity {
        id: 0,
        udid: udid.to_owned(),
        device_id: Some(device_id.to_owned()),
        command_uuid: Some(uuid.to_owned()),
        request_type: Some(CLEAR.to_owned()),
        kind: kind.to_owned(),
        detail,
        at: 0,
    };
    if let Some(open) = tx.latest_mdm_command(device_id, CLEAR)?
        && !open.state.settled()
    {
        if now.as_millis() - open.requested_at < deadline_ms {
            tx.insert_mdm_activity(&log(&open.uuid, "retry", None), now)?;
            return Ok(ClearStep::Remind(open.uuid));
        }
        let why = format!(
            "no result from the phone within {} min (last heard: {}); a new Clear Passcode \
             goes out on the phone's next request",
            deadline_ms / 60_000,
            open.state.as_str()
        );
        let heard = hear(
            tx,
            keys,
            &open.uuid,
            MdmState::Expired,
            &log(&open.uuid, "expired", Some(why)),
            now,
        )?;
        let wake = match heard {
            Heard::Moved { wake, .. } => wake,
            _ => None,
        };
        return Ok(ClearStep::GaveUp { wake });
    }
    if !can_send {
        return Ok(ClearStep::CannotSend);
    }
    let uuid = crate::mdm::command_uuid().map_err(crate::keys::to_storage)?;
    start(tx, &uuid, &log(&uuid, "requested", None), now)?;
    Ok(ClearStep::Send(uuid))
}

/// The device answered probe `probe`, a DeviceInformation sent about commands left
/// unanswered. NanoMDM hands a device its queue oldest first, so a command queued
/// before the probe and still unanswered was delivered and its answer lost (NanoMDM
/// does not resend a webhook that failed), or was never queued at all. Settles each:
/// a Clear Passcode as acknowledged when the phone itself reports no passcode; a
/// command whose enqueue got no answer as not queued; any other as expired, its outcome
/// unknown. Returns the phones with a passcode result to collect.
pub fn after_probe(
    tx: &dyn Tx,
    keys: &ServerKeys,
    probe: &str,
    now: Timestamp,
) -> Result<Vec<String>, StorageError> {
    let mut wake = Vec::new();
    for row in tx.probed_by(probe)? {
        if row.state.settled() || row.state == MdmState::NotNow {
            continue;
        }
        let passcode_gone = match &row.device_id {
            Some(d) if row.request_type == CLEAR => tx
                .device(d)?
                .is_some_and(|d| d.passcode == Some(crate::model::PasscodeState::Absent)),
            _ => false,
        };
        let (state, why) = if passcode_gone {
            (
                MdmState::Acknowledged,
                "reconciled: its answer never reached Lanyard, and the phone reports no passcode",
            )
        } else if matches!(row.state, MdmState::Uncertain | MdmState::Requested) {
            (
                MdmState::NotQueued,
                "reconciled: the device answered a later probe and never this command, so it was not queued",
            )
        } else {
            (
                MdmState::Expired,
                "reconciled: the device answered a later probe, but this command's answer never \
                 reached Lanyard (a lost webhook); its outcome is unknown",
            )
        };
        let entry = MdmActivity {
            id: 0,
            udid: row.udid.clone(),
            device_id: row.device_id.clone(),
            command_uuid: Some(row.uuid.clone()),
            request_type: Some(row.request_type.clone()),
            kind: "reconciled".into(),
            detail: Some(why.to_owned()),
            at: 0,
        };
        if let Heard::Moved { wake: Some(d), .. } = hear(tx, keys, &row.uuid, state, &entry, now)? {
            wake.push(d);
        }
    }
    Ok(wake)
}

#[cfg(test)]
mod tests {
    use super::MdmState;
    use proptest::prelude::*;

    fn any_state() -> impl Strategy<Value = MdmState> {
        proptest::sample::select(MdmState::ALL.to_vec())
    }

    proptest! {
        /// Whatever order the answers arrive in, the command ends in the highest-ranked
        /// one heard, settles at most once, and an answer from the device is never
        /// replaced.
        #[test]
        fn arrival_order_never_undoes_an_answer(heard in proptest::collection::vec(any_state(), 0..12)) {
            let mut state = MdmState::Requested;
            let mut settlements = 0;
            let mut answered: Option<MdmState> = None;
            for h in &heard {
                if let Some(next) = state.after(*h) {
                    if next.settled() && !state.settled() {
                        settlements += 1;
                    }
                    state = next;
                }
                if matches!(h, MdmState::Acknowledged | MdmState::Error | MdmState::FormatError)
                    && answered.is_none()
                {
                    answered = Some(*h);
                }
                if let Some(a) = answered {
                    // Once the device answered, only another device answer of the same
                    // rank could be heard — and it changes nothing.
                    prop_assert_eq!(state, a);
                }
            }
            prop_assert!(settlements <= 1);
            let best = heard.iter().copied().fold(MdmState::Requested, |b, h| b.after(h).unwrap_or(b));
            prop_assert_eq!(state, best);
        }
    }

    #[test]
    fn a_late_sent_after_an_acknowledgement_changes_nothing_and_the_stored_form_round_trips() {
        assert_eq!(MdmState::Acknowledged.after(MdmState::Queued), None);
        assert_eq!(MdmState::Acknowledged.after(MdmState::Expired), None);
        assert_eq!(MdmState::NotNow.after(MdmState::Queued), None);
        assert_eq!(
            MdmState::Queued.after(MdmState::NotNow),
            Some(MdmState::NotNow)
        );
        assert_eq!(
            MdmState::Expired.after(MdmState::Acknowledged),
            Some(MdmState::Acknowledged)
        );
        for s in MdmState::ALL {
            assert_eq!(MdmState::parse(s.as_str()), Some(s));
        }
    }
}
