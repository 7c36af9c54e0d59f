//! How long the server keeps what grows with use: phones' records, settled commands,
//! the MDM log, security events, finished workflow runs and sent emails are pruned
//! past their retention; the audit log is kept (and exported by IT).

use lanyard_protocol::Timestamp;

use crate::storage::tx::Prunable;
use crate::storage::{StorageError, Tx};

/// Retention settings, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Phones' records, commands, the MDM log, security events and workflow runs.
    pub history_days: u32,
    /// Emails sent or given up.
    pub email_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            // A year: an incident is usually looked into within months.
            history_days: 365,
            email_days: 90,
        }
    }
}

impl Retention {
    /// Days `what` is kept.
    pub fn days(&self, what: Prunable) -> u32 {
        match what {
            Prunable::SettledEmails => self.email_days,
            _ => self.history_days,
        }
    }
}

/// Prunes at most `limit` rows of each kind past its retention at `now`, in the
/// caller's transaction; returns what was pruned.
pub fn prune(
    tx: &dyn Tx,
    retention: &Retention,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<(Prunable, usize)>, StorageError> {
    let mut out = Vec::new();
    for what in Prunable::ALL {
        let keep_ms = i64::from(retention.days(what)) * 86_400_000;
        let n = tx.prune(what, Timestamp(now.as_millis() - keep_ms), limit)?;
        if n > 0 {
            out.push((what, n));
        }
    }
    Ok(out)
}
