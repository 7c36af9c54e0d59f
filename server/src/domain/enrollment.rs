//! Enrollment: redeeming a token and creating the phone, in one transaction, so a
//! token is never used more than it allows (two phones racing for its last use: one
//! enrolls, the other hears why), and a UDID belongs to one phone in service.
//!
//! A UDID is not a secret: any phone can claim any UDID. So a claim never takes a UDID
//! from the phone holding it, unless the MDM itself says the phone was enrolled again
//! since (an Authenticate for that UDID and serial number arrived after the MDM had
//! vouched for the holder: the phone was erased and came back, the old record is a
//! ghost). MDM
//! commands go only to a UDID the MDM vouched for ([`crate::model::Device::mdm_udid`]).

use lanyard_protocol::Timestamp;
use serde_json::json;

use super::claims::device_event;
use crate::model::Device;
use crate::storage::tx::{AuditEntry, MdmIdentity};
use crate::storage::{NewDevice, StorageError, Tx};

/// Why an enrollment was refused (recorded as a security event when it names another
/// phone's identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A phone in service already holds the UDID.
    UdidInUse {
        /// That phone.
        holder: String,
    },
    /// The MDM says the UDID belongs to another serial number.
    UdidSerialMismatch {
        /// The serial the MDM reported.
        mdm_serial: String,
    },
}

/// Redeems the token with `token_hash` for `device`: refused when unknown, expired or
/// used up; otherwise one use is taken and the phone created checked in, in the
/// token's cart and with its department as Device Home. A phone the MDM enrolled again
/// replaces the old record of its UDID.
pub fn enroll(
    tx: &dyn Tx,
    token_hash: &[u8],
    device: &NewDevice,
    now: Timestamp,
) -> Result<Result<Device, Refused>, StorageError> {
    let token = tx
        .enrollment_token(token_hash)?
        .ok_or(StorageError::NotFound("enrollment token"))?;
    if token.expires_at <= now {
        return Err(StorageError::Rejected(
            "enrollment token has expired".into(),
        ));
    }
    if token.uses_left == Some(0) {
        return Err(StorageError::Rejected(
            "enrollment token has been used up".into(),
        ));
    }
    let serial = device.info.serial.as_deref();
    let mut replaced = Vec::new();
    let identity = match device.info.udid.as_deref() {
        Some(udid) => {
            let identity = tx.mdm_identity(udid)?;
            match claim_udid(
                tx,
                device,
                udid,
                identity.as_ref(),
                token.replaces_existing,
                now,
            )? {
                Ok(ghosts) => replaced = ghosts,
                Err(refused) => return Ok(Err(refused)),
            }
            identity.map(|i| (udid, i))
        }
        None => None,
    };
    if token.uses_left.is_some() {
        tx.use_enrollment_token(token_hash)?;
    }
    tx.insert_device(
        device,
        token.launchpad_id.as_deref(),
        token.department.as_deref(),
        now,
    )?;
    if let Some((udid, identity)) = identity
        && identity.serial.is_some()
        && identity.serial.as_deref() == serial
    {
        tx.bind_mdm_udid(&device.id, udid)?;
    }
    // The phone as it was before its erase hands on what IT set on it, so its Device
    // Home checks, placeholders and attribute-targeted deployments carry on.
    for ghost in &replaced {
        let attributes = tx.inherit_device(ghost, &device.id, now)?;
        tx.audit(
            &AuditEntry {
                actor: "lanyard",
                action: "device.inherited",
                target_kind: "device",
                target_id: &device.id,
                before: None,
                after: Some(json!({"replaces": ghost, "attributes": attributes})),
            },
            now,
        )?;
    }
    tx.device(&device.id)?
        .ok_or(StorageError::NotFound("device"))
        .map(Ok)
}

/// Whether `device` may take `udid`: retires the ghosts the MDM re-enrolled since
/// (returned, to hand their settings on), and refuses (recording why on the holder)
/// otherwise.
fn claim_udid(
    tx: &dyn Tx,
    device: &NewDevice,
    udid: &str,
    identity: Option<&MdmIdentity>,
    replacing_token: bool,
    now: Timestamp,
) -> Result<Result<Vec<String>, Refused>, StorageError> {
    let mut ghosts = Vec::new();
    let serial = device.info.serial.as_deref();
    if let Some(mdm_serial) = identity.and_then(|i| i.serial.as_deref())
        && serial.is_some_and(|s| s != mdm_serial)
    {
        let detail = format!(
            "an enrollment claimed UDID {udid} with serial {}, but the MDM reported that UDID for serial {mdm_serial}",
            serial.unwrap_or("?")
        );
        for holder in tx.udid_holders(udid)? {
            device_event(tx, &holder.device_id, "udid_serial_mismatch", &detail, now)?;
        }
        return Ok(Err(Refused::UdidSerialMismatch {
            mdm_serial: mdm_serial.to_owned(),
        }));
    }
    for holder in tx.udid_holders(udid)? {
        let vouched = identity.is_some_and(|i| {
            i.serial.is_some()
                && i.serial.as_deref() == serial
                && holder.serial.as_deref() == serial
                && i.supersedes.as_deref() == Some(holder.device_id.as_str())
        });
        // Without the MDM's word, an admin's: a token made to re-enroll replaces the
        // record holding both this UDID and this serial number.
        let by_admin = replacing_token && serial.is_some() && holder.serial.as_deref() == serial;
        let reenrolled = vouched || by_admin;
        if !reenrolled {
            let detail = format!(
                "an enrollment claimed this phone's UDID {udid} (serial {}) and was refused",
                serial.unwrap_or("not given")
            );
            device_event(tx, &holder.device_id, "udid_in_use", &detail, now)?;
            return Ok(Err(Refused::UdidInUse {
                holder: holder.device_id,
            }));
        }
        // The MDM enrolled this phone again since the holder enrolled: the holder is
        // the phone as it was before an erase, and never answers again.
        let before = tx.device(&holder.device_id)?;
        tx.retire_device(&holder.device_id)?;
        tx.audit(
            &AuditEntry {
                actor: "lanyard",
                action: "device.replaced",
                target_kind: "device",
                target_id: &holder.device_id,
                before: before.map(|d| json!(d)),
                after: Some(
                    json!({"admin_state": "retired", "replaced_by": device.id, "udid": udid}),
                ),
            },
            now,
        )?;
        ghosts.push(holder.device_id);
    }
    Ok(Ok(ghosts))
}

/// What the MDM's Authenticate for `udid` (with `serial`) binds: the phone in service
/// that gave that UDID with that serial number gets it as its MDM UDID; a phone that
/// gave it with another serial is recorded as a security event and gets nothing.
pub fn mdm_authenticated(
    tx: &dyn Tx,
    udid: &str,
    serial: Option<&str>,
    now: Timestamp,
) -> Result<Option<String>, StorageError> {
    let (mut bound, mut supersedes) = (None, None);
    for holder in tx.udid_holders(udid)? {
        if serial.is_some() && holder.serial.as_deref() == serial {
            // A phone the MDM already vouched for authenticating again was enrolled in
            // the MDM again (erased): the Lanyard enrollment that follows replaces it.
            // A phone enrolled in Lanyard before the MDM spoke is vouched for now.
            let device = tx.device(&holder.device_id)?;
            let vouched = device.as_ref().and_then(|d| d.mdm_udid.clone());
            let checked_out = device
                .as_ref()
                .is_some_and(|d| d.mdm_checked_out_at.is_some());
            if vouched.is_some() && checked_out && bound.is_none() {
                // It left the MDM (its profile removed, the phone not erased) and came
                // back: the same phone, managed again.
                tx.set_mdm_checked_out(&holder.device_id, None)?;
                bound = Some(holder.device_id);
            } else if vouched.is_some() {
                supersedes.get_or_insert(holder.device_id);
            } else if bound.is_none() {
                tx.bind_mdm_udid(&holder.device_id, udid)?;
                bound = Some(holder.device_id);
            }
        } else {
            let detail = format!(
                "the MDM reported UDID {udid} for serial {}, but this phone enrolled with serial {}",
                serial.unwrap_or("?"),
                holder.serial.as_deref().unwrap_or("?")
            );
            device_event(tx, &holder.device_id, "udid_serial_mismatch", &detail, now)?;
        }
    }
    tx.set_mdm_identity(
        udid,
        &MdmIdentity {
            serial: serial.map(str::to_owned),
            authenticated_at: now,
            supersedes,
        },
    )?;
    Ok(bound)
}
