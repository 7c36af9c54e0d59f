//! The phones' policy: every change — IT's own (`PATCH /api/v1/policy`, `lanyard-server
//! policy set`) or what the check-in rules' workflows put in it — is checked as a phone
//! would check it, becomes a new version, and is audited, in one transaction. Phones
//! receive the new version, signed, at their next sync.

use lanyard_protocol::{Policy, Timestamp};
use serde_json::Value;

use crate::storage::tx::AuditEntry;
use crate::storage::{StorageError, Tx};

/// The policy in force (version 1, the defaults, before anything was stored).
pub(crate) fn current(tx: &dyn Tx) -> Result<Policy, StorageError> {
    Ok(tx.policy()?.unwrap_or_else(|| Policy {
        version: 1,
        ..Policy::default()
    }))
}

/// Applies `edit` to the policy in force. Nothing changes when the edit changes
/// nothing (`Ok(None)`); otherwise the result is validated, stored as the next version
/// and audited under `action` (the emergency PIN's hash never enters the audit log).
pub(crate) fn change(
    tx: &dyn Tx,
    actor: &str,
    action: &str,
    now: Timestamp,
    edit: impl FnOnce(&mut Policy) -> Result<(), StorageError>,
) -> Result<Option<Policy>, StorageError> {
    let before = current(tx)?;
    let mut after = before.clone();
    edit(&mut after)?;
    after.version = before.version;
    after.issued_at = before.issued_at;
    if after == before {
        return Ok(None);
    }
    after
        .validate()
        .map_err(|e| StorageError::Rejected(format!("policy: {e}")))?;
    let c = &after.checkout;
    if c.passcode_clear_retry_max_secs < c.passcode_clear_retry_secs {
        return Err(StorageError::Rejected(format!(
            "policy: checkout.passcode_clear_retry_max_secs ({}) is below checkout.passcode_clear_retry_secs ({})",
            c.passcode_clear_retry_max_secs, c.passcode_clear_retry_secs
        )));
    }
    after.version = before.version + 1;
    after.issued_at = now;
    tx.put_policy(&after, now)?;
    tx.audit(
        &AuditEntry {
            actor,
            action,
            target_kind: "policy",
            target_id: "1",
            before: Some(redacted(&before)),
            after: Some(redacted(&after)),
        },
        now,
    )?;
    Ok(Some(after))
}

/// The policy as the audit log keeps it: the emergency PIN shows whether one is set
/// and for whom, never its hash (a 4–8 digit PIN falls to a guess from its hash).
fn redacted(policy: &Policy) -> Value {
    serde_json::to_value(crate::policy::PolicyView::from(policy)).unwrap_or(Value::Null)
}
