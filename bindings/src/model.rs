//! Plain values that cross the boundary (uniffi records and enums), and their conversions
//! from the core's types. Instants are `SystemTime` (a `Date` in Swift, an `Instant` in
//! Kotlin, a `datetime` in Python).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lanyard_agent::Screen;
use lanyard_agent::sync::SyncOutcome;
use lanyard_protocol::enroll::DeviceInfo;
use lanyard_protocol::policy::AppLogout;
use lanyard_protocol::{DeviceStatus, Timestamp};

use crate::error::ApiError;

/// What the locker app shows. Only `CheckoutPending` and `CheckedOut` leave the phone
/// usable, and both always name a user.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ScreenModel {
    /// Not enrolled: the enrollment screen.
    Enrollment,
    /// Locked in the cart.
    Locked {
        /// The lock-screen text from policy.
        text: String,
        /// A short notice (a denial, "Checking in…"), if any.
        notice: Option<String>,
        /// True while something is in progress (authorizing, checking in).
        busy: bool,
    },
    /// Granted, waiting for the unplug.
    CheckoutPending {
        /// Whose it is.
        display_name: String,
        /// The checked-out text.
        text: String,
        /// When the grant lapses if the phone stays docked.
        expires_at: SystemTime,
    },
    /// In use.
    CheckedOut {
        /// Whose it is.
        display_name: String,
        /// The checked-out text.
        text: String,
        /// When it is due back.
        due_at: SystemTime,
        /// Past the due time.
        overdue: bool,
    },
    /// Held by compliance: locked, with the reasons to show.
    Blocked {
        /// One sentence per reason.
        reasons: Vec<String>,
        /// The holder, when the lock needs their re-authentication.
        display_name: Option<String>,
    },
}

impl From<Screen> for ScreenModel {
    fn from(s: Screen) -> Self {
        match s {
            Screen::Enrollment => ScreenModel::Enrollment,
            Screen::Locked { text, notice, busy } => ScreenModel::Locked { text, notice, busy },
            Screen::CheckoutPending {
                display_name,
                text,
                expires_at,
            } => ScreenModel::CheckoutPending {
                display_name,
                text,
                expires_at: system_time(expires_at),
            },
            Screen::CheckedOut {
                display_name,
                text,
                due_at,
                overdue,
            } => ScreenModel::CheckedOut {
                display_name,
                text,
                due_at: system_time(due_at),
                overdue,
            },
            Screen::Blocked {
                reasons,
                display_name,
            } => ScreenModel::Blocked {
                reasons,
                display_name,
            },
        }
    }
}

/// Where the phone stands in the checkout cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LockerPhase {
    /// Not yet enrolled.
    Unenrolled,
    /// Locked, no user.
    CheckedIn,
    /// Granted, waiting for the unplug.
    CheckoutPending,
    /// Unplugged and assigned to one user.
    CheckedOut,
    /// Docked after a checkout: apps logging out.
    Returning,
    /// Held by compliance.
    Blocked,
}

impl From<DeviceStatus> for LockerPhase {
    fn from(s: DeviceStatus) -> Self {
        match s {
            DeviceStatus::Unenrolled => LockerPhase::Unenrolled,
            DeviceStatus::CheckedIn => LockerPhase::CheckedIn,
            DeviceStatus::CheckoutPending => LockerPhase::CheckoutPending,
            DeviceStatus::CheckedOut => LockerPhase::CheckedOut,
            DeviceStatus::Returning => LockerPhase::Returning,
            DeviceStatus::Blocked => LockerPhase::Blocked,
        }
    }
}

/// What the phone tells the server about itself when it enrolls (all optional; the MDM's
/// managed app configuration usually supplies serial and UDID).
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct DeviceDetails {
    /// Hardware serial number.
    #[uniffi(default = None)]
    pub serial: Option<String>,
    /// MDM UDID.
    #[uniffi(default = None)]
    pub udid: Option<String>,
    /// Model identifier, e.g. `iPhone15,2`.
    #[uniffi(default = None)]
    pub model: Option<String>,
    /// OS version, e.g. `17.4.1`.
    #[uniffi(default = None)]
    pub os_version: Option<String>,
    /// Device name.
    #[uniffi(default = None)]
    pub name: Option<String>,
}

impl DeviceDetails {
    pub(crate) fn into_info(self) -> Result<DeviceInfo, ApiError> {
        let os_version = self
            .os_version
            .map(|v| {
                v.parse().map_err(|_| ApiError::InvalidInput {
                    field: "os_version".into(),
                    reason: format!("{v:?} is not a version like 17.4.1"),
                })
            })
            .transpose()?;
        Ok(DeviceInfo {
            serial: self.serial,
            udid: self.udid,
            model: self.model,
            os_version,
            name: self.name,
        })
    }
}

/// Platform facts the host measured; `None` fields were not measured this time and
/// leave the stored value alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct DeviceFacts {
    /// OS version, e.g. `17.4.1`.
    #[uniffi(default = None)]
    pub os_version: Option<String>,
    /// Whether a passcode is set.
    #[uniffi(default = None)]
    pub passcode_present: Option<bool>,
    /// The full current set of compromise signals (empty: none).
    #[uniffi(default = None)]
    pub compromise_signals: Option<Vec<String>>,
    /// Battery level 0–100.
    #[uniffi(default = None)]
    pub battery_percent: Option<u8>,
}

/// An app the host must log out at check-in; report the result with
/// `LockerAgent.appLogoutFinished`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AppToLogOut {
    /// Bundle id, e.g. `com.epic.rover`.
    pub bundle_id: String,
    /// Human name, e.g. "Epic Rover".
    pub name: String,
}

impl From<AppLogout> for AppToLogOut {
    fn from(a: AppLogout) -> Self {
        AppToLogOut {
            bundle_id: a.app.to_string(),
            name: a.name,
        }
    }
}

/// How the background sync task paces itself.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSettings {
    /// How long the server may hold an idle sync open so a grant or remote command
    /// arrives at once (0: no long-poll).
    #[uniffi(default = 25)]
    pub long_poll_secs: u32,
    /// Pause between idle rounds (0: poll again as soon as one returns).
    #[uniffi(default = 0)]
    pub idle_pause_secs: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            long_poll_secs: 25,
            idle_pause_secs: 0,
        }
    }
}

/// What one sync round did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Records sent.
    pub sent: u64,
    /// Highest record sequence the server made durable.
    pub acked_seq: u64,
    /// Commands received.
    pub commands: u64,
    /// More records wait to be sent.
    pub more: bool,
}

impl SyncReport {
    pub(crate) fn of(outcome: SyncOutcome) -> Result<SyncReport, ApiError> {
        match outcome {
            SyncOutcome::Synced {
                sent,
                acked_seq,
                commands,
                more,
            } => Ok(SyncReport {
                sent: sent as u64,
                acked_seq,
                commands: commands as u64,
                more,
            }),
            SyncOutcome::Failed { error, .. } => Err(ApiError::ServerUnreachable {
                reason: error.to_string(),
            }),
        }
    }
}

/// The agent's health, for a diagnostics screen and for tests.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AgentStatus {
    /// Where the phone stands.
    pub phase: LockerPhase,
    /// The device id issued at enrollment.
    pub device_id: Option<String>,
    /// The user holding the phone, if any.
    pub username: Option<String>,
    /// Records not yet acknowledged by the server.
    pub outbox_len: u64,
    /// True while a sync task runs.
    pub syncing: bool,
    /// When a sync last succeeded.
    pub last_sync_at: Option<SystemTime>,
    /// Why the last sync failed, cleared by the next success.
    pub last_sync_error: Option<String>,
    /// Host capability calls that failed since the agent was opened.
    pub host_errors: u64,
    /// The most recent such failure.
    pub last_host_error: Option<String>,
}

/// A core timestamp as a `SystemTime` (instants before 1970 clamp to the epoch).
pub(crate) fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(t.as_millis()).unwrap_or(0))
}

/// A `SystemTime` as a core timestamp.
pub(crate) fn timestamp(t: SystemTime) -> Timestamp {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(ms)
}
