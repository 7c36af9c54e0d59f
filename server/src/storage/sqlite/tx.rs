//! [`Tx`] on SQLite: the statements the domain's transactions are made of.

use crate::db::sql::{Conn, OptionalExtension, Row, params};
use lanyard_protocol::events::Transition;
use lanyard_protocol::{CommandId, EventRecord, Signed, Timestamp};

use super::{DEVICE_COLUMNS, device_row};
use crate::domain::mdm_commands::MdmState;
use crate::model::{Device, MdmActivity};
use crate::storage::tx::{
    AuditEntry, CartSlot, CartWait, CommandState, EnrollmentTokenRow, GrantRow, Holding,
    MdmCommandRow, MdmIdentity, MirrorUpdate, NewCartTap, NewSecurityEvent, PortOccupant, Prunable,
    Tx, UdidHolder,
};
use crate::storage::{NewCommand, StorageError};
use crate::workflows::run::NewRun;

/// One open write transaction of the SQLite writer.
pub(super) struct SqliteTx<'a>(pub(super) &'a dyn Conn);

/// `id, state, expires_at` of a command.
fn grant_row(r: &Row) -> crate::db::sql::Result<GrantRow> {
    Ok(GrantRow {
        command_id: r.get(0)?,
        state: crate::model::stored_state(1, &r.get::<_, String>(1)?, CommandState::parse)?,
        expires_at: Timestamp(r.get(2)?),
    })
}

impl Tx for SqliteTx<'_> {
    fn device(&self, id: &str) -> Result<Option<Device>, StorageError> {
        super::find_device(self.0, id)
    }

    fn devices_held_by(&self, username: &str) -> Result<Vec<Device>, StorageError> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM device WHERE device_user = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([username], device_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn in_service_run(&self, device_id: &str) -> Result<bool, StorageError> {
        Ok(self.0.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM workflow_run WHERE device_id = ?1 AND holds_device = 1
               AND state IN ('queued', 'running'))",
        )?
        .query_row([device_id], |r| r.get(0))?)
    }

    fn cart_devices(&self, launchpad_id: &str) -> Result<Vec<CartSlot>, StorageError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, status, device_user, admin_state IS NOT NULL, battery, last_port
             FROM device WHERE last_launchpad = ?1 AND docked = 1 ORDER BY id",
        )?;
        let rows = stmt.query_map([launchpad_id], |r| {
            Ok(CartSlot {
                id: r.get(0)?,
                status: crate::model::stored_state(
                    1,
                    &r.get::<_, String>(1)?,
                    lanyard_protocol::DeviceStatus::parse,
                )?,
                user: r.get(2)?,
                out_of_service: r.get(3)?,
                battery: r
                    .get::<_, Option<i64>>(4)?
                    .and_then(|b| u8::try_from(b).ok()),
                port: r
                    .get::<_, Option<i64>>(5)?
                    .and_then(|p| u32::try_from(p).ok()),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn cart_wait(&self, launchpad_id: &str) -> Result<Option<CartWait>, StorageError> {
        type Row = (Option<String>, Option<i64>, Option<String>);
        let row: Option<Row> = self
            .0
            .prepare_cached(
                "SELECT pending_device, pending_until, pending_grant FROM launchpad WHERE id = ?1",
            )?
            .query_row([launchpad_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((device, until, grant)) = row else {
            return Err(StorageError::NotFound("launchpad"));
        };
        Ok(device.zip(until).map(|(device_id, until)| CartWait {
            device_id,
            until: Timestamp(until),
            grant,
        }))
    }

    fn set_cart_wait(
        &self,
        launchpad_id: &str,
        wait: Option<&CartWait>,
    ) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "UPDATE launchpad SET pending_device = ?2, pending_until = ?3, pending_grant = ?4
             WHERE id = ?1",
            )?
            .execute(params![
                launchpad_id,
                wait.map(|w| w.device_id.as_str()),
                wait.map(|w| w.until.as_millis()),
                wait.and_then(|w| w.grant.as_deref()),
            ])?;
        Ok(())
    }

    fn insert_command(
        &self,
        cmd: &NewCommand,
        request_id: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let state = if cmd.delivered {
            CommandState::Delivered
        } else {
            CommandState::Pending
        };
        self.0
            .prepare_cached(
                "INSERT INTO command (id, device_id, kind, payload, signature, state, created_at,
                expires_at, updated_at, request_id, grant_id, grant_user)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7, ?9, ?10, ?11)",
            )?
            .execute(params![
                cmd.id.as_str(),
                cmd.device_id,
                cmd.kind,
                cmd.signed.payload,
                cmd.signed.signature,
                state.as_str(),
                now.as_millis(),
                cmd.expires_at.as_millis(),
                request_id,
                cmd.grant.as_ref().map(|(g, _)| g.as_str()),
                cmd.grant.as_ref().map(|(_, u)| u.as_str()),
            ])?;
        Ok(())
    }

    fn settle_command(
        &self,
        device_id: &str,
        command_id: &str,
        to: CommandState,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let n = self
            .0
            .prepare_cached(
                "UPDATE command SET state = ?3, updated_at = ?4
                 WHERE id = ?1 AND device_id = ?2 AND state IN ('pending', 'delivered')",
            )?
            .execute(params![command_id, device_id, to.as_str(), now.as_millis()])?;
        Ok(n > 0)
    }

    fn outstanding_grants(&self, device_id: &str) -> Result<Vec<GrantRow>, StorageError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, state, expires_at FROM command WHERE device_id = ?1
               AND kind = 'grant_checkout' AND state IN ('pending', 'delivered')
             ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([device_id], grant_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn commands_for_request(
        &self,
        device_id: &str,
        request_id: &str,
    ) -> Result<Vec<String>, StorageError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id FROM command WHERE device_id = ?1 AND request_id = ?2
               AND state IN ('pending', 'delivered')",
        )?;
        let rows = stmt.query_map([device_id, request_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn grant(&self, command_id: &str) -> Result<Option<GrantRow>, StorageError> {
        Ok(self
            .0
            .prepare_cached("SELECT id, state, expires_at FROM command WHERE id = ?1")?
            .query_row([command_id], grant_row)
            .optional()?)
    }

    fn held_grant(&self, device_id: &str) -> Result<Option<GrantRow>, StorageError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT c.id, c.state, c.expires_at FROM device d
                 JOIN command c ON c.id = d.held_by_grant WHERE d.id = ?1",
            )?
            .query_row([device_id], grant_row)
            .optional()?)
    }

    fn devices_on_grants(&self, limit: u32) -> Result<Vec<String>, StorageError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id FROM device WHERE held_by_grant IS NOT NULL ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::from(limit)], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_holding(&self, device_id: &str, h: &Holding<'_>) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "UPDATE device SET status = ?2, device_user = ?3, held_by_grant = ?4,
                overdue = CASE WHEN CAST(?3 AS TEXT) IS NULL THEN 0 ELSE overdue END
             WHERE id = ?1",
            )?
            .execute(params![device_id, h.status.as_str(), h.user, h.grant])?;
        Ok(())
    }

    fn password_failures(&self, username: &str) -> Result<Option<(u32, Timestamp)>, StorageError> {
        let row: Option<(i64, i64)> = self
            .0
            .prepare_cached(
                "SELECT failures, locked_until FROM password_failure WHERE username = ?1",
            )?
            .query_row([username], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.map(|(n, until)| (u32::try_from(n).unwrap_or(u32::MAX), Timestamp(until))))
    }

    fn set_password_failures(
        &self,
        username: &str,
        failures: Option<(u32, Timestamp)>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        match failures {
            None => {
                self.0
                    .prepare_cached("DELETE FROM password_failure WHERE username = ?1")?
                    .execute([username])?;
            }
            Some((n, until)) => {
                self.0
                    .prepare_cached(
                        "INSERT INTO password_failure (username, failures, locked_until, updated_at)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (username) DO UPDATE SET failures = excluded.failures,
                            locked_until = excluded.locked_until, updated_at = excluded.updated_at",
                    )?
                    .execute(params![username, i64::from(n), until.as_millis(), now.as_millis()])?;
            }
        }
        Ok(())
    }

    fn prune_password_failures(&self, before: Timestamp) -> Result<usize, StorageError> {
        Ok(self
            .0
            .prepare_cached(
                "DELETE FROM password_failure WHERE updated_at < ?1 AND locked_until < ?1",
            )?
            .execute([before.as_millis()])?)
    }

    fn enrollment_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<EnrollmentTokenRow>, StorageError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT uses_left, expires_at, launchpad_id, department, replaces_existing
                 FROM enrollment_token WHERE token_hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([token_hash], |r| {
                Ok(EnrollmentTokenRow {
                    uses_left: r
                        .get::<_, Option<i64>>(0)?
                        .map(|n| u32::try_from(n).unwrap_or(0)),
                    expires_at: Timestamp(r.get(1)?),
                    launchpad_id: r.get(2)?,
                    department: r.get(3)?,
                    replaces_existing: r.get::<_, i64>(4)? != 0,
                })
            })
            .optional()?)
    }

    fn use_enrollment_token(&self, token_hash: &[u8]) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "UPDATE enrollment_token SET uses_left = uses_left - 1
                 WHERE token_hash = ?1 AND uses_left > 0",
            )?
            .execute([token_hash])?;
        Ok(())
    }

    fn insert_device(
        &self,
        d: &crate::storage::NewDevice,
        launchpad_id: Option<&str>,
        department: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "INSERT INTO device (id, credential_hash, serial, udid, model, os_version, name,
                    status, device_home, last_launchpad, last_contact, enrolled_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
            )?
            .execute(params![
                d.id,
                d.credential_hash,
                d.info.serial,
                d.info.udid,
                d.info.model,
                d.info.os_version.as_ref().map(|v| v.to_string()),
                d.info.name,
                lanyard_protocol::DeviceStatus::CheckedIn.as_str(),
                department,
                launchpad_id,
                now.as_millis(),
            ])?;
        Ok(())
    }

    fn udid_holders(&self, udid: &str) -> Result<Vec<UdidHolder>, StorageError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, serial FROM device
             WHERE (udid = ?1 OR mdm_udid = ?1) AND admin_state IS NULL
             ORDER BY enrolled_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([udid], |r| {
            Ok(UdidHolder {
                device_id: r.get(0)?,
                serial: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn mdm_identity(&self, udid: &str) -> Result<Option<MdmIdentity>, StorageError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT serial, authenticated_at, supersedes FROM mdm_identity WHERE udid = ?1",
            )?
            .query_row([udid], |r| {
                Ok(MdmIdentity {
                    serial: r.get(0)?,
                    authenticated_at: Timestamp(r.get(1)?),
                    supersedes: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn set_mdm_identity(&self, udid: &str, i: &MdmIdentity) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "INSERT INTO mdm_identity (udid, serial, authenticated_at, supersedes)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (udid) DO UPDATE SET serial = excluded.serial,
                    authenticated_at = excluded.authenticated_at,
                    supersedes = excluded.supersedes",
            )?
            .execute(params![
                udid,
                i.serial,
                i.authenticated_at.as_millis(),
                i.supersedes
            ])?;
        Ok(())
    }

    fn bind_mdm_udid(&self, device_id: &str, udid: &str) -> Result<(), StorageError> {
        self.0
            .prepare_cached("UPDATE device SET mdm_udid = NULL WHERE mdm_udid = ?1 AND id <> ?2")?
            .execute([udid, device_id])?;
        self.0
            .prepare_cached("UPDATE device SET mdm_udid = ?1 WHERE id = ?2")?
            .execute([udid, device_id])?;
        Ok(())
    }

    fn retire_device(&self, device_id: &str) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "UPDATE device SET admin_state = 'retired', docked = 0, located_by_hub = 0,
                    mdm_udid = NULL, held_by_grant = NULL WHERE id = ?1",
            )?
            .execute([device_id])?;
        Ok(())
    }

    fn inherit_device(
        &self,
        from: &str,
        to: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StorageError> {
        self.0
            .prepare_cached(
                "UPDATE device SET device_home = (SELECT d.device_home FROM device d WHERE d.id = ?1)
                 WHERE id = ?2 AND device_home IS NULL",
            )?
            .execute(params![from, to])?;
        let names: Vec<String> = self
            .0
            .prepare_cached(
                "INSERT INTO attribute_value (target, entity_id, name, value_json, updated_at)
                 SELECT target, ?2, name, value_json, ?3 FROM attribute_value
                  WHERE target = 'device' AND entity_id = ?1
                 ON CONFLICT (target, entity_id, name) DO NOTHING
                 RETURNING name",
            )?
            .query_map(params![from, to, now.as_millis()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(names)
    }

    fn outstanding_command(
        &self,
        device_id: &str,
        kind: &str,
        now: Timestamp,
    ) -> Result<Option<(String, Timestamp)>, StorageError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id, expires_at FROM command
                  WHERE device_id = ?1 AND kind = ?2 AND state IN ('pending', 'delivered')
                    AND expires_at > ?3
                  ORDER BY created_at DESC LIMIT 1",
            )?
            .query_row(params![device_id, kind, now.as_millis()], |r| {
                Ok((r.get::<_, String>(0)?, Timestamp(r.get(1)?)))
            })
            .optional()?)
    }

    fn set_admin_state(&self, device_id: &str, state: Option<&str>) -> Result<(), StorageError> {
        self.0
            .prepare_cached("UPDATE device SET admin_state = ?2 WHERE id = ?1")?
            .execute(params![device_id, state])?;
        Ok(())
    }

    fn mark_ready(&self, now: Timestamp) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "INSERT INTO readiness (id, checked_at) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
            )?
            .execute([now.as_millis()])?;
        Ok(())
    }

    fn audit(&self, e: &AuditEntry<'_>, now: Timestamp) -> Result<(), StorageError> {
        super::audit(
            self.0,
            e.actor,
            e.action,
            e.target_kind,
            e.target_id,
            e.before.clone(),
            e.after.clone(),
            now,
        )
    }

    fn record_security_event(
        &self,
        e: &NewSecurityEvent<'_>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "INSERT INTO security_event (at, device_id, launchpad_id, kind, detail, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                now.as_millis(),
                e.device_id,
                e.launchpad_id,
                e.kind,
                e.detail,
                e.seq.map(super::seq),
            ])?;
        metrics::counter!("lanyard_security_events_total", "kind" => e.kind.to_owned())
            .increment(1);
        tracing::warn!(
            device = e.device_id,
            cart = e.launchpad_id,
            kind = e.kind,
            detail = e.detail,
            "security event"
        );
        Ok(())
    }

    fn policy(&self) -> Result<Option<lanyard_protocol::Policy>, StorageError> {
        let body: Option<String> = self
            .0
            .prepare_cached("SELECT body FROM policy WHERE id = 1")?
            .query_row((), |r| r.get(0))
            .optional()?;
        body.map(|b| {
            serde_json::from_str(&b)
                .map_err(|e| StorageError::Corrupt(format!("stored policy: {e}")))
        })
        .transpose()
    }

    fn put_policy(
        &self,
        policy: &lanyard_protocol::Policy,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let body = serde_json::to_string(policy)
            .map_err(|e| StorageError::Internal(format!("encode: {e}")))?;
        self.0
            .prepare_cached(
                "INSERT INTO policy (id, version, body, updated_at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, body = excluded.body,
                   updated_at = excluded.updated_at",
            )?
            .execute(params![
                i64::try_from(policy.version).unwrap_or(i64::MAX),
                body,
                now.as_millis()
            ])?;
        Ok(())
    }

    fn record_cart_tap(&self, t: &NewCartTap<'_>, now: Timestamp) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "INSERT INTO cart_tap (at, launchpad_id, username, beep, reason, device_id, port, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                now.as_millis(),
                t.launchpad_id,
                t.username,
                i64::from(t.beep),
                t.reason,
                t.device_id,
                t.port.map(i64::from),
                t.detail,
            ])?;
        Ok(())
    }

    fn issued_grant(
        &self,
        device_id: &str,
        grant_id: &str,
    ) -> Result<Option<String>, StorageError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT grant_user FROM command WHERE grant_id = ?1 AND device_id = ?2",
            )?
            .query_row([grant_id, device_id], |r| r.get(0))
            .optional()?)
    }

    fn last_security_event(
        &self,
        device_id: &str,
        kind: &str,
    ) -> Result<Option<Timestamp>, StorageError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT MAX(at) FROM security_event WHERE device_id = ?1 AND kind = ?2",
            )?
            .query_row([device_id, kind], |r| r.get::<_, Option<i64>>(0))?
            .map(Timestamp))
    }

    fn has_outstanding_commands(&self, device_id: &str) -> Result<bool, StorageError> {
        super::outstanding_commands(self.0, device_id)
    }

    fn attempt_window(&self, key: &str) -> Result<Option<(Timestamp, u32)>, StorageError> {
        super::security::attempt_window(self.0, key)
    }

    fn set_attempt_window(
        &self,
        key: &str,
        start: Timestamp,
        failures: u32,
    ) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "INSERT INTO attempt_window (key, window_start, failures) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET window_start = excluded.window_start,
                    failures = excluded.failures",
            )?
            .execute(params![key, start.as_millis(), i64::from(failures)])?;
        Ok(())
    }

    fn prune_attempt_windows(&self, before: Timestamp) -> Result<usize, StorageError> {
        Ok(self
            .0
            .prepare_cached("DELETE FROM attempt_window WHERE window_start < ?1")?
            .execute([before.as_millis()])?)
    }

    fn remember_webhook(
        &self,
        event_id: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StorageError> {
        self.0
            .prepare_cached("DELETE FROM webhook_event WHERE received_at < ?1")?
            .execute([forget_before.as_millis()])?;
        Ok(self
            .0
            .prepare_cached(
                "INSERT INTO webhook_event (event_id, received_at) VALUES (?1, ?2)
                 ON CONFLICT (event_id) DO NOTHING",
            )?
            .execute(params![event_id, now.as_millis()])?
            == 1)
    }

    fn insert_mdm_activity(&self, entry: &MdmActivity, now: Timestamp) -> Result<(), StorageError> {
        super::insert_mdm_activity(self.0, entry, now)
    }

    fn mdm_command(&self, uuid: &str) -> Result<Option<MdmCommandRow>, StorageError> {
        super::mdm::get(self.0, uuid)
    }

    fn insert_mdm_command(&self, row: &MdmCommandRow) -> Result<(), StorageError> {
        super::mdm::insert(self.0, row)
    }

    fn set_mdm_command_state(
        &self,
        uuid: &str,
        state: MdmState,
        detail: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        super::mdm::set_state(self.0, uuid, state, detail, now)
    }

    fn latest_mdm_command(
        &self,
        device_id: &str,
        request_type: &str,
    ) -> Result<Option<MdmCommandRow>, StorageError> {
        super::mdm::latest(self.0, device_id, request_type)
    }

    fn set_mdm_push_failed(
        &self,
        uuids: &[String],
        at: Option<Timestamp>,
    ) -> Result<(), StorageError> {
        super::mdm::set_push_failed(self.0, uuids, at)
    }

    fn set_mdm_probe(&self, uuids: &[String], probe: &str) -> Result<(), StorageError> {
        super::mdm::set_probe(self.0, uuids, probe)
    }

    fn probed_by(&self, probe: &str) -> Result<Vec<MdmCommandRow>, StorageError> {
        super::mdm::probed_by(self.0, probe)
    }

    fn open_mdm_commands(&self, device_id: &str) -> Result<Vec<MdmCommandRow>, StorageError> {
        super::mdm::open_of(self.0, device_id)
    }

    fn set_mdm_checked_out(
        &self,
        device_id: &str,
        at: Option<Timestamp>,
    ) -> Result<(), StorageError> {
        self.0
            .prepare_cached("UPDATE device SET mdm_checked_out_at = ?2 WHERE id = ?1")?
            .execute(params![device_id, at.map(Timestamp::as_millis)])?;
        Ok(())
    }

    fn mdm_seen(&self, udid: &str, now: Timestamp) -> Result<(), StorageError> {
        self.0
            .prepare_cached("UPDATE device SET mdm_last_seen = ?2 WHERE mdm_udid = ?1")?
            .execute(params![udid, now.as_millis()])?;
        Ok(())
    }

    fn prune(&self, what: Prunable, before: Timestamp, limit: u32) -> Result<usize, StorageError> {
        let sql = match what {
            Prunable::DeviceRecords => {
                "DELETE FROM device_event WHERE (device_id, seq) IN (SELECT device_id, seq
                   FROM device_event WHERE received_at < ?1 LIMIT ?2)"
            }
            Prunable::SettledCommands => {
                "DELETE FROM command WHERE id IN (SELECT id FROM command
                   WHERE state NOT IN ('pending', 'delivered') AND updated_at < ?1 LIMIT ?2)"
            }
            Prunable::MdmActivity => {
                "DELETE FROM mdm_activity WHERE id IN (SELECT id FROM mdm_activity
                   WHERE at < ?1 LIMIT ?2)"
            }
            Prunable::SecurityEvents => {
                "DELETE FROM security_event WHERE id IN (SELECT id FROM security_event
                   WHERE at < ?1 LIMIT ?2)"
            }
            Prunable::FinishedRuns => {
                "DELETE FROM workflow_run WHERE id IN (SELECT id FROM workflow_run
                   WHERE finished_at IS NOT NULL AND finished_at < ?1 LIMIT ?2)"
            }
            Prunable::CartTaps => {
                "DELETE FROM cart_tap WHERE id IN (SELECT id FROM cart_tap
                   WHERE at < ?1 LIMIT ?2)"
            }
            Prunable::SettledEmails => {
                "DELETE FROM email_outbox WHERE id IN (SELECT id FROM email_outbox
                   WHERE state <> 'pending' AND created_at < ?1 LIMIT ?2)"
            }
        };
        Ok(self
            .0
            .prepare_cached(sql)?
            .execute(params![before.as_millis(), i64::from(limit)])?)
    }

    fn user_exists(&self, username: &str) -> Result<bool, StorageError> {
        Ok(self
            .0
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM app_user WHERE username = ?1)")?
            .query_row([username], |r| r.get(0))?)
    }

    fn launchpad_ports(&self, launchpad_id: &str) -> Result<Option<u32>, StorageError> {
        Ok(self
            .0
            .prepare_cached("SELECT ports FROM launchpad WHERE id = ?1")?
            .query_row([launchpad_id], |r| r.get(0))
            .optional()?)
    }

    fn hub_location(&self, device_id: &str) -> Result<Option<(String, u32)>, StorageError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT last_launchpad, last_port FROM device
                 WHERE id = ?1 AND located_by_hub = 1 AND docked = 1
                   AND last_launchpad IS NOT NULL AND last_port IS NOT NULL",
            )?
            .query_row([device_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn port_occupant(
        &self,
        launchpad_id: &str,
        port: u32,
        except: &str,
    ) -> Result<Option<PortOccupant>, StorageError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id, last_contact, located_by_hub FROM device
                 WHERE last_launchpad = ?1 AND last_port = ?2 AND docked = 1 AND id <> ?3
                 ORDER BY located_by_hub DESC, last_contact DESC LIMIT 1",
            )?
            .query_row(params![launchpad_id, port, except], |r| {
                Ok(PortOccupant {
                    device_id: r.get(0)?,
                    last_contact: r.get::<_, Option<i64>>(1)?.map(Timestamp),
                    by_hub: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn vacate_port(&self, launchpad_id: &str, port: u32, except: &str) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "UPDATE device SET docked = 0, located_by_hub = 0
                 WHERE last_launchpad = ?1 AND last_port = ?2 AND docked = 1 AND id <> ?3",
            )?
            .execute(params![launchpad_id, port, except])?;
        Ok(())
    }

    fn store_records(
        &self,
        device_id: &str,
        last_seq: u64,
        events: Vec<EventRecord>,
        now: Timestamp,
    ) -> Result<(u64, Vec<EventRecord>), StorageError> {
        super::store_records(self.0, device_id, last_seq, events, now)
    }

    fn set_mirror(&self, device_id: &str, m: &MirrorUpdate) -> Result<(), StorageError> {
        self.0
            .prepare_cached(
                "UPDATE device SET status = ?2, device_user = ?3,
                    held_by_grant = CASE WHEN ?4 = 1 THEN held_by_grant ELSE NULL END,
                    last_launchpad = CASE WHEN ?5 = 1 THEN ?6 ELSE last_launchpad END,
                    last_port = CASE WHEN ?5 = 1 THEN ?7 ELSE last_port END,
                    docked = COALESCE(?8, docked),
                    located_by_hub = CASE WHEN ?8 = 0 THEN 0 ELSE located_by_hub END,
                    battery = COALESCE(?9, battery),
                    os_version = COALESCE(?10, os_version),
                    overdue = COALESCE(?11, overdue),
                    passcode = COALESCE(?12, passcode),
                    last_seq = ?13, last_contact = ?14
                 WHERE id = ?1",
            )?
            .execute(params![
                device_id,
                m.status.as_str(),
                m.user,
                m.keep_grant,
                m.location.is_some(),
                m.location.as_ref().and_then(|(l, _)| l.as_deref()),
                m.location.as_ref().and_then(|(_, p)| *p).map(i64::from),
                m.docked,
                m.battery.map(i64::from),
                m.os_version,
                m.overdue,
                m.passcode.map(|p| p.as_str()),
                super::seq(m.last_seq),
                m.last_contact.as_millis(),
            ])?;
        Ok(())
    }

    fn touch_device(
        &self,
        device_id: &str,
        last_seq: u64,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.0
            .prepare_cached("UPDATE device SET last_seq = ?2, last_contact = ?3 WHERE id = ?1")?
            .execute(params![device_id, super::seq(last_seq), now.as_millis()])?;
        Ok(())
    }

    fn acknowledge(
        &self,
        device_id: &str,
        handled: &[CommandId],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let mut ack = self.0.prepare_cached(
            "UPDATE command SET state = 'acknowledged', updated_at = ?3
             WHERE id = ?1 AND device_id = ?2 AND state IN ('pending', 'delivered')",
        )?;
        for id in handled {
            ack.execute(params![id.as_str(), device_id, now.as_millis()])?;
        }
        Ok(())
    }

    fn take_commands(&self, device_id: &str, now: Timestamp) -> Result<Vec<Signed>, StorageError> {
        super::take_commands(self.0, device_id, now)
    }

    fn queue_transitions(
        &self,
        device_id: &str,
        transitions: &[(u64, Transition)],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let mut stmt = self.0.prepare_cached(
            "INSERT INTO transition_outbox (device_id, seq, transition, created_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (device_id, seq) DO NOTHING",
        )?;
        for (seq, t) in transitions {
            let json = serde_json::to_string(t)
                .map_err(|e| StorageError::Internal(format!("encode transition: {e}")))?;
            stmt.execute(params![device_id, super::seq(*seq), json, now.as_millis()])?;
        }
        Ok(())
    }

    fn queued_transitions(&self, device_id: &str) -> Result<Vec<(u64, Transition)>, StorageError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT seq, transition FROM transition_outbox WHERE device_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([device_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(seq, json)| {
                let t = serde_json::from_str(&json)
                    .map_err(|e| StorageError::Corrupt(format!("queued transition: {e}")))?;
                Ok((u64::try_from(seq).unwrap_or(0), t))
            })
            .collect()
    }

    fn consume_transition(&self, device_id: &str, seq: u64) -> Result<bool, StorageError> {
        let n = self
            .0
            .prepare_cached("DELETE FROM transition_outbox WHERE device_id = ?1 AND seq = ?2")?
            .execute(params![device_id, super::seq(seq)])?;
        Ok(n > 0)
    }

    fn devices_with_transitions(&self, limit: u32) -> Result<Vec<String>, StorageError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT DISTINCT device_id FROM transition_outbox ORDER BY device_id LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::from(limit)], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn create_runs(&self, runs: Vec<NewRun>, now: Timestamp) -> Result<Vec<i64>, StorageError> {
        super::workflows::insert_runs(self.0, runs, now.as_millis())
    }
}
