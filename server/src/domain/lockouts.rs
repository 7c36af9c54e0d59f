//! Password lockouts: after [`FREE_ATTEMPTS`] wrong passwords for a username, each
//! further failure locks it for a minute, doubling up to an hour; a success clears it.
//! Unknown usernames count the same, so probing for names is throttled too. Stored in
//! the database (one lockout for every server process, kept across restarts), pruned
//! of usernames quiet for a day.

use lanyard_protocol::Timestamp;

use crate::storage::{StorageError, Tx};

/// Wrong passwords allowed per username before checks are refused for a while.
pub const FREE_ATTEMPTS: u32 = 5;
/// Longest lockout.
const MAX_LOCK_SECS: u64 = 3600;
/// Failures of a username quiet this long are forgotten.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

/// Until when checks for `username` are refused, if they are at `now`.
pub fn locked_until(
    tx: &dyn Tx,
    username: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>, StorageError> {
    Ok(tx
        .password_failures(username)?
        .map(|(_, until)| until)
        .filter(|until| *until > now))
}

/// The lockout after `failures` consecutive failures ending at `now`.
pub fn lockout_after(failures: u32, now: Timestamp) -> Timestamp {
    if failures < FREE_ATTEMPTS {
        return Timestamp::EPOCH;
    }
    let over = (failures - FREE_ATTEMPTS).min(6);
    now.plus_secs((60u64 << over).min(MAX_LOCK_SECS))
}

/// Records a password check of `username`.
pub fn record(tx: &dyn Tx, username: &str, ok: bool, now: Timestamp) -> Result<(), StorageError> {
    if ok {
        return tx.set_password_failures(username, None, now);
    }
    tx.prune_password_failures(Timestamp(now.as_millis() - FORGET_AFTER_MS))?;
    let failures = tx
        .password_failures(username)?
        .map_or(0, |(n, _)| n)
        .saturating_add(1);
    tx.set_password_failures(
        username,
        Some((failures, lockout_after(failures, now))),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_start_after_the_free_attempts_and_double_to_an_hour() {
        let now = Timestamp(1_000_000);
        for n in 0..FREE_ATTEMPTS {
            assert_eq!(lockout_after(n, now), Timestamp::EPOCH);
        }
        assert_eq!(lockout_after(FREE_ATTEMPTS, now), now.plus_secs(60));
        assert_eq!(lockout_after(FREE_ATTEMPTS + 1, now), now.plus_secs(120));
        assert_eq!(lockout_after(FREE_ATTEMPTS + 20, now), now.plus_secs(3600));
    }
}
