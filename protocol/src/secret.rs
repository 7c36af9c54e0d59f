//! Secrets that must never reach a log: raw badge ids and passwords.
//!
//! They serialize as their plain value (they travel to the server inside TLS),
//! but `Debug` prints a fixed placeholder so a `tracing` field or a panic message
//! cannot leak them.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps the secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself. Call sites are few and deliberate: hashing and sending.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_string!(
    /// The raw id read from a badge (prox or 13.56 MHz). Never stored, never logged.
    BadgeId
);
secret_string!(
    /// A password typed at the locker screen, on its way to the server for verification.
    Password
);
secret_string!(
    /// Digits typed as the emergency unlock PIN. Checked on the phone, never sent.
    Pin
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let b = BadgeId::new("12345678");
        let p = Password::new("hunter2");
        assert!(!format!("{b:?}").contains("1234"));
        assert!(!format!("{p:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"12345678\"");
    }
}
