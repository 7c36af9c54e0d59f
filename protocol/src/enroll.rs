//! Enrollment (`POST /device/v1/enroll`) and the device API's paths and credential.

use serde::{Deserialize, Serialize};

use crate::ids::DeviceId;
use crate::os_version::OsVersion;
use crate::signing::{Signed, VerifyingKey};

/// Device API paths, relative to the server's base URL.
pub mod paths {
    /// Redeem an enrollment token.
    pub const ENROLL: &str = "/device/v1/enroll";
    /// Push outbox records, receive commands and policy (long-poll).
    pub const SYNC: &str = "/device/v1/sync";
    /// Ask for a checkout (badge on the phone, or username and password).
    pub const AUTHORIZE: &str = "/device/v1/authorize";
}

/// What a phone says about itself when it enrolls.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Hardware serial number, when the app can read it (from MDM managed configuration):
    /// 8 to 14 letters and digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9]{8,14}$"))]
    pub serial: Option<String>,
    /// MDM UDID, when known (from managed configuration): 40 hex digits, 8-16 hex
    /// digits, or a UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^([0-9A-Fa-f]{40}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{16}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$"
        )
    )]
    pub udid: Option<String>,
    /// Model identifier, e.g. `iPhone15,2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 128,
            pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
        )
    )]
    pub model: Option<String>,
    /// OS version, e.g. `17.4.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, pattern = r"^[0-9]{1,9}(\.[0-9]{1,9}){0,2}$")
    )]
    pub os_version: Option<OsVersion>,
    /// Device name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 128,
            pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
        )
    )]
    pub name: Option<String>,
}

/// `POST /device/v1/enroll` body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// Wire version (this protocol: [`crate::PROTOCOL_VERSION`]).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1))]
    pub v: u32,
    /// The enrollment token from the link or managed configuration.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub token: String,
    /// About the phone.
    pub device: DeviceInfo,
}

/// The server's answer to a successful enrollment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// Wire version.
    pub v: u32,
    /// The device's identity from now on.
    pub device_id: DeviceId,
    /// The secret the device presents on every request (`Authorization: Bearer …`).
    /// Kept in the host's secret store (Keychain), never in the agent database.
    pub device_credential: String,
    /// The server's Ed25519 key, pinned from now on (32 bytes, unpadded base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub server_key: VerifyingKey,
    /// The initial signed [`crate::Policy`].
    pub policy: Signed,
}
