//! The checkout exchange: a device asks to be unlocked for someone, the server grants or denies.

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, GrantId, RequestId};
use crate::secret::{BadgeId, Password};
use crate::status::{UnlockMethod, UserRef};
use crate::time::Timestamp;

/// What the person at the phone presented.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credential {
    /// A badge tapped on the phone's reader. The server resolves it (keyed hash or
    /// external lookup); the raw id is never stored on either side.
    Badge {
        /// The raw badge id read by the phone.
        badge: BadgeId,
    },
    /// Username and password typed at the locker screen.
    Password {
        /// The directory username.
        username: String,
        /// The password, verified by the server against a slow hash.
        password: Password,
    },
}

/// `POST /device/v1/authorize`: a device asks the server to check a user out on it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    /// Correlates the answer, which may arrive as a response or a pushed command.
    pub request_id: RequestId,
    /// The device asking.
    pub device_id: DeviceId,
    /// What was presented.
    pub credential: Credential,
    /// The device's clock when the credential was presented.
    pub presented_at: Timestamp,
}

/// The server's decision to hand a device to a user. Delivered inside a signed command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutGrant {
    /// Unique id of this grant.
    pub grant_id: GrantId,
    /// The request it answers, when it answers one made by this device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// Who gets the device.
    pub user: UserRef,
    /// How the user authenticated.
    pub method: UnlockMethod,
    /// Text to display when unlocked, already resolved by the server
    /// (e.g. from the workflow's "Text to display when unlocked"). `None` uses the policy's template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_text: Option<String>,
}

/// Why a checkout was refused. Cart-reader refusals map to the launchpad beep codes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialCode {
    /// The badge is unknown (beep code 2).
    BadgeNotFound,
    /// No device could be granted, or automation failed (beep code 3).
    NoDeviceAvailable,
    /// The user already holds as many devices as allowed (beep code 4).
    UserHasDevice,
    /// Username or password wrong.
    InvalidCredentials,
    /// The user exists but is not allowed to check out devices.
    NotPermitted,
    /// This device is not in a state to be checked out (e.g. blocked, retired).
    DeviceUnavailable,
    /// Too many wrong passwords for this user; wait, or use a badge.
    TooManyAttempts,
}

impl DenialCode {
    /// The launchpad beep code for this refusal (1 is success and never a denial).
    pub fn beep_code(self) -> u8 {
        match self {
            DenialCode::BadgeNotFound => 2,
            DenialCode::UserHasDevice => 4,
            DenialCode::NoDeviceAvailable
            | DenialCode::InvalidCredentials
            | DenialCode::NotPermitted
            | DenialCode::DeviceUnavailable
            | DenialCode::TooManyAttempts => 3,
        }
    }

    /// A short sentence for the locker screen.
    pub fn message(self) -> &'static str {
        match self {
            DenialCode::BadgeNotFound => "Badge not recognized.",
            DenialCode::NoDeviceAvailable => "No device is available right now.",
            DenialCode::UserHasDevice => "You already have a device checked out.",
            DenialCode::InvalidCredentials => "Username or password is incorrect.",
            DenialCode::NotPermitted => "You are not permitted to check out devices.",
            DenialCode::DeviceUnavailable => "This device cannot be checked out right now.",
            DenialCode::TooManyAttempts => {
                "Too many wrong passwords. Try again later, or tap your badge."
            }
        }
    }
}

/// The answer to an [`AuthorizeRequest`]: always a signed command, a `grant_checkout` or
/// a `deny_checkout` for the request, so the phone acts only on decisions it can verify.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeResponse {
    /// A signed [`crate::CommandEnvelope`] whose payload answers the request.
    pub command: crate::signing::Signed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beep_codes_match_the_launchpad_contract() {
        assert_eq!(DenialCode::BadgeNotFound.beep_code(), 2);
        assert_eq!(DenialCode::NoDeviceAvailable.beep_code(), 3);
        assert_eq!(DenialCode::UserHasDevice.beep_code(), 4);
    }

    #[test]
    fn credential_json_is_tagged() {
        let c = Credential::Password {
            username: "alice".into(),
            password: Password::new("pw"),
        };
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["type"], "password");
        assert_eq!(j["username"], "alice");
    }
}
