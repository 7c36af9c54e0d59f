//! The server's rules. HTTP handlers parse, authenticate and call in here; every check
//! that must hold when the server acts runs here, inside the transaction that acts
//! (opened with [`crate::storage::Storage::transact`]); storage only stores.

pub mod attempts;
pub mod claims;
pub mod commands;
pub mod directory;
pub mod enrollment;
pub mod grants;
pub mod lockouts;
pub mod mdm_commands;
pub mod mirror;
pub mod policy;
pub mod retention;
pub mod sync;
pub mod taps;
