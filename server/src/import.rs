//! Bulk import from CSV (`lanyard-server import users|launchpads FILE`).
//!
//! Every row is parsed and validated with the same rules as the admin API before
//! anything is written; if any row is wrong, nothing is imported and every problem is
//! reported with its row number. Imports are audited like API changes.

use std::collections::HashSet;
use std::io::Read;

use lanyard_protocol::BadgeId;
use serde::Deserialize;

use crate::domain::directory::{
    CreateLaunchpad, CreateUser, checked_launchpad, checked_user, hash_password,
};
use crate::error::AppError;
use crate::keys::{random_token, sha256};
use crate::model::{AttributeTarget, AttributeType};
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

/// A user row that passed every check the file alone allows.
#[derive(Debug)]
pub struct ParsedUser {
    /// Its line in the file.
    pub line: usize,
    /// The user.
    pub user: crate::storage::NewUser,
    /// The password to hash, if any.
    pub password: Option<String>,
    /// The badge to register, if any.
    pub badge: Option<String>,
    /// The device limit the row gave (an existing user keeps theirs when it gives none).
    pub device_limit: Option<u32>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imported {
    /// Records created.
    pub created: usize,
    /// Existing records brought in line with the file.
    pub updated: usize,
}

/// Reads a users CSV and checks what the file alone can tell: every field valid, no
/// username or badge twice. No storage, no I/O: what the import and the fuzzer share.
pub fn parse_users(input: impl Read) -> (Vec<ParsedUser>, Vec<String>) {
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
        let limit_given = row.device_limit;
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
                }
                let badge = row.badge.filter(|b| !b.is_empty());
                if let Some(b) = &badge {
                    if let Err(e) = crate::validate::badge("badge", b) {
                        problems.push(format!("row {line}: {e}"));
                    } else if !seen_badges.insert(b.clone()) {
                        problems.push(format!(
                            "row {line}: the same badge appears twice in the file"
                        ));
                    }
                }
                valid.push(ParsedUser {
                    line,
                    user,
                    password,
                    badge,
                    device_limit: limit_given,
                });
            }
        }
    }
    (valid, problems)
}

/// Imports users (and their badges): a new username is created, an existing one is
/// brought in line with its row (display name, email and groups as the file says; the
/// device limit and password only when given; the badge added). Nothing is written if
/// any row is invalid.
pub async fn users<S: Storage>(
    st: &AppState<S>,
    input: impl Read,
    actor: &str,
) -> Result<Imported, ImportError> {
    let (valid, mut problems) = parse_users(input);
    let mut existing = HashSet::new();
    for p in &valid {
        let line = p.line;
        let username = &p.user.username;
        if st.storage.get_user(username.clone()).await.is_ok() {
            existing.insert(username.clone());
        }
        if let Some(b) = p.badge.as_deref().filter(|b| b.len() <= 128)
            && let Some((holder, _)) = st
                .storage
                .user_by_badge(st.keys.badge_hash(&BadgeId::new(b)))
                .await?
            && &holder.username != username
        {
            problems.push(format!(
                "row {line}: badge is already registered to another user"
            ));
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| row_number(p));
        return Err(ImportError::Invalid(problems));
    }
    let mut done = Imported::default();
    for ParsedUser {
        mut user,
        password,
        badge,
        device_limit,
        ..
    } in valid
    {
        let hash = match password {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let username = user.username.clone();
        if existing.contains(&username) {
            let patch = crate::storage::UserPatch {
                display_name: Some(user.display_name),
                email: Some(user.email),
                groups: Some(user.groups),
                device_limit,
                password: hash.map(Some),
            };
            st.storage
                .update_user(username.clone(), patch, actor.to_owned(), st.now())
                .await?;
            done.updated += 1;
        } else {
            user.password = hash;
            st.storage
                .create_user(user, actor.to_owned(), st.now())
                .await?;
            done.created += 1;
        }
        if let Some(b) = badge {
            let id = BadgeId::new(b);
            let hash = st.keys.badge_hash(&id);
            let mine = st
                .storage
                .user_by_badge(hash.clone())
                .await?
                .is_some_and(|(u, _)| u.username == username);
            if !mine {
                st.storage
                    .add_badge(username, hash, actor.to_owned(), st.now())
                    .await?;
                crate::offline::learn_now(st, &id).await?;
            }
        }
    }
    Ok(done)
}

/// The row a problem names (`row N: …`), to list problems in file order.
fn row_number(problem: &str) -> usize {
    problem
        .strip_prefix("row ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Reads a carts CSV and checks what the file alone can tell (every field valid, no id
/// or name twice); no storage, no I/O.
pub fn parse_launchpads(input: impl Read) -> (Vec<(usize, crate::model::Launchpad)>, Vec<String>) {
    let mut problems = Vec::new();
    let parsed: Vec<(usize, LaunchpadRow)> = rows(input, &mut problems);
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
                if !seen.insert(l.id.clone()) || !seen.insert(format!("name:{}", l.name)) {
                    problems.push(format!(
                        "row {line}: launchpad {} appears twice in the file",
                        l.id
                    ));
                }
                valid.push((line, l));
            }
        }
    }
    (valid, problems)
}

/// Imports carts: a new id is created (its reader credential returned, shown once), an
/// existing one is brought in line with its row (name, ports, department, facility,
/// manager, timezone; its reader keeps its credential). A name another cart already has
/// is refused. Nothing is written if any row is invalid.
pub async fn launchpads<S: Storage>(
    st: &AppState<S>,
    input: impl Read,
    actor: &str,
) -> Result<(Vec<(String, String)>, usize), ImportError> {
    let (valid, mut problems) = parse_launchpads(input);
    let existing: std::collections::HashMap<String, String> = st
        .storage
        .list_launchpads(None, u32::MAX - 1)
        .await?
        .items
        .into_iter()
        .map(|l| (l.id, l.name))
        .collect();
    for (line, l) in &valid {
        if existing
            .iter()
            .any(|(id, name)| id != &l.id && name.eq_ignore_ascii_case(&l.name))
        {
            problems.push(format!(
                "row {line}: another launchpad is already named {:?}",
                l.name
            ));
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| row_number(p));
        return Err(ImportError::Invalid(problems));
    }
    let (mut created, mut updated) = (Vec::new(), 0);
    for (_, l) in valid {
        if existing.contains_key(&l.id) {
            let patch = crate::storage::LaunchpadPatch {
                name: Some(l.name),
                ports: Some(l.ports),
                department: Some(l.department),
                facility: Some(l.facility),
                manager: Some(l.manager),
                timezone: Some(l.timezone),
            };
            st.storage
                .update_launchpad(l.id, patch, actor.to_owned(), st.now())
                .await?;
            updated += 1;
            continue;
        }
        let credential = random_token(32).map_err(|e| ImportError::Other(e.to_string()))?;
        let id = l.id.clone();
        st.storage
            .create_launchpad(l, sha256(credential.as_bytes()), actor.to_owned(), st.now())
            .await?;
        created.push((id, credential));
    }
    Ok((created, updated))
}

/// Parses a CSV cell as a value of `value_type` (empty: clear the attribute).
fn attribute_cell(
    value_type: AttributeType,
    cell: &str,
) -> Result<Option<serde_json::Value>, String> {
    if cell.is_empty() {
        return Ok(None);
    }
    let value = match value_type {
        AttributeType::String => serde_json::Value::String(cell.to_owned()),
        AttributeType::Int => cell
            .parse::<i64>()
            .map(serde_json::Value::from)
            .map_err(|_| format!("{cell:?} is not an integer"))?,
        AttributeType::Bool => match cell.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => serde_json::Value::Bool(true),
            "false" | "no" | "0" => serde_json::Value::Bool(false),
            _ => return Err(format!("{cell:?} is not true or false")),
        },
    };
    if !value_type.accepts(&value) {
        return Err("text longer than 256 characters".into());
    }
    Ok(Some(value))
}

/// Imports device attributes: a `serial` column, an optional `device_home` column, and
/// one column per custom device attribute (typed; an empty cell clears it). Devices are
/// matched by serial number. Returns how many devices were updated.
pub async fn devices<S: Storage>(
    st: &AppState<S>,
    input: impl Read,
    actor: &str,
) -> Result<usize, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Invalid(vec![format!("header: {e}")]))?
        .clone();
    let defs = st.storage.list_attributes().await?;
    let mut problems = Vec::new();
    let mut serial_col = None;
    let mut home_col = None;
    let mut attr_cols = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        match h {
            "serial" => serial_col = Some(i),
            "device_home" => home_col = Some(i),
            name => match defs
                .iter()
                .find(|d| d.target == AttributeTarget::Device && d.name == name)
            {
                Some(d) => attr_cols.push((i, d.name.clone(), d.value_type)),
                None => problems.push(format!(
                    "header: {name:?} is neither serial, device_home nor a device attribute"
                )),
            },
        }
    }
    let Some(serial_col) = serial_col else {
        problems.push("header: a serial column is required".into());
        return Err(ImportError::Invalid(problems));
    };
    let mut seen = HashSet::new();
    let mut updates = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("row {line}: {e}"));
                continue;
            }
        };
        let serial = record.get(serial_col).unwrap_or_default().to_owned();
        if !seen.insert(serial.clone()) {
            problems.push(format!(
                "row {line}: serial {serial} appears twice in the file"
            ));
            continue;
        }
        let Some(device) = st.storage.device_by_serial(serial.clone()).await? else {
            problems.push(format!(
                "row {line}: no enrolled device has serial {serial:?}"
            ));
            continue;
        };
        let home = match home_col.map(|c| record.get(c).unwrap_or_default()) {
            None => None,
            Some(h) => match crate::validate::optional_text("device_home", Some(h), 128) {
                Ok(v) => Some(v),
                Err(e) => {
                    problems.push(format!("row {line}: {e}"));
                    continue;
                }
            },
        };
        let mut values = Vec::new();
        for (col, name, value_type) in &attr_cols {
            match attribute_cell(*value_type, record.get(*col).unwrap_or_default()) {
                Ok(v) => values.push((name.clone(), v)),
                Err(e) => problems.push(format!("row {line}: {name}: {e}")),
            }
        }
        updates.push((device.id, home, values));
    }
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }
    let count = updates.len();
    for (id, home, values) in updates {
        if let Some(home) = home {
            st.storage
                .set_device_home(id.clone(), home, actor.to_owned(), st.now())
                .await?;
        }
        for (name, value) in values {
            st.storage
                .set_attribute(
                    AttributeTarget::Device,
                    id.clone(),
                    name,
                    value,
                    actor.to_owned(),
                    st.now(),
                )
                .await?;
        }
    }
    Ok(count)
}
