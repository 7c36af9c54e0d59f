//! [`Storage`] on SQLite through [`Db`]: writes go to the batching writer, reads to the
//! read pool. One file per concern: this one holds people, carts, devices and sync;
//! `tx` the repository operations the domain runs inside one transaction; `offline` and
//! `workflows` their stores.

use crate::db::sql::{Conn, OptionalExtension, Row, SqlError, params};
mod credentials;
mod mdm;
mod offline;
mod security;
mod taps;
mod tx;
mod workflows;

use lanyard_protocol::kdf::SlowHash;
use lanyard_protocol::{DeviceStatus, EventRecord, Policy, Signed, Timestamp, UserRef};

use super::{
    ApiToken, AuditFilter, DeviceFilter, LaunchpadPatch, NewCommand, NewEnrollmentToken, NewUser,
    Storage, StorageError, UserPatch,
};
use crate::db::Db;
use crate::model::{
    AttributeDef, AttributeTarget, AttributeType, AuditRecord, CommandRecord, Device, Launchpad,
    MdmActivity, Page, Role, User,
};

/// SQLite-backed storage.
#[derive(Clone)]
pub struct SqliteStorage {
    db: Db,
}

impl SqliteStorage {
    /// Wraps an open database.
    pub fn new(db: Db) -> Self {
        SqliteStorage { db }
    }

    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Conn) -> Result<T, StorageError> + Send + 'static,
    {
        self.db
            .read(move |c| Ok(f(c)))
            .await
            .map_err(StorageError::Unavailable)?
    }

    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Conn) -> Result<T, StorageError> + Send + 'static,
    {
        self.db.write(f).await?
    }
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn seq(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn is_unique_violation(e: &SqlError) -> bool {
    matches!(e, SqlError::Unique(_))
}

const USER_COLUMNS: &str = "u.username, u.display_name, u.email, u.groups_json, u.device_limit, \
     u.password_hash IS NOT NULL, (SELECT COUNT(*) FROM badge b WHERE b.username = u.username)";

fn user_row(r: &Row) -> crate::db::sql::Result<User> {
    let groups: String = r.get(3)?;
    Ok(User {
        username: r.get(0)?,
        display_name: r.get(1)?,
        email: r.get(2)?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        device_limit: to_u32(r.get(4)?),
        has_password: r.get(5)?,
        badges: to_u32(r.get(6)?),
    })
}

const LAUNCHPAD_COLUMNS: &str = "id, name, ports, department, facility, manager, timezone";

fn launchpad_row(r: &Row) -> crate::db::sql::Result<Launchpad> {
    Ok(Launchpad {
        id: r.get(0)?,
        name: r.get(1)?,
        ports: to_u32(r.get(2)?),
        department: r.get(3)?,
        facility: r.get(4)?,
        manager: r.get(5)?,
        timezone: r.get(6)?,
    })
}

const DEVICE_COLUMNS: &str = "id, serial, udid, model, os_version, name, battery, status, device_home, \
     device_user, last_launchpad, last_port, last_contact, last_seq, overdue, admin_state, passcode, docked, \
     mdm_udid, mdm_last_seen, mdm_checked_out_at";

fn device_row(r: &Row) -> crate::db::sql::Result<Device> {
    Ok(Device {
        id: r.get(0)?,
        serial: r.get(1)?,
        udid: r.get(2)?,
        model: r.get(3)?,
        os_version: r.get(4)?,
        name: r.get(5)?,
        battery: r
            .get::<_, Option<i64>>(6)?
            .and_then(|b| u8::try_from(b).ok()),
        status: crate::model::stored_state(7, &r.get::<_, String>(7)?, DeviceStatus::parse)?,
        device_home: r.get(8)?,
        device_user: r.get(9)?,
        last_launchpad: r.get(10)?,
        last_port: r.get::<_, Option<i64>>(11)?.map(to_u32),
        last_contact: r.get(12)?,
        last_seq: u64::try_from(r.get::<_, i64>(13)?).unwrap_or(0),
        overdue: r.get(14)?,
        admin_state: r.get(15)?,
        passcode: r
            .get::<_, Option<String>>(16)?
            .map(|p| crate::model::stored_state(16, &p, crate::model::PasscodeState::parse))
            .transpose()?,
        docked: r.get(17)?,
        mdm_udid: r.get(18)?,
        mdm_last_seen: r.get(19)?,
        mdm_checked_out_at: r.get(20)?,
    })
}

/// One device by id, if it exists.
pub(super) fn find_device(c: &dyn Conn, id: &str) -> Result<Option<Device>, StorageError> {
    Ok(c.prepare_cached(&DEVICE_BY_ID)?
        .query_row([id], device_row)
        .optional()?)
}

/// `SELECT … FROM device WHERE id = ?1`, built once (every sync reads its device).
static DEVICE_BY_ID: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {DEVICE_COLUMNS} FROM device WHERE id = ?1"));

pub(super) fn get_device(c: &dyn Conn, id: &str) -> Result<Device, StorageError> {
    find_device(c, id)?.ok_or(StorageError::NotFound("device"))
}

pub(super) fn get_launchpad(c: &dyn Conn, id: &str) -> Result<Launchpad, StorageError> {
    c.query_row(
        &format!("SELECT {LAUNCHPAD_COLUMNS} FROM launchpad WHERE id = ?1"),
        [id],
        launchpad_row,
    )
    .optional()?
    .ok_or(StorageError::NotFound("launchpad"))
}

fn get_user(c: &dyn Conn, username: &str) -> Result<User, StorageError> {
    c.query_row(
        &format!("SELECT {USER_COLUMNS} FROM app_user u WHERE u.username = ?1"),
        [username],
        user_row,
    )
    .optional()?
    .ok_or(StorageError::NotFound("user"))
}

pub(super) fn page<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// Undelivered and unacknowledged commands for a device, marked delivered; expired ones
/// marked expired and left out. The common case (nothing queued) is one indexed read.
/// Whether `device_id` has commands not yet acknowledged.
pub(super) fn outstanding_commands(c: &dyn Conn, device_id: &str) -> Result<bool, StorageError> {
    Ok(c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM command WHERE device_id = ?1
           AND state IN ('pending', 'delivered'))",
    )?
    .query_row([device_id], |r| r.get(0))?)
}

pub(super) fn take_commands(
    tx: &dyn Conn,
    device_id: &str,
    now: Timestamp,
) -> Result<Vec<Signed>, StorageError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, payload, signature, expires_at, state FROM command
         WHERE device_id = ?1 AND state IN ('pending', 'delivered') ORDER BY created_at, id",
    )?;
    let rows = stmt
        .query_map([device_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Signed {
                    payload: r.get(1)?,
                    signature: r.get(2)?,
                },
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut expire =
        tx.prepare_cached("UPDATE command SET state = 'expired', updated_at = ?2 WHERE id = ?1")?;
    let mut deliver =
        tx.prepare_cached("UPDATE command SET state = 'delivered', updated_at = ?2 WHERE id = ?1")?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, signed, expires_at, state) in rows {
        if expires_at < now.as_millis() {
            expire.execute(params![id, now.as_millis()])?;
            continue;
        }
        if state == "pending" {
            deliver.execute(params![id, now.as_millis()])?;
        }
        out.push(signed);
    }
    Ok(out)
}

/// Stores a device's records idempotently by `(device, seq)`. Returns the highest
/// contiguous sequence now stored and the records it newly covers, in order.
pub(super) fn store_records(
    tx: &dyn Conn,
    device_id: &str,
    last_seq: u64,
    events: Vec<EventRecord>,
    now: Timestamp,
) -> Result<(u64, Vec<EventRecord>), StorageError> {
    let old = seq(last_seq);
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO device_event (device_id, seq, at, record, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (device_id, seq) DO NOTHING",
        )?;
        for r in &events {
            let json = serde_json::to_string(r)
                .map_err(|e| StorageError::Internal(format!("encode record: {e}")))?;
            insert.execute(params![
                device_id,
                seq(r.seq),
                r.at.as_millis(),
                json,
                now.as_millis()
            ])?;
        }
    }
    // Advance through every sequence now stored without a gap. Records of this request
    // are taken from memory; only ones that arrived earlier out of order are read back.
    let mut last = old;
    let mut applied: Vec<EventRecord> = Vec::new();
    let mut in_request: std::collections::HashMap<u64, EventRecord> =
        events.into_iter().map(|r| (r.seq, r)).collect();
    {
        let mut next =
            tx.prepare_cached("SELECT record FROM device_event WHERE device_id = ?1 AND seq = ?2")?;
        loop {
            let want = u64::try_from(last + 1).unwrap_or(u64::MAX);
            if let Some(record) = in_request.remove(&want) {
                applied.push(record);
                last += 1;
                continue;
            }
            let json: Option<String> = next
                .query_row(params![device_id, last + 1], |r| r.get(0))
                .optional()?;
            let Some(json) = json else { break };
            let record: EventRecord = serde_json::from_str(&json)
                .map_err(|e| StorageError::Corrupt(format!("stored record: {e}")))?;
            applied.push(record);
            last += 1;
        }
    }
    Ok((u64::try_from(last).unwrap_or(0), applied))
}

/// A record as JSON for the audit log.
pub(super) fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Appends an audit entry inside the transaction that made the change.
#[allow(clippy::too_many_arguments)]
pub(super) fn audit(
    tx: &dyn Conn,
    actor: &str,
    action: &str,
    target_kind: &str,
    target_id: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    now: Timestamp,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, target_kind, target_id, before_json, after_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            now.as_millis(),
            actor,
            action,
            target_kind,
            target_id,
            before.map(|v| v.to_string()),
            after.map(|v| v.to_string()),
        ],
    )?;
    Ok(())
}

impl Storage for SqliteStorage {
    async fn scrub(&self) -> Result<(), StorageError> {
        Ok(self.db.vacuum().await?)
    }

    async fn transact<T, F>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn crate::storage::Tx) -> Result<T, StorageError> + Send + 'static,
    {
        self.write(move |tx| work(&tx::SqliteTx(tx))).await
    }

    async fn api_token(
        &self,
        token_hash: Vec<u8>,
        now: Timestamp,
    ) -> Result<Option<ApiToken>, StorageError> {
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT id, role, label, last_used_at FROM api_token
                     WHERE token_hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
                    params![token_hash, now.as_millis()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            Ok(row.and_then(|(id, role, label, last_used): (i64, String, String, Option<i64>)| {
                Role::parse(&role).map(|role| ApiToken { id, role, label, last_used_at: last_used })
            }))
        })
        .await
    }

    async fn create_api_token(
        &self,
        token_hash: Vec<u8>,
        role: Role,
        label: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO api_token (token_hash, role, label, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![token_hash, role.as_str(), label, now.as_millis()],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_user(
        &self,
        user: NewUser,
        actor: String,
        now: Timestamp,
    ) -> Result<User, StorageError> {
        self.write(move |tx| {
            let password = match &user.password {
                Some(h) => Some(serde_json::to_string(h).map_err(|e| StorageError::Corrupt(e.to_string()))?),
                None => None,
            };
            let groups = serde_json::to_string(&user.groups).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            let inserted = tx.execute(
                "INSERT INTO app_user (username, display_name, email, groups_json, device_limit, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![user.username, user.display_name, user.email, groups, user.device_limit, password, now.as_millis()],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => Err(StorageError::Conflict("user")),
                Err(e) => Err(e.into()),
                Ok(_) => {
                    let created = get_user(tx, &user.username)?;
                    audit(tx, &actor, "user.create", "user", &created.username, None, Some(json(&created)), now)?;
                    Ok(created)
                }
            }
        })
        .await
    }

    async fn get_user(&self, username: String) -> Result<User, StorageError> {
        self.read(move |c| get_user(c, &username)).await
    }

    async fn list_users(
        &self,
        search: Option<String>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<User>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {USER_COLUMNS} FROM app_user u WHERE u.username > ?1
                   AND (CAST(?3 AS TEXT) IS NULL OR lower(u.username) LIKE ?3 ESCAPE '\\'
                        OR lower(u.display_name) LIKE ?3 ESCAPE '\\'
                        OR lower(COALESCE(u.email, '')) LIKE ?3 ESCAPE '\\')
                 ORDER BY u.username LIMIT ?2"
            ))?;
            let pattern = search.as_deref().map(crate::storage::contains_pattern);
            let rows = stmt.query_map(
                params![cursor.unwrap_or_default(), i64::from(limit) + 1, pattern],
                user_row,
            )?;
            let items = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(page(items, limit, |u| u.username.clone()))
        })
        .await
    }

    async fn add_badge(
        &self,
        username: String,
        badge_hash: Vec<u8>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            let before = get_user(tx, &username)?;
            match tx.execute(
                "INSERT INTO badge (badge_hash, username, created_at) VALUES (?1, ?2, ?3)",
                params![badge_hash, username, now.as_millis()],
            ) {
                Err(e) if is_unique_violation(&e) => Err(StorageError::Conflict("badge")),
                Err(e) => Err(e.into()),
                Ok(_) => {
                    // The badge id itself never enters the log: only the user's badge count.
                    let after = get_user(tx, &username)?;
                    audit(
                        tx,
                        &actor,
                        "user.badge.add",
                        "user",
                        &username,
                        Some(json(&before)),
                        Some(json(&after)),
                        now,
                    )?;
                    Ok(())
                }
            }
        })
        .await
    }

    async fn update_user(
        &self,
        username: String,
        p: UserPatch,
        actor: String,
        now: Timestamp,
    ) -> Result<User, StorageError> {
        self.write(move |tx| {
            let before = get_user(tx, &username)?;
            if let Some(v) = &p.display_name {
                tx.execute(
                    "UPDATE app_user SET display_name = ?2 WHERE username = ?1",
                    params![username, v],
                )?;
            }
            if let Some(v) = &p.email {
                tx.execute(
                    "UPDATE app_user SET email = ?2 WHERE username = ?1",
                    params![username, v],
                )?;
            }
            if let Some(v) = &p.groups {
                let groups =
                    serde_json::to_string(v).map_err(|e| StorageError::Internal(e.to_string()))?;
                tx.execute(
                    "UPDATE app_user SET groups_json = ?2 WHERE username = ?1",
                    params![username, groups],
                )?;
            }
            if let Some(v) = p.device_limit {
                tx.execute(
                    "UPDATE app_user SET device_limit = ?2 WHERE username = ?1",
                    params![username, v],
                )?;
            }
            if let Some(v) = &p.password {
                let hash = match v {
                    Some(h) => Some(
                        serde_json::to_string(h)
                            .map_err(|e| StorageError::Internal(e.to_string()))?,
                    ),
                    None => None,
                };
                tx.execute(
                    "UPDATE app_user SET password_hash = ?2 WHERE username = ?1",
                    params![username, hash],
                )?;
            }
            let after = get_user(tx, &username)?;
            audit(
                tx,
                &actor,
                "user.update",
                "user",
                &username,
                Some(json(&before)),
                Some(json(&after)),
                now,
            )?;
            Ok(after)
        })
        .await
    }

    async fn delete_user(
        &self,
        username: String,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            let before = get_user(tx, &username)?;
            let held: Vec<String> = tx
                .prepare_cached("SELECT id FROM device WHERE device_user = ?1 ORDER BY id")?
                .query_map([&username], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if !held.is_empty() {
                return Err(StorageError::InUse(format!(
                    "{username} holds {}: check those in first (POST /api/v1/devices/{{id}}/check-in), or revoke the badges to stop new checkouts",
                    held.join(", ")
                )));
            }
            tx.execute("DELETE FROM app_user WHERE username = ?1", [&username])?;
            audit(
                tx,
                &actor,
                "user.delete",
                "user",
                &username,
                Some(json(&before)),
                None,
                now,
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_badges(
        &self,
        username: String,
        badge_hash: Option<Vec<u8>>,
        actor: String,
        now: Timestamp,
    ) -> Result<User, StorageError> {
        self.write(move |tx| {
            let before = get_user(tx, &username)?;
            let removed = match &badge_hash {
                Some(h) => tx.execute(
                    "DELETE FROM badge WHERE username = ?1 AND badge_hash = ?2",
                    params![username, h],
                )?,
                None => tx.execute("DELETE FROM badge WHERE username = ?1", [&username])?,
            };
            if removed == 0 && badge_hash.is_some() {
                return Err(StorageError::NotFound("badge for this user"));
            }
            let after = get_user(tx, &username)?;
            audit(
                tx,
                &actor,
                "user.badge.revoke",
                "user",
                &username,
                Some(json(&before)),
                Some(json(&after)),
                now,
            )?;
            Ok(after)
        })
        .await
    }

    async fn user_by_badge(
        &self,
        badge_hash: Vec<u8>,
    ) -> Result<Option<(UserRef, u32)>, StorageError> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT u.username, u.display_name, u.device_limit FROM badge b
                 JOIN app_user u ON u.username = b.username WHERE b.badge_hash = ?1",
                [badge_hash],
                |r| {
                    Ok((
                        UserRef {
                            username: r.get(0)?,
                            display_name: r.get(1)?,
                        },
                        to_u32(r.get(2)?),
                    ))
                },
            )
            .optional()?)
        })
        .await
    }

    async fn user_password(
        &self,
        username: String,
    ) -> Result<Option<(UserRef, u32, Option<SlowHash>)>, StorageError> {
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT username, display_name, device_limit, password_hash FROM app_user WHERE username = ?1",
                    [username],
                    |r| {
                        Ok((
                            UserRef { username: r.get(0)?, display_name: r.get(1)? },
                            to_u32(r.get(2)?),
                            r.get::<_, Option<String>>(3)?,
                        ))
                    },
                )
                .optional()?;
            Ok(row.map(|(u, limit, hash)| (u, limit, hash.and_then(|h| serde_json::from_str(&h).ok()))))
        })
        .await
    }

    async fn create_launchpad(
        &self,
        l: Launchpad,
        credential_hash: Vec<u8>,
        actor: String,
        now: Timestamp,
    ) -> Result<Launchpad, StorageError> {
        self.write(move |tx| {
            match tx.execute(
                "INSERT INTO launchpad (id, name, ports, department, facility, manager, timezone, created_at, credential_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![l.id, l.name, l.ports, l.department, l.facility, l.manager, l.timezone, now.as_millis(), credential_hash],
            ) {
                Err(e) if is_unique_violation(&e) => Err(StorageError::Conflict("launchpad")),
                Err(e) => Err(e.into()),
                Ok(_) => {
                    audit(tx, &actor, "launchpad.create", "launchpad", &l.id, None, Some(json(&l)), now)?;
                    Ok(l)
                }
            }
        })
        .await
    }

    async fn update_launchpad(
        &self,
        id: String,
        p: LaunchpadPatch,
        actor: String,
        now: Timestamp,
    ) -> Result<Launchpad, StorageError> {
        self.write(move |tx| {
            let before = get_launchpad(tx, &id)?;
            let set_text = |column: &str, value: &Option<String>| -> Result<(), StorageError> {
                match tx.execute(
                    &format!("UPDATE launchpad SET {column} = ?2 WHERE id = ?1"),
                    params![id, value],
                ) {
                    Err(e) if is_unique_violation(&e) => {
                        Err(StorageError::Conflict("launchpad name"))
                    }
                    Err(e) => Err(e.into()),
                    Ok(_) => Ok(()),
                }
            };
            if let Some(v) = &p.name {
                set_text("name", &Some(v.clone()))?;
            }
            if let Some(v) = p.ports {
                tx.execute(
                    "UPDATE launchpad SET ports = ?2 WHERE id = ?1",
                    params![id, v],
                )?;
            }
            for (column, value) in [
                ("department", &p.department),
                ("facility", &p.facility),
                ("manager", &p.manager),
                ("timezone", &p.timezone),
            ] {
                if let Some(v) = value {
                    set_text(column, v)?;
                }
            }
            let after = get_launchpad(tx, &id)?;
            audit(
                tx,
                &actor,
                "launchpad.update",
                "launchpad",
                &id,
                Some(json(&before)),
                Some(json(&after)),
                now,
            )?;
            Ok(after)
        })
        .await
    }

    async fn delete_launchpad(
        &self,
        id: String,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            let before = get_launchpad(tx, &id)?;
            let docked: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM device WHERE last_launchpad = ?1 AND docked = 1
                       AND admin_state IS NULL ORDER BY id",
                )?
                .query_map([&id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if !docked.is_empty() {
                return Err(StorageError::InUse(format!(
                    "{} phone(s) are docked in cart {id} ({}): move them to another cart first",
                    docked.len(),
                    docked.join(", ")
                )));
            }
            tx.execute("DELETE FROM launchpad WHERE id = ?1", [&id])?;
            tx.execute(
                "DELETE FROM attribute_value WHERE target = 'launchpad' AND entity_id = ?1",
                [&id],
            )?;
            audit(
                tx,
                &actor,
                "launchpad.delete",
                "launchpad",
                &id,
                Some(json(&before)),
                None,
                now,
            )?;
            Ok(())
        })
        .await
    }

    async fn launchpad_by_credential(
        &self,
        credential_hash: Vec<u8>,
    ) -> Result<Option<Launchpad>, StorageError> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {LAUNCHPAD_COLUMNS} FROM launchpad WHERE credential_hash = ?1"),
                [credential_hash],
                launchpad_row,
            )
            .optional()?)
        })
        .await
    }

    async fn launchpad_port_event(
        &self,
        launchpad_id: String,
        port: u32,
        serial: Option<String>,
        docked: bool,
        _now: Timestamp,
    ) -> Result<Option<String>, StorageError> {
        self.write(move |tx| {
            let device: Option<String> = match &serial {
                Some(serial) => tx
                    .query_row("SELECT id FROM device WHERE serial = ?1", [serial], |r| r.get(0))
                    .optional()?,
                None => tx
                    .query_row(
                        "SELECT id FROM device WHERE last_launchpad = ?1 AND last_port = ?2 AND docked = 1
                         ORDER BY last_contact DESC LIMIT 1",
                        params![launchpad_id, i64::from(port)],
                        |r| r.get(0),
                    )
                    .optional()?,
            };
            if let Some(id) = &device {
                if docked {
                    // The port holds one phone: whoever was last seen in it has left.
                    crate::storage::Tx::vacate_port(&tx::SqliteTx(tx), &launchpad_id, port, id)?;
                }
                tx.execute(
                    "UPDATE device SET docked = ?2, located_by_hub = ?2,
                        last_launchpad = CASE WHEN ?2 = 1 THEN ?3 ELSE last_launchpad END,
                        last_port = CASE WHEN ?2 = 1 THEN ?4 ELSE last_port END
                     WHERE id = ?1",
                    params![id, docked, launchpad_id, i64::from(port)],
                )?;
            }
            Ok(device)
        })
        .await
    }

    async fn list_launchpads(
        &self,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Launchpad>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {LAUNCHPAD_COLUMNS} FROM launchpad WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(
                params![cursor.unwrap_or_default(), i64::from(limit) + 1],
                launchpad_row,
            )?;
            let items = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(page(items, limit, |l| l.id.clone()))
        })
        .await
    }

    async fn create_enrollment_token(
        &self,
        t: NewEnrollmentToken,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            if let Some(id) = &t.launchpad_id {
                let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM launchpad WHERE id = ?1)", [id], |r| r.get(0))?;
                if !exists {
                    return Err(StorageError::NotFound("launchpad"));
                }
            }
            tx.execute(
                "INSERT INTO enrollment_token (token_hash, label, uses_left, expires_at, launchpad_id, department, created_at, replaces_existing)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![t.token_hash, t.label, t.uses, t.expires_at.as_millis(), t.launchpad_id, t.department, now.as_millis(), i64::from(t.replaces_existing)],
            )?;
            let after = serde_json::json!({
                "label": t.label, "uses": t.uses, "expires_at": t.expires_at,
                "launchpad_id": t.launchpad_id, "department": t.department,
                "replaces_existing": t.replaces_existing,
            });
            audit(tx, &actor, "enrollment_token.create", "enrollment_token", &t.label, None, Some(after), now)?;
            Ok(())
        })
        .await
    }

    async fn device_by_credential(
        &self,
        credential_hash: Vec<u8>,
    ) -> Result<Option<Device>, StorageError> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM device WHERE credential_hash = ?1"),
                [credential_hash],
                device_row,
            )
            .optional()?)
        })
        .await
    }

    async fn set_admin_state(
        &self,
        device_id: String,
        state: Option<&'static str>,
        actor: String,
        now: Timestamp,
    ) -> Result<Device, StorageError> {
        self.write(move |tx| {
            let before = get_device(tx, &device_id)?;
            tx.execute(
                "UPDATE device SET admin_state = ?2 WHERE id = ?1",
                params![device_id, state],
            )?;
            let after = get_device(tx, &device_id)?;
            let action = match state {
                Some("lost") => "device.lost",
                Some("retired") => "device.retire",
                _ => "device.found",
            };
            audit(
                tx,
                &actor,
                action,
                "device",
                &device_id,
                Some(json(&before)),
                Some(json(&after)),
                now,
            )?;
            Ok(after)
        })
        .await
    }

    async fn device_by_serial(&self, serial: String) -> Result<Option<Device>, StorageError> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM device WHERE serial = ?1"),
                [serial],
                device_row,
            )
            .optional()?)
        })
        .await
    }

    async fn set_device_home(
        &self,
        device_id: String,
        home: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> Result<Device, StorageError> {
        self.write(move |tx| {
            let before = get_device(tx, &device_id)?;
            tx.execute(
                "UPDATE device SET device_home = ?2 WHERE id = ?1",
                params![device_id, home],
            )?;
            let after = get_device(tx, &device_id)?;
            audit(
                tx,
                &actor,
                "device.home.set",
                "device",
                &device_id,
                Some(json(&before)),
                Some(json(&after)),
                now,
            )?;
            Ok(after)
        })
        .await
    }

    async fn device_commands(
        &self,
        device_id: String,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StorageError> {
        self.read(move |c| {
            get_device(c, &device_id)?;
            let mut stmt = c.prepare_cached(
                "SELECT id, kind, state, created_at, updated_at, expires_at FROM command
                 WHERE device_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![device_id, i64::from(limit)], |r| {
                Ok(CommandRecord {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    state: r.get(2)?,
                    created_at: r.get(3)?,
                    updated_at: r.get(4)?,
                    expires_at: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn store_unlock_token(
        &self,
        udid: String,
        sealed: Vec<u8>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO mdm_token (udid, sealed_token, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (udid) DO UPDATE SET sealed_token = excluded.sealed_token, updated_at = excluded.updated_at",
                params![udid, sealed, now.as_millis()],
            )?;
            Ok(())
        })
        .await
    }

    async fn unlock_token(&self, udid: String) -> Result<Option<Vec<u8>>, StorageError> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT sealed_token FROM mdm_token WHERE udid = ?1",
                [udid],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn record_mdm_activity(
        &self,
        e: MdmActivity,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| insert_mdm_activity(tx, &e, now)).await
    }

    async fn mdm_command(
        &self,
        uuid: String,
    ) -> Result<Option<crate::storage::tx::MdmCommandRow>, StorageError> {
        self.read(move |c| mdm::get(c, &uuid)).await
    }

    async fn device_mdm_commands(
        &self,
        device_id: String,
        limit: u32,
    ) -> Result<Vec<crate::storage::tx::MdmCommandRow>, StorageError> {
        self.read(move |c| {
            get_device(c, &device_id)?;
            mdm::of_device(c, &device_id, limit)
        })
        .await
    }

    async fn mdm_push_due(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::storage::tx::MdmCommandRow>, StorageError> {
        self.read(move |c| mdm::push_due(c, before, limit)).await
    }

    async fn unprobed_mdm_commands(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::storage::tx::MdmCommandRow>, StorageError> {
        self.read(move |c| mdm::unprobed(c, before, limit)).await
    }

    async fn overdue_mdm_commands(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::storage::tx::MdmCommandRow>, StorageError> {
        self.read(move |c| mdm::overdue(c, before, limit)).await
    }

    async fn mdm_activity(&self, device_id: String) -> Result<Vec<MdmActivity>, StorageError> {
        self.read(move |c| {
            let udid: Option<String> = get_device(c, &device_id)?.mdm_udid;
            let mut stmt = c.prepare_cached(
                "SELECT id, udid, device_id, command_uuid, request_type, kind, detail, at FROM mdm_activity
                 WHERE device_id = ?1 OR (udid = ?2 AND ?2 IS NOT NULL) ORDER BY id",
            )?;
            let rows = stmt.query_map(params![device_id, udid], mdm_activity_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn device_by_udid(&self, udid: String) -> Result<Option<Device>, StorageError> {
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM device WHERE mdm_udid = ?1"),
                [udid],
                device_row,
            )
            .optional()?)
        })
        .await
    }

    async fn device_status_counts(&self) -> Result<Vec<(String, u64)>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT status, COUNT(*) FROM device GROUP BY status ORDER BY status",
            )?;
            let rows = stmt.query_map((), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn get_device(&self, id: String) -> Result<Device, StorageError> {
        self.read(move |c| get_device(c, &id)).await
    }

    async fn list_devices(
        &self,
        f: DeviceFilter,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Device>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {DEVICE_COLUMNS} FROM device d
                 WHERE id > ?1 AND (status = ?2 OR ?2 IS NULL) AND (last_launchpad = ?3 OR ?3 IS NULL)
                   AND (device_user = ?4 OR ?4 IS NULL)
                   AND (overdue = ?6 OR ?6 IS NULL)
                   AND (admin_state = ?7 OR ?7 IS NULL)
                   AND (passcode = ?10 OR ?10 IS NULL)
                   AND (?11 = CASE WHEN mdm_checked_out_at IS NOT NULL THEN 1 ELSE 0 END OR ?11 IS NULL)
                   AND (EXISTS (SELECT 1 FROM launchpad l
                        WHERE l.id = d.last_launchpad AND l.department = ?8) OR ?8 IS NULL)
                   AND (?9 = CASE WHEN EXISTS (SELECT 1 FROM launchpad l
                        WHERE l.id = d.last_launchpad AND d.device_home IS NOT NULL
                          AND l.department IS NOT NULL AND l.department <> d.device_home)
                        THEN 1 ELSE 0 END OR ?9 IS NULL)
                   AND (CAST(?12 AS TEXT) IS NULL OR d.id = ?12 OR upper(d.serial) = upper(?12)
                        OR upper(d.udid) = upper(?12) OR d.device_user = ?12
                        OR lower(COALESCE(d.name, '')) LIKE ?13 ESCAPE '\\'
                        OR EXISTS (SELECT 1 FROM app_user u WHERE u.username = d.device_user
                                   AND lower(u.email) = lower(?12)))
                   AND (docked = ?14 OR ?14 IS NULL)
                 ORDER BY id LIMIT ?5"
            ))?;
            let rows = stmt.query_map(
                params![
                    cursor.unwrap_or_default(),
                    f.status,
                    f.launchpad,
                    f.user,
                    i64::from(limit) + 1,
                    f.overdue,
                    f.admin_state,
                    f.department,
                    f.wandering,
                    f.passcode,
                    f.mdm_checked_out,
                    f.search.clone(),
                    f.search.as_deref().map(crate::storage::contains_pattern),
                    f.docked,
                ],
                device_row,
            )?;
            let items = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(page(items, limit, |d| d.id.clone()))
        })
        .await
    }

    async fn insert_command(
        &self,
        cmd: NewCommand,
        actor: Option<String>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            crate::storage::Tx::insert_command(&tx::SqliteTx(tx), &cmd, None, now)?;
            if let Some(actor) = actor {
                let before = get_device(tx, &cmd.device_id)?;
                let after = serde_json::json!({"command_id": cmd.id.as_str(), "command": cmd.kind});
                let action = format!("device.{}", cmd.kind);
                audit(
                    tx,
                    &actor,
                    &action,
                    "device",
                    &cmd.device_id,
                    Some(json(&before)),
                    Some(after),
                    now,
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn commands_outstanding(&self, device_id: String) -> Result<bool, StorageError> {
        self.read(move |c| outstanding_commands(c, &device_id))
            .await
    }

    async fn take_commands(
        &self,
        device_id: String,
        now: Timestamp,
    ) -> Result<Vec<Signed>, StorageError> {
        self.write(move |tx| take_commands(tx, &device_id, now))
            .await
    }

    async fn create_attribute(
        &self,
        def: AttributeDef,
        actor: String,
        now: Timestamp,
    ) -> Result<AttributeDef, StorageError> {
        self.write(move |tx| {
            match tx.execute(
                "INSERT INTO attribute_def (target, name, value_type, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![def.target.as_str(), def.name, def.value_type.as_str(), now.as_millis()],
            ) {
                Err(e) if is_unique_violation(&e) => Err(StorageError::Conflict("attribute")),
                Err(e) => Err(e.into()),
                Ok(_) => {
                    audit(tx, &actor, "attribute.create", "attribute", &format!("{}:{}", def.target.as_str(), def.name), None, Some(json(&def)), now)?;
                    Ok(def)
                }
            }
        })
        .await
    }

    async fn list_attributes(&self) -> Result<Vec<AttributeDef>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT target, name, value_type FROM attribute_def ORDER BY target, name",
            )?;
            let rows = stmt.query_map((), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (target, name, value_type) = row?;
                let target = if target == "device" {
                    AttributeTarget::Device
                } else {
                    AttributeTarget::Launchpad
                };
                let value_type = AttributeType::parse(&value_type).ok_or_else(|| {
                    StorageError::Internal(format!("stored attribute type {value_type}"))
                })?;
                out.push(AttributeDef {
                    target,
                    name,
                    value_type,
                    builtin: false,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn set_attribute(
        &self,
        target: AttributeTarget,
        entity_id: String,
        name: String,
        value: Option<serde_json::Value>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            let value_type: Option<String> = tx
                .query_row(
                    "SELECT value_type FROM attribute_def WHERE target = ?1 AND name = ?2",
                    params![target.as_str(), name],
                    |r| r.get(0),
                )
                .optional()?;
            let value_type = value_type
                .as_deref()
                .and_then(AttributeType::parse)
                .ok_or(StorageError::NotFound("attribute"))?;
            let table = match target {
                AttributeTarget::Device => "device",
                AttributeTarget::Launchpad => "launchpad",
            };
            let exists: bool =
                tx.query_row(&format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"), [&entity_id], |r| r.get(0))?;
            if !exists {
                return Err(StorageError::NotFound(if table == "device" { "device" } else { "launchpad" }));
            }
            if let Some(v) = &value
                && !value_type.accepts(v) {
                    return Err(StorageError::Rejected(format!("{name} takes a {} value", value_type.as_str())));
                }
            let before: Option<String> = tx
                .query_row(
                    "SELECT value_json FROM attribute_value WHERE target = ?1 AND entity_id = ?2 AND name = ?3",
                    params![target.as_str(), entity_id, name],
                    |r| r.get(0),
                )
                .optional()?;
            match &value {
                Some(v) => tx.execute(
                    "INSERT INTO attribute_value (target, entity_id, name, value_json, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (target, entity_id, name) DO UPDATE SET value_json = excluded.value_json, updated_at = excluded.updated_at",
                    params![target.as_str(), entity_id, name, v.to_string(), now.as_millis()],
                )?,
                None => tx.execute(
                    "DELETE FROM attribute_value WHERE target = ?1 AND entity_id = ?2 AND name = ?3",
                    params![target.as_str(), entity_id, name],
                )?,
            };
            let before = before.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok()).map(|v| serde_json::json!({ name.clone(): v }));
            let after = value.map(|v| serde_json::json!({ name.clone(): v }));
            audit(tx, &actor, "attribute.set", target.as_str(), &entity_id, before, after, now)?;
            Ok(())
        })
        .await
    }

    async fn attribute_values(
        &self,
        target: AttributeTarget,
        entity_id: String,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Value>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, value_json FROM attribute_value WHERE target = ?1 AND entity_id = ?2 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![target.as_str(), entity_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = std::collections::BTreeMap::new();
            for row in rows {
                let (name, json) = row?;
                let value = serde_json::from_str(&json).map_err(|e| StorageError::Corrupt(format!("stored attribute value: {e}")))?;
                out.insert(name, value);
            }
            Ok(out)
        })
        .await
    }

    async fn list_audit(
        &self,
        f: AuditFilter,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<Page<AuditRecord>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, actor, action, target_kind, target_id, before_json, after_json FROM audit_log
                 WHERE id < ?1
                   AND (CAST(?3 AS TEXT) IS NULL OR lower(actor) LIKE ?3 ESCAPE '\\')
                   AND (CAST(?4 AS TEXT) IS NULL OR action = ?4 OR action LIKE ?5 ESCAPE '\\')
                   AND (target_kind = ?6 OR CAST(?6 AS TEXT) IS NULL)
                   AND (target_id = ?7 OR CAST(?7 AS TEXT) IS NULL)
                   AND at >= ?8 AND at < ?9
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
            let actor = f.actor.as_deref().map(crate::storage::contains_pattern);
            // `device.` lists every action under it; anything else matches exactly.
            let prefix = f
                .action
                .as_deref()
                .filter(|a| a.ends_with('.'))
                .map(|a| {
                    let mut p = crate::storage::contains_pattern(a);
                    p.remove(0);
                    p
                });
            let rows = stmt.query_map(params![
                cursor.unwrap_or(i64::MAX),
                i64::from(limit) + 1,
                actor,
                f.action,
                prefix,
                f.target_kind,
                f.target_id,
                f.since.unwrap_or(i64::MIN),
                f.until.unwrap_or(i64::MAX)
            ], |r| {
                Ok(AuditRecord {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target_kind: r.get(4)?,
                    target_id: r.get(5)?,
                    before: parse(r.get(6)?),
                    after: parse(r.get(7)?),
                })
            })?;
            let items = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(page(items, limit, |a| a.id.to_string()))
        })
        .await
    }

    async fn device_activity(
        &self,
        device_id: String,
        (since, until): (Option<i64>, Option<i64>),
        cursor: Option<u64>,
        limit: u32,
    ) -> Result<Page<EventRecord>, StorageError> {
        self.read(move |c| {
            get_device(c, &device_id)?;
            let mut stmt = c.prepare_cached(
                "SELECT record FROM device_event WHERE device_id = ?1 AND seq > ?2
                   AND at >= ?4 AND at < ?5 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![
                    device_id,
                    seq(cursor.unwrap_or(0)),
                    i64::from(limit) + 1,
                    since.unwrap_or(i64::MIN),
                    until.unwrap_or(i64::MAX)
                ],
                |r| r.get::<_, String>(0),
            )?;
            let mut items = Vec::new();
            for json in rows {
                let record: EventRecord = serde_json::from_str(&json?)
                    .map_err(|e| StorageError::Corrupt(format!("stored event: {e}")))?;
                items.push(record);
            }
            Ok(page(items, limit, |r| r.seq.to_string()))
        })
        .await
    }

    async fn policy_version(&self) -> Result<Option<u64>, StorageError> {
        self.read(|c| {
            let v: Option<i64> = c
                .prepare_cached("SELECT version FROM policy WHERE id = 1")?
                .query_row((), |r| r.get(0))
                .optional()?;
            Ok(v.map(|v| u64::try_from(v).unwrap_or(0)))
        })
        .await
    }

    async fn take_lease(
        &self,
        job: &'static str,
        holder: String,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StorageError> {
        self.write(move |tx| {
            let taken = tx.execute(
                "INSERT INTO job_lease (job, holder, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE job_lease.holder = excluded.holder OR job_lease.until < ?4",
                params![job, holder, until.as_millis(), now.as_millis()],
            )?;
            Ok(taken == 1)
        })
        .await
    }

    async fn release_leases(&self, holder: Option<String>) -> Result<(), StorageError> {
        self.write(move |tx| {
            match holder {
                Some(h) => tx.execute("DELETE FROM job_lease WHERE holder = ?1", [h])?,
                None => tx.execute("DELETE FROM job_lease", ())?,
            };
            Ok(())
        })
        .await
    }

    async fn current_policy(&self) -> Result<Policy, StorageError> {
        let stored = self
            .read(|c| {
                Ok(
                    c.query_row("SELECT body FROM policy WHERE id = 1", (), |r| {
                        r.get::<_, String>(0)
                    })
                    .optional()?,
                )
            })
            .await?;
        if let Some(body) = stored {
            return serde_json::from_str(&body)
                .map_err(|e| StorageError::Corrupt(format!("stored policy: {e}")));
        }
        let policy = Policy {
            version: 1,
            ..Policy::default()
        };
        let body =
            serde_json::to_string(&policy).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO policy (id, version, body, updated_at) VALUES (1, 1, ?1, 0) ON CONFLICT (id) DO NOTHING",
                [body],
            )?;
            Ok(())
        })
        .await?;
        Ok(policy)
    }
}

/// Maps `SELECT id, udid, device_id, command_uuid, request_type, kind, detail, at`.
fn mdm_activity_row(r: &Row) -> crate::db::sql::Result<MdmActivity> {
    Ok(MdmActivity {
        id: r.get(0)?,
        udid: r.get(1)?,
        device_id: r.get(2)?,
        command_uuid: r.get(3)?,
        request_type: r.get(4)?,
        kind: r.get(5)?,
        detail: r.get(6)?,
        at: r.get(7)?,
    })
}

pub(super) fn insert_mdm_activity(
    tx: &dyn Conn,
    e: &MdmActivity,
    now: Timestamp,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO mdm_activity (udid, device_id, command_uuid, request_type, kind, detail, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.udid,
            e.device_id,
            e.command_uuid,
            e.request_type,
            e.kind,
            e.detail,
            now.as_millis()
        ],
    )?;
    Ok(())
}
