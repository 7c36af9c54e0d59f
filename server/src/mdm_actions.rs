//! MDM commands IT sends on demand (`POST /api/v1/devices/{id}/mdm-commands`): lock,
//! restart, lost mode, device name, OS update… Each goes to the MDM at once, is audited
//! as the caller's action, and its result arrives through the webhook into the device's
//! MDM activity log, like the passcode clears the phones ask for.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lanyard_mdm::{InstallAction, MdmCommand, OsUpdate, Setting};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;
use crate::storage::Storage;
use crate::validate;

/// An MDM command IT asks for, by `command`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
// Every variant has braces: serde ignores unknown fields beside the tag for unit
// variants, and a misspelt option must not be dropped silently.
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum MdmAction {
    /// Clear the passcode (with the UnlockToken the MDM reported).
    ClearPasscode {},
    /// Lock the screen, optionally showing a message and a phone number.
    DeviceLock {
        /// Shown on the Lock screen.
        message: Option<String>,
        /// Shown on the Lock screen.
        phone_number: Option<String>,
    },
    /// Restart the phone.
    Restart {},
    /// Shut the phone down.
    ShutDown {},
    /// Supervised phones: lost mode, with a message or a phone number (at least one).
    EnableLostMode {
        /// Shown on the Lock screen.
        message: Option<String>,
        /// Shown on the Lock screen.
        phone_number: Option<String>,
        /// Small print on the Lock screen.
        footnote: Option<String>,
    },
    /// Leave lost mode.
    DisableLostMode {},
    /// Ask the phone for information (Apple query names, e.g. `OSVersion`).
    DeviceInformation {
        /// The queries.
        queries: Vec<String>,
    },
    /// Supervised phones: set the device name.
    SetDeviceName {
        /// The new name.
        name: String,
    },
    /// Remove a configuration profile by its identifier.
    RemoveProfile {
        /// The profile's PayloadIdentifier.
        identifier: String,
    },
    /// Supervised phones: install an OS update now (a version, or the latest).
    UpdateOs {
        /// e.g. `18.1`; without it the phone's default update.
        version: Option<String>,
    },
}

/// What happened to an on-demand MDM command.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MdmCommandSent {
    /// The command's UUID (its results carry it).
    pub command_uuid: String,
    /// Apple's RequestType.
    pub request_type: &'static str,
    /// What became of it: `sent` (queued at the MDM), `queued_push_failed` (queued; the
    /// phone fetches it at its next check-in), `no_answer` (maybe queued; not sent
    /// again), `send_failed` or `unknown_enrollment` (not queued).
    pub status: &'static str,
    /// The MDM's reason, when there is one.
    pub detail: Option<String>,
}

fn optional_text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, AppError> {
    v.map(|v| validate::text(field, &v, max)).transpose()
}

/// Validates the request and builds the Apple command (ClearPasscode needs the token,
/// given by the caller once the device is known).
fn build(action: MdmAction, unlock_token: Option<Vec<u8>>) -> Result<MdmCommand, AppError> {
    Ok(match action {
        MdmAction::ClearPasscode {} => MdmCommand::ClearPasscode {
            unlock_token: unlock_token.ok_or_else(|| {
                AppError::Unprocessable(
                    "the MDM has not reported this phone's UnlockToken yet".into(),
                )
            })?,
        },
        MdmAction::DeviceLock {
            message,
            phone_number,
        } => MdmCommand::DeviceLock {
            message: optional_text("message", message, 256)?,
            phone_number: optional_text("phone_number", phone_number, 32)?,
        },
        MdmAction::Restart {} => MdmCommand::RestartDevice,
        MdmAction::ShutDown {} => MdmCommand::ShutDownDevice,
        MdmAction::EnableLostMode {
            message,
            phone_number,
            footnote,
        } => {
            let message = optional_text("message", message, 256)?;
            let phone_number = optional_text("phone_number", phone_number, 32)?;
            if message.is_none() && phone_number.is_none() {
                return Err(AppError::invalid(
                    "message",
                    "lost mode needs a message or a phone number",
                ));
            }
            MdmCommand::EnableLostMode {
                message,
                phone_number,
                footnote: optional_text("footnote", footnote, 256)?,
            }
        }
        MdmAction::DisableLostMode {} => MdmCommand::DisableLostMode,
        MdmAction::DeviceInformation { queries } => {
            if queries.is_empty() {
                return Err(AppError::invalid("queries", "must not be empty"));
            }
            for q in &queries {
                if q.is_empty() || q.len() > 64 || !q.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(AppError::invalid(
                        "queries",
                        format!("{q:?} is not an Apple query name"),
                    ));
                }
            }
            MdmCommand::DeviceInformation { queries }
        }
        MdmAction::SetDeviceName { name } => MdmCommand::Settings {
            items: vec![Setting::DeviceName(validate::text("name", &name, 64)?)],
        },
        MdmAction::RemoveProfile { identifier } => MdmCommand::RemoveProfile {
            identifier: validate::text("identifier", &identifier, 256)?,
        },
        MdmAction::UpdateOs { version } => {
            let version = optional_text("version", version, 16)?;
            if let Some(v) = &version
                && !v
                    .split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            {
                return Err(AppError::invalid(
                    "version",
                    "must look like 18.1 or 17.6.1",
                ));
            }
            MdmCommand::ScheduleOSUpdate {
                updates: vec![OsUpdate {
                    product_key: None,
                    product_version: version,
                    install_action: InstallAction::InstallAsap,
                }],
            }
        }
    })
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/mdm-commands", tag = "admin", description = "Sends an MDM command to the phone now, through the configured MDM (audited). Results arrive in the device's MDM activity log. Needs the admin or helpdesk role.", params(("id" = String, Path)), request_body = MdmAction, responses((status = 202, body = MdmCommandSent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, description = "no MDM, no MDM enrollment, or no UnlockToken yet", body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/devices/{id}/mdm-commands`.
pub async fn send<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(action): ApiJson<MdmAction>,
) -> Result<(StatusCode, Json<MdmCommandSent>), AppError> {
    caller.require_device_actions()?;
    let device = st.storage.get_device(id).await?;
    // The request before the MDM: a lost mode without a message is the caller's to
    // fix, whatever the server's MDM and the phone's enrollment in it.
    let clear_passcode = matches!(action, MdmAction::ClearPasscode {});
    let built = if clear_passcode {
        None
    } else {
        Some(build(action, None)?)
    };
    let udid = crate::mdm::target(&device).map_err(|why| AppError::Unprocessable(why.into()))?;
    let Some(mdm) = st.mdm.clone() else {
        return Err(AppError::Unprocessable(
            "no MDM connector is configured".into(),
        ));
    };
    let command = match built {
        Some(command) => command,
        None => {
            let unlock_token = match st.storage.unlock_token(udid.clone()).await? {
                Some(sealed) => Some(st.keys.open_token(&udid, &sealed)?),
                None => None,
            };
            build(MdmAction::ClearPasscode {}, unlock_token)?
        }
    };
    let request_type = command.request_type();
    let sent = crate::mdm::enqueue_logged(
        &st,
        &mdm,
        &udid,
        &device.id,
        &command,
        Some(caller.actor.clone()),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MdmCommandSent {
            command_uuid: sent.uuid,
            request_type,
            status: sent.kind,
            detail: sent.detail,
        }),
    ))
}
