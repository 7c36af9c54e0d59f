//! The agent as a host runs it: the pure core plus its durable store.
//!
//! `Agent::handle` computes the next state and effects, commits the state and its
//! outbox records in one transaction, and only then hands the effects back to the host.
//! If the commit fails, the in-memory state does not move and no effect is returned, so
//! the phone never acts on a decision it could lose in a power cut.

use lanyard_protocol::Timestamp;

use crate::store::{Store, StoreError};
use crate::{Effect, Event, Locker};

/// The core and its store, kept in step.
pub struct Agent {
    locker: Locker,
    store: Store,
}

impl Agent {
    /// Loads the last committed state from `store` (a fresh locker if there is none) and
    /// returns the effects to carry out after a (re)start: the current screen, pending app
    /// logouts, the passcode clear still being tracked, the next wake-up.
    pub fn open(store: Store, now: Timestamp) -> Result<(Agent, Vec<Effect>), StoreError> {
        let locker = store.load_state()?.unwrap_or_default();
        let mut agent = Agent { locker, store };
        let effects = agent.handle(Event::HostStarted, now)?;
        Ok((agent, effects))
    }

    /// Feeds one event. The returned effects may be carried out: their state is durable.
    pub fn handle(&mut self, event: Event, now: Timestamp) -> Result<Vec<Effect>, StoreError> {
        let (next, effects) = crate::handle(self.locker.clone(), event, now);
        // An idle tick changes nothing: skip the transaction and its fsync.
        let has_records = effects.iter().any(|e| matches!(e, Effect::Record(_)));
        if has_records || next != self.locker {
            self.store.commit(&next, &effects)?;
            self.locker = next;
        }
        Ok(effects)
    }

    /// The current (committed) state.
    pub fn locker(&self) -> &Locker {
        &self.locker
    }

    /// The store, for the sync client's outbox reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, for acknowledging records the server made durable.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}
