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
    EnqueueOutcome, MdmConnector, PushOutcome, ReportStatus, WebhookError, WebhookEvent,
    parse_webhook,
};

use crate::domain::mdm_commands::{self, ClearStep, MdmState};
use crate::error::{AppError, ErrorBody};
use crate::extract::Caller;
use crate::keys::random_bytes;
use crate::model::{Device, MdmActivity};
use crate::state::AppState;
use crate::storage::Storage;
use crate::storage::tx::{AuditEntry, NewSecurityEvent};

/// Why an MDM command cannot go to a phone the MDM has not vouched for.
pub const NOT_VOUCHED: &str = "the MDM has not reported this phone yet (no Authenticate for its UDID and \
     serial number): MDM commands go only to a UDID the MDM itself reported";

/// Why an MDM command cannot go to a phone that left the MDM.
pub const CHECKED_OUT: &str = "the phone left the MDM (its management profile was removed: the MDM \
     reported CheckOut); it must enroll in the MDM again before any MDM command reaches it";

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

/// The MDM UDID a command for `device` may go to, or why none may.
pub(crate) fn target(device: &Device) -> Result<String, &'static str> {
    if device.mdm_checked_out_at.is_some() {
        return Err(CHECKED_OUT);
    }
    device.mdm_udid.clone().ok_or(NOT_VOUCHED)
}

/// Records what was heard about a command in one transaction — and, in it, marks a
/// failed push to retry (`push_failed`) and settles what a probe the device just
/// answered was sent about — then wakes the phones with a passcode result to collect.
async fn hear<S: Storage>(
    st: &AppState<S>,
    uuid: &str,
    state: MdmState,
    e: MdmActivity,
    push_failed: bool,
) -> Result<mdm_commands::Heard, AppError> {
    let (keys, uuid, now) = (st.keys.clone(), uuid.to_owned(), st.now());
    let (heard, woken) = st
        .storage
        .transact(move |tx| {
            let heard = mdm_commands::hear(tx, &keys, &uuid, state, &e, now)?;
            if push_failed {
                tx.set_mdm_push_failed(std::slice::from_ref(&uuid), Some(now))?;
            }
            let mut woken = Vec::new();
            if let mdm_commands::Heard::Moved { to, wake, .. } = &heard {
                woken.extend(wake.clone());
                if to.answered() {
                    woken.extend(mdm_commands::after_probe(tx, &keys, &uuid, now)?);
                }
            }
            Ok((heard, woken))
        })
        .await?;
    for device in woken {
        st.wake(&crate::notify::device_topic(&device));
    }
    Ok(heard)
}

/// Records an enqueue's outcome: the state it moves the command to, its activity entry
/// (built by `at` from the kind and detail), a failed push marked for retrying. Returns
/// why the command is certainly not queued, if it is not.
async fn hear_enqueue<S: Storage>(
    st: &AppState<S>,
    uuid: &str,
    outcome: &EnqueueOutcome,
    at: impl Fn(&str, Option<String>) -> MdmActivity,
) -> Result<Option<String>, AppError> {
    let (state, kind, detail) = recorded(outcome);
    let push_failed = matches!(
        outcome,
        EnqueueOutcome::Queued {
            push: PushOutcome::Failed(_)
        }
    );
    hear(st, uuid, state, at(kind, detail), push_failed).await?;
    Ok(match outcome {
        EnqueueOutcome::NotQueued(why) | EnqueueOutcome::UnknownEnrollment(why) => {
            Some(why.clone())
        }
        _ => None,
    })
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
/// waits for the MDM's answer to the enqueue. Returns its CommandUUID — whatever
/// became of the push, the step then waits for the device — or why it cannot be sent
/// (also in the MDM activity log).
pub async fn clear_passcode_now<S: Storage>(
    st: &AppState<S>,
    device: &Device,
) -> Result<Result<String, String>, AppError> {
    match prepare_passcode_clear(st, device).await? {
        Ok(action) => match action.run(st).await? {
            Some(why) => Ok(Err(why)),
            None => Ok(Ok(action.uuid)),
        },
        Err(why) => Ok(Err(why)),
    }
}

/// Sends a command a workflow asked for: logs it as requested, enqueues it (with a
/// push) and logs the MDM's answer. Returns its CommandUUID when it is (or may be)
/// queued, or why it is not.
pub async fn send_for_workflow<S: Storage>(
    st: &AppState<S>,
    device: &Device,
    command: &MdmCommand,
) -> Result<Result<String, String>, AppError> {
    let udid = match target(device) {
        Ok(u) => u,
        Err(why) => return Ok(Err(why.into())),
    };
    let Some(mdm) = st.mdm.clone() else {
        return Ok(Err("no MDM connector is configured".into()));
    };
    let sent = enqueue_logged(st, &mdm, &udid, &device.id, command, None).await?;
    Ok(match sent.refused {
        Some(why) => Err(why),
        None => Ok(sent.uuid),
    })
}

/// A command handed to the MDM, as the server recorded it.
pub(crate) struct Enqueued {
    /// Its CommandUUID.
    pub uuid: String,
    /// The activity kind its enqueue was logged as (`sent`, `queued_push_failed`,
    /// `no_answer`, `send_failed`, `unknown_enrollment`).
    pub kind: &'static str,
    /// The MDM's reason, when there is one.
    pub detail: Option<String>,
    /// Why it is certainly not queued (`None`: queued, or maybe).
    pub refused: Option<String>,
}

/// How an enqueue's outcome is recorded: the state it moves the command to, the
/// activity kind and its detail.
fn recorded(outcome: &EnqueueOutcome) -> (MdmState, &'static str, Option<String>) {
    match outcome {
        EnqueueOutcome::Queued {
            push: PushOutcome::Sent(_),
        } => (MdmState::Queued, "sent", None),
        EnqueueOutcome::Queued {
            push: PushOutcome::Skipped,
        } => (
            MdmState::Queued,
            "sent",
            Some("queued without a push".into()),
        ),
        EnqueueOutcome::Queued {
            push: PushOutcome::Failed(why),
        } => (
            MdmState::Queued,
            "queued_push_failed",
            Some(format!(
                "queued; the push failed: {why} (the phone fetches it at its next check-in \
                 with the MDM; later requests push again)"
            )),
        ),
        EnqueueOutcome::NotQueued(why) => (MdmState::NotQueued, "send_failed", Some(why.clone())),
        EnqueueOutcome::UnknownEnrollment(why) => (
            MdmState::UnknownEnrollment,
            "unknown_enrollment",
            Some(why.clone()),
        ),
        EnqueueOutcome::Uncertain(why) => (
            MdmState::Uncertain,
            "no_answer",
            Some(format!(
                "{why}; the command may be queued: it is not sent again, and expires if the \
                 phone never answers"
            )),
        ),
    }
}

/// Enqueues a command at the MDM (with a push) and logs it: `requested` — audited as
/// `actor`'s when an administrator asked — then what the MDM's answer says became of it.
pub(crate) async fn enqueue_logged<S: Storage>(
    st: &AppState<S>,
    mdm: &lanyard_mdm::nanomdm::NanoMdm,
    udid: &str,
    device_id: &str,
    command: &MdmCommand,
    actor: Option<String>,
) -> Result<Enqueued, AppError> {
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
    let requested = at("requested", None);
    let (now, started) = (st.now(), uuid.clone());
    st.storage
        .transact(move |tx| {
            mdm_commands::start(tx, &started, &requested, now)?;
            if let Some(actor) = &actor {
                let after = serde_json::json!({
                    "request_type": requested.request_type,
                    "command_uuid": requested.command_uuid,
                });
                let target = requested.device_id.as_deref().unwrap_or(&requested.udid);
                tx.audit(
                    &AuditEntry {
                        actor,
                        action: "mdm_command",
                        target_kind: "device",
                        target_id: target,
                        before: None,
                        after: Some(after),
                    },
                    now,
                )?;
            }
            Ok(())
        })
        .await?;
    let ids = [udid.to_owned()];
    let outcome = EnqueueOutcome::of(&mdm.enqueue(&ids, command, &uuid, true).await, udid);
    let (_, kind, detail) = recorded(&outcome);
    let refused = hear_enqueue(st, &uuid, &outcome, at).await?;
    Ok(Enqueued {
        uuid,
        kind,
        detail,
        refused,
    })
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

/// Where an MDM command stands: `None` while it waits on the phone, `Some(Ok(()))`
/// once acknowledged, `Some(Err(why))` when it settled any other way.
pub async fn command_outcome<S: Storage>(
    st: &AppState<S>,
    uuid: &str,
) -> Result<Option<Result<(), String>>, AppError> {
    let Some(row) = st.storage.mdm_command(uuid.to_owned()).await? else {
        return Ok(Some(Err(format!("no MDM command {uuid} is on record"))));
    };
    Ok(match row.state {
        MdmState::Acknowledged => Some(Ok(())),
        s if s.settled() => Some(Err(format!(
            "{}: {}",
            s.as_str(),
            row.detail.as_deref().unwrap_or("no detail from the MDM")
        ))),
        _ => None,
    })
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
    let udid = match target(device) {
        Ok(u) => u,
        Err(why) => {
            tracing::warn!(device = %device.id, why, "passcode clear requested, but no MDM command can reach this phone");
            st.storage.record_mdm_activity(cannot(why), now).await?;
            return Ok(Err(why.into()));
        }
    };
    let unlock_token = match st.storage.unlock_token(udid.clone()).await? {
        Some(sealed) => Some(st.keys.open_token(&udid, &sealed)?),
        None => None,
    };
    // The phone asks again with growing delays. While its command is still queued at
    // the MDM (a locked phone answers NotNow), a second copy would only pile up:
    // remind the device instead, until the deadline says to give up.
    let deadline_ms = i64::try_from(st.mdm_deadline_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let (keys, device_id, tx_udid, can_send) = (
        st.keys.clone(),
        device.id.clone(),
        udid.clone(),
        unlock_token.is_some(),
    );
    let step = st
        .storage
        .transact(move |tx| {
            mdm_commands::begin_clear(tx, &keys, &device_id, &tx_udid, can_send, deadline_ms, now)
        })
        .await?;
    let pending = |uuid: String, command: Option<MdmCommand>| PendingClear {
        mdm: mdm.clone(),
        device_id: device.id.clone(),
        udid: udid.clone(),
        uuid,
        command,
    };
    Ok(match step {
        ClearStep::Remind(uuid) => Ok(pending(uuid, None)),
        ClearStep::Send(uuid) => match unlock_token {
            Some(unlock_token) => Ok(pending(
                uuid,
                Some(MdmCommand::ClearPasscode { unlock_token }),
            )),
            None => Err("no UnlockToken from the MDM yet".into()),
        },
        ClearStep::CannotSend => {
            let why = "no UnlockToken from the MDM yet";
            st.storage.record_mdm_activity(cannot(why), now).await?;
            Err(why.into())
        }
        ClearStep::GaveUp { wake } => {
            if let Some(d) = wake {
                st.wake(&crate::notify::device_topic(&d));
            }
            Err("the outstanding Clear Passcode passed its deadline".into())
        }
    })
}

impl PendingClear {
    /// Enqueues the command or pushes the device (`pushed` or `push_failed`). Returns
    /// why the command is certainly not queued, if it is not.
    async fn run<S: Storage>(&self, st: &AppState<S>) -> Result<Option<String>, AppError> {
        let udid = &self.udid;
        let at = |kind: &str, detail: Option<String>| {
            entry(
                udid,
                Some(self.device_id.clone()),
                Some((&self.uuid, mdm_commands::CLEAR)),
                kind,
                detail,
            )
        };
        let ids = std::slice::from_ref(udid);
        match &self.command {
            Some(cmd) => {
                let answer = self.mdm.enqueue(ids, cmd, &self.uuid, true).await;
                let outcome = EnqueueOutcome::of(&answer, udid);
                hear_enqueue(st, &self.uuid, &outcome, at).await
            }
            None => {
                let failure = push_failure(self.mdm.push(ids).await, udid);
                let (kind, failed_at) = match &failure {
                    Some(_) => ("push_failed", Some(st.now())),
                    None => ("pushed", None),
                };
                let (e, uuid, now) = (at(kind, failure), self.uuid.clone(), st.now());
                st.storage
                    .transact(move |tx| {
                        tx.insert_mdm_activity(&e, now)?;
                        tx.set_mdm_push_failed(std::slice::from_ref(&uuid), failed_at)
                    })
                    .await?;
                Ok(None)
            }
        }
    }
}

/// Expires every MDM command still unanswered past the deadline (a phone that went
/// flat in a drawer never asks again, and on-demand commands have no phone asking at
/// all); a Clear Passcode's phone is told. Returns how many were expired.
pub async fn expire_overdue<S: Storage>(st: &AppState<S>) -> Result<usize, AppError> {
    let deadline_ms = i64::try_from(st.mdm_deadline_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let cutoff = lanyard_protocol::Timestamp(st.now().as_millis().saturating_sub(deadline_ms));
    let overdue = st.storage.overdue_mdm_commands(cutoff, SWEEP_BATCH).await?;
    let mut expired = 0;
    for row in &overdue {
        let mut reason = format!(
            "no result from the phone within {} min (last heard: {})",
            st.mdm_deadline_secs / 60,
            row.state.as_str()
        );
        if row.request_type == mdm_commands::CLEAR {
            reason.push_str("; a new Clear Passcode goes out on the phone's next request");
        }
        let e = entry(
            &row.udid,
            row.device_id.clone(),
            Some((&row.uuid, &row.request_type)),
            "expired",
            Some(reason),
        );
        if let mdm_commands::Heard::Moved { .. } =
            hear(st, &row.uuid, MdmState::Expired, e, false).await?
        {
            expired += 1;
        }
    }
    Ok(expired)
}

/// How long a command may stay unanswered before the device is probed about it.
const PROBE_AFTER_MS: i64 = 10 * 60 * 1000;

/// The periodic MDM sweep (and the first one at start): pushes again the devices whose
/// queued commands' push failed, probes devices about commands left unanswered, then
/// expires what is past the deadline.
pub async fn sweep<S: Storage>(st: &AppState<S>) -> Result<usize, AppError> {
    push_again(st).await?;
    probe_unanswered(st).await?;
    expire_overdue(st).await
}

/// How long after a failed push the device is pushed again.
const PUSH_AGAIN_AFTER_MS: i64 = 2 * 60 * 1000;

/// Why a push to `udid` failed, from NanoMDM's answer, or `None` when it went out.
fn push_failure(
    answer: Result<lanyard_mdm::nanomdm::ApiResult, lanyard_mdm::nanomdm::ConnectorError>,
    udid: &str,
) -> Option<String> {
    match answer {
        Ok(result) => match result.status.get(udid) {
            Some(s) if s.push_error.is_some() => s.push_error.clone(),
            Some(s) if s.push_result.is_some() => None,
            _ => result
                .push_error
                .clone()
                .or_else(|| (result.http_status == 500).then(|| "NanoMDM answered 500".into())),
        },
        Err(e) => Some(e.to_string()),
    }
}

/// Pushes each device whose queued commands' last push failed over 2 minutes ago (a
/// missing or expired push certificate fixed since, APNs back): the command is never
/// queued again, the device is only asked to check in. Returns how many pushes went out.
pub async fn push_again<S: Storage>(st: &AppState<S>) -> Result<usize, AppError> {
    let Some(mdm) = st.mdm.clone() else {
        return Ok(0);
    };
    let before = lanyard_protocol::Timestamp(st.now().as_millis() - PUSH_AGAIN_AFTER_MS);
    let due = st.storage.mdm_push_due(before, SWEEP_BATCH).await?;
    let mut by_udid: std::collections::BTreeMap<String, Vec<(String, Option<String>, String)>> =
        std::collections::BTreeMap::new();
    for row in due {
        by_udid
            .entry(row.udid)
            .or_default()
            .push((row.uuid, row.device_id, row.request_type));
    }
    let mut pushed = 0;
    for (udid, commands) in by_udid {
        let failure = push_failure(mdm.push(std::slice::from_ref(&udid)).await, &udid);
        let now = st.now();
        let failed_at = failure.is_some().then_some(now);
        if failure.is_none() {
            pushed += 1;
        }
        st.storage
            .transact(move |tx| {
                let ids: Vec<String> = commands.iter().map(|(u, _, _)| u.clone()).collect();
                tx.set_mdm_push_failed(&ids, failed_at)?;
                for (uuid, device_id, request_type) in &commands {
                    let (kind, detail) = match &failure {
                        Some(why) => ("push_failed", Some(why.clone())),
                        None => ("pushed", None),
                    };
                    tx.insert_mdm_activity(
                        &entry(
                            &udid,
                            device_id.clone(),
                            Some((uuid, request_type)),
                            kind,
                            detail,
                        ),
                        now,
                    )?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(pushed)
}

/// Sends each device with commands unanswered for [`PROBE_AFTER_MS`] one
/// DeviceInformation (with a push): when the device answers it, what was queued before
/// it is settled ([`mdm_commands::after_probe`]) instead of waiting for a webhook
/// NanoMDM will never resend. Returns how many probes went out.
pub async fn probe_unanswered<S: Storage>(st: &AppState<S>) -> Result<usize, AppError> {
    let Some(mdm) = st.mdm.clone() else {
        return Ok(0);
    };
    let before = lanyard_protocol::Timestamp(st.now().as_millis() - PROBE_AFTER_MS);
    let stale = st
        .storage
        .unprobed_mdm_commands(before, SWEEP_BATCH)
        .await?;
    let mut by_device: std::collections::BTreeMap<(String, String), Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    for row in stale {
        if let Some(d) = row.device_id {
            by_device
                .entry((d, row.udid))
                .or_default()
                .push((row.uuid, row.request_type));
        }
    }
    let mut sent = 0;
    for ((device_id, udid), uuids) in by_device {
        let probe = MdmCommand::DeviceInformation {
            queries: vec!["UDID".into()],
        };
        let out = enqueue_logged(st, &mdm, &udid, &device_id, &probe, None).await?;
        let (now, probe_uuid) = (st.now(), out.uuid.clone());
        st.storage
            .transact(move |tx| {
                let ids: Vec<String> = uuids.iter().map(|(u, _)| u.clone()).collect();
                tx.set_mdm_probe(&ids, &probe_uuid)?;
                for (u, request_type) in &uuids {
                    tx.insert_mdm_activity(
                        &entry(
                            &udid,
                            Some(device_id.clone()),
                            Some((u, request_type)),
                            "probe_sent",
                            Some(format!(
                                "no answer yet: DeviceInformation {probe_uuid} asks the device"
                            )),
                        ),
                        now,
                    )?;
                }
                Ok(())
            })
            .await?;
        sent += 1;
    }
    Ok(sent)
}

/// Most commands one sweep expires (the next sweep takes the rest).
const SWEEP_BATCH: u32 = 500;

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
            let command = match &command_uuid {
                Some(u) => st.storage.mdm_command(u.clone()).await?,
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
            let state = match &status {
                ReportStatus::Acknowledged => Some(MdmState::Acknowledged),
                ReportStatus::Error => Some(MdmState::Error),
                ReportStatus::CommandFormatError => Some(MdmState::FormatError),
                ReportStatus::NotNow => Some(MdmState::NotNow),
                ReportStatus::Idle | ReportStatus::Other(_) => None,
            };
            let detail = (!error_chain.is_empty()).then(|| {
                error_chain
                    .iter()
                    .map(|e| format!("{} {}: {}", e.domain, e.code, e.description))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            // The phone and RequestType are the command's (none for a command Lanyard
            // did not send).
            let mut e = entry(
                &udid,
                command.as_ref().and_then(|c| c.device_id.clone()),
                None,
                &kind,
                detail,
            );
            e.command_uuid = command_uuid.clone();
            e.request_type = command.as_ref().map(|c| c.request_type.clone());
            if let Some(offers) = available_os_updates {
                // What Update iOS chooses from, stored before the acknowledgement that
                // makes a waiting step look for it.
                let mut offered = e.clone();
                offered.kind = OFFERED.into();
                offered.detail = Some(serde_json::to_string(&offers).map_err(anyhow::Error::new)?);
                st.storage.record_mdm_activity(offered, now).await?;
            }
            match (&command_uuid, state) {
                (Some(uuid), Some(state)) => {
                    // A probe the device answered settles, in the same transaction,
                    // what it was sent about.
                    hear(&st, uuid, state, e, false).await?;
                }
                _ => st.storage.record_mdm_activity(e, now).await?,
            }
        }
        WebhookEvent::CheckOut { udid } => {
            let udid = lanyard_mdm::normalize_udid(&udid).unwrap_or(udid);
            checked_out(&st, &udid).await?;
        }
        WebhookEvent::Other { topic } => tracing::debug!(%topic, "MDM webhook event not acted on"),
    }
    // A workflow step may be waiting on what was just recorded.
    crate::workflows::engine::wake(&st);
    Ok(Json(serde_json::json!({"ok": true})))
}

/// The MDM says the phone left it (CheckOut: its management profile was removed). The
/// phone is marked (device list, security events), and what it still waited on is
/// settled now — nothing will reach it — so its passcode loop hears at once.
async fn checked_out<S: Storage>(st: &AppState<S>, udid: &str) -> Result<(), AppError> {
    let now = st.now();
    let (keys, udid) = (st.keys.clone(), udid.to_owned());
    let (device, woken) = st
        .storage
        .transact(move |tx| {
            // The phone the MDM vouched for with this UDID, read where it is marked.
            let mut holder = None;
            for h in tx.udid_holders(&udid)? {
                if let Some(d) = tx.device(&h.device_id)?
                    && d.mdm_udid.as_deref() == Some(udid.as_str())
                {
                    holder = Some(d.id);
                    break;
                }
            }
            let Some(id) = holder else {
                tx.insert_mdm_activity(&entry(&udid, None, None, "checked_out", None), now)?;
                return Ok((None, Vec::new()));
            };
            tx.set_mdm_checked_out(&id, Some(now))?;
            tx.insert_mdm_activity(
                &entry(
                    &udid,
                    Some(id.clone()),
                    None,
                    "checked_out",
                    Some(CHECKED_OUT.into()),
                ),
                now,
            )?;
            tx.record_security_event(
                &NewSecurityEvent {
                    device_id: Some(&id),
                    launchpad_id: None,
                    kind: "mdm_checkout",
                    detail: "the phone left the MDM (its management profile was removed)",
                    seq: None,
                },
                now,
            )?;
            let mut wake = Vec::new();
            for open in tx.open_mdm_commands(&id)? {
                let e = entry(
                    &udid,
                    Some(id.clone()),
                    Some((&open.uuid, &open.request_type)),
                    "expired",
                    Some(CHECKED_OUT.into()),
                );
                if let mdm_commands::Heard::Moved { wake: Some(d), .. } =
                    mdm_commands::hear(tx, &keys, &open.uuid, MdmState::Expired, &e, now)?
                {
                    wake.push(d);
                }
            }
            Ok((Some(id), wake))
        })
        .await?;
    let Some(device) = device else {
        return Ok(());
    };
    tracing::warn!(%device, "the phone left the MDM (CheckOut)");
    for d in woken {
        st.wake(&crate::notify::device_topic(&d));
    }
    Ok(())
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

/// An MDM command and where it stands.
#[derive(utoipa::ToSchema, Debug, serde::Serialize)]
pub struct MdmCommandState {
    /// Its CommandUUID.
    pub command_uuid: String,
    /// Apple's RequestType.
    pub request_type: String,
    /// `requested`, `uncertain`, `queued`, `not_now` (waiting), or settled: `expired`,
    /// `not_queued`, `unknown_enrollment`, `acknowledged`, `error`, `format_error`.
    pub state: &'static str,
    /// Whether nothing more is waited for.
    pub settled: bool,
    /// The latest reason or error heard with a change.
    pub detail: Option<String>,
    /// Requested (ms since epoch).
    pub requested_at: i64,
    /// Last changed (ms since epoch).
    pub updated_at: i64,
}

/// `GET /api/v1/devices/{id}/mdm-commands` query.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CommandsQuery {
    /// At most this many (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/mdm-commands", tag = "admin", description = "A device's MDM commands and where each stands, newest first. Any role.", params(("id" = String, Path), CommandsQuery), responses((status = 200, body = Vec<MdmCommandState>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/devices/{id}/mdm-commands`.
pub async fn commands<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    Path(id): Path<String>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<CommandsQuery>,
) -> Result<Json<Vec<MdmCommandState>>, AppError> {
    let id = crate::validate::lookup_key("device", &id)?;
    let limit = crate::validate::limit(q.limit)?;
    let rows = st.storage.device_mdm_commands(id, limit).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| MdmCommandState {
                command_uuid: r.uuid,
                request_type: r.request_type,
                state: r.state.as_str(),
                settled: r.state.settled(),
                detail: r.detail,
                requested_at: r.requested_at,
                updated_at: r.updated_at,
            })
            .collect(),
    ))
}
