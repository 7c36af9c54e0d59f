//! The foreign-language boundary of the Lanyard agent.
//!
//! A skeleton until the Bindings issue: it will wrap [`lanyard_agent::Locker`] in a
//! uniffi-exported `LockerAgent` for Swift, Kotlin and Python. Today it only re-exports
//! the versions a host needs to check compatibility; nothing here is a stand-in API.

pub use lanyard_agent as agent;

/// Wire protocol version the embedded core speaks.
pub const PROTOCOL_VERSION: u32 = lanyard_protocol::PROTOCOL_VERSION;

/// Version of this library.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");
