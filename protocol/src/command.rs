//! Server-to-device commands and the signed envelope around each one.

use serde::{Deserialize, Serialize};

use crate::checkout::{CheckoutGrant, DenialCode};
use crate::ids::{CommandId, DeviceId, RequestId};
use crate::signing::{SignatureError, Signed, VerifyingKey};
use crate::time::Timestamp;

/// What the server tells a device to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerCommand {
    /// Hand the device to a user (answer to a phone tap, a password, or a cart-reader tap).
    GrantCheckout(CheckoutGrant),
    /// Refuse an authorization request the device made.
    DenyCheckout {
        /// The request refused.
        request_id: RequestId,
        /// Why.
        code: DenialCode,
    },
    /// IT checks the device in remotely: log out, lock, clear the Device User.
    CheckIn {
        /// Shown to the user and kept in the audit trail.
        reason: String,
        /// Only checkouts granted before this instant (server clock) are ended; without
        /// it, the command's issue time. A rule's check-in carries the moment its trigger
        /// fired, so a clinician who took the phone since keeps it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_of: Option<Timestamp>,
    },
    /// The MDM reported the outcome of a ClearPasscode the device asked for.
    PasscodeClearResult {
        /// True when the MDM acknowledged the command.
        cleared: bool,
        /// The MDM's error text when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Lock a checked-out phone in its user's hands until that user authenticates again
    /// (e.g. it was reported missing). A phone still in the cart is checked in instead.
    Lock {
        /// Shown on the locked screen and kept in the audit trail.
        reason: String,
    },
    /// Move the current checkout's due time (e.g. a double shift approved by a manager).
    ExtendCheckout {
        /// The new due time.
        due_at: Timestamp,
    },
    /// Forget the enrollment: the device returns to the enrollment screen.
    Unenroll,
}

impl ServerCommand {
    /// The command's type name, as serde's `type` tag writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerCommand::GrantCheckout(_) => "grant_checkout",
            ServerCommand::DenyCheckout { .. } => "deny_checkout",
            ServerCommand::CheckIn { .. } => "check_in",
            ServerCommand::PasscodeClearResult { .. } => "passcode_clear_result",
            ServerCommand::Lock { .. } => "lock",
            ServerCommand::ExtendCheckout { .. } => "extend_checkout",
            ServerCommand::Unenroll => "unenroll",
        }
    }
}

/// The signed body of one command: who it is for, when it is valid, what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    /// Wire version of the envelope ([`crate::PROTOCOL_VERSION`]).
    pub v: u32,
    /// The only device that may apply it.
    pub device_id: DeviceId,
    /// Unique id; a device applies each id at most once.
    pub command_id: CommandId,
    /// Server clock at issue.
    pub issued_at: Timestamp,
    /// Server clock after which the command must not be applied.
    pub expires_at: Timestamp,
    /// The command itself.
    pub payload: ServerCommand,
}

/// Why a device refused a command. Each refusal is recorded and reported.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CommandRejection {
    /// Signature missing, malformed, or not from the pinned key.
    #[error("signature invalid: {detail}")]
    BadSignature {
        /// What was wrong.
        detail: String,
    },
    /// Envelope version this device does not understand.
    #[error("unsupported envelope version {v}")]
    UnsupportedVersion {
        /// The version received.
        v: u32,
    },
    /// Addressed to another device.
    #[error("command is addressed to another device")]
    WrongDevice,
    /// Past its expiry (beyond the allowed clock skew).
    #[error("command expired")]
    Expired,
    /// Issued in the future (beyond the allowed clock skew).
    #[error("command issued in the future")]
    NotYetValid,
    /// Already applied once.
    #[error("command already applied")]
    Replayed,
    /// A check-in issued before the checkout it would end was granted: the phone now
    /// belongs to someone the command was never meant for.
    #[error("command superseded by a later checkout")]
    Superseded,
    /// A grant answering a request the phone had already given up on (it told the
    /// clinician the tap failed): it must never unlock the phone later.
    #[error("grant answers a request this device gave up")]
    Abandoned,
}

impl From<SignatureError> for CommandRejection {
    fn from(e: SignatureError) -> Self {
        CommandRejection::BadSignature {
            detail: e.to_string(),
        }
    }
}

impl CommandEnvelope {
    /// Checks addressing, version and validity window at device time `now`, allowing
    /// `skew_ms` of clock difference between phone and server.
    pub fn check(
        &self,
        device: &DeviceId,
        now: Timestamp,
        skew_ms: u64,
    ) -> Result<(), CommandRejection> {
        if self.v != crate::PROTOCOL_VERSION {
            return Err(CommandRejection::UnsupportedVersion { v: self.v });
        }
        if &self.device_id != device {
            return Err(CommandRejection::WrongDevice);
        }
        if self.expires_at.plus_millis(skew_ms) < now {
            return Err(CommandRejection::Expired);
        }
        if now.plus_millis(skew_ms) < self.issued_at {
            return Err(CommandRejection::NotYetValid);
        }
        Ok(())
    }

    /// Verifies the signature of `signed` with the pinned key and parses the envelope.
    /// Addressing and validity are checked separately with [`CommandEnvelope::check`],
    /// because they depend on device state (its id, its clock, what it already applied).
    pub fn open(signed: &Signed, key: &VerifyingKey) -> Result<Self, CommandRejection> {
        Ok(signed.open::<CommandEnvelope>(key)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;

    fn env(expires: i64) -> CommandEnvelope {
        CommandEnvelope {
            v: crate::PROTOCOL_VERSION,
            device_id: "dev-1".into(),
            command_id: "cmd-1".into(),
            issued_at: Timestamp(1_000),
            expires_at: Timestamp(expires),
            payload: ServerCommand::CheckIn {
                reason: "IT".into(),
                as_of: None,
            },
        }
    }

    #[test]
    fn check_enforces_device_and_window() {
        let e = env(61_000);
        assert!(e.check(&"dev-1".into(), Timestamp(2_000), 0).is_ok());
        assert_eq!(
            e.check(&"dev-2".into(), Timestamp(2_000), 0),
            Err(CommandRejection::WrongDevice)
        );
        assert_eq!(
            e.check(&"dev-1".into(), Timestamp(70_000), 0),
            Err(CommandRejection::Expired)
        );
        assert!(e.check(&"dev-1".into(), Timestamp(70_000), 10_000).is_ok());
        assert_eq!(
            e.check(&"dev-1".into(), Timestamp(0), 0),
            Err(CommandRejection::NotYetValid)
        );
    }

    #[test]
    fn open_verifies_then_parses() {
        let (key, _) = SigningKey::generate().unwrap();
        let signed = key.sign(&env(61_000)).unwrap();
        assert_eq!(
            CommandEnvelope::open(&signed, &key.verifying_key()).unwrap(),
            env(61_000)
        );
        let (other, _) = SigningKey::generate().unwrap();
        assert!(matches!(
            CommandEnvelope::open(&signed, &other.verifying_key()),
            Err(CommandRejection::BadSignature { .. })
        ));
    }

    #[test]
    fn payload_json_shape_is_tagged() {
        let j = serde_json::to_value(env(5)).unwrap();
        assert_eq!(j["payload"]["type"], "check_in");
    }
}
