//! Device-to-server event records (the agent's outbox).
//!
//! Each call into the core produces at most one record, and every status change produces
//! exactly one. A record carries the status *after* it, so the server's mirror of a device
//! is simply the status of the highest sequence number it has applied.

use serde::{Deserialize, Serialize};

use crate::checkout::DenialCode;
use crate::command::CommandRejection;
use crate::ids::{AppId, CommandId, GrantId, RequestId};
use crate::os_version::OsVersion;
use crate::policy::{ComplianceAction, ConditionKind};
use crate::status::{DeviceStatus, DockLocation, UnlockMethod, UserRef};
use crate::time::Timestamp;

/// One outbox record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Per-device sequence number: starts at 1, increases by exactly 1 per record.
    pub seq: u64,
    /// Device clock when it happened.
    pub at: Timestamp,
    /// Status after this record.
    pub status: DeviceStatus,
    /// Device User after this record (`None` when checked in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserRef>,
    /// Present when the status changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<Transition>,
    /// Everything else worth telling the server, in the order it happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<Report>,
}

/// A status change and what caused it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Status before.
    pub from: DeviceStatus,
    /// Status after.
    pub to: DeviceStatus,
    /// Why.
    pub cause: Cause,
}

/// Why the status changed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Cause {
    /// Enrollment finished.
    Enrolled,
    /// A user was granted the device.
    Granted {
        /// Server grant id, or a device-made id for offline unlocks.
        grant_id: GrantId,
        /// How the user authenticated.
        method: UnlockMethod,
    },
    /// Unplugged after a grant: the checkout completed.
    Undocked,
    /// Docked while checked out: the return began.
    Docked,
    /// The grant was not followed by an unplug in time.
    GrantExpired,
    /// App logout finished (or timed out) and the device is locked.
    ReturnCompleted,
    /// A compliance rule blocked checkout or locked the device.
    ComplianceEnforced {
        /// The conditions in force.
        conditions: Vec<ConditionKind>,
    },
    /// The conditions that blocked the device cleared.
    ComplianceCleared,
    /// The user authenticated again after a compliance lock.
    Reauthenticated,
    /// IT checked the device in remotely.
    RemoteCheckIn {
        /// IT's reason.
        reason: String,
    },
    /// IT locked the phone remotely; its user must authenticate again.
    RemoteLock {
        /// IT's reason.
        reason: String,
    },
    /// The enrollment was removed.
    Unenrolled,
}

/// Something the server should know that is not itself a status change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    /// Placed on a charger.
    Docked {
        /// Cart and port when known.
        location: DockLocation,
    },
    /// Taken off a charger.
    Undocked,
    /// An authorization request was sent to the server.
    AuthorizationRequested {
        /// The request id.
        request_id: RequestId,
        /// Badge or password (never the secret itself).
        method: UnlockMethod,
    },
    /// The server refused an authorization.
    AuthorizationDenied {
        /// The request id.
        request_id: RequestId,
        /// The reason given.
        code: DenialCode,
    },
    /// The server could not be reached to authorize, and no offline path matched.
    AuthorizationUnavailable {
        /// The request id.
        request_id: RequestId,
    },
    /// The device stopped waiting for the server's answer to a request (timeout or
    /// transport failure) and told the clinician so: whatever the server decided for
    /// it must not hold the device or the clinician.
    AuthorizationAbandoned {
        /// The request id.
        request_id: RequestId,
    },
    /// A badge or PIN unlocked the device with no server (reported on reconnect).
    OfflineUnlock {
        /// Offline badge or emergency PIN.
        method: UnlockMethod,
        /// Who was assigned.
        user: UserRef,
    },
    /// A wrong or malformed emergency PIN.
    PinRejected {
        /// Consecutive failures so far.
        failures: u32,
        /// When another attempt is allowed, if a delay applies.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locked_until: Option<Timestamp>,
    },
    /// A badge tapped offline matched no entry of the offline credential list.
    OfflineBadgeRejected,
    /// A grant could not be applied (device busy, another user, blocked).
    GrantRejected {
        /// The grant.
        grant_id: GrantId,
        /// Why.
        reason: GrantRejection,
    },
    /// A server command was refused.
    CommandRejected {
        /// The command id, when the envelope could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command_id: Option<CommandId>,
        /// Why.
        rejection: CommandRejection,
    },
    /// An app finished (or failed) its logout during check-in.
    AppLogout {
        /// The app.
        app: AppId,
        /// What happened.
        outcome: LogoutOutcome,
    },
    /// A passcode clear was requested from the MDM (first request or retry).
    PasscodeClearRequested {
        /// 1 for the first request.
        attempt: u32,
    },
    /// The passcode is confirmed gone.
    PasscodeCleared,
    /// The MDM reported a failed clear; the device retries.
    PasscodeClearFailed {
        /// The MDM's text.
        detail: String,
    },
    /// A compliance rule reached a tier.
    ComplianceTier {
        /// The condition.
        condition: ConditionKind,
        /// Tier index, 0-based.
        tier: u8,
        /// The actions taken at that tier.
        actions: Vec<ComplianceAction>,
    },
    /// A compliance condition stopped holding.
    ComplianceResolved {
        /// The condition.
        condition: ConditionKind,
    },
    /// Device facts changed meaningfully (OS, passcode, compromise, battery step).
    Facts(FactsReport),
    /// A signed policy was refused (older than the one in force, or invalid).
    PolicyRejected {
        /// Its version.
        version: u64,
        /// Why.
        reason: String,
    },
    /// A signed offline credential list was refused (another device's, or older).
    CredentialsRejected {
        /// Its version.
        version: u64,
        /// Why.
        reason: String,
    },
    /// A signed payload failed its signature check, on arrival or when re-checked on
    /// load (a stored copy that no longer verifies, or differs from what is in force).
    SignedPayloadRefused {
        /// Which payload.
        kind: PayloadKind,
        /// What was wrong.
        reason: String,
    },
    /// A new offline credential list was applied.
    CredentialsApplied {
        /// Its version.
        version: u64,
        /// How many badges it holds.
        entries: u32,
    },
    /// A new policy was applied.
    PolicyApplied {
        /// Its version.
        version: u64,
    },
    /// The checkout due time moved.
    CheckoutExtended {
        /// The new due time.
        due_at: Timestamp,
    },
}

/// The kinds of signed payload the server sends besides commands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// The device policy.
    Policy,
    /// The offline credential list.
    OfflineCredentials,
}

impl PayloadKind {
    /// The stable name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Policy => "policy",
            PayloadKind::OfflineCredentials => "offline_credentials",
        }
    }
}

/// Why a grant was not applied.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantRejection {
    /// The device is held by another user.
    AssignedToAnotherUser,
    /// The device is checking in.
    Returning,
    /// Local compliance blocks checkout.
    ComplianceBlocked,
    /// The device is not enrolled.
    NotEnrolled,
}

/// The result of one app's logout.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogoutOutcome {
    /// The app confirmed.
    Done,
    /// The app reported a failure.
    Failed {
        /// What the host said.
        detail: String,
    },
    /// No answer before the timeout.
    TimedOut,
}

/// A snapshot of platform facts, sent when they change meaningfully.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsReport {
    /// OS version, e.g. `17.4.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub os_version: Option<OsVersion>,
    /// Whether a passcode is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passcode_present: Option<bool>,
    /// Compromise signals the platform raised (empty when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compromise_signals: Vec<String>,
    /// Battery level 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_percent: Option<u8>,
}
