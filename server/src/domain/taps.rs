//! The cart tap log: every badge tapped at a cart's reader is recorded with what the
//! cart answered — granted, or refused and why — so IT can see why a clinician walked
//! away without a phone. A grant is recorded in the transaction that makes it.

use lanyard_protocol::Timestamp;

use crate::storage::tx::NewCartTap;
use crate::storage::{StorageError, Tx};

/// Stable reasons a cart answers with (the `reason` of the tap and of its log entry).
pub mod reason {
    /// A phone was granted.
    pub const GRANTED: &str = "granted";
    /// Nobody has this badge.
    pub const BADGE_NOT_FOUND: &str = "badge_not_found";
    /// The external badge lookup service did not answer.
    pub const LOOKUP_UNAVAILABLE: &str = "lookup_unavailable";
    /// The cart's reader is throttled after too many unknown badges.
    pub const TOO_MANY_UNKNOWN_BADGES: &str = "too_many_unknown_badges";
    /// The clinician already holds as many phones as allowed.
    pub const USER_HAS_DEVICE: &str = "user_has_device";
    /// The cart waits for the previous clinician to take their phone.
    pub const CART_BUSY: &str = "cart_busy";
    /// No docked phone can be handed out.
    pub const NO_DEVICE: &str = "no_device";
}

/// Records one tap's answer (in the caller's transaction: a grant and its record
/// commit together).
pub(crate) fn record(
    tx: &dyn Tx,
    tap: &NewCartTap<'_>,
    now: Timestamp,
) -> Result<(), StorageError> {
    tx.record_cart_tap(tap, now)
}
