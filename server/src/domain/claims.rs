//! What a phone may say about itself. A phone's records are its own history and are
//! stored as sent, but the server mirrors only what it can check: a checkout must rest
//! on a grant the server issued to that phone for that user (or, offline, name a user
//! the server knows); a dock must name a real cart and a port in range that no other
//! phone holds; values must be in range. A claim that fails is left out of the mirror
//! and out of automation, and recorded as a security event.

use lanyard_protocol::events::{Cause, Report};
use lanyard_protocol::{DockLocation, EventRecord, Timestamp, UnlockMethod};

use crate::model::Device;
use crate::storage::tx::{NewSecurityEvent, PortOccupant};
use crate::storage::{StorageError, Tx};

/// How long a phone docked in a port without a word from it (nor from the cart's hub)
/// still holds that port against another phone's claim: a phone whose battery died in
/// the cart stops reporting, and the next phone put in its port must not be refused
/// for ever.
pub const PORT_HOLD_MS: i64 = 15 * 60 * 1000;

/// What the server knows beyond the rows it reads, for checking claims.
#[derive(Debug, Clone, Default)]
pub struct ClaimContext {
    /// The policy's emergency-PIN user (besides the MDM-configured PIN's user).
    pub emergency_user: Option<String>,
}

/// A claim the server refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The record that made it.
    pub seq: u64,
    /// Stable kind, e.g. `unknown_grant`.
    pub kind: &'static str,
    /// What was claimed and why it was refused.
    pub detail: String,
}

/// The records as the server accepts them, and what it refused.
#[derive(Debug, Clone, Default)]
pub struct Vetted {
    /// The records with every refused claim taken out: a refused checkout keeps the
    /// status and user the server already trusted (and no transition); a refused dock
    /// is dropped, a refused value is dropped from its report.
    pub records: Vec<EventRecord>,
    /// What was refused, in record order.
    pub refused: Vec<Refusal>,
}

/// Checks newly applied records of `device` (oldest first) in the caller's transaction.
pub fn vet(
    tx: &dyn Tx,
    device: &Device,
    records: Vec<EventRecord>,
    cx: &ClaimContext,
    now: Timestamp,
) -> Result<Vetted, StorageError> {
    let mut trusted_user = device.device_user.clone();
    let mut trusted_status = device.status;
    let mut out = Vetted::default();
    for mut record in records {
        let seq = record.seq;
        if let Err((kind, detail)) = check_user(tx, device, &record, trusted_user.as_deref(), cx)? {
            out.refused.push(Refusal { seq, kind, detail });
            record.status = trusted_status;
            record.user = trusted_user.as_ref().map(|u| lanyard_protocol::UserRef {
                username: u.clone(),
                display_name: String::new(),
            });
            record.transition = None;
        }
        trusted_user = record.user.as_ref().map(|u| u.username.clone());
        trusted_status = record.status;
        let mut reports = Vec::with_capacity(record.reports.len());
        for mut report in std::mem::take(&mut record.reports) {
            match &mut report {
                Report::Docked { location } => {
                    if let Err((kind, detail)) = check_dock(tx, device, location, now)? {
                        // Not even "on a charger": a phone placed nowhere the server
                        // can check must not be handed out from a cart.
                        out.refused.push(Refusal { seq, kind, detail });
                        continue;
                    }
                }
                Report::Facts(facts) => {
                    if let Some(b) = facts.battery_percent.filter(|b| *b > 100) {
                        out.refused.push(Refusal {
                            seq,
                            kind: "value_out_of_range",
                            detail: format!("battery {b} % is not 0 to 100"),
                        });
                        facts.battery_percent = None;
                    }
                }
                _ => {}
            }
            reports.push(report);
        }
        record.reports = reports;
        out.records.push(record);
    }
    Ok(out)
}

/// Writes the refusals as security events of `device`.
pub fn record(
    tx: &dyn Tx,
    device_id: &str,
    refused: &[Refusal],
    now: Timestamp,
) -> Result<(), StorageError> {
    for r in refused {
        tx.record_security_event(
            &NewSecurityEvent {
                device_id: Some(device_id),
                launchpad_id: None,
                kind: r.kind,
                detail: &r.detail,
                seq: Some(r.seq),
            },
            now,
        )?;
    }
    Ok(())
}

type Checked = Result<(), (&'static str, String)>;

/// Whether the record's Device User is one the server can vouch for: the one it
/// already trusted, or one a checked grant (or a checked offline unlock) hands it to.
fn check_user(
    tx: &dyn Tx,
    device: &Device,
    record: &EventRecord,
    trusted: Option<&str>,
    cx: &ClaimContext,
) -> Result<Checked, StorageError> {
    let Some(user) = record.user.as_ref().map(|u| u.username.as_str()) else {
        return Ok(Ok(()));
    };
    let granted = match record.transition.as_ref().map(|t| &t.cause) {
        Some(Cause::Granted { grant_id, method }) => Some((grant_id, *method)),
        _ => None,
    };
    let Some((grant_id, method)) = granted else {
        return Ok(if trusted == Some(user) {
            Ok(())
        } else {
            Err((
                "user_not_granted",
                format!(
                    "record says {user} holds the phone ({}) without a grant",
                    record.status.as_str()
                ),
            ))
        });
    };
    Ok(match method {
        UnlockMethod::PhoneBadge | UnlockMethod::CartBadge | UnlockMethod::Password => {
            match tx.issued_grant(&device.id, grant_id.as_str())? {
                None => Err((
                    "unknown_grant",
                    format!(
                        "checkout for {user} names grant {grant_id}, which the server never issued to this phone"
                    ),
                )),
                Some(to) if to != user => Err((
                    "grant_for_another_user",
                    format!("checkout for {user} names grant {grant_id}, issued for {to}"),
                )),
                Some(_) => Ok(()),
            }
        }
        UnlockMethod::OfflineBadge => {
            if tx.user_exists(user)? {
                Ok(())
            } else {
                Err((
                    "unknown_user",
                    format!("offline badge unlock for {user}, who is not in the directory"),
                ))
            }
        }
        UnlockMethod::EmergencyPin => {
            if user == lanyard_protocol::policy::MANAGED_PIN_USER
                || cx.emergency_user.as_deref() == Some(user)
            {
                Ok(())
            } else {
                Err((
                    "unknown_user",
                    format!("emergency PIN unlock for {user}, who is not the emergency user"),
                ))
            }
        }
    })
}

/// Whether a dock's cart and port are real, free and agree with the cart's hub.
fn check_dock(
    tx: &dyn Tx,
    device: &Device,
    location: &DockLocation,
    now: Timestamp,
) -> Result<Checked, StorageError> {
    let (cart, port) = match (&location.launchpad, location.port) {
        (None, None) => return Ok(Ok(())),
        (None, Some(port)) => {
            return Ok(Err((
                "invalid_dock",
                format!("dock names port {port} but no cart"),
            )));
        }
        (Some(cart), port) => (cart.as_str(), port),
    };
    let Some(ports) = tx.launchpad_ports(cart)? else {
        return Ok(Err((
            "invalid_dock",
            format!("dock names unknown cart {cart}"),
        )));
    };
    let Some(port) = port else { return Ok(Ok(())) };
    if port == 0 || port > ports {
        return Ok(Err((
            "invalid_dock",
            format!("dock names port {port} of cart {cart}, which has ports 1 to {ports}"),
        )));
    }
    if let Some((hub_cart, hub_port)) = tx.hub_location(&device.id)?
        && (hub_cart != cart || hub_port != port)
    {
        return Ok(Err((
            "dock_contradicts_hub",
            format!(
                "dock names cart {cart} port {port}; the hub of cart {hub_cart} reported this phone in port {hub_port}"
            ),
        )));
    }
    if let Some(PortOccupant {
        device_id,
        last_contact,
        by_hub,
    }) = tx.port_occupant(cart, port, &device.id)?
    {
        let recent = last_contact.is_some_and(|t| now.as_millis() - t.as_millis() < PORT_HOLD_MS);
        if by_hub || recent {
            return Ok(Err((
                "port_taken",
                format!("dock names cart {cart} port {port}, which phone {device_id} holds"),
            )));
        }
        // A phone silent for long is no longer in that port: the port has one phone.
        tx.vacate_port(cart, port, &device.id)?;
    }
    Ok(Ok(()))
}

/// How often the same security event of a phone is recorded when it repeats (a lost or
/// retired phone syncing every minute would otherwise fill the table).
pub const REPEAT_EVERY_MS: i64 = 60 * 60 * 1000;

/// Records a security event of `device_id`, unless the same kind was recorded for it
/// within [`REPEAT_EVERY_MS`].
pub fn note_once(
    tx: &dyn Tx,
    device_id: &str,
    kind: &str,
    detail: &str,
    now: Timestamp,
) -> Result<(), StorageError> {
    if tx
        .last_security_event(device_id, kind)?
        .is_some_and(|at| now.as_millis() - at.as_millis() < REPEAT_EVERY_MS)
    {
        return Ok(());
    }
    device_event(tx, device_id, kind, detail, now)
}

/// Records a security event of `device_id` not tied to one of its records.
pub fn device_event(
    tx: &dyn Tx,
    device_id: &str,
    kind: &str,
    detail: &str,
    now: Timestamp,
) -> Result<(), StorageError> {
    tx.record_security_event(
        &NewSecurityEvent {
            device_id: Some(device_id),
            launchpad_id: None,
            kind,
            detail,
            seq: None,
        },
        now,
    )
}
