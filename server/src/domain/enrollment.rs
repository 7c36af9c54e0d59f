//! Enrollment: redeeming a token and creating the phone, in one transaction, so a
//! token is never used more than it allows (two phones racing for its last use: one
//! enrolls, the other hears why).

use lanyard_protocol::Timestamp;

use crate::model::Device;
use crate::storage::{NewDevice, StorageError, Tx};

/// Redeems the token with `token_hash` for `device`: refused when unknown, expired or
/// used up; otherwise one use is taken and the phone created checked in, in the
/// token's cart and with its department as Device Home.
pub fn enroll(
    tx: &dyn Tx,
    token_hash: &[u8],
    device: &NewDevice,
    now: Timestamp,
) -> Result<Device, StorageError> {
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
    if token.uses_left.is_some() {
        tx.use_enrollment_token(token_hash)?;
    }
    tx.insert_device(
        device,
        token.launchpad_id.as_deref(),
        token.department.as_deref(),
        now,
    )?;
    tx.device(&device.id)?
        .ok_or(StorageError::NotFound("device"))
}
