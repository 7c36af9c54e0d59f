//! Failed attempts per credential: unknown badges tapped on a phone or at a cart
//! reader, wrong passwords entered on a phone. Past a limit within a window, that
//! phone or reader is refused every badge or password (known or not) until the window
//! ends — guessing is throttled to the limit, and the refusal tells nothing about the
//! badge — and IT hears of it once per window as a security event. Counted in the
//! database, so every server process applies the same limit.

use lanyard_protocol::Timestamp;

use crate::storage::tx::NewSecurityEvent;
use crate::storage::{StorageError, Tx};

/// What is counted, and against whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Unknown badges tapped on this phone.
    PhoneBadge(String),
    /// Wrong passwords (or unknown usernames) entered on this phone.
    PhonePassword(String),
    /// Unknown badges tapped at this cart's reader.
    CartBadge(String),
}

impl Source {
    fn key(&self) -> String {
        match self {
            Source::PhoneBadge(id) => format!("badge:device:{id}"),
            Source::PhonePassword(id) => format!("password:device:{id}"),
            Source::CartBadge(id) => format!("badge:cart:{id}"),
        }
    }

    /// Failures allowed per window.
    pub fn limit(&self) -> u32 {
        match self {
            Source::PhoneBadge(_) | Source::PhonePassword(_) => 10,
            // A cart serves a whole unit at shift change.
            Source::CartBadge(_) => 30,
        }
    }
}

/// The counting window.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;

/// Whether `source`, whose counter stands at `window` (its start and failures), is
/// over its limit at `now`.
pub fn is_limited(window: Option<(Timestamp, u32)>, source: &Source, now: Timestamp) -> bool {
    window.is_some_and(|(start, count)| {
        now.as_millis() - start.as_millis() < WINDOW_MS && count >= source.limit()
    })
}

/// Whether `source` is over its limit at `now`, read outside a transaction (a tap must
/// not queue behind the writer to learn it is allowed).
pub async fn limited<S: crate::storage::Storage>(
    storage: &S,
    source: &Source,
    now: Timestamp,
) -> Result<bool, StorageError> {
    let window = storage.attempt_window(source.key()).await?;
    Ok(is_limited(window, source, now))
}

/// Counts one failure of `source` in its own transaction; see [`failed`].
pub async fn count_failure<S: crate::storage::Storage>(
    storage: &S,
    source: Source,
    now: Timestamp,
) -> Result<bool, StorageError> {
    storage.transact(move |tx| failed(tx, &source, now)).await
}

/// Counts one failure of `source`; on reaching the limit, records a security event.
/// Returns whether `source` is now limited.
pub fn failed(tx: &dyn Tx, source: &Source, now: Timestamp) -> Result<bool, StorageError> {
    let key = source.key();
    let (start, count) = match tx.attempt_window(&key)? {
        Some((start, count)) if now.as_millis() - start.as_millis() < WINDOW_MS => {
            (start, count.saturating_add(1))
        }
        _ => (now, 1),
    };
    tx.prune_attempt_windows(Timestamp(now.as_millis() - WINDOW_MS))?;
    tx.set_attempt_window(&key, start, count)?;
    if count == source.limit() {
        let (device_id, launchpad_id, what) = match source {
            Source::PhoneBadge(id) => (Some(id.as_str()), None, "unknown badges on this phone"),
            Source::PhonePassword(id) => (Some(id.as_str()), None, "wrong passwords on this phone"),
            Source::CartBadge(id) => (
                None,
                Some(id.as_str()),
                "unknown badges at this cart's reader",
            ),
        };
        let detail = format!(
            "{count} {what} within {} minutes: refused until the window ends",
            WINDOW_MS / 60_000
        );
        tx.record_security_event(
            &NewSecurityEvent {
                device_id,
                launchpad_id,
                kind: "too_many_failures",
                detail: &detail,
                seq: None,
            },
            now,
        )?;
    }
    Ok(count >= source.limit())
}
