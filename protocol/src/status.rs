//! Device status and who holds a device, as the agent reports them and the server mirrors them.

use serde::{Deserialize, Serialize};

use crate::ids::LaunchpadId;

/// The checkout status of a device. The server's view is the status carried by the
/// newest outbox record it has applied.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Not yet enrolled with a Lanyard server.
    Unenrolled,
    /// Locked, no user; normally docked in a cart.
    CheckedIn,
    /// Granted to a user who has not yet unplugged it.
    CheckoutPending,
    /// Unplugged and assigned to one user.
    CheckedOut,
    /// Docked after a checkout: apps logging out, screen locked, passcode being cleared.
    Returning,
    /// Held back by local compliance: no checkout, or locked until re-authentication.
    Blocked,
}

impl DeviceStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [DeviceStatus; 6] = [
        DeviceStatus::Unenrolled,
        DeviceStatus::CheckedIn,
        DeviceStatus::CheckoutPending,
        DeviceStatus::CheckedOut,
        DeviceStatus::Returning,
        DeviceStatus::Blocked,
    ];

    /// The wire (and stored) name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Unenrolled => "unenrolled",
            DeviceStatus::CheckedIn => "checked_in",
            DeviceStatus::CheckoutPending => "checkout_pending",
            DeviceStatus::CheckedOut => "checked_out",
            DeviceStatus::Returning => "returning",
            DeviceStatus::Blocked => "blocked",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<DeviceStatus> {
        DeviceStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

#[cfg(test)]
mod status_name_tests {
    use super::DeviceStatus;

    #[test]
    fn names_match_serde() {
        for s in DeviceStatus::ALL {
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::String(s.as_str().into()))
            );
            assert_eq!(DeviceStatus::parse(s.as_str()), Some(s));
        }
    }
}

/// How a user came to hold a device.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlockMethod {
    /// Badge tapped on the phone and authorized by the server.
    PhoneBadge,
    /// Badge tapped at the cart's reader; the server picked this device.
    CartBadge,
    /// Username and password at the locker screen, verified by the server.
    Password,
    /// Badge matched the signed offline credential list while the server was unreachable.
    OfflineBadge,
    /// The emergency PIN set by IT, with no network needed.
    EmergencyPin,
}

impl UnlockMethod {
    /// True for the methods that worked without the server and must be reported on reconnect.
    pub fn is_offline(self) -> bool {
        matches!(
            self,
            UnlockMethod::OfflineBadge | UnlockMethod::EmergencyPin
        )
    }
}

/// The person a device is assigned to (the "Device User").
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserRef {
    /// The directory username, e.g. `alice`.
    pub username: String,
    /// The name shown on the phone, e.g. `Alice Moreau, RN`.
    pub display_name: String,
}

/// Where a device is docked, when the dock reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DockLocation {
    /// The cart, when known (launchpad-reported docks always know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launchpad: Option<LaunchpadId>,
    /// The port number within the cart, counted from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}
