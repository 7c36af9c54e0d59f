//! Who may take which phone: the checks and the grant, in one transaction, and the
//! grant's lifecycle after it.
//!
//! Every function here runs inside a transaction the caller opened with
//! [`crate::storage::Storage::transact`]: the checks read the rows the grant then
//! writes, so two taps can never both pass a check only one of them may pass (SQLite
//! runs write transactions one at a time; a backend with concurrent writers must lock
//! the rows these functions read, which its `Tx` does).
//!
//! A grant's life: the server marks the phone `checkout_pending` for the user and
//! remembers the grant (`held_by_grant`). The phone's own records take over when they
//! arrive. Until then the grant holds the phone and counts against the user's limit;
//! when it can no longer be applied — expired unanswered, refused by the phone, or
//! answering a request the phone gave up — the phone and the clinician are freed at
//! once ([`release_if_lapsed`]), audited as `device.grant_lapsed`.

use lanyard_protocol::{DenialCode, DeviceStatus, Timestamp};

use crate::model::Device;
use crate::storage::tx::{AuditEntry, CartSlot, CartWait, CommandState, GrantRow, Holding, Tx};
use crate::storage::{NewCommand, StorageError};

/// How long an acknowledged grant still holds the phone without the phone's own
/// records: they normally arrive in the same sync as the acknowledgement, so this only
/// covers a phone that went dark right after taking the grant.
pub(crate) const ACKNOWLEDGED_GRACE_SECS: u64 = 120;

/// The actor of changes the server makes by itself.
pub(crate) const SERVER_ACTOR: &str = "lanyard";

/// A phone freed because the grant holding it lapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freed {
    /// The phone.
    pub device_id: String,
    /// The cart it was last in.
    pub launchpad_id: Option<String>,
}

impl Freed {
    fn of(device: Device) -> Freed {
        Freed {
            device_id: device.id,
            launchpad_id: device.last_launchpad,
        }
    }
}

/// Whether a grant can still be applied by the phone at `now`.
fn live(grant: &GrantRow, now: Timestamp) -> bool {
    match grant.state {
        CommandState::Pending | CommandState::Delivered => grant.expires_at > now,
        CommandState::Acknowledged => grant.expires_at.plus_secs(ACKNOWLEDGED_GRACE_SECS) > now,
        CommandState::Failed | CommandState::Expired | CommandState::Superseded => false,
    }
}

/// Frees `device_id` if its status rests on a grant that can no longer be applied.
pub(crate) fn release_if_lapsed(
    tx: &dyn Tx,
    device_id: &str,
    now: Timestamp,
) -> Result<Option<Freed>, StorageError> {
    let Some(grant) = tx.held_grant(device_id)? else {
        return Ok(None);
    };
    if live(&grant, now) {
        return Ok(None);
    }
    let Some(device) = tx.device(device_id)? else {
        return Ok(None);
    };
    // A grant nobody took is over: it must not be delivered later either.
    tx.settle_command(device_id, &grant.command_id, CommandState::Expired, now)?;
    tx.set_holding(
        device_id,
        &Holding {
            status: DeviceStatus::CheckedIn,
            user: None,
            grant: None,
        },
    )?;
    audit_lapse(tx, &device, &grant, now)?;
    tracing::info!(device = %device_id, grant = %grant.command_id, state = grant.state.as_str(), "grant lapsed: phone freed");
    Ok(Some(Freed::of(device)))
}

/// Records that a grant stopped holding a phone without the phone ever taking it.
fn audit_lapse(
    tx: &dyn Tx,
    device: &Device,
    grant: &GrantRow,
    now: Timestamp,
) -> Result<(), StorageError> {
    tx.audit(
        &AuditEntry {
            actor: SERVER_ACTOR,
            action: "device.grant_lapsed",
            target_kind: "device",
            target_id: &device.id,
            before: Some(serde_json::json!({
                "status": device.status, "device_user": device.device_user,
                "grant": grant.command_id, "grant_state": grant.state.as_str(),
            })),
            after: Some(serde_json::json!({"status": "checked_in", "device_user": null})),
        },
        now,
    )
}

/// After a phone's records ended the hold of `held` (the grant its status rested on):
/// if the phone refused that grant (or gave up its request), the lapse is recorded as
/// the sweeper would have.
pub(crate) fn settle_after_records(
    tx: &dyn Tx,
    device: Device,
    held: &GrantRow,
    now: Timestamp,
) -> Result<Option<Freed>, StorageError> {
    let Some(grant) = tx.grant(&held.command_id)? else {
        return Ok(None);
    };
    if grant.state == CommandState::Acknowledged || grant.state.outstanding() {
        // The phone took it (its records say what happened), or it is still on its way.
        return Ok(None);
    }
    audit_lapse(tx, &device, &grant, now)?;
    Ok(Some(Freed::of(device)))
}

/// Frees every phone of `username` whose grant lapsed; returns the phones they still hold.
fn held_by(
    tx: &dyn Tx,
    username: &str,
    now: Timestamp,
    freed: &mut Vec<Freed>,
) -> Result<Vec<Device>, StorageError> {
    let mut held = Vec::new();
    for d in tx.devices_held_by(username)? {
        if d.status != DeviceStatus::CheckoutPending {
            held.push(d);
            continue;
        }
        match release_if_lapsed(tx, &d.id, now)? {
            Some(f) => freed.push(f),
            None => held.push(d),
        }
    }
    Ok(held)
}

/// The phone gave up waiting for its request `request_id`: a grant answering it must
/// never unlock the phone later, and holds nobody.
pub(crate) fn abandon_request(
    tx: &dyn Tx,
    device_id: &str,
    request_id: &str,
    now: Timestamp,
) -> Result<Option<Freed>, StorageError> {
    let mut any = false;
    for id in tx.commands_for_request(device_id, request_id)? {
        any |= tx.settle_command(device_id, &id, CommandState::Failed, now)?;
    }
    if any {
        release_if_lapsed(tx, device_id, now)
    } else {
        Ok(None)
    }
}

/// A clinician identified at a phone.
#[derive(Debug, Clone)]
pub(crate) struct PhoneTap<'a> {
    /// The phone.
    pub device_id: &'a str,
    /// The phone's request.
    pub request_id: &'a str,
    /// Who.
    pub username: &'a str,
    /// Their device limit.
    pub limit: u32,
}

/// What a phone tap decided.
#[derive(Debug)]
pub(crate) struct PhoneDecision {
    /// The command answering the phone (a grant or a denial), stored.
    pub command: NewCommand,
}

/// Decides a tap on a phone and stores the answer, in the caller's transaction.
/// `answer` builds the signed command: `None` for a grant, `Some(code)` for a denial.
pub(crate) fn authorize_phone(
    tx: &dyn Tx,
    tap: &PhoneTap<'_>,
    answer: &dyn Fn(Option<DenialCode>) -> Result<NewCommand, StorageError>,
    now: Timestamp,
) -> Result<PhoneDecision, StorageError> {
    let mut freed = Vec::new();
    if let Some(f) = release_if_lapsed(tx, tap.device_id, now)? {
        freed.push(f);
    }
    let device = tx
        .device(tap.device_id)?
        .ok_or(StorageError::NotFound("device"))?;
    let others = held_by(tx, tap.username, now, &mut freed)?
        .into_iter()
        .filter(|d| d.id != tap.device_id)
        .count();
    let holder = device.device_user.as_deref();
    let denial = if device.admin_state.is_some() {
        // Lost or retired phones are never handed out.
        Some(DenialCode::DeviceUnavailable)
    } else if holder.is_some_and(|h| h != tap.username) {
        Some(DenialCode::DeviceUnavailable)
    } else if holder.is_none() && tx.in_service_run(tap.device_id)? {
        // An OS update or an erase is under way on this phone.
        Some(DenialCode::DeviceUnavailable)
    } else if holder != Some(tap.username) && u32::try_from(others).unwrap_or(u32::MAX) >= tap.limit
    {
        Some(DenialCode::UserHasDevice)
    } else {
        None
    };
    let command = answer(denial)?;
    if denial.is_none() {
        // This request replaces any grant still on its way to the phone.
        for g in tx.outstanding_grants(tap.device_id)? {
            tx.settle_command(tap.device_id, &g.command_id, CommandState::Superseded, now)?;
        }
    }
    tx.insert_command(&command, Some(tap.request_id), now)?;
    if denial.is_none() {
        tx.set_holding(
            tap.device_id,
            &Holding {
                status: DeviceStatus::CheckoutPending,
                user: Some(tap.username),
                grant: Some(command.id.as_str()),
            },
        )?;
    }
    Ok(PhoneDecision { command })
}

/// A badge tapped at a cart's reader.
#[derive(Debug, Clone)]
pub(crate) struct CartTap<'a> {
    /// The cart.
    pub launchpad_id: &'a str,
    /// Who tapped.
    pub username: &'a str,
    /// Their device limit.
    pub limit: u32,
    /// Lowest battery a granted phone may have.
    pub min_battery: u8,
    /// How long the cart waits for the unplug.
    pub hold_until: Timestamp,
}

/// The outcome of a badge tap at a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CartClaim {
    /// This phone was granted; its port should flash.
    Granted {
        /// The phone.
        device_id: String,
        /// Its port, when known.
        port: Option<u32>,
    },
    /// The cart still waits for an earlier grant to be unplugged or to lapse.
    Busy {
        /// When that wait ends at the latest.
        until: Timestamp,
        /// The phone waiting to be taken.
        device_id: String,
        /// Its port, when known.
        port: Option<u32>,
    },
    /// No docked, checked-in phone with enough battery.
    NoDevice {
        /// Why each docked phone was passed over, in a sentence for IT.
        why: String,
    },
    /// The user already holds as many phones as allowed.
    UserHasDevice,
}

/// The phone a cart hands out: docked there, checked in, enough battery, not lost or
/// retired; the highest battery first, then the lowest port, then the id, so the
/// choice is deterministic.
fn candidates(mut slots: Vec<CartSlot>, min_battery: u8) -> Vec<CartSlot> {
    slots.retain(|d| {
        d.status == DeviceStatus::CheckedIn
            && d.user.is_none()
            && !d.out_of_service
            && d.battery.is_some_and(|b| b >= min_battery)
    });
    slots.sort_by(|a, b| {
        b.battery
            .cmp(&a.battery)
            .then(a.port.unwrap_or(u32::MAX).cmp(&b.port.unwrap_or(u32::MAX)))
            .then(a.id.cmp(&b.id))
    });
    slots
}

/// Why a cart with these docked phones had none to hand out: each phone counted under
/// the first reason that rules it out, so IT sees at once what to fix (a phone that
/// never reported its battery, a cart of flat phones, phones held by a workflow).
fn why_none(slots: &[CartSlot], min_battery: u8, in_run: usize) -> String {
    if slots.is_empty() {
        return "no phone is docked in this cart".into();
    }
    let (mut out_of_service, mut taken, mut blocked, mut returning) = (0, 0, 0, 0);
    let (mut unknown, mut low) = (0, 0);
    for d in slots {
        if d.out_of_service {
            out_of_service += 1;
            continue;
        }
        match d.status {
            DeviceStatus::CheckedIn if d.user.is_some() => taken += 1,
            DeviceStatus::CheckedIn if d.battery.is_none() => unknown += 1,
            DeviceStatus::CheckedIn => low += usize::from(d.battery < Some(min_battery)),
            DeviceStatus::CheckoutPending | DeviceStatus::CheckedOut => taken += 1,
            DeviceStatus::Blocked => blocked += 1,
            DeviceStatus::Returning | DeviceStatus::Unenrolled => returning += 1,
        }
    }
    let mut parts = Vec::new();
    let mut say = |n: usize, what: String| {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    };
    say(taken, "checked out or waiting to be taken".into());
    say(
        unknown,
        if unknown == 1 {
            "has not reported its battery yet".into()
        } else {
            "have not reported their battery yet".into()
        },
    );
    say(low, format!("below the {min_battery} % battery minimum"));
    say(
        blocked,
        "blocked by a compliance rule (such as low battery or a passcode not cleared)".into(),
    );
    say(returning, "still checking in".into());
    say(in_run, "held by a workflow run".into());
    say(out_of_service, "lost or retired".into());
    format!(
        "no phone available: {} docked ({})",
        slots.len(),
        parts.join(", ")
    )
}

/// Whether the phone a cart granted last is still in the cart waiting for the clinician
/// to take it: pending on that very grant (or, once the phone took it, pending on its
/// own records) and still docked there. A hub-reported unplug, a lapse, a refusal or a
/// later grant of the same phone from elsewhere all end the wait.
fn cart_still_waits(tx: &dyn Tx, launchpad_id: &str, w: &CartWait) -> Result<bool, StorageError> {
    let Some(d) = tx.device(&w.device_id)? else {
        return Ok(false);
    };
    if !(d.status == DeviceStatus::CheckoutPending
        && d.docked
        && d.last_launchpad.as_deref() == Some(launchpad_id))
    {
        return Ok(false);
    }
    let Some(cart_grant) = &w.grant else {
        return Ok(true);
    };
    Ok(match tx.held_grant(&w.device_id)? {
        Some(held) => &held.command_id == cart_grant,
        // The phone's own records hold it: on the cart's grant if the phone took it.
        None => tx
            .grant(cart_grant)?
            .is_some_and(|g| g.state == CommandState::Acknowledged),
    })
}

/// Decides a cart tap and stores the grant, in the caller's transaction. `sign` builds
/// the signed grant for the chosen phone. Also returns the phones freed on the way.
pub(crate) fn claim_at_cart(
    tx: &dyn Tx,
    tap: &CartTap<'_>,
    sign: &dyn Fn(&str) -> Result<NewCommand, StorageError>,
    now: Timestamp,
) -> Result<(CartClaim, Vec<Freed>), StorageError> {
    let mut freed = Vec::new();
    let wait = tx.cart_wait(tap.launchpad_id)?;
    // A user who already holds a phone hears so at once, even at a busy cart.
    let held = held_by(tx, tap.username, now, &mut freed)?.len();
    if u32::try_from(held).unwrap_or(u32::MAX) >= tap.limit {
        return Ok((CartClaim::UserHasDevice, freed));
    }
    let devices = tx.cart_devices(tap.launchpad_id)?;
    // Only a pending phone can rest on a grant.
    for d in devices
        .iter()
        .filter(|d| d.status == DeviceStatus::CheckoutPending)
    {
        if let Some(f) = release_if_lapsed(tx, &d.id, now)? {
            freed.push(f);
        }
    }
    if let Some(w) = wait
        && w.until > now
        && cart_still_waits(tx, tap.launchpad_id, &w)?
    {
        let port = devices
            .iter()
            .find(|d| d.id == w.device_id)
            .and_then(|d| d.port);
        return Ok((
            CartClaim::Busy {
                until: w.until,
                device_id: w.device_id,
                port,
            },
            freed,
        ));
    }
    // Re-read: a lapse above may have freed one of them.
    let devices = if freed.is_empty() {
        devices
    } else {
        tx.cart_devices(tap.launchpad_id)?
    };
    let mut chosen = None;
    let mut in_run = 0;
    for d in candidates(devices.clone(), tap.min_battery) {
        if tx.in_service_run(&d.id)? {
            in_run += 1;
        } else {
            chosen = Some(d);
            break;
        }
    }
    let Some(device) = chosen else {
        let why = why_none(&devices, tap.min_battery, in_run);
        return Ok((CartClaim::NoDevice { why }, freed));
    };
    let command = sign(&device.id)?;
    tx.insert_command(&command, None, now)?;
    tx.set_holding(
        &device.id,
        &Holding {
            status: DeviceStatus::CheckoutPending,
            user: Some(tap.username),
            grant: Some(command.id.as_str()),
        },
    )?;
    tx.set_cart_wait(
        tap.launchpad_id,
        Some(&CartWait {
            device_id: device.id.clone(),
            until: tap.hold_until,
            grant: Some(command.id.as_str().to_owned()),
        }),
    )?;
    Ok((
        CartClaim::Granted {
            device_id: device.id,
            port: device.port,
        },
        freed,
    ))
}

/// Frees every phone whose grant lapsed (the sweeper's pass), at most `limit` looked at.
pub(crate) fn sweep_lapsed(
    tx: &dyn Tx,
    limit: u32,
    now: Timestamp,
) -> Result<Vec<Freed>, StorageError> {
    let mut freed = Vec::new();
    for id in tx.devices_on_grants(limit)? {
        if let Some(f) = release_if_lapsed(tx, &id, now)? {
            freed.push(f);
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(state: CommandState, expires_at: i64) -> GrantRow {
        GrantRow {
            command_id: "c-1".into(),
            state,
            expires_at: Timestamp(expires_at),
        }
    }

    fn slot(id: &str, status: DeviceStatus, battery: Option<u8>) -> CartSlot {
        CartSlot {
            id: id.into(),
            status,
            user: None,
            out_of_service: false,
            battery,
            port: Some(1),
        }
    }

    #[test]
    fn a_cart_with_no_phone_to_hand_out_says_why_each_was_passed_over() {
        assert_eq!(why_none(&[], 20, 0), "no phone is docked in this cart");
        // The first tap of the day: the phone has not reported its battery yet.
        assert_eq!(
            why_none(&[slot("a", DeviceStatus::CheckedIn, None)], 20, 0),
            "no phone available: 1 docked (1 has not reported its battery yet)"
        );
        let mut lost = slot("e", DeviceStatus::CheckedIn, Some(90));
        lost.out_of_service = true;
        let slots = [
            slot("a", DeviceStatus::CheckedIn, None),
            slot("b", DeviceStatus::CheckedIn, None),
            slot("c", DeviceStatus::CheckedIn, Some(5)),
            slot("d", DeviceStatus::CheckoutPending, Some(90)),
            lost,
            slot("f", DeviceStatus::Returning, Some(90)),
            slot("g", DeviceStatus::CheckedIn, Some(90)),
        ];
        assert_eq!(
            why_none(&slots, 20, 1),
            "no phone available: 7 docked (1 checked out or waiting to be taken, \
             2 have not reported their battery yet, 1 below the 20 % battery minimum, \
             1 still checking in, 1 held by a workflow run, 1 lost or retired)"
        );
    }

    #[test]
    fn a_grant_lives_until_it_can_no_longer_be_applied() {
        let now = Timestamp(1_000_000);
        assert!(live(&grant(CommandState::Pending, 1_000_001), now));
        assert!(!live(&grant(CommandState::Pending, 1_000_000), now));
        assert!(live(&grant(CommandState::Delivered, 1_000_001), now));
        assert!(!live(&grant(CommandState::Delivered, 999_999), now));
        // The phone took it: its records will say what happened; until then a grace.
        assert!(live(&grant(CommandState::Acknowledged, 999_999), now));
        assert!(!live(
            &grant(
                CommandState::Acknowledged,
                1_000_000 - i64::try_from(ACKNOWLEDGED_GRACE_SECS * 1000).unwrap_or(0)
            ),
            now
        ));
        for dead in [
            CommandState::Failed,
            CommandState::Expired,
            CommandState::Superseded,
        ] {
            assert!(!live(&grant(dead, 2_000_000), now));
        }
    }
}
