//! The server's mirror of a phone: what its newly applied records say about it, folded
//! in order, and how that meets what the server already holds (a grant still on its
//! way, a passcode clear under way). Pure functions; [`crate::domain::sync`] reads and
//! writes the rows.

use lanyard_protocol::events::Report;
use lanyard_protocol::policy::ConditionKind;
use lanyard_protocol::{CommandId, CommandRejection, DeviceStatus, EventRecord};

use crate::model::PasscodeState;
use crate::storage::tx::CommandState;

/// What the records report about the passcode, the last word in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasscodeSeen {
    /// The platform says a passcode is set.
    Present,
    /// Cleared, or the platform says none is set.
    Absent,
    /// The phone asked the MDM to clear it (first attempt).
    Clearing,
    /// The phone asked again (a retry).
    Retrying,
    /// The phone gave up: the MDM could not clear it.
    ClearFailed,
}

/// What a phone's newly applied records say, folded in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The newest record's status and Device User.
    pub status: Option<(DeviceStatus, Option<String>)>,
    /// On a charger (`Some(true)`) or unplugged.
    pub docked: Option<bool>,
    /// The cart and port of the last dock that named them.
    pub location: Option<(Option<String>, Option<u32>)>,
    /// Battery percent.
    pub battery: Option<u8>,
    /// OS version.
    pub os_version: Option<String>,
    /// Overdue (the phone's own compliance report).
    pub overdue: Option<bool>,
    /// The passcode's last word.
    pub passcode: Option<PasscodeSeen>,
    /// Commands the phone refused, and the state that makes them.
    pub refused: Vec<(CommandId, CommandState)>,
}

/// Folds records applied for the first time, oldest first.
pub fn observe(records: &[EventRecord]) -> Observed {
    let mut o = Observed::default();
    for r in records {
        for report in &r.reports {
            match report {
                Report::Docked { location } => {
                    o.docked = Some(true);
                    if location.launchpad.is_some() || location.port.is_some() {
                        o.location = Some((
                            location.launchpad.as_ref().map(|l| l.to_string()),
                            location.port,
                        ));
                    }
                }
                Report::Undocked => o.docked = Some(false),
                Report::CommandRejected {
                    command_id: Some(id),
                    rejection,
                } => {
                    let state = match rejection {
                        CommandRejection::Superseded => CommandState::Superseded,
                        _ => CommandState::Failed,
                    };
                    o.refused.push((id.clone(), state));
                }
                Report::ComplianceTier {
                    condition: ConditionKind::CheckoutOverdue,
                    ..
                } => o.overdue = Some(true),
                Report::ComplianceResolved {
                    condition: ConditionKind::CheckoutOverdue,
                } => o.overdue = Some(false),
                Report::Facts(f) => {
                    o.battery = f.battery_percent.or(o.battery);
                    o.os_version = f.os_version.map(|v| v.to_string()).or(o.os_version);
                    match f.passcode_present {
                        // A phone still reports its passcode while the clear is under way.
                        Some(true)
                            if !matches!(
                                o.passcode,
                                Some(
                                    PasscodeSeen::Clearing
                                        | PasscodeSeen::ClearFailed
                                        | PasscodeSeen::Retrying
                                )
                            ) =>
                        {
                            o.passcode = Some(PasscodeSeen::Present);
                        }
                        Some(true) => {}
                        Some(false) => o.passcode = Some(PasscodeSeen::Absent),
                        None => {}
                    }
                }
                // A retry keeps a failure on show until the passcode is really gone.
                Report::PasscodeClearRequested { attempt }
                    if *attempt > 1 && o.passcode != Some(PasscodeSeen::ClearFailed) =>
                {
                    o.passcode = Some(PasscodeSeen::Retrying);
                }
                Report::PasscodeClearRequested { attempt } if *attempt > 1 => {}
                Report::PasscodeClearRequested { .. } => o.passcode = Some(PasscodeSeen::Clearing),
                Report::PasscodeClearFailed { .. } => o.passcode = Some(PasscodeSeen::ClearFailed),
                Report::PasscodeCleared => o.passcode = Some(PasscodeSeen::Absent),
                _ => {}
            }
        }
    }
    o.status = records
        .last()
        .map(|r| (r.status, r.user.as_ref().map(|u| u.username.clone())));
    o
}

/// The passcode state after what the phone reported, given the stored one: a phone
/// still reporting its passcode while a clear is under way (or failed) does not hide
/// that; a retry shows as clearing.
pub fn passcode_after(
    stored: Option<PasscodeState>,
    seen: Option<PasscodeSeen>,
) -> Option<PasscodeState> {
    let under_way = matches!(
        stored,
        Some(PasscodeState::Clearing | PasscodeState::ClearFailed)
    );
    match seen {
        None => stored,
        Some(PasscodeSeen::Present | PasscodeSeen::Retrying) if under_way => stored,
        Some(PasscodeSeen::Retrying | PasscodeSeen::Clearing) => Some(PasscodeState::Clearing),
        Some(PasscodeSeen::Present) => Some(PasscodeState::Present),
        Some(PasscodeSeen::Absent) => Some(PasscodeState::Absent),
        Some(PasscodeSeen::ClearFailed) => Some(PasscodeState::ClearFailed),
    }
}

#[cfg(test)]
mod tests {
    use lanyard_protocol::events::FactsReport;
    use lanyard_protocol::{DockLocation, Timestamp};
    use proptest::prelude::*;

    use super::*;

    fn record(seq: u64, reports: Vec<Report>) -> EventRecord {
        EventRecord {
            seq,
            at: Timestamp(0),
            status: DeviceStatus::CheckedIn,
            user: None,
            transition: None,
            reports,
        }
    }

    fn facts(passcode: Option<bool>, battery: Option<u8>) -> Report {
        Report::Facts(FactsReport {
            passcode_present: passcode,
            battery_percent: battery,
            ..FactsReport::default()
        })
    }

    #[test]
    fn the_last_word_wins_and_a_clear_under_way_is_not_hidden() {
        let o = observe(&[
            record(
                1,
                vec![
                    Report::Docked {
                        location: DockLocation {
                            launchpad: Some("cart-1".into()),
                            port: Some(3),
                        },
                    },
                    facts(Some(true), Some(40)),
                ],
            ),
            record(
                2,
                vec![
                    Report::PasscodeClearRequested { attempt: 1 },
                    facts(Some(true), Some(41)),
                ],
            ),
        ]);
        assert_eq!(o.docked, Some(true));
        assert_eq!(o.location, Some((Some("cart-1".into()), Some(3))));
        assert_eq!(o.battery, Some(41));
        assert_eq!(o.passcode, Some(PasscodeSeen::Clearing));
        assert_eq!(
            passcode_after(Some(PasscodeState::Present), o.passcode),
            Some(PasscodeState::Clearing)
        );
        // A failure stays on show through retries until the passcode is gone.
        assert_eq!(
            passcode_after(
                Some(PasscodeState::ClearFailed),
                Some(PasscodeSeen::Retrying)
            ),
            Some(PasscodeState::ClearFailed)
        );
        assert_eq!(
            passcode_after(Some(PasscodeState::ClearFailed), Some(PasscodeSeen::Absent)),
            Some(PasscodeState::Absent)
        );
    }

    fn any_report() -> impl Strategy<Value = Report> {
        prop_oneof![
            Just(Report::Undocked),
            (any::<Option<bool>>(), any::<Option<u8>>()).prop_map(|(p, b)| facts(p, b)),
            (1u32..4).prop_map(|attempt| Report::PasscodeClearRequested { attempt }),
            Just(Report::PasscodeCleared),
            Just(Report::PasscodeClearFailed {
                detail: "no".into()
            }),
        ]
    }

    fn any_stored() -> impl Strategy<Value = Option<PasscodeState>> {
        prop_oneof![
            Just(None),
            proptest::sample::select(PasscodeState::ALL.to_vec()).prop_map(Some),
        ]
    }

    proptest! {
        /// Folding records one sync at a time or all at once ends in the same passcode
        /// state, once the clear has settled (cleared or failed); and a clear under way
        /// is never hidden by a later "passcode present".
        #[test]
        fn a_clear_under_way_is_never_hidden(
            stored in any_stored(),
            reports in proptest::collection::vec(any_report(), 0..12),
        ) {
            let records: Vec<EventRecord> = reports
                .into_iter()
                .enumerate()
                .map(|(i, r)| record(i as u64 + 1, vec![r]))
                .collect();
            let after = passcode_after(stored, observe(&records).passcode);
            let under_way = matches!(stored, Some(PasscodeState::Clearing | PasscodeState::ClearFailed));
            let settled = records.iter().any(|r| matches!(
                r.reports[0],
                Report::PasscodeCleared
                    | Report::PasscodeClearFailed { .. }
                    | Report::Facts(FactsReport { passcode_present: Some(false), .. })
                    | Report::PasscodeClearRequested { attempt: 1 }
            ));
            if under_way && !settled {
                prop_assert_eq!(after, stored);
            }
            // The result is always a state the database accepts.
            prop_assert!(after.is_none() || PasscodeState::ALL.contains(&after.unwrap_or(PasscodeState::Absent)));
        }
    }
}
