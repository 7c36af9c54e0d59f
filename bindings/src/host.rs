//! What the host app provides: foreign traits the Swift (Kotlin, Python) side implements.
//! Every method returns a `Result`; a host that throws anything but [`HostError`] still
//! reaches Rust as [`HostError::Unexpected`], so a failing capability never crashes the
//! agent. What a failure means is decided where each capability is used.

use std::sync::Arc;

use lanyard_agent::secrets::{SecretStore, SecretStoreError};

use crate::error::HostError;
use crate::model::{AppToLogOut, ScreenModel};

/// Draws the locker screens.
#[uniffi::export(foreign)]
pub trait ScreenPresenter: Send + Sync {
    /// Shows `screen` (called whenever it changes, from any thread: hop to the main
    /// thread before touching UI). Must not call back into the agent synchronously.
    fn show_screen(&self, screen: ScreenModel) -> Result<(), HostError>;
    /// Brings a blank page to the front before apps are logged out at check-in, so
    /// nothing of the last user's screen stays visible.
    fn open_blank_page(&self) -> Result<(), HostError>;
}

/// Logs clinical apps out at check-in.
#[uniffi::export(foreign)]
pub trait AppSessions: Send + Sync {
    /// Starts logging `app` out and returns; report the result later with
    /// `LockerAgent.appLogoutFinished`. An error counts as a failed logout at once.
    fn log_out(&self, app: AppToLogOut) -> Result<(), HostError>;
}

/// Secret storage that outlives the app's data (the Keychain on iOS). Holds the device
/// credential issued at enrollment.
#[uniffi::export(foreign)]
pub trait SecretStorage: Send + Sync {
    /// The value stored under `key`, if any.
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, HostError>;
    /// Stores `value` under `key`, replacing what was there.
    fn put(&self, key: String, value: Vec<u8>) -> Result<(), HostError>;
    /// Removes `key`; no error if it is absent.
    fn delete(&self, key: String) -> Result<(), HostError>;
}

/// Local notifications to whoever holds the phone.
#[uniffi::export(foreign)]
pub trait Notifier: Send + Sync {
    /// Shows `text` as a local notification (or an alert when in the foreground).
    fn notify(&self, text: String) -> Result<(), HostError>;
}

/// The wall clock, when the host wants to own it (tests, a simulator). Without one the
/// agent reads the system clock.
#[uniffi::export(foreign)]
pub trait HostClock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> Result<i64, HostError>;
}

/// The agent's [`SecretStore`] over the host's [`SecretStorage`].
pub(crate) struct HostSecrets(pub(crate) Arc<dyn SecretStorage>);

fn secret_error(e: HostError) -> SecretStoreError {
    SecretStoreError(e.reason().to_owned())
}

impl SecretStore for HostSecrets {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SecretStoreError> {
        self.0.get(key.to_owned()).map_err(secret_error)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), SecretStoreError> {
        self.0
            .put(key.to_owned(), value.to_vec())
            .map_err(secret_error)
    }

    fn delete(&self, key: &str) -> Result<(), SecretStoreError> {
        self.0.delete(key.to_owned()).map_err(secret_error)
    }
}

/// Every capability the agent needs from the host.
pub(crate) struct Host {
    pub(crate) presenter: Arc<dyn ScreenPresenter>,
    pub(crate) apps: Arc<dyn AppSessions>,
    pub(crate) secrets: HostSecrets,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) clock: Option<Arc<dyn HostClock>>,
}
