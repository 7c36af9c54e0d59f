//! Slow salted hashes (PBKDF2-HMAC-SHA256) for secrets a phone must check offline:
//! badge ids in the offline credential list and the emergency unlock PIN.
//!
//! A 26-bit prox badge space is small, so the hash only slows an attacker who has
//! the list; the iteration count comes from policy so IT can trade tap latency
//! against that cost. See `docs/security.md`.

use ring::pbkdf2;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

use crate::b64;

/// Fewest iterations a policy may ask for; lower values are raised to this.
pub const MIN_ITERATIONS: u32 = 1_000;

/// The iteration count servers should use for offline credential lists: ~19 ms per
/// badge check on the reference machine, under 100 ms on a phone-class CPU up to ~5×
/// slower (see `docs/BENCHMARKS.md` for the measurement and the argument).
pub const RECOMMENDED_OFFLINE_ITERATIONS: u32 = 100_000;

/// A salted PBKDF2-HMAC-SHA256 digest of a secret, with the parameters to check it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowHash {
    /// Per-device (or per-secret) salt.
    #[serde(with = "b64::bytes")]
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// The 32-byte derived key.
    #[serde(with = "b64::array32")]
    pub hash: [u8; 32],
}

impl std::fmt::Debug for SlowHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowHash")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn iterations(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(MIN_ITERATIONS)).unwrap_or(NonZeroU32::MIN)
}

/// Derives the 32-byte PBKDF2-HMAC-SHA256 key of `secret` with `salt`.
pub fn derive(secret: &[u8], salt: &[u8], iteration_count: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations(iteration_count),
        salt,
        secret,
        &mut out,
    );
    out
}

impl SlowHash {
    /// Hashes `secret` with the given salt and iteration count.
    pub fn new(secret: &[u8], salt: Vec<u8>, iteration_count: u32) -> Self {
        let iteration_count = iteration_count.max(MIN_ITERATIONS);
        let hash = derive(secret, &salt, iteration_count);
        SlowHash {
            salt,
            iterations: iteration_count,
            hash,
        }
    }

    /// Checks `secret` in constant time.
    pub fn verify(&self, secret: &[u8]) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations(self.iterations),
            &self.salt,
            secret,
            &self.hash,
        )
        .is_ok()
    }
}

/// Why a hash in its text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Lanyard PIN hash ({0}); expected pbkdf2-sha256$<iterations>$<salt>$<hash>")]
pub struct SlowHashTextError(&'static str);

impl SlowHash {
    /// The one-line text form used in configuration (MDM managed app configuration):
    /// `pbkdf2-sha256$<iterations>$<salt>$<hash>`, salt and hash as unpadded base64url.
    pub fn to_text(&self) -> String {
        format!(
            "pbkdf2-sha256${}${}${}",
            self.iterations,
            crate::b64::encode(&self.salt),
            crate::b64::encode(&self.hash)
        )
    }

    /// Parses [`SlowHash::to_text`]'s form, refusing weak parameters (fewer than
    /// [`MIN_ITERATIONS`] iterations, a salt under 8 bytes).
    pub fn from_text(text: &str) -> Result<SlowHash, SlowHashTextError> {
        let mut parts = text.trim().split('$');
        if parts.next() != Some("pbkdf2-sha256") {
            return Err(SlowHashTextError("unknown scheme"));
        }
        let iterations: u32 = parts
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or(SlowHashTextError("iterations are not a number"))?;
        if iterations < MIN_ITERATIONS {
            return Err(SlowHashTextError("too few iterations"));
        }
        let salt = parts
            .next()
            .and_then(|s| crate::b64::decode(s).ok())
            .filter(|s| s.len() >= 8)
            .ok_or(SlowHashTextError("salt missing or under 8 bytes"))?;
        let hash: [u8; 32] = parts
            .next()
            .and_then(|h| crate::b64::decode(h).ok())
            .and_then(|h| h.try_into().ok())
            .ok_or(SlowHashTextError("hash is not 32 bytes"))?;
        if parts.next().is_some() {
            return Err(SlowHashTextError("trailing fields"));
        }
        Ok(SlowHash {
            salt,
            iterations,
            hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_roundtrips_and_refuses_weak_or_malformed_hashes() {
        let h = SlowHash::new(b"4711", b"0123456789abcdef".to_vec(), 5000);
        let text = h.to_text();
        assert!(text.starts_with("pbkdf2-sha256$5000$"), "{text}");
        assert_eq!(SlowHash::from_text(&text), Ok(h.clone()));
        assert!(SlowHash::from_text(&text).unwrap().verify(b"4711"));
        let weak = SlowHash::new(b"4711", b"0123456789abcdef".to_vec(), 1000);
        let weak = weak.to_text().replace("$1000$", "$999$");
        for bad in [
            "",
            "sha1$5000$AAAA$AAAA",
            weak.as_str(),
            "pbkdf2-sha256$5000$c2FsdA$AAAA",
            &format!("{text}$extra"),
        ] {
            assert!(SlowHash::from_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn verify_accepts_only_the_secret() {
        let h = SlowHash::new(b"4711", b"salt-A".to_vec(), 1000);
        assert!(h.verify(b"4711"));
        assert!(!h.verify(b"4712"));
        let other_salt = SlowHash::new(b"4711", b"salt-B".to_vec(), 1000);
        assert_ne!(h.hash, other_salt.hash);
    }

    #[test]
    fn json_roundtrip_and_debug_hides_digest() {
        let h = SlowHash::new(b"x", vec![1, 2, 3], 2000);
        let back: SlowHash = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert!(!format!("{h:?}").contains("hash"));
    }
}
