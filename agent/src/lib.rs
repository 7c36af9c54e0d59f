//! The Lanyard locker core.
//!
//! A sans-I/O state machine that decides, on the phone, who may use it and when it
//! locks: [`handle`]`(state, event, now) -> (state, effects)`. No clock reads, no network,
//! no disk inside. The host (the iOS shim, the simulator, the tests) feeds [`Event`]s and
//! carries out [`Effect`]s; `docs/ARCHITECTURE.md` describes the rules.
//!
//! At the edges, [`store`] keeps the state and its outbox durable (SQLite) and
//! [`runtime::Agent`] commits every change before its effects may run.

pub mod compliance;
pub mod effect;
pub mod enrollment;
pub mod event;
mod machine;
mod offline;
pub mod runtime;
pub mod screen;
pub mod secrets;
pub mod state;
pub mod store;
pub mod sync;
pub mod verified;

pub use effect::Effect;
pub use event::{Event, FactsUpdate};
pub use machine::handle;
pub use screen::Screen;
pub use state::{Locker, Phase};
pub use verified::Verified;
