//! Runs workflows: the runs of one deployment go one at a time, in order; each action is
//! started once and then polled until it is done, so a run survives a restart (its
//! progress is stored after every step) and nothing waits in memory.
//!
//! Where each action goes: phone actions (Check In Device) as signed commands to the
//! agent; MDM actions (Clear Passcode, Erase, Set Timezone, Add WiFi, Set Name, Set
//! Wallpaper, Add Dynamic Config Profile, Update iOS, Reboot) through the MDM connector,
//! their results read from the MDM activity log the webhook fills; Send Email into the
//! durable outbox; Set Attribute into the database. Check Out Device watches the checkout
//! it belongs to: done when the phone is unplugged, failed when the grant lapses.

use std::collections::HashSet;

use lanyard_mdm::profile::{
    EapType, EnterpriseWifi, Payload, Profile, WifiEncryption, WifiPayload,
};
use lanyard_mdm::{
    InstallAction, MdmCommand, OsUpdate, ReturnToService, Setting, WallpaperLocation,
};
use lanyard_protocol::{ServerCommand, Timestamp};

use super::model::{Action, UpdateStrategy, WallpaperTarget, WifiSecurity, Workflow};
use super::placeholder::Context;
use super::run::{NewRun, Run, RunState, Step, StepStatus};
use super::triggers::context;
use crate::error::AppError;
use crate::model::{AttributeTarget, AttributeType};
use crate::state::AppState;
use crate::storage::{NewEmail, Storage};

/// How long a phone has to apply a workflow's Check In Device.
const CHECK_IN_SECS: u64 = 10 * 60;
/// How long Check Out Device waits for the unplug before giving up (the agent's own
/// grant window is far shorter; this only bounds a phone that went silent).
const CHECK_OUT_SECS: i64 = 15 * 60;

/// Wakes the engine.
pub fn wake<S: Storage>(st: &AppState<S>) {
    st.wake(crate::notify::ENGINE);
}

/// One pass over the active runs. The runs one deployment created for a device (a
/// rule's "Incorrect Device Home, Check In", "Update iOS, Check In") go one after the
/// other, in the rule's order; separate deployments proceed side by side, so a
/// checkout waiting for its unplug never holds up the password trigger's workflow.
/// Returns how many runs changed.
pub async fn tick<S: Storage>(st: &AppState<S>) -> Result<usize, AppError> {
    let active = st.storage.active_runs().await?;
    let mut seen = HashSet::new();
    let mut changed = 0;
    for (run, workflow) in active {
        let deployment = (
            run.device_id.clone(),
            run.created_at,
            run.origin.clone(),
            run.rule_id.clone(),
        );
        if !seen.insert(deployment) {
            continue;
        }
        let before = run.clone();
        let run = advance(st, run, &workflow).await?;
        if run != before {
            changed += 1;
            let finished = !run.state.active();
            st.storage.save_run(run, st.now()).await?;
            if finished {
                // The device's next run may start at once.
                wake(st);
            }
        }
    }
    Ok(changed)
}

/// What starting or polling an action came to.
enum Outcome {
    /// Waiting on the phone, the MDM or the outbox; `handle` names what.
    Waiting(Option<String>),
    /// As `Waiting`, with a note kept for the step's final detail (parts of the action
    /// that could not apply).
    WaitingNoted(String, String),
    /// Done, with what happened.
    Done(String),
    /// Not applicable or not possible here, with why.
    Skipped(String),
    /// Failed, with why.
    Failed(String),
}

async fn advance<S: Storage>(
    st: &AppState<S>,
    mut run: Run,
    w: &Workflow,
) -> Result<Run, AppError> {
    let now = st.now().as_millis();
    if run.state == RunState::Queued {
        run.state = RunState::Running;
    }
    let list = w.spec.run_order();
    loop {
        let Some(i) = run
            .steps
            .iter()
            .position(|s| matches!(s.status, StepStatus::Pending | StepStatus::Running))
        else {
            run.state = RunState::Succeeded;
            run.finished_at = Some(now);
            return Ok(run);
        };
        let Some(action) = list.get(i) else {
            run.steps[i].status = StepStatus::Failed;
            run.steps[i].detail = Some("the workflow snapshot has no such action".into());
            return on_failure(st, run, w, i).await;
        };
        let cx = match context(st, &run.device_id).await {
            Ok(cx) => cx,
            Err(crate::storage::StorageError::NotFound(_)) => {
                run.steps[i].status = StepStatus::Failed;
                run.steps[i].detail = Some("the device no longer exists".into());
                skip_rest(&mut run, i, now);
                run.state = RunState::Failed;
                run.error = Some("the device no longer exists".into());
                run.finished_at = Some(now);
                return Ok(run);
            }
            Err(e) => return Err(e.into()),
        };
        let step = &mut run.steps[i];
        let outcome = if step.status == StepStatus::Pending {
            step.status = StepStatus::Running;
            step.started_at = Some(now);
            start(st, &cx, action, (run.id, &run.origin, run.created_at), w).await?
        } else {
            poll(st, &cx, action, step).await?
        };
        let step = &mut run.steps[i];
        match outcome {
            Outcome::Waiting(handle) => {
                if handle.is_some() {
                    step.handle = handle;
                }
                return Ok(run);
            }
            Outcome::WaitingNoted(handle, note) => {
                step.handle = Some(handle);
                step.detail = Some(note);
                return Ok(run);
            }
            Outcome::Done(detail) => {
                step.status = StepStatus::Succeeded;
                step.detail = Some(match step.detail.take() {
                    Some(note) => format!("{detail}; {note}"),
                    None => detail,
                });
                step.finished_at = Some(now);
            }
            Outcome::Skipped(why) => {
                step.status = StepStatus::Skipped;
                step.detail = Some(why);
                step.finished_at = Some(now);
            }
            Outcome::Failed(why) => {
                step.status = StepStatus::Failed;
                step.detail = Some(why);
                step.finished_at = Some(now);
                return on_failure(st, run, w, i).await;
            }
        }
    }
}

/// Marks every step after the failed step `i` skipped, saying why: a finished run
/// shows no step still "pending".
fn skip_rest(run: &mut Run, i: usize, now: i64) {
    let failed = run
        .steps
        .get(i)
        .map_or_else(String::new, |s| s.action.clone());
    for step in run.steps.iter_mut().skip(i + 1) {
        if matches!(step.status, StepStatus::Pending | StepStatus::Running) {
            step.status = StepStatus::Skipped;
            step.detail = Some(format!("not run: step {} ({failed}) failed", i + 1));
            step.finished_at = Some(now);
        }
    }
}

/// Applies the workflow's On Failure after step `i` failed: retry the workflow while
/// attempts remain, else fail the run, then run another workflow and/or reboot and
/// check the phone in.
async fn on_failure<S: Storage>(
    st: &AppState<S>,
    mut run: Run,
    w: &Workflow,
    i: usize,
) -> Result<Run, AppError> {
    let now = st.now().as_millis();
    let step = &run.steps[i];
    let line = format!(
        "attempt {}: {} failed: {}",
        run.attempt,
        step.action,
        step.detail.as_deref().unwrap_or("no detail")
    );
    let policy = w.spec.actions.iter().find_map(|a| match a {
        Action::OnFailure {
            retry,
            max_attempts,
            run_workflow,
            reboot_and_check_in,
        } => Some((
            *retry,
            max_attempts.unwrap_or(1),
            run_workflow.clone(),
            *reboot_and_check_in,
        )),
        _ => None,
    });
    let (retry, max, then_run, reboot) = policy.unwrap_or((false, 1, None, false));
    if retry && run.attempt < u32::from(max) {
        run.earlier_attempts.push(line);
        run.attempt += 1;
        run.steps = w
            .spec
            .run_order()
            .iter()
            .map(|a| Step::pending(a.kind()))
            .collect();
        tracing::info!(run = run.id, attempt = run.attempt, "workflow retried");
        return Ok(run);
    }
    run.state = RunState::Failed;
    run.finished_at = Some(now);
    skip_rest(&mut run, i, now);
    let mut error = line;
    if let Some(next) = then_run {
        let new = NewRun {
            device_id: run.device_id.clone(),
            workflow_id: next.clone(),
            rule_id: None,
            origin: "on_failure".into(),
            parent_run: Some(run.id),
            actor: format!("run:{} ({})", run.id, w.spec.name),
        };
        match st.storage.create_runs(vec![new], st.now()).await {
            Ok(ids) => error.push_str(&format!(
                "; ran {next:?} (run {})",
                ids.first().copied().unwrap_or(0)
            )),
            Err(e) => error.push_str(&format!("; could not run {next:?}: {e}")),
        }
    }
    if reboot {
        error.push_str("; ");
        error.push_str(&reboot_and_check_in(st, &run.device_id, &w.spec.name).await?);
    }
    run.error = Some(error);
    Ok(run)
}

async fn reboot_and_check_in<S: Storage>(
    st: &AppState<S>,
    device_id: &str,
    workflow: &str,
) -> Result<String, AppError> {
    let device = st.storage.get_device(device_id.to_owned()).await?;
    let reboot =
        match crate::mdm::send_for_workflow(st, &device, &MdmCommand::RestartDevice).await? {
            Ok(uuid) => format!("reboot sent ({uuid})"),
            Err(why) => format!("reboot not sent ({why})"),
        };
    let reason = format!("{workflow} failed");
    let q = crate::domain::commands::queue_command(
        st,
        None,
        device_id,
        ServerCommand::CheckIn {
            reason,
            as_of: None,
        },
        CHECK_IN_SECS,
    )
    .await?;
    Ok(format!("{reboot}; check-in queued ({})", q.command_id))
}

fn render(cx: &Context, field: &str, text: &str) -> Result<String, String> {
    cx.render(text)
        .map_err(|name| format!("{field}: [{name}] has no value for this device"))
}

/// Sends MDM commands and waits on all of them.
async fn mdm<S: Storage>(
    st: &AppState<S>,
    cx: &Context,
    commands: Vec<MdmCommand>,
) -> Result<Outcome, AppError> {
    let Some(device) = cx.device.as_ref() else {
        return Ok(Outcome::Failed("no device".into()));
    };
    let mut uuids = Vec::new();
    for c in &commands {
        match crate::mdm::send_for_workflow(st, device, c).await? {
            Ok(uuid) => uuids.push(uuid),
            Err(why) => return Ok(Outcome::Failed(format!("{}: {why}", c.request_type()))),
        }
    }
    Ok(Outcome::Waiting(Some(uuids.join(","))))
}

fn profile_uuid() -> Result<String, AppError> {
    Ok(crate::mdm::command_uuid()?)
}

async fn start<S: Storage>(
    st: &AppState<S>,
    cx: &Context,
    action: &Action,
    (run_id, origin, created_at): (i64, &str, i64),
    workflow: &Workflow,
) -> Result<Outcome, AppError> {
    let actions_of = &workflow.spec.actions;
    let workflow = workflow.spec.name.as_str();
    let Some(device) = cx.device.clone() else {
        return Ok(Outcome::Failed("no device".into()));
    };
    let actor = format!("run:{run_id} ({workflow})");
    Ok(match action {
        Action::PerformMdmCommand {
            clear_passcode,
            assign_dep_profile,
            delete_from_mdm,
        } => {
            // NanoMDM's API (the connector's contract) has no DEP or device-removal
            // calls: those parts are reported, not pretended.
            let mut unsupported = Vec::new();
            if let Some(p) = assign_dep_profile {
                unsupported.push(format!(
                    "Assign DEP Profile {p:?} is not possible through the NanoMDM connector (assign it in Apple Business Manager)"
                ));
            }
            if *delete_from_mdm {
                unsupported
                    .push("Delete from MDM is not possible through the NanoMDM connector".into());
            }
            if !*clear_passcode {
                return Ok(Outcome::Skipped(unsupported.join("; ")));
            }
            if device.passcode == Some(crate::model::PasscodeState::Absent) {
                unsupported.insert(0, "no passcode on the phone".into());
                return Ok(Outcome::Done(unsupported.join("; ")));
            }
            match crate::mdm::clear_passcode_now(st, &device).await? {
                Ok(uuid) if unsupported.is_empty() => Outcome::Waiting(Some(uuid)),
                Ok(uuid) => Outcome::WaitingNoted(uuid, unsupported.join("; ")),
                Err(why) => Outcome::Failed(format!("Clear Passcode: {why}")),
            }
        }
        Action::Erase {
            return_to_service, ..
        } => {
            // Return to Service brings the phone back on the workflow's own Add WiFi
            // network (validation makes sure there is one).
            let rts = if *return_to_service {
                let Some(wifi) = actions_of
                    .iter()
                    .find(|a| matches!(a, Action::AddWifi { .. }))
                else {
                    return Ok(Outcome::Failed(
                        "Return to Service needs an Add WiFi action in the workflow".into(),
                    ));
                };
                match wifi_profile(&st.keys, cx, wifi)? {
                    Ok(profile) => Some(ReturnToService {
                        enabled: true,
                        wifi_profile_data: Some(profile),
                        mdm_profile_data: None,
                    }),
                    Err(e) => return Ok(Outcome::Failed(e)),
                }
            } else {
                None
            };
            let erase = MdmCommand::EraseDevice {
                preserve_data_plan: Some(true),
                disallow_proximity_setup: Some(true),
                return_to_service: rts,
            };
            mdm(st, cx, vec![erase]).await?
        }
        Action::SetTimezone { timezone } => {
            let tz = match render(cx, "timezone", timezone) {
                Ok(tz) => tz,
                Err(e) => return Ok(Outcome::Failed(e)),
            };
            if !super::validate::valid_timezone(&tz) {
                return Ok(Outcome::Failed(format!(
                    "{tz:?} is not a time zone in the tz database"
                )));
            }
            mdm(
                st,
                cx,
                vec![MdmCommand::Settings {
                    items: vec![Setting::TimeZone(tz)],
                }],
            )
            .await?
        }
        Action::AddWifi { .. } => match wifi_profile(&st.keys, cx, action)? {
            Ok(payload) => mdm(st, cx, vec![MdmCommand::InstallProfile { payload }]).await?,
            Err(e) => Outcome::Failed(e),
        },
        Action::SetLanguageAndLocale { language, locale } => Outcome::Skipped(format!(
            "Apple's MDM protocol has no command to set an iPhone's language ({language}) and locale ({locale}); \
             they are chosen in Setup Assistant (skip that pane in the DEP profile)"
        )),
        Action::SetName { name } => match render(cx, "name", name) {
            Ok(name) => {
                mdm(
                    st,
                    cx,
                    vec![MdmCommand::Settings {
                        items: vec![Setting::DeviceName(name)],
                    }],
                )
                .await?
            }
            Err(e) => Outcome::Failed(e),
        },
        Action::SetWallpaper {
            image_base64,
            location,
            lock_screen_text,
            ..
        } => {
            use base64::Engine as _;
            let mut commands = Vec::new();
            if let Some(b64) = image_base64 {
                let image = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| anyhow::anyhow!("stored wallpaper is not base64: {e}"))?;
                let location = match location {
                    WallpaperTarget::LockScreen => WallpaperLocation::LockScreen,
                    WallpaperTarget::HomeScreen => WallpaperLocation::HomeScreen,
                    WallpaperTarget::Both => WallpaperLocation::Both,
                };
                commands.push(MdmCommand::Settings {
                    items: vec![Setting::Wallpaper { image, location }],
                });
            }
            if let Some(text) = lock_screen_text {
                let footnote = match render(cx, "lock_screen_text", text) {
                    Ok(t) => t,
                    Err(e) => return Ok(Outcome::Failed(e)),
                };
                let profile = Profile {
                    identifier: "org.lanyard.lockscreen".into(),
                    uuid: profile_uuid()?,
                    display_name: "Lock Screen Message".into(),
                    organization: None,
                    remove_after_secs: None,
                    payloads: vec![Payload::LockScreenMessage {
                        uuid: profile_uuid()?,
                        footnote: Some(footnote),
                        asset_tag: device.serial.clone(),
                    }],
                };
                let payload = profile.to_mobileconfig().map_err(anyhow::Error::new)?;
                commands.push(MdmCommand::InstallProfile { payload });
            }
            mdm(st, cx, commands).await?
        }
        Action::SetAttribute { attribute, value } => {
            let value = match render(cx, "value", value) {
                Ok(v) => v,
                Err(e) => return Ok(Outcome::Failed(e)),
            };
            set_attribute(st, &device.id, attribute, value, actor).await?
        }
        Action::CheckOutDevice { .. } => {
            check_out_progress(device.status.as_str(), device.device_user.as_deref(), 0)
        }
        Action::CheckInDevice { .. }
            if origin != "on_demand"
                && matches!(device.status.as_str(), "checkout_pending" | "checked_out") =>
        {
            // A rule's check-in that waited its turn (an MDM answer, an earlier run)
            // must not take the phone from the clinician who has it now; IT deploying
            // Check In on demand means it.
            Outcome::Skipped(format!(
                "the phone was handed to {} before this step ran; not checking it in",
                device.device_user.as_deref().unwrap_or("a user")
            ))
        }
        Action::CheckInDevice { .. } => {
            let reason = format!("workflow {workflow}");
            // A rule's check-in ends only checkouts granted before its trigger fired;
            // IT deploying it on demand means whoever holds the phone when it arrives.
            let as_of = (origin != "on_demand").then_some(Timestamp(created_at));
            let q = crate::domain::commands::queue_command(
                st,
                Some(actor),
                &device.id,
                ServerCommand::CheckIn { reason, as_of },
                CHECK_IN_SECS,
            )
            .await?;
            Outcome::Waiting(Some(q.command_id))
        }
        Action::AddDynamicConfigProfile { name, profile_xml } => {
            let Some(user) = cx.user.as_ref() else {
                return Ok(Outcome::Failed(
                    "no Device User: the profile's variables need the user it is for".into(),
                ));
            };
            let vars = lanyard_mdm::dynamic::ProfileVariables::for_user(
                &user.username,
                &user.display_name,
                user.email.as_deref(),
            );
            let payload = match lanyard_mdm::dynamic::DynamicProfile::new(profile_xml)
                .and_then(|p| p.render(&vars, &profile_uuid().unwrap_or_default()))
            {
                Ok(p) => p,
                Err(e) => return Ok(Outcome::Failed(format!("profile {name:?}: {e}"))),
            };
            mdm(st, cx, vec![MdmCommand::InstallProfile { payload }]).await?
        }
        Action::UpdateIos {
            use_standard_settings: false,
            ..
        } => {
            // Not the standard settings: the phone installs what its own software-update
            // settings (the MDM's deferrals) choose.
            let update = MdmCommand::ScheduleOSUpdate {
                updates: vec![OsUpdate {
                    product_key: None,
                    product_version: None,
                    install_action: InstallAction::InstallAsap,
                }],
            };
            mdm(st, cx, vec![update]).await?
        }
        Action::UpdateIos { .. } => {
            // The standard settings pick among the updates Apple offers this phone now
            // (only signed versions are offered): first ask, then schedule the choice.
            match mdm(st, cx, vec![MdmCommand::AvailableOsUpdates]).await? {
                Outcome::Waiting(Some(uuid)) => Outcome::Waiting(Some(format!("{OFFERS}{uuid}"))),
                other => other,
            }
        }
        Action::SendEmail { .. } if st.smtp.is_none() => Outcome::Failed(
            "no SMTP relay is configured (--smtp-url), so the email cannot be sent".into(),
        ),
        Action::SendEmail {
            to, subject, body, ..
        } => {
            let mut rcpt = Vec::new();
            for t in to {
                match render(cx, "to", t) {
                    Ok(a) if super::validate::plausible_address(a.trim()) => {
                        rcpt.push(a.trim().to_owned())
                    }
                    Ok(a) => {
                        return Ok(Outcome::Failed(format!(
                            "to: {a:?} is not an email address"
                        )));
                    }
                    Err(e) => return Ok(Outcome::Failed(e)),
                }
            }
            let (subject, body) = match (render(cx, "subject", subject), render(cx, "body", body)) {
                (Ok(s), Ok(b)) => (s, b),
                (Err(e), _) | (_, Err(e)) => return Ok(Outcome::Failed(e)),
            };
            let email = NewEmail {
                run_id: Some(run_id),
                to: rcpt.clone(),
                subject,
                body,
            };
            let id = st.storage.enqueue_email(email, st.now()).await?;
            st.wake(crate::notify::MAILER);
            Outcome::Done(format!("queued as email {id} to {}", rcpt.join(", ")))
        }
        Action::Reboot {} => mdm(st, cx, vec![MdmCommand::RestartDevice]).await?,
        Action::OnFailure { .. } => Outcome::Skipped("On Failure is not a step".into()),
    })
}

/// Marks an Update iOS step that is waiting for the phone's list of offered updates.
const OFFERS: &str = "offers:";

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Schedules the offered OS update the strategy picks: the oldest offered version
/// (seed 000's "Long iOS Update Delay: install the oldest signed version") or the newest.
async fn schedule_update<S: Storage>(
    st: &AppState<S>,
    cx: &Context,
    strategy: UpdateStrategy,
    offers: Vec<lanyard_mdm::nanomdm::OsUpdateOffer>,
) -> Result<Outcome, AppError> {
    let os: Vec<_> = offers.into_iter().filter(|o| !o.not_os).collect();
    let pick = match strategy {
        UpdateStrategy::OldestSigned => os.iter().min_by_key(|o| version_key(&o.version)),
        UpdateStrategy::Latest => os.iter().max_by_key(|o| version_key(&o.version)),
    };
    let Some(pick) = pick else {
        return Ok(Outcome::Done(
            "no OS update offered: the phone is up to date".into(),
        ));
    };
    let offered: Vec<&str> = os.iter().map(|o| o.version.as_str()).collect();
    let note = format!(
        "installing iOS {} (offered: {})",
        pick.version,
        offered.join(", ")
    );
    let update = MdmCommand::ScheduleOSUpdate {
        updates: vec![OsUpdate {
            product_key: Some(pick.product_key.clone()),
            product_version: Some(pick.version.clone()),
            install_action: InstallAction::InstallAsap,
        }],
    };
    Ok(match mdm(st, cx, vec![update]).await? {
        Outcome::Waiting(Some(uuid)) => Outcome::WaitingNoted(uuid, note),
        other => other,
    })
}

/// Where a checkout stands for Check Out Device.
fn check_out_progress(status: &str, user: Option<&str>, waited_ms: i64) -> Outcome {
    match status {
        "checked_out" => Outcome::Done(format!("unplugged by {}", user.unwrap_or("its user"))),
        "checkout_pending" if waited_ms < CHECK_OUT_SECS * 1000 => Outcome::Waiting(None),
        "checkout_pending" => Outcome::Failed("the phone never reported the unplug".into()),
        "checked_in" | "returning" => Outcome::Failed(
            "the phone was not unplugged within the checkout window and checked itself in".into(),
        ),
        other => Outcome::Failed(format!("no checkout to complete (the phone is {other})")),
    }
}

async fn set_attribute<S: Storage>(
    st: &AppState<S>,
    device_id: &str,
    attribute: &str,
    value: String,
    actor: String,
) -> Result<Outcome, AppError> {
    let now = st.now();
    if attribute.eq_ignore_ascii_case("Device Home") {
        st.storage
            .set_device_home(device_id.to_owned(), Some(value.clone()), actor, now)
            .await?;
        return Ok(Outcome::Done(format!("Device Home = {value}")));
    }
    if attribute.eq_ignore_ascii_case("Device User") {
        st.storage
            .set_device_user(device_id.to_owned(), Some(value.clone()), actor, now)
            .await?;
        return Ok(Outcome::Done(format!("Device User = {value}")));
    }
    let defs = st.storage.list_attributes().await?;
    let Some(def) = defs
        .iter()
        .find(|d| d.target == AttributeTarget::Device && d.name.eq_ignore_ascii_case(attribute))
    else {
        return Ok(Outcome::Failed(format!(
            "no device attribute {attribute:?} (was it deleted?)"
        )));
    };
    let typed = match def.value_type {
        AttributeType::String => serde_json::Value::String(value.clone()),
        AttributeType::Int => match value.trim().parse::<i64>() {
            Ok(n) => n.into(),
            Err(_) => {
                return Ok(Outcome::Failed(format!(
                    "{attribute} takes a whole number, not {value:?}"
                )));
            }
        },
        AttributeType::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" => true.into(),
            "false" => false.into(),
            _ => {
                return Ok(Outcome::Failed(format!(
                    "{attribute} takes true or false, not {value:?}"
                )));
            }
        },
    };
    st.storage
        .set_attribute(
            AttributeTarget::Device,
            device_id.to_owned(),
            def.name.clone(),
            Some(typed),
            actor,
            now,
        )
        .await?;
    Ok(Outcome::Done(format!("{} = {value}", def.name)))
}

async fn poll<S: Storage>(
    st: &AppState<S>,
    cx: &Context,
    action: &Action,
    step: &Step,
) -> Result<Outcome, AppError> {
    let Some(device) = cx.device.as_ref() else {
        return Ok(Outcome::Failed("no device".into()));
    };
    let waited = st.now().as_millis() - step.started_at.unwrap_or(0);
    match action {
        Action::CheckOutDevice { .. } => {
            return Ok(check_out_progress(
                device.status.as_str(),
                device.device_user.as_deref(),
                waited,
            ));
        }
        Action::CheckInDevice { .. } => {
            let Some(id) = step.handle.clone() else {
                return Ok(Outcome::Failed("lost track of the check-in command".into()));
            };
            let state = st.storage.command_state(id).await?;
            return Ok(match (state.as_deref(), device.status.as_str()) {
                (Some("acknowledged"), "checked_in") => {
                    Outcome::Done("the phone is checked in".into())
                }
                // The phone refuses a check-in meant for an earlier holder: the one it
                // has now took it after the rule fired (or after IT queued it).
                (Some("superseded"), _) => Outcome::Skipped(format!(
                    "the phone refused the check-in: it was handed to {} after the check-in \
                     was issued, and a later checkout is never ended by it",
                    device.device_user.as_deref().unwrap_or("a clinician")
                )),
                (Some("failed"), _) => {
                    Outcome::Failed("the phone refused the check-in command".into())
                }
                (Some("expired"), _) => {
                    Outcome::Failed("the phone did not take the check-in command in time".into())
                }
                _ if waited > i64::try_from(CHECK_IN_SECS * 1000).unwrap_or(i64::MAX) => {
                    Outcome::Failed(format!(
                        "the phone is still {} after {} min",
                        device.status.as_str(),
                        CHECK_IN_SECS / 60
                    ))
                }
                _ => Outcome::Waiting(None),
            });
        }
        _ => {}
    }
    let Some(handle) = step.handle.as_deref() else {
        return Ok(Outcome::Failed("lost track of the MDM command".into()));
    };
    let log = st.storage.mdm_activity(device.id.clone()).await?;
    if let (Some(uuid), Action::UpdateIos { strategy, .. }) = (handle.strip_prefix(OFFERS), action)
    {
        return match crate::mdm::command_outcome(st, uuid).await? {
            None => Ok(Outcome::Waiting(None)),
            Some(Err(why)) => Ok(Outcome::Failed(format!("AvailableOSUpdates: {why}"))),
            Some(Ok(())) => {
                let offers = crate::mdm::offered_updates(&log, uuid).unwrap_or_default();
                schedule_update(st, cx, *strategy, offers).await
            }
        };
    }
    let mut done = 0;
    let uuids: Vec<&str> = handle.split(',').filter(|u| !u.is_empty()).collect();
    for uuid in &uuids {
        match crate::mdm::command_outcome(st, uuid).await? {
            Some(Ok(())) => done += 1,
            Some(Err(why)) => return Ok(Outcome::Failed(why)),
            None => {}
        }
    }
    Ok(if done == uuids.len() {
        Outcome::Done(format!("acknowledged by the phone ({handle})"))
    } else {
        Outcome::Waiting(None)
    })
}

/// The `.mobileconfig` of an Add WiFi action, filled for this device, or why not.
fn wifi_profile(
    keys: &crate::keys::ServerKeys,
    cx: &Context,
    action: &Action,
) -> Result<Result<Vec<u8>, String>, AppError> {
    let Action::AddWifi {
        ssid,
        security,
        password,
        username,
        disable_mac_randomization,
        forget_after_minutes,
    } = action
    else {
        return Ok(Err("not an Add WiFi action".into()));
    };
    let ssid = match render(cx, "ssid", ssid) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let username = match username
        .as_deref()
        .map(|u| render(cx, "username", u))
        .transpose()
    {
        Ok(u) => u,
        Err(e) => return Ok(Err(e)),
    };
    // Stored sealed: opened only here, into the profile that goes to the MDM.
    let password = password
        .as_deref()
        .map(|p| super::secrets::open(keys, p))
        .transpose()?;
    let (encryption, enterprise, psk) = match security {
        WifiSecurity::None => (WifiEncryption::None, None, None),
        WifiSecurity::WpaPersonal => (WifiEncryption::Any, None, password.clone()),
        WifiSecurity::WpaEnterprise => (
            WifiEncryption::Any,
            Some(EnterpriseWifi {
                eap_types: vec![EapType::Peap],
                username,
                password: password.clone(),
                ..EnterpriseWifi::default()
            }),
            None,
        ),
    };
    let profile = Profile {
        identifier: format!("org.lanyard.wifi.{}", crate::workflows::slug(&ssid)),
        uuid: profile_uuid()?,
        display_name: format!("Wi-Fi {ssid}"),
        organization: None,
        remove_after_secs: forget_after_minutes.map(|m| u64::from(m) * 60),
        payloads: vec![Payload::Wifi(WifiPayload {
            uuid: profile_uuid()?,
            ssid,
            encryption,
            password: psk,
            enterprise,
            auto_join: true,
            hidden: false,
            disable_mac_randomization: *disable_mac_randomization,
        })],
    };
    Ok(Ok(profile.to_mobileconfig().map_err(anyhow::Error::new)?))
}
