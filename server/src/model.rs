//! The server's domain records as the admin API shows them.

use serde::{Deserialize, Serialize};

/// What an API token may do.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Read everything, and act on devices (check in, lock, lost/found).
    Helpdesk,
    /// Read only.
    Auditor,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Helpdesk => "helpdesk",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "helpdesk" => Some(Role::Helpdesk),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// A clinician or staff member who can check devices out.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Directory username.
    pub username: String,
    /// Shown on the phone.
    pub display_name: String,
    /// For notifications.
    pub email: Option<String>,
    /// Directory groups.
    pub groups: Vec<String>,
    /// Devices the user may hold at once (default 1).
    pub device_limit: u32,
    /// Whether a password is set (the hash itself is never returned).
    pub has_password: bool,
    /// Badges registered (their ids are never returned: only keyed hashes are stored).
    pub badges: u32,
}

/// A charging cart.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launchpad {
    /// Stable id, e.g. `cart-4west-1`.
    pub id: String,
    /// Display name, unique.
    pub name: String,
    /// Number of ports, numbered from 1.
    pub ports: u32,
    /// Launchpad Attribute: Department.
    pub department: Option<String>,
    /// Launchpad Attribute: Facility.
    pub facility: Option<String>,
    /// Launchpad Attribute: Launchpad Manager (an email address).
    pub manager: Option<String>,
    /// Launchpad Attribute: Timezone (IANA name).
    pub timezone: Option<String>,
}

/// A phone as the server sees it (mirrored from its outbox).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Lanyard device id.
    pub id: String,
    /// Serial number.
    pub serial: Option<String>,
    /// The UDID the phone gave at enrollment (Apple's uppercase form).
    pub udid: Option<String>,
    /// Model identifier.
    pub model: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
    /// Device name.
    pub name: Option<String>,
    /// Battery percent.
    pub battery: Option<u8>,
    /// Checkout status.
    pub status: lanyard_protocol::DeviceStatus,
    /// Device Home attribute.
    pub device_home: Option<String>,
    /// Device User attribute.
    pub device_user: Option<String>,
    /// Last cart.
    pub last_launchpad: Option<String>,
    /// Last port.
    pub last_port: Option<u32>,
    /// Last contact (ms since epoch).
    pub last_contact: Option<i64>,
    /// Highest event sequence applied.
    pub last_seq: u64,
    /// Checked out past its lending period (from the device's compliance reports).
    pub overdue: bool,
    /// Set by IT: `lost` or `retired`; such devices are never granted.
    pub admin_state: Option<String>,
    /// The phone's passcode as it last reported: `present`, `clearing` (asked the MDM
    /// to clear it), `clear_failed` (the MDM could not, or no answer by the deadline:
    /// IT should look), `absent`; unknown when empty.
    pub passcode: Option<PasscodeState>,
    /// On a charger now (the phone's or the cart hub's last word).
    #[serde(default)]
    pub docked: bool,
    /// The UDID the MDM itself reported for this phone (its Authenticate, matched by
    /// serial number): the only UDID MDM commands go to. Empty until the MDM has
    /// vouched for the phone.
    #[serde(default)]
    pub mdm_udid: Option<String>,
    /// When the phone last checked in with the MDM with nothing to do (ms since epoch).
    #[serde(default)]
    pub mdm_last_seen: Option<i64>,
    /// When the phone left the MDM (its CheckOut: the management profile was removed),
    /// if it has not enrolled in the MDM again since. No MDM command reaches it.
    #[serde(default)]
    pub mdm_checked_out_at: Option<i64>,
}

/// Where a phone's passcode stands, as the server mirrors it.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasscodeState {
    /// The phone has a passcode (a clinician set one, or it was never cleared).
    Present,
    /// The MDM was asked to clear it (or a retry is under way).
    Clearing,
    /// The MDM could not clear it, or did not answer in time: IT should look.
    ClearFailed,
    /// No passcode.
    Absent,
}

impl PasscodeState {
    /// Every state.
    pub const ALL: [PasscodeState; 4] = [
        PasscodeState::Present,
        PasscodeState::Clearing,
        PasscodeState::ClearFailed,
        PasscodeState::Absent,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PasscodeState::Present => "present",
            PasscodeState::Clearing => "clearing",
            PasscodeState::ClearFailed => "clear_failed",
            PasscodeState::Absent => "absent",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<PasscodeState> {
        PasscodeState::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Reads a state column into its enum: a value no build of this server writes is a
/// corrupt row (a logged 500), never silently another state.
pub(crate) fn stored_state<T>(
    column: usize,
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> crate::db::sql::Result<T> {
    parse(value).ok_or_else(|| crate::db::sql::unknown_state(column, value))
}

/// One page of a list, with the cursor for the next.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One entry of the audit log: who changed what, with the values before and after.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Entry id (increasing).
    pub id: i64,
    /// When (ms since epoch).
    pub at: i64,
    /// Who, e.g. `api-token:3 (IT automation)`.
    pub actor: String,
    /// What, e.g. `user.create`.
    pub action: String,
    /// The kind of record changed, e.g. `user`.
    pub target_kind: String,
    /// Its id.
    pub target_id: String,
    /// The record before the change (absent for a creation).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The record after the change.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

/// Something a phone, a cart or a caller sent that the server refused.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// Event id (increasing).
    pub id: i64,
    /// When (ms since epoch).
    pub at: i64,
    /// The phone concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The cart concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launchpad_id: Option<String>,
    /// Stable kind: `unknown_grant`, `grant_for_another_user`, `user_not_granted`,
    /// `unknown_user`, `invalid_dock`, `port_taken`, `dock_contradicts_hub`,
    /// `value_out_of_range`, …
    pub kind: String,
    /// What was sent and why it was refused.
    pub detail: String,
    /// The phone record that carried it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// A badge tapped at a cart's reader and what the cart answered.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartTapRecord {
    /// Tap id (increasing).
    pub id: i64,
    /// When (ms since epoch).
    pub at: i64,
    /// The cart.
    pub launchpad_id: String,
    /// Whose badge it was (absent when the badge was not found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The beep code the reader played (1 granted; 2, 3, 4 refused).
    pub beep: u8,
    /// Stable reason: `granted`, `badge_not_found`, `lookup_unavailable`,
    /// `too_many_unknown_badges`, `user_has_device`, `cart_busy`, `no_device`.
    pub reason: String,
    /// The phone granted, or (`cart_busy`) the phone the cart waits to see taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// That phone's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// What the cart said, and why.
    pub detail: String,
}

/// What a custom attribute is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttributeTarget {
    /// Devices.
    Device,
    /// Launchpads (carts).
    Launchpad,
}

impl AttributeTarget {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeTarget::Device => "device",
            AttributeTarget::Launchpad => "launchpad",
        }
    }
}

/// The type of a custom attribute's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttributeType {
    /// Text, up to 256 characters.
    String,
    /// A 64-bit integer.
    Int,
    /// `true` or `false`.
    Bool,
}

impl AttributeType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::String => "string",
            AttributeType::Int => "int",
            AttributeType::Bool => "bool",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "string" => Some(AttributeType::String),
            "int" => Some(AttributeType::Int),
            "bool" => Some(AttributeType::Bool),
            _ => None,
        }
    }

    /// Whether `value` is of this type.
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        match self {
            AttributeType::String => value.as_str().is_some_and(|s| s.chars().count() <= 256),
            AttributeType::Int => value.as_i64().is_some(),
            AttributeType::Bool => value.is_boolean(),
        }
    }
}

/// A custom attribute definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttributeDef {
    /// Devices or launchpads.
    pub target: AttributeTarget,
    /// Its name, e.g. `Floor` (used as `[Floor]` in workflow placeholders).
    pub name: String,
    /// The type of its values.
    pub value_type: AttributeType,
    /// Built in (Department, Facility, Launchpad Manager, Timezone on carts; Device Home
    /// and Device User on devices): always defined, set through the cart's or the
    /// device's own fields.
    #[serde(default)]
    pub builtin: bool,
}

/// A signed command sent to a device, and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandRecord {
    /// Command id.
    pub id: String,
    /// Payload type, e.g. `grant_checkout`, `check_in`, `lock`.
    pub kind: String,
    /// `pending` → `delivered` → `acknowledged`, or `failed` (refused by the device),
    /// `superseded` (a check-in the phone refused because it was handed to someone after
    /// the check-in was issued) or `expired` (never applied in time).
    pub state: String,
    /// Queued (ms since epoch).
    pub created_at: i64,
    /// Last state change.
    pub updated_at: i64,
    /// Validity end.
    pub expires_at: i64,
}

/// One entry of a device's MDM activity log: a request and each thing that happened to it,
/// kept apart (requested, sent, acknowledged, error, not now, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MdmActivity {
    /// Entry id.
    pub id: i64,
    /// The device's MDM UDID.
    pub udid: String,
    /// The Lanyard device, when known.
    pub device_id: Option<String>,
    /// The MDM command, when the entry is about one.
    pub command_uuid: Option<String>,
    /// Its RequestType.
    pub request_type: Option<String>,
    /// `requested`, `sent`, `send_failed`, `cannot_send`, `acknowledged`, `error`,
    /// `not_now`, `token_update`, …
    pub kind: String,
    /// Details (MDM error chain, reason it could not be sent).
    pub detail: Option<String>,
    /// When (ms since epoch).
    pub at: i64,
}
