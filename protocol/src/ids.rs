//! Identifiers that cross the wire, as distinct types so they cannot be mixed up.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps any string-like value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

string_id!(
    /// A device's Lanyard identity, issued by the server at enrollment.
    DeviceId
);
string_id!(
    /// The unique id of one server-signed command; a device applies each id once.
    CommandId
);
string_id!(
    /// Correlates an authorization request from a device with the server's answer.
    RequestId
);
string_id!(
    /// The id of one checkout grant (one user, one device, one checkout).
    GrantId
);
string_id!(
    /// A launchpad (charging cart) identifier.
    LaunchpadId
);
string_id!(
    /// An app's bundle identifier, e.g. `com.epic.rover`.
    AppId
);
