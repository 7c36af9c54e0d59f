//! Wall-clock instants as they travel on the wire.
//!
//! The core never reads a clock: every instant it sees arrives as a [`Timestamp`]
//! handed in by the host, which is what makes the state machine replayable.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch (UTC). Serialized as a plain JSON integer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The Unix epoch itself; useful as "never" for comparisons.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// Builds a timestamp from whole seconds since the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `secs` seconds, saturating instead of overflowing.
    pub const fn plus_secs(self, secs: u64) -> Self {
        let ms = if secs > (i64::MAX as u64) / 1000 {
            i64::MAX
        } else {
            (secs as i64) * 1000
        };
        Timestamp(self.0.saturating_add(ms))
    }

    /// This instant plus `ms` milliseconds, saturating instead of overflowing.
    pub const fn plus_millis(self, ms: u64) -> Self {
        let ms = if ms > i64::MAX as u64 {
            i64::MAX
        } else {
            ms as i64
        };
        Timestamp(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`; zero when `earlier` is later.
    pub const fn millis_since(self, earlier: Timestamp) -> u64 {
        let d = self.0.saturating_sub(earlier.0);
        if d < 0 { 0 } else { d as u64 }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Timestamp(i64::MAX - 1).plus_secs(10), Timestamp(i64::MAX));
        assert_eq!(Timestamp(0).plus_secs(u64::MAX), Timestamp(i64::MAX));
        assert_eq!(Timestamp(5).millis_since(Timestamp(10)), 0);
        assert_eq!(Timestamp::from_secs(2).millis_since(Timestamp(500)), 1500);
    }
}
