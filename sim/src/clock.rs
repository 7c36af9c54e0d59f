//! The simulation's clock: shared by every simulated phone and, in embedded mode, by the
//! server, so a day of shifts runs in seconds and both sides agree on the time.
//!
//! Between steps it jumps; within a step it runs at the speed of real time, so whatever
//! the server waits for on its own clock (a tap queued behind a grant, a long-poll) ends
//! as it would in a real cart.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use lanyard_protocol::Timestamp;

/// Simulated wall-clock time in ms since the epoch.
#[derive(Clone)]
pub struct SimClock(Arc<Mutex<(i64, Instant)>>);

impl SimClock {
    /// A clock at `start`, running.
    pub fn new(start: Timestamp) -> SimClock {
        SimClock(Arc::new(Mutex::new((start.as_millis(), Instant::now()))))
    }

    /// Now, in simulated time.
    pub fn now(&self) -> Timestamp {
        let (base, since) = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        Timestamp(base + since.elapsed().as_millis() as i64)
    }

    /// Jumps to `t`, or stays where it is if a long step already ran past it (the clock
    /// never goes backwards). Returns the time it is now.
    pub fn jump(&self, t: Timestamp) -> Timestamp {
        let now = self.now();
        let to = t.max(now);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = (to.as_millis(), Instant::now());
        to
    }

    /// The clock as the server takes it.
    pub fn for_server(&self) -> lanyard_server::ClockOverride {
        let clock = self.clone();
        lanyard_server::ClockOverride(Arc::new(move || clock.now()))
    }
}
