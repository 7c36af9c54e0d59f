//! Signed commands to phones: one builder for every command the server signs (grants,
//! denials, check-ins, locks, passcode results, unenrollment), and queueing one for a
//! phone's next sync.

use lanyard_protocol::{CommandEnvelope, CommandId, PROTOCOL_VERSION, ServerCommand, Timestamp};
use serde::Serialize;

use crate::error::AppError;
use crate::keys::{ServerKeys, hex, random_bytes};
use crate::state::AppState;
use crate::storage::{NewCommand, Storage, StorageError};

/// Signs `payload` for `device_id`, valid from `now` until `expires_at`. `delivered`:
/// answered inline (the phone has it once the response arrives) rather than queued.
pub fn new_command(
    keys: &ServerKeys,
    device_id: &str,
    payload: ServerCommand,
    now: Timestamp,
    expires_at: Timestamp,
    delivered: bool,
) -> Result<NewCommand, StorageError> {
    let id = hex(&random_bytes(8).map_err(crate::keys::to_storage)?);
    let envelope = CommandEnvelope {
        v: PROTOCOL_VERSION,
        device_id: device_id.into(),
        command_id: CommandId::new(format!("c-{id}")),
        issued_at: now,
        expires_at,
        payload,
    };
    let signed = crate::keys::sign_command(keys, &envelope)?;
    let grant = match &envelope.payload {
        ServerCommand::GrantCheckout(g) => Some((g.grant_id.clone(), g.user.username.clone())),
        _ => None,
    };
    Ok(NewCommand {
        grant,
        id: envelope.command_id,
        device_id: device_id.to_owned(),
        kind: envelope.payload.kind(),
        signed,
        expires_at,
        delivered,
    })
}

/// A fresh grant id.
pub fn new_grant_id() -> Result<lanyard_protocol::GrantId, StorageError> {
    let id = hex(&random_bytes(8).map_err(crate::keys::to_storage)?);
    Ok(lanyard_protocol::GrantId::new(format!("g-{id}")))
}

/// A queued device action.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct ActionQueued {
    /// The signed command's id.
    pub command_id: String,
    /// When it stops being valid.
    pub expires_at: Timestamp,
}

/// Signs `payload` for `device_id`, queues it (audited as `actor`'s action when given)
/// and wakes the device's long-poll.
pub async fn queue_command<S: Storage>(
    st: &AppState<S>,
    actor: Option<String>,
    device_id: &str,
    payload: ServerCommand,
    ttl_secs: u64,
) -> Result<ActionQueued, AppError> {
    let now = st.now();
    let command = new_command(
        &st.keys,
        device_id,
        payload,
        now,
        now.plus_secs(ttl_secs),
        false,
    )?;
    let queued = ActionQueued {
        command_id: command.id.to_string(),
        expires_at: command.expires_at,
    };
    st.storage.insert_command(command, actor, now).await?;
    st.wake(&crate::notify::device_topic(device_id));
    Ok(queued)
}

/// Retires `device_id` for good, in one transaction: marked retired, told to unenroll
/// (`unenroll` signs that command) and audited. A phone already retired is left as it
/// is — no second unenroll, no second entry — so retiring is safe to repeat. Returns the
/// phone and whether an unenroll was queued.
pub(crate) fn retire(
    tx: &dyn crate::storage::Tx,
    device_id: &str,
    actor: &str,
    reason: &str,
    unenroll: &dyn Fn() -> Result<NewCommand, StorageError>,
    now: Timestamp,
) -> Result<(crate::model::Device, bool), StorageError> {
    let before = tx
        .device(device_id)?
        .ok_or(StorageError::NotFound("device"))?;
    if before.admin_state.as_deref() == Some("retired") {
        return Ok((before, false));
    }
    tx.set_admin_state(device_id, Some("retired"))?;
    let command = unenroll()?;
    tx.insert_command(&command, None, now)?;
    let after = tx
        .device(device_id)?
        .ok_or(StorageError::NotFound("device"))?;
    let mut after_json = serde_json::to_value(&after).unwrap_or_default();
    if let Some(o) = after_json.as_object_mut() {
        o.insert("command_id".into(), command.id.as_str().into());
        o.insert("reason".into(), reason.into());
    }
    tx.audit(
        &crate::storage::tx::AuditEntry {
            actor,
            action: "device.retire",
            target_kind: "device",
            target_id: device_id,
            before: serde_json::to_value(&before).ok(),
            after: Some(after_json),
        },
        now,
    )?;
    Ok((after, true))
}

/// Queues IT's device action `command` (signed by `sign`) for `device_id` unless the
/// same kind of action is still on its way to the phone: then that one stands, and is
/// returned (`false`), so a second click or a retried request sends nothing twice. A
/// new one is audited as `device.<kind>`.
pub(crate) fn queue_once(
    tx: &dyn crate::storage::Tx,
    device_id: &str,
    kind: &str,
    actor: &str,
    sign: &dyn Fn() -> Result<NewCommand, StorageError>,
    now: Timestamp,
) -> Result<(ActionQueued, bool), StorageError> {
    let before = tx
        .device(device_id)?
        .ok_or(StorageError::NotFound("device"))?;
    if let Some((command_id, expires_at)) = tx.outstanding_command(device_id, kind, now)? {
        return Ok((
            ActionQueued {
                command_id,
                expires_at,
            },
            false,
        ));
    }
    let command = sign()?;
    tx.insert_command(&command, None, now)?;
    tx.audit(
        &crate::storage::tx::AuditEntry {
            actor,
            action: &format!("device.{}", command.kind),
            target_kind: "device",
            target_id: device_id,
            before: serde_json::to_value(&before).ok(),
            after: Some(
                serde_json::json!({"command_id": command.id.as_str(), "command": command.kind}),
            ),
        },
        now,
    )?;
    Ok((
        ActionQueued {
            command_id: command.id.to_string(),
            expires_at: command.expires_at,
        },
        true,
    ))
}
