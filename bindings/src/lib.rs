//! The foreign-language boundary of the Lanyard agent (uniffi 0.32, proc-macros only).
//!
//! A thin layer in the application-services style: [`LockerAgent`] wraps the core's
//! [`lanyard_agent::runtime::Agent`] and its sync client, converts values and errors, and
//! carries out the core's effects through host capabilities the app implements as
//! foreign traits ([`ScreenPresenter`], [`AppSessions`], [`SecretStorage`], [`Notifier`],
//! [`HostClock`]). The tokio runtime that runs sync, authorization and wake-ups is owned
//! here, so hosts need no async support; methods that reach the network block and are
//! called off the main thread.

uniffi::setup_scaffolding!();

mod engine;
pub mod error;
pub mod host;
pub mod locker;
pub mod model;

pub use error::{ApiError, HostError};
pub use host::{AppSessions, HostClock, Notifier, ScreenPresenter, SecretStorage};
pub use locker::{LockerAgent, SyncHandle};
pub use model::{
    AgentStatus, AppToLogOut, DeviceDetails, DeviceFacts, LockerPhase, ScreenModel, SyncReport,
    SyncSettings,
};

/// Wire protocol version the embedded core speaks.
#[uniffi::export]
pub fn protocol_version() -> u32 {
    lanyard_protocol::PROTOCOL_VERSION
}

/// Version of this library.
#[uniffi::export]
pub fn library_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
