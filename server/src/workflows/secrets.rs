//! Secrets inside workflows (a Wi-Fi passphrase): sealed before they are stored, so the
//! database, its backups, run snapshots and the audit log hold only ciphertext; opened
//! for the engine when it builds the profile and for admins reading the workflow;
//! shown as [`REDACTED`] to every other role and in the audit log and its exports.

use serde::Serialize;
use serde_json::Value;

use super::model::{Action, WorkflowSpec};
use crate::error::AppError;
use crate::keys::{SEALED_PREFIX, ServerKeys};
use crate::model::Role;
use crate::state::AppState;
use crate::storage::Storage;
use crate::storage::workflows::JsonRewrite;

/// What a sealed secret reads as where it is not shown.
pub const REDACTED: &str = "********";

/// Seals every secret of `spec` still in clear (call after validation).
pub fn seal(keys: &ServerKeys, spec: &mut WorkflowSpec) -> Result<(), AppError> {
    for action in &mut spec.actions {
        if let Action::AddWifi {
            password: Some(p), ..
        } = action
            && !p.starts_with(SEALED_PREFIX)
        {
            if p == REDACTED {
                return Err(AppError::invalid(
                    "password",
                    "send the passphrase itself (other roles see it redacted)",
                ));
            }
            *p = keys.seal_secret(p)?;
        }
    }
    Ok(())
}

/// Seals the secrets that versions before sealing stored in clear — in workflows, in
/// run snapshots and in the audit entries that recorded them — as one audited change by
/// `system`, run at start. Returns how many stored documents changed.
pub async fn seal_stored<S: Storage>(st: &AppState<S>) -> Result<usize, AppError> {
    let keys = st.keys.clone();
    let rewrite: JsonRewrite = std::sync::Arc::new(move |doc: &mut Value| {
        seal_fields(&keys, doc).map_err(|e| e.to_string())
    });
    let changed = st
        .storage
        .rewrite_workflow_documents(rewrite, "secrets.seal", "system".into(), st.now())
        .await?;
    if changed > 0 {
        // The clear copies must not linger in free pages or the WAL.
        st.storage.scrub().await?;
    }
    Ok(changed)
}

/// Seals every `password` field in clear inside `v`; answers whether any changed.
fn seal_fields(keys: &ServerKeys, v: &mut Value) -> anyhow::Result<bool> {
    match v {
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= seal_fields(keys, item)?;
            }
            Ok(changed)
        }
        Value::Object(map) => {
            let mut changed = false;
            for (k, item) in map.iter_mut() {
                match item {
                    Value::String(p)
                        if k == "password" && !p.starts_with(SEALED_PREFIX) && p != REDACTED =>
                    {
                        *p = keys.seal_secret(p)?;
                        changed = true;
                    }
                    _ => changed |= seal_fields(keys, item)?,
                }
            }
            Ok(changed)
        }
        _ => Ok(false),
    }
}

/// Opens every sealed secret of `spec` (to validate a copy, e.g. a clone).
pub fn reveal(keys: &ServerKeys, spec: &mut WorkflowSpec) -> Result<(), AppError> {
    for action in &mut spec.actions {
        if let Action::AddWifi {
            password: Some(p), ..
        } = action
        {
            *p = open(keys, p)?;
        }
    }
    Ok(())
}

/// A secret in clear: opened when sealed, as it is otherwise (stored before sealing).
pub fn open(keys: &ServerKeys, value: &str) -> Result<String, AppError> {
    if value.starts_with(SEALED_PREFIX) {
        Ok(keys.open_secret(value)?)
    } else {
        Ok(value.to_owned())
    }
}

/// `value` as `role` may see it: secrets opened for admins, redacted for the others.
pub fn shown<T: Serialize>(keys: &ServerKeys, role: Role, value: &T) -> Result<Value, AppError> {
    let mut v = serde_json::to_value(value).map_err(anyhow::Error::new)?;
    match role {
        Role::Admin => open_all(keys, &mut v)?,
        Role::Helpdesk | Role::Auditor => redact(&mut v),
    }
    Ok(v)
}

/// Replaces every sealed secret inside `v` with [`REDACTED`], and every `password`
/// field too (a passphrase stored before secrets were sealed is still in clear).
pub fn redact(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with(SEALED_PREFIX) => *s = REDACTED.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                if k == "password" && item.is_string() {
                    *item = Value::String(REDACTED.to_owned());
                } else {
                    redact(item);
                }
            }
        }
        _ => {}
    }
}

fn open_all(keys: &ServerKeys, v: &mut Value) -> Result<(), AppError> {
    match v {
        Value::String(s) if s.starts_with(SEALED_PREFIX) => *s = open(keys, s)?,
        Value::Array(items) => {
            for i in items {
                open_all(keys, i)?;
            }
        }
        Value::Object(map) => {
            for i in map.values_mut() {
                open_all(keys, i)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_for_admins_and_read_redacted_for_others() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ServerKeys::load_or_create(dir.path()).unwrap();
        let sealed = keys.seal_secret("provision-me").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("provision-me"));
        assert_eq!(open(&keys, &sealed).unwrap(), "provision-me");
        assert_eq!(open(&keys, "legacy-clear").unwrap(), "legacy-clear");
        let doc =
            serde_json::json!({"actions": [{"ssid": "S", "password": sealed}], "note": sealed});
        let admin = shown(&keys, Role::Admin, &doc).unwrap();
        assert_eq!(admin["actions"][0]["password"], "provision-me");
        assert_eq!(admin["note"], "provision-me");
        let auditor = shown(&keys, Role::Auditor, &doc).unwrap();
        assert_eq!(auditor["actions"][0]["password"], REDACTED);
        assert_eq!(auditor["note"], REDACTED);
        // Another server's key (or a tampered value) does not open it.
        let other = ServerKeys::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(open(&other, &sealed).is_err());
    }
}
