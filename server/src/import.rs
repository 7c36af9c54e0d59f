//! Bulk import from CSV (`lanyard-server import users|launchpads FILE`).
//!
//! Every row is parsed and validated with the same rules as the admin API before
//! anything is written; if any row is wrong, nothing is imported and every problem is
//! reported with its row number. Imports are audited like API changes.

use std::collections::HashSet;
use std::io::Read;

use lanyard_protocol::BadgeId;
use serde::Deserialize;

use crate::api::admin::{
    CreateLaunchpad, CreateUser, checked_launchpad, checked_user, hash_password,
};
use crate::error::AppError;
use crate::keys::{random_token, sha256};
use crate::state::AppState;
use crate::storage::{Storage, StorageError};

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Rows failed validation; nothing was imported.
    #[error("nothing imported; {} problem(s):\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
    /// Writing failed part-way (the database's own error).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Any other failure (hashing, randomness).
    #[error("{0}")]
    Other(String),
}

impl From<AppError> for ImportError {
    fn from(e: AppError) -> Self {
        ImportError::Other(e.to_string())
    }
}

/// A users CSV row: `username,display_name,email,groups,device_limit,badge,password`
/// (`groups` separated by `;`; empty cells are absent).
#[derive(Debug, Deserialize)]
struct UserRow {
    username: String,
    display_name: String,
    email: Option<String>,
    groups: Option<String>,
    device_limit: Option<u32>,
    badge: Option<String>,
    password: Option<String>,
}

/// A launchpads CSV row: `id,name,ports,department,facility,manager,timezone`.
#[derive(Debug, Deserialize)]
struct LaunchpadRow {
    id: String,
    name: String,
    ports: u32,
    department: Option<String>,
    facility: Option<String>,
    manager: Option<String>,
    timezone: Option<String>,
}

fn rows<T: serde::de::DeserializeOwned>(
    input: impl Read,
    problems: &mut Vec<String>,
) -> Vec<(usize, T)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<T>().enumerate() {
        // Row 1 is the header line.
        let line = i + 2;
        match row {
            Ok(r) => out.push((line, r)),
            Err(e) => problems.push(format!("row {line}: {e}")),
        }
    }
    out
}

/// Imports users (and their badges). Returns how many were created.
pub async fn users<S: Storage>(
    st: &AppState<S>,
    input: impl Read,
    actor: &str,
) -> Result<usize, ImportError> {
    let mut problems = Vec::new();
    let parsed: Vec<(usize, UserRow)> = rows(input, &mut problems);
    let mut seen_users = HashSet::new();
    let mut seen_badges = HashSet::new();
    let mut valid = Vec::new();
    for (line, row) in parsed {
        let groups = row
            .groups
            .as_deref()
            .map(|g| {
                g.split(';')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let input = CreateUser {
            username: row.username,
            display_name: row.display_name,
            email: row.email,
            groups,
            device_limit: row.device_limit,
            password: row.password.filter(|p| !p.is_empty()),
        };
        match checked_user(input) {
            Err(e) => problems.push(format!("row {line}: {e}")),
            Ok((user, password)) => {
                if !seen_users.insert(user.username.clone()) {
                    problems.push(format!(
                        "row {line}: username {} appears twice in the file",
                        user.username
                    ));
                } else if st.storage.get_user(user.username.clone()).await.is_ok() {
                    problems.push(format!("row {line}: user {} already exists", user.username));
                }
                let badge = row.badge.filter(|b| !b.is_empty());
                if let Some(b) = &badge {
                    if b.len() > 128 || b.chars().any(char::is_control) {
                        problems.push(format!(
                            "row {line}: badge: must be 1 to 128 printable characters"
                        ));
                    } else if !seen_badges.insert(b.clone()) {
                        problems.push(format!(
                            "row {line}: the same badge appears twice in the file"
                        ));
                    } else if st
                        .storage
                        .user_by_badge(st.keys.badge_hash(&BadgeId::new(b.as_str())))
                        .await?
                        .is_some()
                    {
                        problems.push(format!(
                            "row {line}: badge is already registered to another user"
                        ));
                    }
                }
                valid.push((user, password, badge));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }
    let count = valid.len();
    for (mut user, password, badge) in valid {
        if let Some(p) = password {
            user.password = Some(hash_password(p).await?);
        }
        let username = user.username.clone();
        st.storage
            .create_user(user, actor.to_owned(), st.now())
            .await?;
        if let Some(b) = badge {
            let hash = st.keys.badge_hash(&BadgeId::new(b));
            st.storage
                .add_badge(username, hash, actor.to_owned(), st.now())
                .await?;
        }
    }
    Ok(count)
}

/// Imports carts. Returns `(id, reader credential)` for each, shown once.
pub async fn launchpads<S: Storage>(
    st: &AppState<S>,
    input: impl Read,
    actor: &str,
) -> Result<Vec<(String, String)>, ImportError> {
    let mut problems = Vec::new();
    let parsed: Vec<(usize, LaunchpadRow)> = rows(input, &mut problems);
    let existing: HashSet<String> = st
        .storage
        .list_launchpads(None, u32::MAX - 1)
        .await?
        .items
        .into_iter()
        .flat_map(|l| [l.id, l.name])
        .collect();
    let mut seen = HashSet::new();
    let mut valid = Vec::new();
    for (line, row) in parsed {
        let input = CreateLaunchpad {
            id: row.id,
            name: row.name,
            ports: row.ports,
            department: row.department,
            facility: row.facility,
            manager: row.manager,
            timezone: row.timezone,
        };
        match checked_launchpad(input) {
            Err(e) => problems.push(format!("row {line}: {e}")),
            Ok(l) => {
                if existing.contains(&l.id) || existing.contains(&l.name) {
                    problems.push(format!("row {line}: launchpad {} already exists", l.id));
                } else if !seen.insert(l.id.clone()) || !seen.insert(format!("name:{}", l.name)) {
                    problems.push(format!(
                        "row {line}: launchpad {} appears twice in the file",
                        l.id
                    ));
                }
                valid.push(l);
            }
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }
    let mut out = Vec::new();
    for l in valid {
        let credential = random_token(32).map_err(|e| ImportError::Other(e.to_string()))?;
        let id = l.id.clone();
        st.storage
            .create_launchpad(l, sha256(credential.as_bytes()), actor.to_owned(), st.now())
            .await?;
        out.push((id, credential));
    }
    Ok(out)
}
