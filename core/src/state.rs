//! The locker's durable state: what the phone knows between two events.
//!
//! Everything here is plain data (serde) so the store can persist it in the same
//! transaction as the outbox record that describes the change.

use lanyard_protocol::events::LogoutOutcome;
use lanyard_protocol::policy::{ConditionKind, OfflineCredentialList};
use lanyard_protocol::{
    AppId, CommandId, DeviceId, DeviceStatus, DockLocation, GrantId, OsVersion, Policy, RequestId,
    Timestamp, UnlockMethod, UserRef, VerifyingKey,
};
use serde::{Deserialize, Serialize};

use crate::compliance::ComplianceTracker;
use crate::screen::Screen;

/// The whole state of one locker. Build it with [`Locker::new`] and advance it with
/// [`crate::handle`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Locker {
    /// Where the device is in the checkout cycle.
    pub phase: Phase,
    /// Identity and pinned server key; `None` until enrolled.
    pub enrollment: Option<Enrollment>,
    /// The policy in force (defaults until the server sends one).
    pub policy: Policy,
    /// The signed offline credential list, once received.
    pub offline_credentials: Option<OfflineCredentialList>,
    /// Dock state as last reported.
    pub dock: Dock,
    /// Platform facts as last reported.
    pub facts: PlatformFacts,
    /// Server reachability.
    pub link: Link,
    /// Active compliance violations and the tiers they reached.
    pub compliance: ComplianceTracker,
    /// The authorization request waiting for a server answer, if any.
    pub pending_auth: Option<PendingAuth>,
    /// Emergency PIN attempt accounting.
    pub pin_guard: PinGuard,
    /// The emergency PIN hash from MDM managed app configuration, used when the signed
    /// policy sets none. Never persisted: the host supplies it from the configuration
    /// (which iOS protects) at every start, so an edited database cannot plant a PIN.
    #[serde(skip)]
    pub managed_emergency_pin: Option<lanyard_protocol::kdf::SlowHash>,
    /// Passcode clear in progress, if any.
    pub passcode_clear: Option<PasscodeClear>,
    /// A short message on the screen (e.g. a denial), until it expires.
    pub notice: Option<Notice>,
    /// Commands already applied, kept until they expire, to refuse replays.
    pub applied_commands: Vec<AppliedCommand>,
    /// Sequence number the next outbox record will carry (starts at 1).
    pub next_seq: u64,
    /// Counter for ids the device makes itself (requests, offline grants).
    pub next_local_id: u64,
    /// When the device last entered the checked-in (or blocked-without-user) state.
    pub checked_in_since: Timestamp,
    /// The screen last asked of the host; a new one is emitted only when it differs.
    pub shown: Option<Screen>,
    /// The wake-up last asked of the host.
    pub scheduled_wake: Option<Timestamp>,
}

/// Where the device is in the checkout cycle. Each variant maps to one [`DeviceStatus`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Not enrolled: the enrollment screen.
    Unenrolled,
    /// Locked, no user.
    CheckedIn,
    /// Granted to a user, still docked, waiting for the unplug.
    CheckoutPending(Pending),
    /// Unplugged and assigned.
    CheckedOut(Checkout),
    /// Docked after a checkout: locked, apps logging out.
    Returning(Return),
    /// Held by compliance.
    Blocked(Block),
}

impl Phase {
    /// The wire status for this phase.
    pub fn status(&self) -> DeviceStatus {
        match self {
            Phase::Unenrolled => DeviceStatus::Unenrolled,
            Phase::CheckedIn => DeviceStatus::CheckedIn,
            Phase::CheckoutPending(_) => DeviceStatus::CheckoutPending,
            Phase::CheckedOut(_) => DeviceStatus::CheckedOut,
            Phase::Returning(_) => DeviceStatus::Returning,
            Phase::Blocked(_) => DeviceStatus::Blocked,
        }
    }

    /// The Device User: set by a grant, cleared by check-in.
    pub fn user(&self) -> Option<&UserRef> {
        match self {
            Phase::CheckoutPending(p) => Some(&p.assignment.user),
            Phase::CheckedOut(c) => Some(&c.assignment.user),
            Phase::Blocked(Block { held: Some(c), .. }) => Some(&c.assignment.user),
            _ => None,
        }
    }
}

/// Who holds the device and how they got it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The Device User.
    pub user: UserRef,
    /// Server grant id, or a device-made id for offline unlocks.
    pub grant_id: GrantId,
    /// How they authenticated.
    pub method: UnlockMethod,
    /// Text for the checked-out screen, resolved.
    pub display_text: String,
    /// When the grant was applied.
    pub granted_at: Timestamp,
    /// Server clock when the grant was issued (none for offline unlocks): commands the
    /// server issued before it cannot end this checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_issued_at: Option<Timestamp>,
}

/// A grant waiting for the unplug.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Who it is for.
    pub assignment: Assignment,
    /// When it lapses back to checked in.
    pub expires_at: Timestamp,
}

/// A completed checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// Who holds it.
    pub assignment: Assignment,
    /// When it was unplugged.
    pub since: Timestamp,
    /// When it becomes overdue.
    pub due_at: Timestamp,
    /// Last re-authentication after a compliance lock.
    pub reauthenticated_at: Option<Timestamp>,
}

/// A return in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    /// The user being checked in (cleared when the return completes).
    pub user: UserRef,
    /// When it was docked.
    pub started_at: Timestamp,
    /// When check-in proceeds without the apps that have not answered.
    pub deadline: Timestamp,
    /// Apps whose logout has not been confirmed yet.
    pub waiting: Vec<AppId>,
    /// Outcomes so far, in the order they arrived.
    pub outcomes: Vec<(AppId, LogoutOutcome)>,
}

/// Compliance hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The conditions enforcing it.
    pub conditions: Vec<ConditionKind>,
    /// The checkout locked pending re-authentication, if the device was checked out.
    pub held: Option<Checkout>,
    /// IT's reason, when IT locked the phone remotely (lifted by re-authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_lock: Option<String>,
}

/// Enrollment identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The device's Lanyard id.
    pub device_id: DeviceId,
    /// The server's pinned Ed25519 public key.
    pub server_key: VerifyingKey,
    /// When enrollment completed.
    pub enrolled_at: Timestamp,
}

/// Dock state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dock {
    /// `Some(true)` docked, `Some(false)` unplugged, `None` not yet reported
    /// (treated as docked, so a checkout still needs an unplug to complete).
    pub docked: Option<bool>,
    /// The last dock location reported.
    pub last_location: DockLocation,
}

impl Dock {
    /// True unless the host has said the device is unplugged.
    pub fn is_docked(&self) -> bool {
        self.docked != Some(false)
    }
}

/// What the platform last said about the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformFacts {
    /// OS version.
    pub os_version: Option<OsVersion>,
    /// Whether a passcode is set.
    pub passcode_present: Option<bool>,
    /// Jailbreak / tamper signals currently raised.
    pub compromise_signals: Vec<String>,
    /// Battery level 0..=100.
    pub battery_percent: Option<u8>,
}

/// Server reachability as the core sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Last successful sync (or enrollment).
    pub last_contact: Option<Timestamp>,
    /// False after a failed sync or an unreachable authorization, until the next success.
    pub reachable: bool,
}

/// An authorization the server has not answered yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuth {
    /// Request id sent to the server.
    pub request_id: RequestId,
    /// Phone badge or password.
    pub method: UnlockMethod,
    /// When to give up waiting.
    pub deadline: Timestamp,
    /// The badge, kept in memory only so an unanswered tap can fall back to the offline
    /// list. Never persisted: after a restart the user simply taps again.
    #[serde(skip)]
    pub badge: Option<lanyard_protocol::BadgeId>,
}

/// Emergency PIN attempt accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinGuard {
    /// Consecutive wrong PINs.
    pub failures: u32,
    /// No attempt is checked before this instant.
    pub locked_until: Option<Timestamp>,
}

/// A passcode clear being tracked until confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasscodeClear {
    /// First request.
    pub requested_at: Timestamp,
    /// Requests sent so far.
    pub attempts: u32,
    /// When to ask again if still unconfirmed.
    pub next_retry_at: Timestamp,
}

/// A transient message on the screen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// When it disappears.
    pub until: Timestamp,
}

/// A command id kept to refuse replays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedCommand {
    /// The id.
    pub command_id: CommandId,
    /// Its expiry; after it (plus skew) the envelope check refuses it anyway.
    pub expires_at: Timestamp,
}

impl Locker {
    /// A fresh, unenrolled locker with the default policy.
    pub fn new() -> Self {
        Locker {
            phase: Phase::Unenrolled,
            enrollment: None,
            policy: Policy::default(),
            offline_credentials: None,
            dock: Dock::default(),
            facts: PlatformFacts::default(),
            link: Link::default(),
            compliance: ComplianceTracker::default(),
            pending_auth: None,
            pin_guard: PinGuard::default(),
            managed_emergency_pin: None,
            passcode_clear: None,
            notice: None,
            applied_commands: Vec::new(),
            next_seq: 1,
            next_local_id: 1,
            checked_in_since: Timestamp::EPOCH,
            shown: None,
            scheduled_wake: None,
        }
    }

    /// The wire status.
    pub fn status(&self) -> DeviceStatus {
        self.phase.status()
    }

    /// The Device User, if any.
    pub fn user(&self) -> Option<&UserRef> {
        self.phase.user()
    }

    /// The screen this state shows. Derived, never stored as truth.
    pub fn screen(&self, now: Timestamp) -> Screen {
        crate::screen::render(self, now)
    }
}

impl Default for Locker {
    fn default() -> Self {
        Locker::new()
    }
}
