//! Everything the host can tell the core.

use lanyard_protocol::command::CommandRejection;
use lanyard_protocol::events::LogoutOutcome;
use lanyard_protocol::policy::OfflineCredentialList;
use lanyard_protocol::{
    AppId, BadgeId, CommandEnvelope, CommandId, DeviceId, DockLocation, OsVersion, Password, Pin,
    Policy, RequestId, VerifyingKey,
};

use crate::verified::Verified;

/// One input to the state machine. Time is never inside an event: it is the `now`
/// argument of [`crate::handle`].
#[derive(Clone, Debug)]
pub enum Event {
    /// Enrollment with a server completed (from an enrollment link, QR code, or managed
    /// app configuration). The policy was verified with `server_key`.
    Enrolled {
        /// Identity issued by the server.
        device_id: DeviceId,
        /// The server's public key, pinned from now on.
        server_key: VerifyingKey,
        /// The initial policy.
        policy: Verified<Policy>,
    },
    /// A badge was read by the phone's own reader.
    BadgeTapped {
        /// The raw id; hashed or sent, never stored.
        badge: BadgeId,
    },
    /// Username and password entered at the locker screen.
    PasswordEntered {
        /// Directory username.
        username: String,
        /// The password, sent to the server for verification.
        password: Password,
    },
    /// Emergency unlock PIN entered.
    PinEntered {
        /// The digits.
        pin: Pin,
    },
    /// The host could not get an answer to an authorization request.
    AuthorizationFailed {
        /// The request.
        request_id: RequestId,
    },
    /// A server command whose signature the host verified (grants and denials arrive
    /// this way, whether from a phone tap, a password, or a tap at the cart's reader).
    Command(Verified<CommandEnvelope>),
    /// A command the host could not verify; recorded and reported.
    CommandRefused {
        /// The id, if the envelope could be read.
        command_id: Option<CommandId>,
        /// Why.
        rejection: CommandRejection,
    },
    /// A signed policy or offline list failed verification (on arrival, or when the
    /// runtime re-checked the stored copy on load); recorded and reported.
    SignedPayloadRefused {
        /// Which payload.
        kind: lanyard_protocol::events::PayloadKind,
        /// What was wrong.
        reason: String,
    },
    /// A newer policy arrived.
    PolicyUpdated(Verified<Policy>),
    /// A newer offline credential list arrived.
    OfflineCredentialsUpdated(Verified<OfflineCredentialList>),
    /// Put on a charger (cart and port when known).
    Docked {
        /// Where.
        location: DockLocation,
    },
    /// Taken off a charger.
    Undocked,
    /// An app reported the result of its logout.
    AppLogoutFinished {
        /// The app.
        app: AppId,
        /// What happened.
        outcome: LogoutOutcome,
    },
    /// Platform facts. `None` fields are unknown and leave the stored value alone.
    PlatformFacts(FactsUpdate),
    /// The MDM's managed app configuration set (or removed) the emergency PIN hash. It
    /// applies only while the signed policy sets no emergency PIN.
    ManagedEmergencyPin {
        /// The hash, or `None` when the key was removed.
        hash: Option<lanyard_protocol::kdf::SlowHash>,
    },
    /// A sync round trip completed.
    SyncSucceeded,
    /// A sync attempt failed (server unreachable or refusing).
    SyncFailed,
    /// Time passed (a scheduled wake-up or a periodic timer).
    Tick,
    /// The host (re)started: re-issue the effects that are safe to repeat.
    HostStarted,
}

/// New platform facts; `None` means "not measured this time".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FactsUpdate {
    /// OS version.
    pub os_version: Option<OsVersion>,
    /// Whether a passcode is set.
    pub passcode_present: Option<bool>,
    /// The full current set of compromise signals (empty: none).
    pub compromise_signals: Option<Vec<String>>,
    /// Battery level 0..=100 (values above 100 are clamped).
    pub battery_percent: Option<u8>,
}
