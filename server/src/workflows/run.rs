//! Workflow runs: one per device per deployment, with each action's status, attempts,
//! timings and errors.

use serde::{Deserialize, Serialize};

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for the device's earlier runs to finish.
    Queued,
    /// Executing its actions.
    Running,
    /// Every action done (or skipped with a reason).
    Succeeded,
    /// An action failed and On Failure (if any) has been applied.
    Failed,
}

impl RunState {
    /// Every state.
    pub const ALL: [RunState; 4] = [
        RunState::Queued,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(RunState::Queued),
            "running" => Some(RunState::Running),
            "succeeded" => Some(RunState::Succeeded),
            "failed" => Some(RunState::Failed),
            _ => None,
        }
    }

    /// Whether the run still has work to do.
    pub fn active(self) -> bool {
        matches!(self, RunState::Queued | RunState::Running)
    }
}

/// Where one action of a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Started; waiting for the phone, the MDM or the outbox.
    Running,
    /// Done.
    Succeeded,
    /// Not applicable to this device or not possible here; `detail` says why.
    Skipped,
    /// Failed; `detail` says why.
    Failed,
}

/// One action of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Step {
    /// The action's type, e.g. `check_in_device`.
    pub action: String,
    /// Where it stands.
    pub status: StepStatus,
    /// Started (ms since epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// Finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// What happened, or why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What the step waits on: a signed command id, an MDM CommandUUID, an email id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

impl Step {
    /// A step not yet started.
    pub fn pending(action: &str) -> Self {
        Step {
            action: action.to_owned(),
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            detail: None,
            handle: None,
        }
    }
}

/// One deployment of a workflow to one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    /// Run id.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The workflow deployed.
    pub workflow_id: String,
    /// Its name when deployed.
    pub workflow_name: String,
    /// The rule that deployed it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// What started it: `checked_in`, `checked_out`, `unlocked_via_password`,
    /// `schedule`, `on_demand` or `on_failure`.
    pub origin: String,
    /// The run whose On Failure started this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run: Option<i64>,
    /// Who deployed it (on demand), or the rule.
    pub actor: String,
    /// Where it stands.
    pub state: RunState,
    /// Current attempt, from 1.
    pub attempt: u32,
    /// The actions of the current attempt.
    pub steps: Vec<Step>,
    /// What went wrong in earlier attempts, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<String>,
    /// Why the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Created (ms since epoch).
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

/// A run to create.
#[derive(Clone, Debug)]
pub struct NewRun {
    /// The device.
    pub device_id: String,
    /// The workflow (its current version is snapshotted into the run).
    pub workflow_id: String,
    /// The rule that deployed it.
    pub rule_id: Option<String>,
    /// What started it.
    pub origin: String,
    /// The run whose On Failure started it.
    pub parent_run: Option<i64>,
    /// Who deployed it.
    pub actor: String,
}

/// Where an email in the outbox stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailState {
    /// Not delivered yet (retried with growing delays).
    Pending,
    /// Accepted by the relay.
    Sent,
    /// Given up.
    Failed,
}

impl EmailState {
    /// Every state.
    pub const ALL: [EmailState; 3] = [EmailState::Pending, EmailState::Sent, EmailState::Failed];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailState::Pending => "pending",
            EmailState::Sent => "sent",
            EmailState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<EmailState> {
        EmailState::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// An email in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Email {
    /// Outbox id.
    pub id: i64,
    /// The run that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body (plain text).
    pub body: String,
    /// Where it stands.
    pub state: EmailState,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (ms since epoch).
    pub next_attempt_at: i64,
    /// The last SMTP error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Queued.
    pub created_at: i64,
    /// Delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
}
