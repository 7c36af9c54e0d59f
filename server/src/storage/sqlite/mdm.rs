//! MDM command states on SQLite (the [`crate::storage::tx::Tx`] methods delegate here).

use crate::db::sql::{Conn, OptionalExtension, Row, params};
use lanyard_protocol::Timestamp;

use crate::domain::mdm_commands::MdmState;
use crate::storage::StorageError;
use crate::storage::tx::MdmCommandRow;

pub(super) const COLUMNS: &str = "uuid, device_id, udid, request_type, state, detail, requested_at, updated_at, probe, push_failed_at";

pub(super) fn row(r: &Row) -> crate::db::sql::Result<MdmCommandRow> {
    Ok(MdmCommandRow {
        uuid: r.get(0)?,
        device_id: r.get(1)?,
        udid: r.get(2)?,
        request_type: r.get(3)?,
        state: crate::model::stored_state(4, &r.get::<_, String>(4)?, MdmState::parse)?,
        detail: r.get(5)?,
        requested_at: r.get(6)?,
        updated_at: r.get(7)?,
        probe: r.get(8)?,
        push_failed_at: r.get(9)?,
    })
}

/// The states still waiting on something, as an SQL list — from the one rule
/// ([`MdmState::settled`]), never written out by hand.
fn waiting_sql(exclude: &[MdmState]) -> String {
    MdmState::ALL
        .into_iter()
        .filter(|s| !s.settled() && !exclude.contains(s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The commands matching `clause` (a WHERE condition with its ORDER BY / LIMIT).
fn select<P: crate::db::sql::Params>(
    c: &dyn Conn,
    clause: &str,
    params: P,
) -> Result<Vec<MdmCommandRow>, StorageError> {
    let mut stmt =
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM mdm_command WHERE {clause}"))?;
    let rows = stmt.query_map(params, row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn get(c: &dyn Conn, uuid: &str) -> Result<Option<MdmCommandRow>, StorageError> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM mdm_command WHERE uuid = ?1"
    ))?
    .query_row([uuid], row)
    .optional()?)
}

pub(super) fn insert(tx: &dyn Conn, r: &MdmCommandRow) -> Result<(), StorageError> {
    tx.prepare_cached(&format!(
        "INSERT INTO mdm_command ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        r.uuid,
        r.device_id,
        r.udid,
        r.request_type,
        r.state.as_str(),
        r.detail,
        r.requested_at,
        r.updated_at,
        r.probe,
        r.push_failed_at
    ])?;
    Ok(())
}

pub(super) fn set_state(
    tx: &dyn Conn,
    uuid: &str,
    state: MdmState,
    detail: Option<&str>,
    now: Timestamp,
) -> Result<(), StorageError> {
    tx.prepare_cached(
        "UPDATE mdm_command SET state = ?2, detail = COALESCE(?3, detail), updated_at = ?4 WHERE uuid = ?1",
    )?
    .execute(params![uuid, state.as_str(), detail, now.as_millis()])?;
    Ok(())
}

pub(super) fn latest(
    tx: &dyn Conn,
    device_id: &str,
    request_type: &str,
) -> Result<Option<MdmCommandRow>, StorageError> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM mdm_command WHERE device_id = ?1 AND request_type = ?2
             ORDER BY requested_at DESC, rowid DESC LIMIT 1"
        ))?
        .query_row(params![device_id, request_type], row)
        .optional()?)
}

pub(super) fn open_of(tx: &dyn Conn, device_id: &str) -> Result<Vec<MdmCommandRow>, StorageError> {
    let clause = format!(
        "device_id = ?1 AND state IN ({}) ORDER BY requested_at",
        waiting_sql(&[])
    );
    select(tx, &clause, [device_id])
}

/// Commands still waiting on something that were requested before `before`, oldest
/// first, at most `limit`.
pub(super) fn overdue(
    c: &dyn Conn,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<MdmCommandRow>, StorageError> {
    let clause = format!(
        "state IN ({}) AND requested_at < ?1 ORDER BY requested_at LIMIT ?2",
        waiting_sql(&[])
    );
    select(c, &clause, params![before.as_millis(), limit])
}

/// A device's commands, newest first, at most `limit`.
pub(super) fn of_device(
    c: &dyn Conn,
    device_id: &str,
    limit: u32,
) -> Result<Vec<MdmCommandRow>, StorageError> {
    select(
        c,
        "device_id = ?1 ORDER BY requested_at DESC, rowid DESC LIMIT ?2",
        params![device_id, limit],
    )
}

pub(super) fn set_probe(tx: &dyn Conn, uuids: &[String], probe: &str) -> Result<(), StorageError> {
    let mut stmt = tx.prepare_cached("UPDATE mdm_command SET probe = ?2 WHERE uuid = ?1")?;
    for u in uuids {
        stmt.execute(params![u, probe])?;
    }
    Ok(())
}

pub(super) fn probed_by(tx: &dyn Conn, probe: &str) -> Result<Vec<MdmCommandRow>, StorageError> {
    select(tx, "probe = ?1", [probe])
}

/// Commands unanswered since before `before` that no probe was sent about yet (NotNow
/// ones excepted: the MDM offers them again by itself), oldest first, at most `limit`.
pub(super) fn unprobed(
    c: &dyn Conn,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<MdmCommandRow>, StorageError> {
    let clause = format!(
        "state IN ({}) AND probe IS NULL AND requested_at < ?1
           AND request_type <> 'DeviceInformation' ORDER BY requested_at LIMIT ?2",
        waiting_sql(&[MdmState::NotNow])
    );
    select(c, &clause, params![before.as_millis(), limit])
}

pub(super) fn set_push_failed(
    tx: &dyn Conn,
    uuids: &[String],
    at: Option<Timestamp>,
) -> Result<(), StorageError> {
    let mut stmt =
        tx.prepare_cached("UPDATE mdm_command SET push_failed_at = ?2 WHERE uuid = ?1")?;
    for u in uuids {
        stmt.execute(params![u, at.map(Timestamp::as_millis)])?;
    }
    Ok(())
}

/// Commands still waiting whose last push failed before `before`, oldest first.
pub(super) fn push_due(
    c: &dyn Conn,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<MdmCommandRow>, StorageError> {
    let clause = format!(
        "push_failed_at IS NOT NULL AND push_failed_at < ?1 AND state IN ({})
          ORDER BY push_failed_at LIMIT ?2",
        waiting_sql(&[])
    );
    select(c, &clause, params![before.as_millis(), limit])
}
