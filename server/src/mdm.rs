//! The server's side of MDM: sending Clear Passcode through the connector when a phone
//! reports it needs one, taking NanoMDM's webhook events (UnlockTokens, command reports),
//! telling the phone the outcome, and the per-device MDM activity log.
//!
//! The loop: a docked phone's outbox reports `passcode_clear_requested` → the server
//! builds `ClearPasscode` with the phone's UnlockToken (kept sealed with AES-GCM) and
//! enqueues it → the device answers the MDM → NanoMDM's webhook reports Acknowledged
//! (or Error, or NotNow) → the server queues `passcode_clear_result` to the phone. The
//! phone keeps retrying its request with growing delays until it hears `cleared`, so a
//! NotNow or a failed send needs no server-side timer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use lanyard_mdm::MdmCommand;
use lanyard_mdm::nanomdm::{
    ApiResult, ConnectorError, MdmConnector, ReportStatus, WebhookError, WebhookEvent,
    parse_webhook,
};
use lanyard_protocol::ServerCommand;

use crate::error::{AppError, ErrorBody};
use crate::extract::Caller;
use crate::keys::random_bytes;
use crate::model::{Device, MdmActivity};
use crate::state::AppState;
use crate::storage::Storage;

/// Why an MDM command cannot go to a phone the MDM has not vouched for.
pub const NOT_VOUCHED: &str = "the MDM has not reported this phone yet (no Authenticate for its UDID and \
     serial number): MDM commands go only to a UDID the MDM itself reported";

/// How long the phone has to apply an MDM outcome.
const RESULT_TTL_SECS: u64 = 24 * 3600;

/// A random UUID (version 4 layout, uppercase) for an MDM command.
pub fn command_uuid() -> anyhow::Result<String> {
    let mut b = random_bytes(16)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::keys::hex(&b).to_uppercase();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The RequestType the passcode-clear loop sends.
const CLEAR: &str = "ClearPasscode";

/// An MDM activity entry; `command` is `(CommandUUID, RequestType)` when it is about one.
pub(crate) fn entry(
    udid: &str,
    device_id: Option<String>,
    command: Option<(&str, &str)>,
    kind: &str,
    detail: Option<String>,
) -> MdmActivity {
    MdmActivity {
        id: 0,
        udid: udid.to_owned(),
        device_id,
        command_uuid: command.map(|(uuid, _)| uuid.to_owned()),
        request_type: command.map(|(_, request_type)| request_type.to_owned()),
        kind: kind.to_owned(),
        detail,
        at: 0,
    }
}

/// A phone asked for its passcode to be cleared. What can be decided locally (no
/// connector, no UnlockToken yet, a command still outstanding or past its deadline) is
/// recorded before the sync answers; MDM calls run in the background, since the
/// phone's sync must not wait on the MDM.
pub async fn request_passcode_clear<S: Storage>(st: &AppState<S>, device: &Device) {
    match prepare_passcode_clear(st, device).await {
        Ok(Ok(action)) => {
            let st = st.clone();
            tokio::spawn(async move {
                if let Err(e) = action.run(&st).await {
                    tracing::warn!(device = %action.device_id, error = %e, "MDM call not recorded");
                }
            });
        }
        Ok(Err(_)) => {}
        Err(e) => tracing::warn!(device = %device.id, error = %e, "passcode clear not sent"),
    }
}

/// A workflow's Clear Passcode: starts (or joins the outstanding) ClearPasscode and
/// waits for the MDM to take it. Returns its CommandUUID, or why it cannot be sent
/// (also in the MDM activity log).
pub async fn clear_passcode_now<S: Storage>(
    st: &AppState<S>,
    device: &Device,
) -> Result<Result<String, String>, AppError> {
    match prepare_passcode_clear(st, device).await? {
        Ok(action) => {
            action.run(st).await?;
            Ok(Ok(action.uuid))
        }
        Err(why) => Ok(Err(why)),
    }
}

/// Sends a command a workflow asked for: logs it as requested, enqueues it (with a
/// push) and logs the MDM's answer. Returns its CommandUUID, or why it could not be
/// sent.
pub async fn send_for_workflow<S: Storage>(
    st: &AppState<S>,
    device: &Device,
    command: &MdmCommand,
) -> Result<Result<String, String>, AppError> {
    let Some(udid) = device.mdm_udid.clone() else {
        return Ok(Err(NOT_VOUCHED.into()));
    };
    let Some(mdm) = st.mdm.clone() else {
        return Ok(Err("no MDM connector is configured".into()));
    };
    let (uuid, kind, detail) = enqueue_logged(st, &mdm, &udid, &device.id, command, None).await?;
    if kind == "send_failed" {
        return Ok(Err(
            detail.unwrap_or_else(|| "the MDM refused the command".into())
        ));
    }
    Ok(Ok(uuid))
}

/// Enqueues a command at the MDM (with a push) and logs it: `requested` — audited as
/// `actor`'s when an administrator asked — then `sent` or `send_failed` with the MDM's
/// answer. Returns the CommandUUID and that outcome.
pub(crate) async fn enqueue_logged<S: Storage>(
    st: &AppState<S>,
    mdm: &lanyard_mdm::nanomdm::NanoMdm,
    udid: &str,
    device_id: &str,
    command: &MdmCommand,
    actor: Option<String>,
) -> Result<(String, &'static str, Option<String>), AppError> {
    let uuid = command_uuid()?;
    let request_type = command.request_type();
    let at = |kind: &str, detail: Option<String>| {
        entry(
            udid,
            Some(device_id.to_owned()),
            Some((&uuid, request_type)),
            kind,
            detail,
        )
    };
    match actor {
        Some(actor) => {
            st.storage
                .record_mdm_request(at("requested", None), actor, st.now())
                .await?
        }
        None => {
            st.storage
                .record_mdm_activity(at("requested", None), st.now())
                .await?
        }
    }
    let ids = [udid.to_owned()];
    let (kind, detail) = enqueue_outcome(mdm.enqueue(&ids, command, &uuid, true).await, udid);
    st.storage
        .record_mdm_activity(at(kind, detail.clone()), st.now())
        .await?;
    Ok((uuid, kind, detail))
}

/// The activity kind that keeps the updates an `AvailableOSUpdates` answer offered.
pub const OFFERED: &str = "os_updates_offered";

/// The updates an `AvailableOSUpdates` command's answer offered, once it arrived.
pub fn offered_updates(
    log: &[MdmActivity],
    uuid: &str,
) -> Option<Vec<lanyard_mdm::nanomdm::OsUpdateOffer>> {
    let e = log
        .iter()
        .rev()
        .find(|e| e.command_uuid.as_deref() == Some(uuid) && e.kind == OFFERED)?;
    serde_json::from_str(e.detail.as_deref()?).ok()
}

/// Where an MDM command stands in a device's activity log: `None` while it waits on
/// the phone, `Some(Ok(()))` once acknowledged, `Some(Err(why))` when it failed.
pub fn command_outcome(log: &[MdmActivity], uuid: &str) -> Option<Result<(), String>> {
    let last = log.iter().rev().find(|e| {
        e.command_uuid.as_deref() == Some(uuid) && e.kind != "token_update" && e.kind != OFFERED
    })?;
    match last.kind.as_str() {
        "acknowledged" => Some(Ok(())),
        "error" | "expired" | "send_failed" | "cannot_send" => Some(Err(format!(
            "{}: {}",
            last.kind,
            last.detail.as_deref().unwrap_or("no detail from the MDM")
        ))),
        _ => None,
    }
}

/// An MDM call to make for a device, already logged as asked for.
struct PendingClear {
    mdm: std::sync::Arc<lanyard_mdm::nanomdm::NanoMdm>,
    device_id: String,
    udid: String,
    uuid: String,
    /// A new ClearPasscode to enqueue, or `None` to push the device about the
    /// outstanding one `uuid` names.
    command: Option<MdmCommand>,
}

/// The device's latest ClearPasscode: its uuid, when it was requested and the
/// latest thing heard about it.
fn latest_clear(log: &[MdmActivity]) -> Option<(&str, i64, &str)> {
    let requested = log
        .iter()
        .rev()
        .find(|e| e.kind == "requested" && e.request_type.as_deref() == Some(CLEAR))?;
    let uuid = requested.command_uuid.as_deref()?;
    let last = log
        .iter()
        .rev()
        .find(|e| e.command_uuid.as_deref() == Some(uuid))?;
    Some((uuid, requested.at, last.kind.as_str()))
}

/// Kinds after which a ClearPasscode is still waiting on the device.
const OUTSTANDING: &[&str] = &[
    "requested",
    "sent",
    "not_now",
    "retry",
    "pushed",
    "push_failed",
];

async fn prepare_passcode_clear<S: Storage>(
    st: &AppState<S>,
    device: &Device,
) -> Result<Result<PendingClear, String>, AppError> {
    let now = st.now();
    let id = Some(device.id.clone());
    // Logged under the UDID the MDM vouched for, else the one the phone gave (the entry
    // names the phone either way; nothing is sent to a UDID the MDM did not report).
    let logged_udid = device
        .mdm_udid
        .clone()
        .or_else(|| device.udid.clone())
        .unwrap_or_default();
    let cannot = |why: &str| {
        entry(
            &logged_udid,
            id.clone(),
            None,
            "cannot_send",
            Some(why.to_owned()),
        )
    };
    let Some(mdm) = st.mdm.clone() else {
        let why = "no MDM connector is configured";
        st.storage.record_mdm_activity(cannot(why), now).await?;
        return Ok(Err(why.into()));
    };
    let Some(udid) = device.mdm_udid.clone() else {
        tracing::warn!(device = %device.id, "passcode clear requested, but the MDM has not reported this phone");
        st.storage
            .record_mdm_activity(cannot(NOT_VOUCHED), now)
            .await?;
        return Ok(Err(NOT_VOUCHED.into()));
    };
    // The phone asks again with growing delays. While its command is still queued at
    // the MDM (a locked phone answers NotNow), a second copy would only pile up:
    // remind the device instead, until the deadline says to give up.
    let log = st.storage.mdm_activity(device.id.clone()).await?;
    if let Some((uuid, requested_at, last)) = latest_clear(&log)
        && OUTSTANDING.contains(&last)
    {
        let uuid = uuid.to_owned();
        let age_secs = u64::try_from(now.as_millis() - requested_at).unwrap_or(0) / 1000;
        if age_secs < st.mdm_deadline_secs {
            st.storage
                .record_mdm_activity(entry(&udid, id, Some((&uuid, CLEAR)), "retry", None), now)
                .await?;
            return Ok(Ok(PendingClear {
                mdm,
                device_id: device.id.clone(),
                udid,
                uuid,
                command: None,
            }));
        }
        let origin = entry(&udid, id, Some((&uuid, CLEAR)), "requested", None);
        expire(st, &origin, last).await?;
        return Ok(Err(
            "the outstanding Clear Passcode passed its deadline".into()
        ));
    }
    let Some(sealed) = st.storage.unlock_token(udid.clone()).await? else {
        let why = "no UnlockToken from the MDM yet";
        st.storage.record_mdm_activity(cannot(why), now).await?;
        return Ok(Err(why.into()));
    };
    let unlock_token = st.keys.open_token(&udid, &sealed)?;
    let uuid = command_uuid()?;
    st.storage
        .record_mdm_activity(
            entry(&udid, id, Some((&uuid, CLEAR)), "requested", None),
            now,
        )
        .await?;
    Ok(Ok(PendingClear {
        mdm,
        device_id: device.id.clone(),
        udid,
        uuid,
        command: Some(MdmCommand::ClearPasscode { unlock_token }),
    }))
}

impl PendingClear {
    /// Enqueues the command (logging `sent` or `send_failed`) or pushes the device
    /// (`pushed` or `push_failed`).
    async fn run<S: Storage>(&self, st: &AppState<S>) -> Result<(), AppError> {
        let mdm = &self.mdm;
        let udid = &self.udid;
        let ids = std::slice::from_ref(udid);
        let (sent, failed) = match &self.command {
            Some(_) => ("sent", "send_failed"),
            None => ("pushed", "push_failed"),
        };
        let (kind, detail) = match &self.command {
            Some(cmd) => enqueue_outcome(mdm.enqueue(ids, cmd, &self.uuid, true).await, udid),
            None => match mdm.push(ids).await {
                Ok(result) => match result.status.get(udid) {
                    Some(s) if s.push_error.is_some() => (failed, s.push_error.clone()),
                    _ => (sent, None),
                },
                Err(e) => (failed, Some(e.to_string())),
            },
        };
        let e = entry(
            udid,
            Some(self.device_id.clone()),
            Some((&self.uuid, CLEAR)),
            kind,
            detail,
        );
        st.storage.record_mdm_activity(e, st.now()).await?;
        Ok(())
    }
}

/// Gives up on an outstanding command (its `requested` entry) with the reason, and
/// tells the phone when it was a Clear Passcode it is waiting on.
async fn expire<S: Storage>(
    st: &AppState<S>,
    requested: &MdmActivity,
    last_heard: &str,
) -> Result<(), AppError> {
    let is_clear = requested.request_type.as_deref() == Some(CLEAR);
    let mut reason = format!(
        "no result from the phone within {} min (last heard: {last_heard})",
        st.mdm_deadline_secs / 60
    );
    if is_clear {
        reason.push_str("; a new Clear Passcode goes out on the phone's next request");
    }
    let mut e = requested.clone();
    e.kind = "expired".into();
    e.detail = Some(reason.clone());
    st.storage.record_mdm_activity(e, st.now()).await?;
    if let (true, Some(device_id)) = (is_clear, &requested.device_id) {
        let result = ServerCommand::PasscodeClearResult {
            cleared: false,
            detail: Some(reason),
        };
        crate::domain::commands::queue_command(st, None, device_id, result, RESULT_TTL_SECS)
            .await?;
    }
    Ok(())
}

/// Expires every MDM command still unanswered past the deadline (a phone that went
/// flat in a drawer never asks again, and on-demand commands have no phone asking at
/// all). Returns how many were expired.
pub async fn expire_overdue<S: Storage>(st: &AppState<S>) -> Result<usize, AppError> {
    let deadline_ms = i64::try_from(st.mdm_deadline_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let cutoff = lanyard_protocol::Timestamp(st.now().as_millis().saturating_sub(deadline_ms));
    // Older requests were settled by earlier sweeps (or, after a long outage, by the
    // phone's next request); looking back a week keeps each sweep small as the log grows.
    let since = lanyard_protocol::Timestamp(cutoff.as_millis().saturating_sub(SWEEP_LOOKBACK_MS));
    let overdue = st
        .storage
        .outstanding_mdm_commands(
            since,
            cutoff,
            OUTSTANDING.iter().map(|k| (*k).to_owned()).collect(),
        )
        .await?;
    for (requested, last) in &overdue {
        expire(st, requested, last).await?;
    }
    Ok(overdue.len())
}

/// How far before the deadline the sweep looks for unanswered commands.
const SWEEP_LOOKBACK_MS: i64 = 7 * 24 * 3600 * 1000;

/// Reads the MDM's answer to an enqueue for `udid`: `sent` (with a push problem
/// noted) or `send_failed` with the reason.
pub(crate) fn enqueue_outcome(
    answer: Result<ApiResult, ConnectorError>,
    udid: &str,
) -> (&'static str, Option<String>) {
    match answer {
        Ok(result) => match result.status.get(udid) {
            Some(s) if s.command_error.is_some() => ("send_failed", s.command_error.clone()),
            Some(s) => (
                "sent",
                s.push_error
                    .clone()
                    .map(|p| format!("queued; push failed: {p}")),
            ),
            None => ("sent", None),
        },
        Err(e) => ("send_failed", Some(e.to_string())),
    }
}

#[utoipa::path(post, path = "/webhooks/nanomdm", tag = "operations", description = "NanoMDM's webhook (MicroMDM-compatible JSON events). X-Hmac-Signature must carry the HMAC-SHA256 of the body under the configured webhook key; without a key configured every event is refused.", responses((status = 200, description = "taken"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
/// `POST /webhooks/nanomdm`.
pub async fn webhook<S: Storage>(
    State(st): State<AppState<S>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, AppError> {
    let signature = headers
        .get("x-hmac-signature")
        .and_then(|h| h.to_str().ok());
    // Unsigned events could tell a phone its passcode is gone when it is not, so
    // without a key nothing is taken.
    let Some(key) = st.mdm_webhook_key.as_deref() else {
        return Err(AppError::Unauthorized(
            "MDM webhooks are refused until a webhook key is configured (--nanomdm-webhook-key, \
             the same key as NanoMDM's webhook HMAC key)"
                .into(),
        ));
    };
    let event = match parse_webhook(&body, Some(key.as_slice()), signature) {
        Ok(e) => e,
        Err(WebhookError::BadSignature) => {
            return Err(AppError::Unauthorized("webhook signature invalid".into()));
        }
        Err(WebhookError::Malformed(m)) => {
            return Err(AppError::BadRequest {
                code: "invalid_webhook",
                message: m,
            });
        }
    };
    if !fresh_and_first(&st, &body).await? {
        return Ok(Json(serde_json::json!({"ok": true, "duplicate": true})));
    }
    let now = st.now();
    match event {
        WebhookEvent::Authenticate { udid, serial } => {
            // The MDM's word on who this UDID is: the phone that enrolled in Lanyard with
            // this UDID and serial number may now receive MDM commands.
            let Some(udid) = lanyard_mdm::normalize_udid(&udid) else {
                return Err(AppError::BadRequest {
                    code: "invalid_webhook",
                    message: "Authenticate names no valid UDID".into(),
                });
            };
            let serial = serial.as_deref().and_then(lanyard_mdm::normalize_serial);
            let bound = st
                .storage
                .transact({
                    let (udid, serial) = (udid.clone(), serial.clone());
                    move |tx| {
                        crate::domain::enrollment::mdm_authenticated(
                            tx,
                            &udid,
                            serial.as_deref(),
                            now,
                        )
                    }
                })
                .await?;
            let detail = Some(format!(
                "serial {}",
                serial.as_deref().unwrap_or("not given")
            ));
            st.storage
                .record_mdm_activity(entry(&udid, bound, None, "authenticate", detail), now)
                .await?;
        }
        WebhookEvent::TokenUpdate { udid, unlock_token } => {
            let device_id = st.storage.device_by_udid(udid.clone()).await?.map(|d| d.id);
            let detail = match unlock_token {
                Some(token) => {
                    let sealed = st.keys.seal_token(&udid, &token)?;
                    st.storage
                        .store_unlock_token(udid.clone(), sealed, now)
                        .await?;
                    None
                }
                None => Some("no UnlockToken in this update".to_owned()),
            };
            st.storage
                .record_mdm_activity(entry(&udid, device_id, None, "token_update", detail), now)
                .await?;
        }
        WebhookEvent::CommandReport {
            udid,
            command_uuid,
            status,
            error_chain,
            available_os_updates,
        } => {
            // An Idle check-in (a phone with nothing queued) is news only as "last seen
            // by the MDM": kept on the phone, not as a row each time.
            if status == ReportStatus::Idle && command_uuid.is_none() {
                let udid = lanyard_mdm::normalize_udid(&udid).unwrap_or(udid);
                st.storage
                    .transact(move |tx| tx.mdm_seen(&udid, now))
                    .await?;
                return Ok(Json(serde_json::json!({"ok": true})));
            }
            let origin = match &command_uuid {
                Some(u) => st.storage.mdm_command_origin(u.clone()).await?,
                None => None,
            };
            let kind = match &status {
                ReportStatus::Acknowledged => "acknowledged".to_owned(),
                ReportStatus::Error => "error".to_owned(),
                ReportStatus::CommandFormatError => "command_format_error".to_owned(),
                ReportStatus::NotNow => "not_now".to_owned(),
                ReportStatus::Idle => "idle".to_owned(),
                ReportStatus::Other(s) => s.to_lowercase(),
            };
            let detail = (!error_chain.is_empty()).then(|| {
                error_chain
                    .iter()
                    .map(|e| format!("{} {}: {}", e.domain, e.code, e.description))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            let device_id = origin.as_ref().and_then(|o| o.device_id.clone());
            // The RequestType is whatever the origin entry recorded (none for a command
            // Lanyard did not send).
            let mut e = entry(&udid, device_id.clone(), None, &kind, detail.clone());
            e.command_uuid = command_uuid.clone();
            e.request_type = origin.as_ref().and_then(|o| o.request_type.clone());
            if let Some(offers) = available_os_updates {
                // What Update iOS chooses from, stored before the acknowledgement that
                // makes a waiting step look for it.
                let mut offered = e.clone();
                offered.kind = OFFERED.into();
                offered.detail = Some(serde_json::to_string(&offers).map_err(anyhow::Error::new)?);
                st.storage.record_mdm_activity(offered, now).await?;
            }
            st.storage.record_mdm_activity(e, now).await?;
            let is_clear = origin.as_ref().and_then(|o| o.request_type.as_deref()) == Some(CLEAR);
            if let (true, Some(device_id)) = (is_clear, device_id) {
                let outcome = match status {
                    ReportStatus::Acknowledged => Some(ServerCommand::PasscodeClearResult {
                        cleared: true,
                        detail: None,
                    }),
                    ReportStatus::Error | ReportStatus::CommandFormatError => {
                        Some(ServerCommand::PasscodeClearResult {
                            cleared: false,
                            detail: Some(detail.unwrap_or_else(|| kind.clone())),
                        })
                    }
                    // NotNow: the MDM delivers it again; the phone keeps asking meanwhile.
                    _ => None,
                };
                if let Some(cmd) = outcome {
                    crate::domain::commands::queue_command(
                        &st,
                        None,
                        &device_id,
                        cmd,
                        RESULT_TTL_SECS,
                    )
                    .await?;
                }
            }
        }
        WebhookEvent::Other { topic } => tracing::debug!(%topic, "MDM webhook event not acted on"),
    }
    // A workflow step may be waiting on what was just recorded.
    crate::workflows::engine::wake(&st);
    Ok(Json(serde_json::json!({"ok": true})))
}

/// How far a webhook's `created_at` may be from the host's clock.
const WEBHOOK_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Whether a signed webhook is recent (by NanoMDM's `created_at`, against the wall
/// clock NanoMDM also stamps with) and not taken before (by its `event_id`): a captured
/// POST replayed later, or twice, is not acted on again. `Err` for a stale or unstamped
/// one; `Ok(false)` for a replay within the window.
async fn fresh_and_first<S: Storage>(st: &AppState<S>, body: &[u8]) -> Result<bool, AppError> {
    let stale = |message: String| AppError::BadRequest {
        code: "stale_webhook",
        message,
    };
    let meta = lanyard_mdm::nanomdm::webhook_meta(body).map_err(|e| AppError::BadRequest {
        code: "invalid_webhook",
        message: e.to_string(),
    })?;
    let (Some(event_id), Some(created_at)) = (meta.event_id, meta.created_at) else {
        return Err(stale(
            "a webhook must carry event_id and created_at (NanoMDM sends both)".into(),
        ));
    };
    if event_id.is_empty() || event_id.len() > 128 {
        return Err(stale("event_id must be 1 to 128 characters".into()));
    }
    let created: jiff::Timestamp = created_at
        .parse()
        .map_err(|e| stale(format!("created_at is not an RFC 3339 time: {e}")))?;
    let wall = jiff::Timestamp::now();
    let skew = (wall.as_millisecond() - created.as_millisecond()).abs();
    if skew > WEBHOOK_WINDOW_MS {
        return Err(stale(format!(
            "created_at {created_at} is {} s from this server's clock (at most {} s): a replay, \
             or a clock to set right",
            skew / 1000,
            WEBHOOK_WINDOW_MS / 1000
        )));
    }
    let now = lanyard_protocol::Timestamp(wall.as_millisecond());
    let forget_before = lanyard_protocol::Timestamp(now.as_millis() - 2 * WEBHOOK_WINDOW_MS);
    let first = st
        .storage
        .transact(move |tx| tx.remember_webhook(&event_id, now, forget_before))
        .await?;
    if !first {
        tracing::warn!("an MDM webhook event was received again and ignored");
    }
    Ok(first)
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/mdm-activity", tag = "admin", description = "A device's MDM activity (requests, sends and results kept apart), oldest first. Any role.", params(("id" = String, Path)), responses((status = 200, body = Vec<MdmActivity>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/devices/{id}/mdm-activity`.
pub async fn activity<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<MdmActivity>>, AppError> {
    Ok(Json(st.storage.mdm_activity(id).await?))
}
