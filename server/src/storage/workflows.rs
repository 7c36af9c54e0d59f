//! The storage of workflows, automation rules, their runs and the email outbox.

use std::future::Future;

use lanyard_protocol::Timestamp;

use super::StorageError;
use crate::model::{Launchpad, Page};
use crate::workflows::model::{Rule, RuleSpec, Workflow, WorkflowSpec};
use crate::workflows::run::{Email, NewRun, Run};

/// Rewrites one stored JSON document in place; answers whether it changed (an `Err`
/// rolls the whole rewrite back).
pub type JsonRewrite =
    std::sync::Arc<dyn Fn(&mut serde_json::Value) -> Result<bool, String> + Send + Sync>;

/// An email to queue.
#[derive(Debug, Clone)]
pub struct NewEmail {
    /// The run sending it.
    pub run_id: Option<i64>,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
}

/// Workflows, rules, runs and emails. Every admin change is audited in its transaction.
pub trait WorkflowStore: Clone + Send + Sync + 'static {
    /// Every workflow, by name.
    fn list_workflows(&self) -> impl Future<Output = Result<Vec<Workflow>, StorageError>> + Send;
    /// One workflow.
    fn get_workflow(
        &self,
        id: String,
    ) -> impl Future<Output = Result<Workflow, StorageError>> + Send;
    /// Stores a new workflow (`Conflict` when the id or name is taken).
    fn create_workflow(
        &self,
        workflow: Workflow,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Workflow, StorageError>> + Send;
    /// Replaces a workflow's definition. With `base`, only if the stored definition is
    /// still `base` (the one a patch was merged into): `Changed` otherwise.
    fn replace_workflow(
        &self,
        workflow: Workflow,
        base: Option<WorkflowSpec>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Workflow, StorageError>> + Send;
    /// Deletes a workflow no rule or other workflow refers to (`Refused` otherwise).
    fn delete_workflow(
        &self,
        id: String,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Applies `rewrite` to every stored copy of a workflow definition that may hold a
    /// secret (workflows, run snapshots, audit entries), in one transaction, and audits
    /// how many changed as `action` by `actor`. Done once per `action`: later calls
    /// change nothing and read nothing. Returns the count changed.
    fn rewrite_workflow_documents(
        &self,
        rewrite: JsonRewrite,
        action: &'static str,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, StorageError>> + Send;

    /// Every rule, by trigger then position.
    fn list_rules(&self) -> impl Future<Output = Result<Vec<Rule>, StorageError>> + Send;
    /// Stores a new rule last within its trigger.
    fn create_rule(
        &self,
        id: String,
        spec: RuleSpec,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Rule, StorageError>> + Send;
    /// Replaces a rule (moving it last within its trigger if the trigger changed). With
    /// `base`, only if the stored rule is still `base`: `Changed` otherwise.
    fn replace_rule(
        &self,
        id: String,
        spec: RuleSpec,
        base: Option<RuleSpec>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Rule, StorageError>> + Send;
    /// Deletes a rule.
    fn delete_rule(
        &self,
        id: String,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Moves a rule to `position` (from 1) within its trigger; returns that trigger's rules.
    fn move_rule(
        &self,
        id: String,
        position: u32,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Rule>, StorageError>> + Send;
    /// Installs a set of workflows and rules in one transaction; `Conflict` naming the
    /// first id or name already taken.
    fn install_set(
        &self,
        workflows: Vec<Workflow>,
        rules: Vec<(String, RuleSpec)>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Creates runs (snapshotting each workflow); a run from a rule is left out when the
    /// device already has an active run from that rule (so a Check In that checks the
    /// phone in does not start itself again). Returns the ids created.
    fn create_runs(
        &self,
        runs: Vec<NewRun>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<i64>, StorageError>> + Send;
    /// Queued and running runs, oldest first, with their workflow snapshots.
    fn active_runs(
        &self,
    ) -> impl Future<Output = Result<Vec<(Run, Workflow)>, StorageError>> + Send;
    /// Saves a run's progress.
    fn save_run(
        &self,
        run: Run,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Stops an active run (audited): it ends failed with who cancelled it, its running
    /// step marked failed. `Refused` when the run already ended.
    fn cancel_run(
        &self,
        id: i64,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Run, StorageError>> + Send;
    /// One run.
    fn get_run(&self, id: i64) -> impl Future<Output = Result<Run, StorageError>> + Send;
    /// Runs, newest first, of one device or all, before `cursor` (a run id).
    fn list_runs(
        &self,
        device_id: Option<String>,
        cursor: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<Run>, StorageError>> + Send;

    /// When a schedule rule last fired for a cart (the occurrence, ms since epoch).
    fn schedule_fired(
        &self,
        rule_id: String,
        launchpad_id: String,
    ) -> impl Future<Output = Result<Option<i64>, StorageError>> + Send;
    /// Records that a schedule rule fired for a cart, with the runs it started, in one
    /// transaction (so a restart neither repeats nor loses the occurrence). `None`, and
    /// nothing written, when this occurrence (or a later one) already fired: two
    /// schedulers that both saw it due start its runs once.
    fn fire_schedule(
        &self,
        rule_id: String,
        launchpad_id: String,
        occurrence: i64,
        runs: Vec<NewRun>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Vec<i64>>, StorageError>> + Send;

    /// The workflow, if any, whose active run keeps this phone out of service (an OS
    /// update or an erase under way).
    fn run_holding(
        &self,
        device_id: String,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;
    /// One cart.
    fn get_launchpad(
        &self,
        id: String,
    ) -> impl Future<Output = Result<Launchpad, StorageError>> + Send;
    /// Devices whose custom attribute `name` equals `value`.
    fn devices_with_attribute(
        &self,
        name: String,
        value: serde_json::Value,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;
    /// A signed command's state (`pending`, `delivered`, `acknowledged`, …).
    fn command_state(
        &self,
        command_id: String,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;
    /// A workflow sets the Device User the server shows (audited with the run as actor).
    fn set_device_user(
        &self,
        device_id: String,
        user: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Queues an email.
    fn enqueue_email(
        &self,
        email: NewEmail,
        now: Timestamp,
    ) -> impl Future<Output = Result<i64, StorageError>> + Send;
    /// Claims pending emails due at `now`, oldest first: they are not due again before
    /// `claim_until`, so a second mailer (another replica) never takes them meanwhile,
    /// and one that died while sending leaves them to be retried after it.
    fn due_emails(
        &self,
        now: Timestamp,
        limit: u32,
        claim_until: Timestamp,
    ) -> impl Future<Output = Result<Vec<Email>, StorageError>> + Send;
    /// Records a delivery attempt's outcome.
    fn save_email(&self, email: Email) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// The outbox, newest first, before `cursor`.
    fn list_emails(
        &self,
        cursor: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<Email>, StorageError>> + Send;
}
