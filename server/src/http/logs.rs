//! The audit log (who changed what, before and after) and each device's activity log
//! (its journey, as its own outbox recorded it), as JSON pages and as CSV exports.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use lanyard_protocol::EventRecord;
use serde::Deserialize;

use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiQuery, Caller};
use crate::model::{AuditRecord, CartTapRecord, Page, SecurityEvent};
use crate::state::AppState;
use crate::storage::{AuditFilter, Storage};
use crate::validate;

/// Most rows in one CSV export.
const MAX_EXPORT: u32 = 100_000;

/// Filters and paging of the audit log.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Actors containing this (any case), e.g. a token's label or a username.
    #[param(max_length = 128)]
    actor: Option<String>,
    /// This action (`device.lock`), or all under a prefix ending with `.` (`device.`).
    #[param(max_length = 64)]
    action: Option<String>,
    /// The kind of record changed: `device`, `user`, `launchpad`, `policy`, `workflow`, …
    #[param(max_length = 64)]
    target_kind: Option<String>,
    /// The record's id (a device id, a username, a cart id, …).
    #[param(max_length = 128)]
    target_id: Option<String>,
    /// Entries at or after this time (ms since epoch).
    since: Option<i64>,
    /// Entries before this time (ms since epoch).
    until: Option<i64>,
    /// Entries older than this id.
    cursor: Option<i64>,
    /// Page size.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// Paging of a device's activity.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Records made at or after this time (ms since epoch, the phone's clock).
    since: Option<i64>,
    /// Records made before this time (ms since epoch).
    until: Option<i64>,
    /// Events after this sequence number.
    cursor: Option<u64>,
    /// Page size.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// Filters and paging of an audit log export.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditExportQuery {
    /// Actors containing this (any case).
    #[param(max_length = 128)]
    actor: Option<String>,
    /// This action, or all under a prefix ending with `.`.
    #[param(max_length = 64)]
    action: Option<String>,
    /// The kind of record changed.
    #[param(max_length = 64)]
    target_kind: Option<String>,
    /// The record's id.
    #[param(max_length = 128)]
    target_id: Option<String>,
    /// Entries at or after this time (ms since epoch).
    since: Option<i64>,
    /// Entries before this time (ms since epoch).
    until: Option<i64>,
    /// Entries older than this id.
    cursor: Option<i64>,
    /// Rows (default 10,000).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<u32>,
}

/// Paging of an activity export.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityExportQuery {
    /// Records made at or after this time (ms since epoch, the phone's clock).
    since: Option<i64>,
    /// Records made before this time (ms since epoch).
    until: Option<i64>,
    /// Events after this sequence number.
    cursor: Option<u64>,
    /// Rows (default 10,000).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<u32>,
}

fn export_limit(limit: Option<u32>) -> Result<u32, AppError> {
    match limit {
        None => Ok(10_000),
        Some(n) if (1..=MAX_EXPORT).contains(&n) => Ok(n),
        Some(_) => Err(AppError::invalid(
            "limit",
            format!("must be 1 to {MAX_EXPORT}"),
        )),
    }
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

fn csv_response(name: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Writes a row whose cells came from outside (a phone's username, an admin's label):
/// a cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is
/// prefixed with `'` so it reads as text.
fn write_safe<const N: usize>(
    w: &mut csv::Writer<Vec<u8>>,
    cells: [String; N],
) -> Result<(), csv::Error> {
    w.write_record(cells.map(neutralise))
}

fn neutralise(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

fn csv_error(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("writing CSV: {e}"))
}

/// `GET /api/v1/audit`: newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", description = "Who changed what, before and after, newest first; filter by actor (contains), action (exact, or a prefix ending with `.`), target kind and id, and time. Any role.", params(AuditQuery), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, body = Page<AuditRecord>)), security(("api_token" = [])))]
pub async fn audit<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditRecord>>, AppError> {
    let limit = validate::limit(q.limit)?;
    let filter = audit_filter(
        [q.actor, q.action, q.target_kind, q.target_id],
        q.since,
        q.until,
    )?;
    Ok(Json(redacted(
        st.storage.list_audit(filter, q.cursor, limit).await?,
    )))
}

/// The audit filter from `[actor, action, target_kind, target_id]` and a time range.
fn audit_filter(
    [actor, action, target_kind, target_id]: [Option<String>; 4],
    since: Option<i64>,
    until: Option<i64>,
) -> Result<AuditFilter, AppError> {
    Ok(AuditFilter {
        actor: filter_text("actor", actor, 128)?,
        action: filter_text("action", action, 64)?,
        target_kind: filter_text("target_kind", target_kind, 64)?,
        target_id: filter_text("target_id", target_id, 128)?,
        since,
        until,
    })
}

/// Audit entries with every sealed secret redacted, for every role: the log is read
/// by auditors and exported.
fn redacted(mut page: Page<AuditRecord>) -> Page<AuditRecord> {
    for a in &mut page.items {
        for v in [&mut a.before, &mut a.after].into_iter().flatten() {
            crate::workflows::secrets::redact(v);
        }
    }
    page
}

/// `GET /api/v1/audit.csv`.
#[utoipa::path(get, path = "/api/v1/audit.csv", tag = "admin", description = "The audit log as CSV, with the same filters as `GET /api/v1/audit`. Any role.", params(AuditExportQuery), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, description = "CSV export", content_type = "text/csv", body = String)), security(("api_token" = [])))]
pub async fn audit_csv<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<AuditExportQuery>,
) -> Result<Response, AppError> {
    let page = redacted(
        st.storage
            .list_audit(
                audit_filter(
                    [q.actor, q.action, q.target_kind, q.target_id],
                    q.since,
                    q.until,
                )?,
                q.cursor,
                export_limit(q.limit)?,
            )
            .await?,
    );
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "at",
        "actor",
        "action",
        "target_kind",
        "target_id",
        "before",
        "after",
    ])
    .map_err(csv_error)?;
    for a in page.items {
        let json =
            |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
        write_safe(
            &mut w,
            [
                a.id.to_string(),
                rfc3339(a.at),
                a.actor,
                a.action,
                a.target_kind,
                a.target_id,
                json(&a.before),
                json(&a.after),
            ],
        )
        .map_err(csv_error)?;
    }
    Ok(csv_response(
        "lanyard-audit.csv",
        w.into_inner().map_err(csv_error)?,
    ))
}

/// `GET /api/v1/devices/{id}/activity`: the device's journey in sequence order.
#[utoipa::path(get, path = "/api/v1/devices/{id}/activity", tag = "admin", description = "Any role.", params(("id" = String, Path), ActivityQuery), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, body = Page<lanyard_protocol::EventRecord>), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
pub async fn activity<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Json<Page<EventRecord>>, AppError> {
    let limit = validate::limit(q.limit)?;
    Ok(Json(
        st.storage
            .device_activity(id, (q.since, q.until), q.cursor, limit)
            .await?,
    ))
}

/// `GET /api/v1/devices/{id}/activity.csv`.
#[utoipa::path(get, path = "/api/v1/devices/{id}/activity.csv", tag = "admin", description = "Any role.", params(("id" = String, Path), ActivityExportQuery), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, description = "CSV export", content_type = "text/csv", body = String), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
pub async fn activity_csv<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ActivityExportQuery>,
) -> Result<Response, AppError> {
    let page = st
        .storage
        .device_activity(
            id.clone(),
            (q.since, q.until),
            q.cursor,
            export_limit(q.limit)?,
        )
        .await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "seq", "at", "status", "user", "from", "to", "cause", "reports",
    ])
    .map_err(csv_error)?;
    let name = |v: serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    for r in page.items {
        let (from, to, cause) = match &r.transition {
            Some(t) => (
                name(serde_json::to_value(t.from).unwrap_or_default()),
                name(serde_json::to_value(t.to).unwrap_or_default()),
                serde_json::to_value(&t.cause)
                    .map(|c| c["type"].as_str().unwrap_or_default().to_owned())
                    .unwrap_or_default(),
            ),
            None => Default::default(),
        };
        write_safe(
            &mut w,
            [
                r.seq.to_string(),
                rfc3339(r.at.as_millis()),
                name(serde_json::to_value(r.status).unwrap_or_default()),
                r.user.map(|u| u.username).unwrap_or_default(),
                from,
                to,
                cause,
                serde_json::to_string(&r.reports).unwrap_or_default(),
            ],
        )
        .map_err(csv_error)?;
    }
    Ok(csv_response(
        &format!("{id}-activity.csv"),
        w.into_inner().map_err(csv_error)?,
    ))
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/commands", tag = "admin", description = "A device's most recent signed commands (newest first, up to 500) and their states. Any role.", params(("id" = String, Path)), responses((status = 200, body = Vec<crate::model::CommandRecord>), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/devices/{id}/commands`.
pub async fn commands<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<crate::model::CommandRecord>>, AppError> {
    Ok(Json(
        st.storage.device_commands(id, validate::MAX_LIMIT).await?,
    ))
}

/// Filters and paging of the security events.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityQuery {
    /// Only this phone's events.
    #[param(max_length = 128)]
    device_id: Option<String>,
    /// Only this cart's events.
    #[param(max_length = 128)]
    launchpad_id: Option<String>,
    /// Only this kind, e.g. `unknown_grant`.
    #[param(max_length = 64)]
    kind: Option<String>,
    /// Events older than this id.
    cursor: Option<i64>,
    /// Page size.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// `GET /api/v1/security-events`: newest first.
#[utoipa::path(get, path = "/api/v1/security-events", tag = "admin", description = "What phones, carts and callers sent that the server refused: claims it could not check (a grant it never issued, a port out of range or taken, a value out of range), newest first. Any role.", params(SecurityQuery), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, body = Page<SecurityEvent>)), security(("api_token" = [])))]
pub async fn security_events<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<SecurityQuery>,
) -> Result<Json<Page<SecurityEvent>>, AppError> {
    let limit = validate::limit(q.limit)?;
    let filter = crate::storage::security::SecurityFilter {
        device_id: filter_text("device_id", q.device_id, 128)?,
        launchpad_id: filter_text("launchpad_id", q.launchpad_id, 128)?,
        kind: filter_text("kind", q.kind, 64)?,
    };
    Ok(Json(
        st.storage
            .list_security_events(filter, q.cursor, limit)
            .await?,
    ))
}

/// A text filter: at most `max` characters; empty means none. Filters only match: any
/// text is a filter (one matching nothing finds nothing).
fn filter_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, AppError> {
    if value.as_ref().is_some_and(|v| v.chars().count() > max) {
        return Err(AppError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.filter(|v| !v.is_empty()))
}

/// Filters and paging of the cart tap log.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapQuery {
    /// Only this cart's taps.
    #[param(max_length = 128)]
    launchpad_id: Option<String>,
    /// Only this user's taps.
    #[param(max_length = 128)]
    username: Option<String>,
    /// Only taps answered with this reason, e.g. `cart_busy`, `no_device`.
    #[param(max_length = 64)]
    reason: Option<String>,
    /// `true`: only refused taps; `false`: only granted ones.
    refused: Option<bool>,
    /// Taps at or after this time (ms since epoch).
    since: Option<i64>,
    /// Taps before this time (ms since epoch).
    until: Option<i64>,
    /// Taps older than this id.
    cursor: Option<i64>,
    /// Page size.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// `GET /api/v1/cart-taps`: newest first.
#[utoipa::path(get, path = "/api/v1/cart-taps", tag = "admin", description = "Every badge tapped at a cart's reader and what the cart answered: granted, or refused with a stable reason (`badge_not_found`, `lookup_unavailable`, `too_many_unknown_badges`, `user_has_device`, `cart_busy`, `no_device`) and a sentence saying why (for `no_device`, why each docked phone was passed over). Newest first; filter by cart, user, reason, refused or granted, and time. Any role.", params(TapQuery), responses((status = 400, description = "invalid input", body = ErrorBody), (status = 401, description = "no or unknown token", body = ErrorBody), (status = 200, body = Page<CartTapRecord>)), security(("api_token" = [])))]
pub async fn cart_taps<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<TapQuery>,
) -> Result<Json<Page<CartTapRecord>>, AppError> {
    let limit = validate::limit(q.limit)?;
    let filter = crate::storage::taps::TapFilter {
        launchpad_id: filter_text("launchpad_id", q.launchpad_id, 128)?,
        username: filter_text("username", q.username, 128)?,
        reason: filter_text("reason", q.reason, 64)?,
        refused: q.refused,
        since: q.since,
        until: q.until,
    };
    Ok(Json(
        st.storage.list_cart_taps(filter, q.cursor, limit).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn formula_cells_read_as_text() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(neutralise(bad.into()), format!("'{bad}"));
        }
        for ok in ["alice", "2026-12-07T10:00:00Z", "42", ""] {
            assert_eq!(neutralise(ok.into()), ok);
        }
    }
}
