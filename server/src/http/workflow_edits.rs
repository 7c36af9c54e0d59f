//! Changing part of a workflow or rule (`PATCH`), and moving workflows between folders.
//! A patch is merged into the stored definition and then checked and saved exactly as a
//! full replacement is, so a field left out keeps its value — it is never dropped.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::Value;

use super::workflows::{checked, checked_rule, read_only, rule_taken, saved, shown, synced};
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;
use crate::storage::{Storage, StorageError};
use crate::workflows::model::{Action, Condition, Folder, Rule, Trigger, Workflow, WorkflowModel};
use crate::workflows::secrets;

/// `PATCH /api/v1/rules/{id}` body: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    /// Name, unique (case-insensitive); the id stays.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub name: Option<String>,
    /// What it is for.
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    /// When it runs.
    pub trigger: Option<Trigger>,
    /// All must hold for the rule to match (replaces the list; `[]` clears it).
    pub conditions: Option<Vec<Condition>>,
    /// Workflow ids deployed in order (replaces the list).
    #[schema(schema_with = crate::openapi::rule_workflows_patch)]
    pub workflows: Option<Vec<String>>,
    /// Enable Rule.
    pub enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/rules/{id}", tag = "workflows", description = "Changes part of a rule — e.g. `{\"enabled\": true}` — keeping every field not given (conditions are never dropped by leaving them out). Checked like a full rule; merged again if another change landed meanwhile, so neither is lost. Needs the admin role.", params(("id" = String, Path)), request_body = RulePatch, responses((status = 200, body = Rule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_token" = [])))]
/// `PATCH /api/v1/rules/{id}`.
pub async fn patch_rule<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<RulePatch>,
) -> Result<Json<Rule>, AppError> {
    caller.require_admin()?;
    // The patch is merged into the rule as read and saved only if it is still that
    // rule; a concurrent change makes it read and merge again, so neither is lost.
    for _ in 0..MERGE_ATTEMPTS {
        let rules = st.storage.list_rules().await?;
        let current = rules
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| AppError::NotFound(format!("no rule {id:?}")))?;
        let base = current.spec.clone();
        let mut spec = current.spec;
        let p = patch.clone();
        if let Some(v) = p.name {
            spec.name = v;
        }
        if let Some(v) = p.description {
            spec.description = v;
        }
        if let Some(v) = p.trigger {
            spec.trigger = v;
        }
        if let Some(v) = p.conditions {
            spec.conditions = v;
        }
        if let Some(v) = p.workflows {
            spec.workflows = v;
        }
        if let Some(v) = p.enabled {
            spec.enabled = v;
        }
        checked_rule(&st, &mut spec).await?;
        let rule = match st
            .storage
            .replace_rule(id.clone(), spec, Some(base), caller.actor.clone(), st.now())
            .await
        {
            Err(StorageError::Changed(_)) => continue,
            other => other.map_err(rule_taken)?,
        };
        synced(&st, &caller).await?;
        return Ok(Json(rule));
    }
    Err(StorageError::Changed("rule").into())
}

/// How often a patch is merged again when its record changed under it.
const MERGE_ATTEMPTS: usize = 3;

/// `PATCH /api/v1/workflows/{id}` body: only the fields given change.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowPatch {
    /// Name, unique (case-insensitive); the id stays.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub name: Option<String>,
    /// What it is for.
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    /// Workflow model.
    pub model: Option<WorkflowModel>,
    /// The actions, in order (replaces the list).
    pub actions: Option<Vec<Action>>,
}

#[utoipa::path(patch, path = "/api/v1/workflows/{id}", tag = "workflows", description = "Changes part of a Custom Workflows workflow, keeping every field not given (a stored Wi-Fi passphrase stays sealed). Checked like a full workflow; audited; saved only onto the version it was merged into (409 `changed` when another change landed meanwhile: read it again). Folders change with POST /api/v1/workflows/{id}/move. Needs the admin role.", params(("id" = String, Path)), request_body = WorkflowPatch, responses((status = 200, body = Workflow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, description = "the workflow is in a read-only folder", body = ErrorBody)), security(("api_token" = [])))]
/// `PATCH /api/v1/workflows/{id}`.
pub async fn patch_workflow<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<WorkflowPatch>,
) -> Result<Json<Value>, AppError> {
    caller.require_admin()?;
    let current = st.storage.get_workflow(id.clone()).await?;
    read_only(&current)?;
    let mut spec = current.spec.clone();
    // Checked in clear like any workflow, then sealed again.
    secrets::reveal(&st.keys, &mut spec)?;
    if let Some(v) = patch.name {
        spec.name = v;
    }
    if let Some(v) = patch.description {
        spec.description = v;
    }
    if let Some(v) = patch.model {
        spec.model = v;
    }
    if let Some(v) = patch.actions {
        spec.actions = v;
    }
    checked(&st, &mut spec, &id).await?;
    secrets::seal(&st.keys, &mut spec)?;
    saved(&st, &caller, current, spec, true).await
}

/// `POST /api/v1/workflows/{id}/move` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveWorkflow {
    /// `deprecated_workflows` (any workflow no enabled rule deploys), or
    /// `custom_workflows` (from Deprecated Workflows, to use or change it again).
    pub folder: Folder,
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/move", tag = "workflows", description = "Moves a workflow between folders: any workflow into Deprecated Workflows once no enabled rule deploys it and no On Failure runs it (kept for reference, read-only); from Deprecated Workflows into Custom Workflows. The default folders are filled by the standard set only. Audited. Needs the admin role.", params(("id" = String, Path)), request_body = MoveWorkflow, responses((status = 200, body = Workflow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/workflows/{id}/move`.
pub async fn move_workflow<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MoveWorkflow>,
) -> Result<Json<Value>, AppError> {
    caller.require_admin()?;
    let current = st.storage.get_workflow(id.clone()).await?;
    let from = current.spec.folder;
    let to = body.folder;
    if from == to {
        return shown(&st, &caller, &current);
    }
    match (from, to) {
        (_, Folder::DeprecatedWorkflows) => {
            let users = still_used(&st, &id).await?;
            if !users.is_empty() {
                return Err(AppError::Unprocessable(format!(
                    "{:?} is still used by {}: disable or change those first",
                    current.spec.name,
                    users.join(", ")
                )));
            }
        }
        (Folder::DeprecatedWorkflows, Folder::CustomWorkflows) => {}
        _ => {
            return Err(AppError::Unprocessable(format!(
                "a workflow moves into Deprecated Workflows, or from there into Custom Workflows; {} → {} is not a move (clone a workflow to change a copy)",
                from.title(),
                to.title()
            )));
        }
    }
    let mut spec = current.spec.clone();
    spec.folder = to;
    saved(&st, &caller, current, spec, true).await
}

/// What still runs workflow `id`: enabled rules deploying it, and workflows whose On
/// Failure runs it.
async fn still_used<S: Storage>(st: &AppState<S>, id: &str) -> Result<Vec<String>, AppError> {
    let mut users: Vec<String> = st
        .storage
        .list_rules()
        .await?
        .into_iter()
        .filter(|r| r.spec.enabled && r.spec.workflows.iter().any(|w| w == id))
        .map(|r| format!("rule {:?}", r.spec.name))
        .collect();
    for w in st.storage.list_workflows().await? {
        let runs_it = w
            .spec
            .actions
            .iter()
            .any(|a| matches!(a, Action::OnFailure { run_workflow: Some(r), .. } if r == id));
        if runs_it && w.id != id && w.spec.folder != Folder::DeprecatedWorkflows {
            users.push(format!("workflow {:?} (On Failure)", w.spec.name));
        }
    }
    Ok(users)
}
