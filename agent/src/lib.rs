//! The Lanyard agent: the locker core ([`lanyard_core`], sans-I/O, re-exported here
//! with its paths) and the edges it needs on a phone.
//!
//! [`store`] keeps the core's state and its outbox durable (SQLite),
//! [`runtime::Agent`] commits every change before its effects may run, [`sync`] talks
//! to the server over HTTP, [`secrets`] keeps the device credential, and
//! [`enrollment`] reads enrollment links.

pub mod enrollment;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod sync;

pub use lanyard_core::{Effect, Event, FactsUpdate, Locker, Phase, Screen, Verified, handle};
pub use lanyard_core::{compliance, effect, event, screen, state, verified};
