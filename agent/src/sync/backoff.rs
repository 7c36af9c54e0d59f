//! Exponential backoff with jitter, so a fleet coming back from an outage does not hit
//! the server in lockstep.

use std::time::Duration;

/// Delay policy for failed syncs: `base · 2^failures`, capped, each delay drawn
/// uniformly from its upper half ("equal jitter": never shorter than half, so a flapping
/// server is not hammered; spread enough that devices desynchronise).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff starting at `base`, never above `cap`, with its jitter seeded by `seed`
    /// (from the system random source in production, fixed in tests).
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Self {
        Backoff {
            base,
            cap,
            failures: 0,
            rng: seed | 1,
        }
    }

    /// The delay after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        let half = exp / 2;
        let span = u64::try_from((exp - half).as_millis()).unwrap_or(u64::MAX);
        let jitter = if span == 0 {
            0
        } else {
            self.next_random() % (span + 1)
        };
        half + Duration::from_millis(jitter)
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Back to the base delay after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// xorshift64*: plenty for spreading retries; not for anything secret.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A seed from the system's random source.
pub fn system_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut bytes).is_err() {
        // Only the spread of retry times depends on this; a fixed seed is still safe.
        return 0x9E37_79B9_7F4A_7C15;
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 42);
        let mut last_ceiling = Duration::ZERO;
        for n in 0..10u32 {
            let d = b.next_delay();
            let ceiling = Duration::from_secs(1u64 << n).min(Duration::from_secs(60));
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "failure {n}: {d:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            assert!(ceiling >= last_ceiling);
            last_ceiling = ceiling;
        }
        assert_eq!(b.failures(), 10);
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        // Two devices with different seeds spread out.
        let mut a = Backoff::new(Duration::from_secs(8), Duration::from_secs(60), 1);
        let mut c = Backoff::new(Duration::from_secs(8), Duration::from_secs(60), 2);
        let same = (0..5).filter(|_| a.next_delay() == c.next_delay()).count();
        assert!(same < 5);
    }
}
