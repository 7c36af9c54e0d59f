//! The Lanyard locker core.
//!
//! A sans-I/O state machine that decides, on the phone, who may use it and when it
//! locks: [`handle`]`(state, event, now) -> (state, effects)`. No clock reads, no network,
//! no disk inside — this crate depends on the wire types, serde and thiserror only. The
//! host (`lanyard-agent`'s runtime, the iOS shim, the simulator, the tests) feeds
//! [`Event`]s and carries out [`Effect`]s; `docs/ARCHITECTURE.md` describes the rules.

pub mod compliance;
pub mod effect;
pub mod event;
mod machine;
mod offline;
pub mod screen;
pub mod state;
pub mod verified;

pub use effect::Effect;
pub use event::{Event, FactsUpdate};
pub use machine::handle;
pub use screen::Screen;
pub use state::{Locker, Phase};
pub use verified::Verified;
