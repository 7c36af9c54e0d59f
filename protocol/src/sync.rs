//! The sync exchange: events up, commands and policy down (`POST /device/v1/sync`).

use serde::{Deserialize, Serialize};

use crate::events::EventRecord;
use crate::ids::{CommandId, DeviceId};
use crate::signing::Signed;
use crate::time::Timestamp;

/// A device's sync request.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Wire version ([`crate::PROTOCOL_VERSION`]).
    pub v: u32,
    /// The device.
    pub device_id: DeviceId,
    /// Outbox records not yet acknowledged, in sequence order.
    #[serde(default)]
    pub events: Vec<EventRecord>,
    /// Command ids applied (or rejected) since the last sync, so the server stops resending them.
    #[serde(default)]
    pub handled_commands: Vec<CommandId>,
    /// Version of the policy the device holds.
    #[serde(default)]
    pub policy_version: u64,
    /// Version of the offline credential list the device holds.
    #[serde(default)]
    pub credentials_version: u64,
    /// Long-poll: hold the response up to this many seconds until a command is ready.
    #[serde(default)]
    pub wait_secs: u32,
}

/// The server's sync response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Wire version.
    pub v: u32,
    /// Every record up to and including this sequence number is durably stored;
    /// the device may trim its outbox through it.
    pub acked_seq: u64,
    /// Signed [`crate::command::CommandEnvelope`]s, oldest first.
    #[serde(default)]
    pub commands: Vec<Signed>,
    /// A newer signed [`crate::policy::Policy`], if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Signed>,
    /// A newer signed [`crate::policy::OfflineCredentialList`], if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_credentials: Option<Signed>,
    /// Server clock, so a device can notice its own drift.
    pub server_time: Timestamp,
}
