//! The workflow and automation API: workflows in folders, rules in order, the standard
//! set, deployments on demand, runs and the email outbox.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::model::Page;
use crate::state::AppState;
use crate::storage::{DeviceFilter, Storage, StorageError};
use crate::validate;
use crate::workflows::model::{Folder, Rule, RuleSpec, Workflow, WorkflowSpec};
use crate::workflows::run::{Email, NewRun, Run};
use crate::workflows::secrets;
use crate::workflows::standard::{self, SiteSettings};
use crate::workflows::validate as check;

use crate::workflows::slug;

fn free_id(base: String, taken: impl Fn(&str) -> bool) -> String {
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken(id))
        .unwrap_or(base)
}

/// After a change to workflows or rules: the phones' policy follows the check-in
/// rules' Logout Actions.
pub(super) async fn synced<S: Storage>(st: &AppState<S>, caller: &Caller) -> Result<(), AppError> {
    crate::workflows::policy::sync_check_in_policy(st, &caller.actor).await
}

pub(super) fn read_only(w: &Workflow) -> Result<(), AppError> {
    if w.spec.folder.read_only() {
        Err(AppError::Unprocessable(format!(
            "{:?} is in the read-only folder {}; clone it into Custom Workflows to change it",
            w.spec.name,
            w.spec.folder.title()
        )))
    } else {
        Ok(())
    }
}

fn custom_only(spec: &WorkflowSpec) -> Result<(), AppError> {
    if spec.folder.read_only() {
        return Err(AppError::invalid(
            "folder",
            format!(
                "{} is read-only; new and cloned workflows go in custom_workflows",
                spec.folder.title()
            ),
        ));
    }
    Ok(())
}

/// A workflow or run as the caller may see it: secrets in clear for admins only.
pub(super) fn shown<S: Storage, T: Serialize>(
    st: &AppState<S>,
    caller: &Caller,
    value: &T,
) -> Result<Json<Value>, AppError> {
    Ok(Json(secrets::shown(&st.keys, caller.role, value)?))
}

pub(super) fn name_taken(e: StorageError) -> AppError {
    match e {
        StorageError::Conflict(_) => {
            AppError::Conflict("a workflow with that name already exists".into())
        }
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", description = "Every workflow, by name, with its folder.", responses((status = 200, body = [Workflow]), (status = 401, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/workflows`.
pub async fn list<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
) -> Result<Json<Value>, AppError> {
    shown(&st, &caller, &st.storage.list_workflows().await?)
}

/// A folder and what it holds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FolderView {
    /// Its id.
    pub id: Folder,
    /// Its title.
    pub title: &'static str,
    /// Default folders are read-only.
    pub read_only: bool,
    /// Workflow ids in it, by name.
    pub workflows: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/workflow-folders", tag = "workflows", description = "The five folders of seed 000's Organizing Workflows and their workflows.", responses((status = 200, body = [FolderView]), (status = 401, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/workflow-folders`.
pub async fn folders<S: Storage>(
    State(st): State<AppState<S>>,
    _: Caller,
) -> Result<Json<Vec<FolderView>>, AppError> {
    let all = st.storage.list_workflows().await?;
    Ok(Json(
        Folder::ALL
            .iter()
            .map(|f| FolderView {
                id: *f,
                title: f.title(),
                read_only: f.read_only(),
                workflows: all
                    .iter()
                    .filter(|w| w.spec.folder == *f)
                    .map(|w| w.id.clone())
                    .collect(),
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path)), responses((status = 200, body = Workflow), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/workflows/{id}`.
pub async fn get<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    shown(&st, &caller, &st.storage.get_workflow(id).await?)
}

pub(super) async fn checked<S: Storage>(
    st: &AppState<S>,
    spec: &mut WorkflowSpec,
    id: &str,
) -> Result<(), AppError> {
    let all = st.storage.list_workflows().await?;
    let attrs = st.storage.list_attributes().await?;
    check::workflow(spec, id, &all, &attrs)
}

/// Validates and stores a new workflow (created or cloned) under an id made from its
/// name, then lets the phones' policy follow.
async fn create_custom<S: Storage>(
    st: &AppState<S>,
    caller: &Caller,
    mut spec: WorkflowSpec,
) -> Result<Workflow, AppError> {
    let all = st.storage.list_workflows().await?;
    let id = free_id(slug(&spec.name), |id| all.iter().any(|w| w.id == id));
    let attrs = st.storage.list_attributes().await?;
    check::workflow(&mut spec, &id, &all, &attrs)?;
    secrets::seal(&st.keys, &mut spec)?;
    let now = st.now().as_millis();
    let w = Workflow {
        id,
        spec,
        created_at: now,
        updated_at: now,
    };
    let w = st
        .storage
        .create_workflow(w, caller.actor.clone(), st.now())
        .await
        .map_err(name_taken)?;
    synced(st, caller).await?;
    Ok(w)
}

#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", description = "Creates a workflow in Custom Workflows (audited). Unknown placeholders, bad time zones, a missing or cyclic On Failure workflow are refused naming the field. Needs the admin role.", request_body = WorkflowSpec, responses((status = 201, body = Workflow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/workflows`.
pub async fn create<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ApiJson(spec): ApiJson<WorkflowSpec>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    caller.require_admin()?;
    custom_only(&spec)?;
    let w = create_custom(&st, &caller, spec).await?;
    Ok((StatusCode::CREATED, shown(&st, &caller, &w)?))
}

#[utoipa::path(put, path = "/api/v1/workflows/{id}", tag = "workflows", description = "Replaces a Custom Workflows workflow (audited with before and after). Needs the admin role.", params(("id" = String, Path)), request_body = WorkflowSpec, responses((status = 200, body = Workflow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, description = "the workflow is in a read-only folder", body = ErrorBody)), security(("api_token" = [])))]
/// `PUT /api/v1/workflows/{id}`.
pub async fn replace<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(mut spec): ApiJson<WorkflowSpec>,
) -> Result<Json<Value>, AppError> {
    caller.require_admin()?;
    let current = st.storage.get_workflow(id.clone()).await?;
    read_only(&current)?;
    custom_only(&spec)?;
    checked(&st, &mut spec, &id).await?;
    secrets::seal(&st.keys, &mut spec)?;
    saved(&st, &caller, current, spec, false).await
}

/// Stores `spec` (checked, secrets sealed) as the new version of `current` — with
/// `if_unchanged`, only while the stored one is still `current` — then brings the
/// policy in line with the check-in workflows; shown as `caller` may see it.
pub(super) async fn saved<S: Storage>(
    st: &AppState<S>,
    caller: &Caller,
    current: Workflow,
    spec: WorkflowSpec,
    if_unchanged: bool,
) -> Result<Json<Value>, AppError> {
    let base = if_unchanged.then(|| current.spec.clone());
    let w = Workflow {
        id: current.id,
        spec,
        created_at: current.created_at,
        updated_at: st.now().as_millis(),
    };
    let w = st
        .storage
        .replace_workflow(w, base, caller.actor.clone(), st.now())
        .await
        .map_err(name_taken)?;
    synced(st, caller).await?;
    shown(st, caller, &w)
}

#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows", description = "Deletes a Custom Workflows workflow that no rule and no On Failure refers to. Needs the admin role.", params(("id" = String, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_token" = [])))]
/// `DELETE /api/v1/workflows/{id}`.
pub async fn delete<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    read_only(&st.storage.get_workflow(id.clone()).await?)?;
    st.storage
        .delete_workflow(id, caller.actor.clone(), st.now())
        .await?;
    synced(&st, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/workflows/{id}/clone` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneWorkflow {
    /// The clone's name.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub name: String,
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/clone", tag = "workflows", description = "Copies a workflow into Custom Workflows under a new name. Needs the admin role.", params(("id" = String, Path)), request_body = CloneWorkflow, responses((status = 201, body = Workflow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/workflows/{id}/clone`.
pub async fn clone<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CloneWorkflow>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    caller.require_admin()?;
    let source = st.storage.get_workflow(id).await?;
    let mut spec = source.spec;
    // Validated in clear like any new workflow, then sealed again.
    secrets::reveal(&st.keys, &mut spec)?;
    spec.name = body.name;
    spec.folder = Folder::CustomWorkflows;
    let w = create_custom(&st, &caller, spec).await?;
    Ok((StatusCode::CREATED, shown(&st, &caller, &w)?))
}

/// What the standard set installed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Installed {
    /// Workflow ids.
    pub workflows: Vec<String>,
    /// Rule ids, in order within each trigger.
    pub rules: Vec<String>,
    /// The workflows that work only through an MDM (their MDM steps fail without one).
    pub needs_mdm: Vec<String>,
    /// The workflows that send email (through the SMTP relay).
    pub needs_email: Vec<String>,
    /// What will fail on this server as it is configured, and why.
    pub warnings: Vec<String>,
}

/// What will fail with the set `installed` on a server with (or without) an MDM and an
/// SMTP relay: the workflows that need each, and what the policy does meanwhile.
fn set_warnings(
    installed: &[Workflow],
    mdm: bool,
    smtp: bool,
    policy: &lanyard_protocol::Policy,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let names = |f: &dyn Fn(&crate::workflows::model::Action) -> bool| -> Vec<String> {
        installed
            .iter()
            .filter(|w| w.spec.actions.iter().any(f))
            .map(|w| w.spec.name.clone())
            .collect()
    };
    let needs_mdm = names(&|a| a.needs_mdm());
    let needs_email = names(&|a| matches!(a, crate::workflows::model::Action::SendEmail { .. }));
    let mut warnings = Vec::new();
    if !mdm && !needs_mdm.is_empty() {
        let grace = policy.compliance.iter().find_map(|r| match r.condition {
            lanyard_protocol::policy::Condition::PasscodePresentWhileCheckedIn { grace_secs } => {
                Some(grace_secs)
            }
            _ => None,
        });
        let mut w = format!(
            "no MDM is configured (serve --nanomdm-url): {} will fail at their MDM steps",
            needs_mdm.join(", ")
        );
        if let Some(grace) = grace {
            w.push_str(&format!(
                "; Check In cannot clear passcodes, so the policy's rule \"passcode present while checked in\" blocks checkout of a docked phone {} min after check-in while its passcode is set",
                grace.div_ceil(60)
            ));
        }
        warnings.push(w);
    }
    if !smtp && !needs_email.is_empty() {
        warnings.push(format!(
            "no SMTP relay is configured (serve --smtp-url): {} will fail at their Send Email steps",
            needs_email.join(", ")
        ));
    }
    (needs_mdm, needs_email, warnings)
}

/// Validates and installs seed 000's standard set in one transaction.
pub async fn install_standard_set<S: Storage>(
    st: &AppState<S>,
    site: &SiteSettings,
    actor: String,
) -> Result<Installed, AppError> {
    let attrs = st.storage.list_attributes().await?;
    let now = st.now().as_millis();
    let mut installed: Vec<Workflow> = Vec::new();
    let set = standard::workflows(site);
    // Validate against the whole set, so On Failure links inside it resolve.
    let draft: Vec<Workflow> = set
        .iter()
        .map(|s| Workflow {
            id: s.id.into(),
            spec: s.spec.clone(),
            created_at: now,
            updated_at: now,
        })
        .collect();
    for s in set {
        let mut spec = s.spec;
        check::workflow(&mut spec, s.id, &draft, &attrs).map_err(|e| match e {
            AppError::BadRequest { code, message } => AppError::BadRequest {
                code,
                message: format!("{}: {message}", s.id),
            },
            other => other,
        })?;
        secrets::seal(&st.keys, &mut spec)?;
        installed.push(Workflow {
            id: s.id.into(),
            spec,
            created_at: now,
            updated_at: now,
        });
    }
    let mut rules = Vec::new();
    for (id, mut spec) in standard::rules() {
        check::rule(&mut spec, &installed, &attrs)?;
        rules.push((id.to_owned(), spec));
    }
    let policy = st.policy().await?;
    let (needs_mdm, needs_email, warnings) = set_warnings(
        &installed,
        st.mdm.is_some(),
        st.smtp.is_some(),
        &policy.policy,
    );
    for w in &warnings {
        tracing::warn!("standard set: {w}");
    }
    let out = Installed {
        workflows: installed.iter().map(|w| w.id.clone()).collect(),
        rules: rules.iter().map(|(id, _)| id.clone()).collect(),
        needs_mdm,
        needs_email,
        warnings,
    };
    st.storage
        .install_set(installed, rules, actor, st.now())
        .await?;
    Ok(out)
}

#[utoipa::path(post, path = "/api/v1/workflows/install-standard", tag = "workflows", description = "Installs seed 000's standard workflows and automation rules into a server that has none of them (one transaction, audited). The body gives what the guide leaves to each site. The answer lists the workflows that need an MDM or an SMTP relay, and warns of what will fail on this server without them. Needs the admin role.", request_body = SiteSettings, responses((status = 201, body = Installed), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, description = "some of the set already exists", body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/workflows/install-standard`.
pub async fn install_standard<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ApiJson(site): ApiJson<SiteSettings>,
) -> Result<(StatusCode, Json<Installed>), AppError> {
    caller.require_admin()?;
    let installed = install_standard_set(&st, &site, caller.actor.clone()).await?;
    synced(&st, &caller).await?;
    Ok((StatusCode::CREATED, Json(installed)))
}

/// Which devices an on-demand deployment targets (exactly one way).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployTarget {
    /// These devices.
    #[serde(default)]
    pub devices: Option<Vec<String>>,
    /// Every device last docked in this cart.
    #[serde(default)]
    pub launchpad: Option<String>,
    /// Every device whose custom attribute `name` equals `value`.
    #[serde(default)]
    pub attribute: Option<AttributeMatch>,
}

/// A custom attribute value to match.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeMatch {
    /// The attribute.
    pub name: String,
    /// The value.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

/// The runs a deployment created.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deployed {
    /// One run per device.
    pub runs: Vec<i64>,
    /// The devices targeted.
    pub devices: Vec<String>,
}

/// Most devices one deployment may target.
const MAX_DEPLOY: usize = 5000;

/// Whether `action` destroys what is on a phone or its management (admins only).
fn destructive(action: &crate::workflows::model::Action) -> bool {
    use crate::workflows::model::Action;
    matches!(
        action,
        Action::Erase { .. }
            | Action::PerformMdmCommand {
                delete_from_mdm: true,
                ..
            }
    )
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/deploy", tag = "workflows", description = "Runs a workflow now against devices chosen by id, by cart, or by a custom attribute (how IT stages a cart with iOS Provisioning). One run per device; progress under /api/v1/runs. Needs the admin or helpdesk role; a workflow that erases phones or deletes them from the MDM needs admin.", params(("id" = String, Path)), request_body = DeployTarget, responses((status = 202, body = Deployed), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/workflows/{id}/deploy`.
pub async fn deploy<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(target): ApiJson<DeployTarget>,
) -> Result<(StatusCode, Json<Deployed>), AppError> {
    // Helpdesk runs workflows on phones as it takes device actions; a workflow that
    // erases phones or removes them from the MDM stays an admin's decision.
    caller.require_device_actions()?;
    let workflow = st.storage.get_workflow(id).await?;
    if workflow.spec.actions.iter().any(destructive) {
        caller.require_admin().map_err(|_| {
            AppError::Forbidden(format!(
                "{:?} erases phones or removes them from the MDM: only an admin deploys it",
                workflow.spec.name
            ))
        })?;
    }
    let ways = [
        target.devices.is_some(),
        target.launchpad.is_some(),
        target.attribute.is_some(),
    ];
    if ways.iter().filter(|w| **w).count() != 1 {
        return Err(AppError::invalid(
            "devices",
            "give exactly one of devices, launchpad, attribute",
        ));
    }
    let devices = if let Some(ids) = target.devices {
        if ids.is_empty() || ids.len() > MAX_DEPLOY {
            return Err(AppError::invalid(
                "devices",
                format!("give 1 to {MAX_DEPLOY} device ids"),
            ));
        }
        for (i, d) in ids.iter().enumerate() {
            if let Err(StorageError::NotFound(_)) = st.storage.get_device(d.clone()).await {
                return Err(AppError::invalid(
                    &format!("devices[{i}]"),
                    format!("no device {d:?}"),
                ));
            }
        }
        ids
    } else if let Some(cart) = target.launchpad {
        st.storage.get_launchpad(cart.clone()).await?;
        let filter = DeviceFilter {
            launchpad: Some(cart),
            ..DeviceFilter::default()
        };
        let mut ids = Vec::new();
        let mut cursor = None;
        loop {
            let page = st
                .storage
                .list_devices(filter.clone(), cursor, validate::MAX_LIMIT)
                .await?;
            ids.extend(page.items.into_iter().map(|d| d.id));
            match page.next_cursor {
                Some(c) if ids.len() < MAX_DEPLOY => cursor = Some(c),
                _ => break,
            }
        }
        ids
    } else if let Some(m) = target.attribute {
        let attrs = st.storage.list_attributes().await?;
        if !attrs
            .iter()
            .any(|a| a.target == crate::model::AttributeTarget::Device && a.name == m.name)
        {
            return Err(AppError::invalid(
                "attribute.name",
                format!("no device attribute {:?}", m.name),
            ));
        }
        st.storage.devices_with_attribute(m.name, m.value).await?
    } else {
        Vec::new()
    };
    let runs = devices
        .iter()
        .map(|d| NewRun {
            device_id: d.clone(),
            workflow_id: workflow.id.clone(),
            rule_id: None,
            origin: "on_demand".into(),
            parent_run: None,
            actor: caller.actor.clone(),
        })
        .collect();
    let runs = st.storage.create_runs(runs, st.now()).await?;
    crate::workflows::engine::wake(&st);
    Ok((StatusCode::ACCEPTED, Json(Deployed { runs, devices })))
}

#[utoipa::path(get, path = "/api/v1/rules", tag = "workflows", description = "Every automation rule, by trigger and position (evaluation order: top-down, the first matching enabled rule wins).", responses((status = 200, body = [Rule]), (status = 401, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/rules`.
pub async fn list_rules<S: Storage>(
    State(st): State<AppState<S>>,
    _: Caller,
) -> Result<Json<Vec<Rule>>, AppError> {
    Ok(Json(st.storage.list_rules().await?))
}

pub(super) async fn checked_rule<S: Storage>(
    st: &AppState<S>,
    spec: &mut RuleSpec,
) -> Result<(), AppError> {
    let workflows = st.storage.list_workflows().await?;
    let attrs = st.storage.list_attributes().await?;
    check::rule(spec, &workflows, &attrs)
}

pub(super) fn rule_taken(e: StorageError) -> AppError {
    match e {
        StorageError::Conflict(_) => {
            AppError::Conflict("a rule with that name already exists".into())
        }
        other => other.into(),
    }
}

#[utoipa::path(post, path = "/api/v1/rules", tag = "workflows", description = "Creates a rule, last within its trigger. Needs the admin role.", request_body = RuleSpec, responses((status = 201, body = Rule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/rules`.
pub async fn create_rule<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ApiJson(mut spec): ApiJson<RuleSpec>,
) -> Result<(StatusCode, Json<Rule>), AppError> {
    caller.require_admin()?;
    checked_rule(&st, &mut spec).await?;
    let rules = st.storage.list_rules().await?;
    let id = free_id(slug(&spec.name), |id| rules.iter().any(|r| r.id == id));
    let rule = st
        .storage
        .create_rule(id, spec, caller.actor.clone(), st.now())
        .await
        .map_err(rule_taken)?;
    synced(&st, &caller).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

#[utoipa::path(put, path = "/api/v1/rules/{id}", tag = "workflows", description = "Replaces a rule (e.g. to enable it). Needs the admin role.", params(("id" = String, Path)), request_body = RuleSpec, responses((status = 200, body = Rule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_token" = [])))]
/// `PUT /api/v1/rules/{id}`.
pub async fn replace_rule<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(mut spec): ApiJson<RuleSpec>,
) -> Result<Json<Rule>, AppError> {
    caller.require_admin()?;
    checked_rule(&st, &mut spec).await?;
    let rule = st
        .storage
        .replace_rule(id, spec, None, caller.actor.clone(), st.now())
        .await
        .map_err(rule_taken)?;
    synced(&st, &caller).await?;
    Ok(Json(rule))
}

#[utoipa::path(delete, path = "/api/v1/rules/{id}", tag = "workflows", description = "Deletes a rule. Needs the admin role.", params(("id" = String, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `DELETE /api/v1/rules/{id}`.
pub async fn delete_rule<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    st.storage
        .delete_rule(id, caller.actor.clone(), st.now())
        .await?;
    synced(&st, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/rules/{id}/move` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRule {
    /// The new place within its trigger, from 1 (1 = evaluated first; a place past the
    /// last moves it to the end).
    #[schema(minimum = 1, maximum = 10000)]
    pub position: u32,
}

#[utoipa::path(post, path = "/api/v1/rules/{id}/move", tag = "workflows", description = "Reorders a rule within its trigger (the guide's drag handle). Needs the admin role.", params(("id" = String, Path)), request_body = MoveRule, responses((status = 200, body = [Rule]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/rules/{id}/move`.
pub async fn move_rule<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MoveRule>,
) -> Result<Json<Vec<Rule>>, AppError> {
    caller.require_admin()?;
    if !(1..=10_000).contains(&body.position) {
        return Err(AppError::invalid("position", "must be 1 to 10,000"));
    }
    let rules = st
        .storage
        .move_rule(id, body.position, caller.actor.clone(), st.now())
        .await?;
    synced(&st, &caller).await?;
    Ok(Json(rules))
}

/// A run id from the path, parsed here rather than by the extractor, whose refusal is
/// not JSON.
fn run_id(id: &str) -> Result<i64, AppError> {
    id.parse()
        .map_err(|_| AppError::invalid("id", "a run id is a number"))
}

/// Paging query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Only this device's runs.
    pub device: Option<String>,
    /// From `next_cursor`.
    pub cursor: Option<i64>,
    /// Page size (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "workflows", description = "Workflow runs, newest first, with each action's status, timings and errors.", params(RunQuery), responses((status = 200, body = Page<Run>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/runs`.
pub async fn runs<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<RunQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = validate::limit(q.limit)?;
    shown(
        &st,
        &caller,
        &st.storage.list_runs(q.device, q.cursor, limit).await?,
    )
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "workflows", params(("id" = i64, Path)), responses((status = 200, body = Run), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/runs/{id}`.
pub async fn run<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    shown(&st, &caller, &st.storage.get_run(run_id(&id)?).await?)
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "workflows", description = "Stops an active run (e.g. a Clear Passcode waiting on a phone left in a drawer): it ends failed with who cancelled it, audited. Its On Failure does not run. Needs the admin or helpdesk role.", params(("id" = i64, Path)), responses((status = 200, body = Run), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, description = "the run already ended", body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/runs/{id}/cancel`.
pub async fn cancel_run<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    caller.require_device_actions()?;
    let id = run_id(&id)?;
    let run = st
        .storage
        .cancel_run(id, caller.actor.clone(), st.now())
        .await?;
    // The device's next queued run may start.
    crate::workflows::engine::wake(&st);
    shown(&st, &caller, &run)
}

/// Paging query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EmailQuery {
    /// From `next_cursor`.
    pub cursor: Option<i64>,
    /// Page size (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/emails", tag = "workflows", description = "The email outbox, newest first: pending, sent or failed, with attempts and the last SMTP error.", params(EmailQuery), responses((status = 200, body = Page<Email>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/emails`.
pub async fn emails<S: Storage>(
    State(st): State<AppState<S>>,
    _: Caller,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<EmailQuery>,
) -> Result<Json<Page<Email>>, AppError> {
    let limit = validate::limit(q.limit)?;
    Ok(Json(st.storage.list_emails(q.cursor, limit).await?))
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/runs", tag = "workflows", description = "A device's workflow runs, newest first.", params(("id" = String, Path), EmailQuery), responses((status = 200, body = Page<Run>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/devices/{id}/runs`.
pub async fn device_runs<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<EmailQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = validate::limit(q.limit)?;
    st.storage.get_device(id.clone()).await?;
    shown(
        &st,
        &caller,
        &st.storage.list_runs(Some(id), q.cursor, limit).await?,
    )
}

/// One line of a device's journey.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JourneyEntry {
    /// When (ms since epoch).
    pub at: i64,
    /// `device` (the phone's own record), `workflow` (a run), `mdm` (the MDM log) or
    /// `security` (something the phone sent that the server refused).
    pub source: &'static str,
    /// What happened, in a sentence.
    pub summary: String,
    /// The record's reference: event sequence, run id, or MDM CommandUUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// `GET /api/v1/devices/{id}/journey` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JourneyQuery {
    /// Most recent entries to return (default 200, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/journey", tag = "workflows", description = "The device's complete journey, oldest first: its own status changes, the workflow runs deployed to it with their outcome, and its MDM activity, interleaved by time.", params(("id" = String, Path), JourneyQuery), responses((status = 200, body = [JourneyEntry]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/devices/{id}/journey`.
pub async fn journey<S: Storage>(
    State(st): State<AppState<S>>,
    _: Caller,
    Path(id): Path<String>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<JourneyQuery>,
) -> Result<Json<Vec<JourneyEntry>>, AppError> {
    let limit = validate::limit(Some(q.limit.unwrap_or(200)))?;
    let device = st.storage.get_device(id.clone()).await?;
    let name = |v: serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    let mut out = Vec::new();
    let from = device.last_seq.saturating_sub(u64::from(limit));
    let events = st
        .storage
        .device_activity(id.clone(), (None, None), Some(from), limit)
        .await?;
    for r in events.items {
        let Some(t) = r.transition else { continue };
        let cause = serde_json::to_value(&t.cause)
            .map(|c| c["type"].as_str().unwrap_or_default().replace('_', " "))
            .unwrap_or_default();
        let user = r
            .user
            .as_ref()
            .map(|u| format!(" ({})", u.username))
            .unwrap_or_default();
        out.push(JourneyEntry {
            at: r.at.as_millis(),
            source: "device",
            summary: format!(
                "{} → {}{user}: {cause}",
                name(serde_json::to_value(t.from).unwrap_or_default()),
                name(serde_json::to_value(t.to).unwrap_or_default()),
            ),
            reference: Some(format!("seq {}", r.seq)),
        });
    }
    let runs = st.storage.list_runs(Some(id.clone()), None, limit).await?;
    for r in runs.items {
        let by = match &r.rule_id {
            Some(rule) => format!("rule {rule}"),
            None => r.actor.clone(),
        };
        let outcome = match (&r.state, &r.error) {
            (_, Some(e)) => format!("{}: {e}", r.state.as_str()),
            (s, None) => s.as_str().to_owned(),
        };
        out.push(JourneyEntry {
            at: r.created_at,
            source: "workflow",
            summary: format!(
                "{} ({}, {by}) {outcome}",
                r.workflow_name,
                r.origin.replace('_', " ")
            ),
            reference: Some(format!("run {}", r.id)),
        });
    }
    let security = st
        .storage
        .list_security_events(
            crate::storage::security::SecurityFilter {
                device_id: Some(id.clone()),
                ..Default::default()
            },
            None,
            limit,
        )
        .await?;
    for e in security.items {
        out.push(JourneyEntry {
            at: e.at,
            source: "security",
            summary: format!("refused ({}): {}", e.kind.replace('_', " "), e.detail),
            reference: e.seq.map(|s| format!("seq {s}")),
        });
    }
    for e in st.storage.mdm_activity(id).await? {
        out.push(JourneyEntry {
            at: e.at,
            source: "mdm",
            summary: format!(
                "{} {}{}",
                e.request_type.as_deref().unwrap_or("MDM"),
                e.kind.replace('_', " "),
                e.detail.map(|d| format!(": {d}")).unwrap_or_default()
            ),
            reference: e.command_uuid,
        });
    }
    out.sort_by_key(|e| e.at);
    let skip = out.len().saturating_sub(limit as usize);
    Ok(Json(out.split_off(skip)))
}
