//! [`WorkflowStore`] on SQLite.

use crate::db::sql::{Conn, OptionalExtension, Row, SqlError, params};
use lanyard_protocol::Timestamp;

use super::{SqliteStorage, audit, get_device, get_launchpad, is_unique_violation, json, page};
use crate::model::{Launchpad, Page};
use crate::storage::StorageError;
use crate::storage::workflows::{JsonRewrite, NewEmail, WorkflowStore};
use crate::workflows::model::{Rule, RuleSpec, Workflow, WorkflowSpec};
use crate::workflows::run::{Email, NewRun, Run, RunState, Step};

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StorageError> {
    serde_json::to_string(v).map_err(|e| StorageError::Internal(format!("encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> crate::db::sql::Result<T> {
    serde_json::from_str(s).map_err(|e| SqlError::Conversion {
        column: 0,
        message: e.to_string(),
    })
}

const WORKFLOW_COLUMNS: &str = "id, spec_json, created_at, updated_at";

fn workflow_row(r: &Row) -> crate::db::sql::Result<Workflow> {
    let spec: String = r.get(1)?;
    Ok(Workflow {
        id: r.get(0)?,
        spec: from_json(&spec)?,
        created_at: r.get(2)?,
        updated_at: r.get(3)?,
    })
}

fn get_workflow(tx: &dyn Conn, id: &str) -> Result<Workflow, StorageError> {
    tx.query_row(
        &format!("SELECT {WORKFLOW_COLUMNS} FROM workflow WHERE id = ?1"),
        [id],
        workflow_row,
    )
    .optional()?
    .ok_or(StorageError::NotFound("workflow"))
}

const RULE_COLUMNS: &str = "id, spec_json, position, created_at, updated_at";

fn rule_row(r: &Row) -> crate::db::sql::Result<Rule> {
    let spec: String = r.get(1)?;
    Ok(Rule {
        id: r.get(0)?,
        spec: from_json(&spec)?,
        position: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

fn get_rule(tx: &dyn Conn, id: &str) -> Result<Rule, StorageError> {
    tx.query_row(
        &format!("SELECT {RULE_COLUMNS} FROM automation_rule WHERE id = ?1"),
        [id],
        rule_row,
    )
    .optional()?
    .ok_or(StorageError::NotFound("rule"))
}

fn rules_of(tx: &dyn Conn, trigger: &str) -> Result<Vec<Rule>, StorageError> {
    let mut stmt = tx.prepare(&format!(
        "SELECT {RULE_COLUMNS} FROM automation_rule WHERE trigger_kind = ?1 ORDER BY position"
    ))?;
    let rows = stmt.query_map([trigger], rule_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Numbers a trigger's rules 1, 2, 3… in their current order (after a delete or move).
fn renumber(tx: &dyn Conn, order: &[String]) -> Result<(), StorageError> {
    for (i, id) in order.iter().enumerate() {
        tx.execute(
            "UPDATE automation_rule SET position = ?2 WHERE id = ?1",
            params![id, i64::try_from(i + 1).unwrap_or(i64::MAX)],
        )?;
    }
    Ok(())
}

fn insert_workflow(tx: &dyn Conn, w: &Workflow) -> Result<(), StorageError> {
    match tx.execute(
        "INSERT INTO workflow (id, name_key, spec_json, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![w.id, w.spec.name.to_lowercase(), to_json(&w.spec)?, w.created_at, w.updated_at],
    ) {
        Err(e) if is_unique_violation(&e) => Err(StorageError::Conflict("workflow")),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

fn insert_rule(tx: &dyn Conn, id: &str, spec: &RuleSpec, now: i64) -> Result<Rule, StorageError> {
    let trigger = spec.trigger.kind();
    let last: i64 = tx.query_row(
        "SELECT COALESCE(MAX(position), 0) FROM automation_rule WHERE trigger_kind = ?1",
        [trigger],
        |r| r.get(0),
    )?;
    match tx.execute(
        "INSERT INTO automation_rule (id, name_key, trigger_kind, position, spec_json, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![id, spec.name.to_lowercase(), trigger, last + 1, to_json(spec)?, now],
    ) {
        Err(e) if is_unique_violation(&e) => return Err(StorageError::Conflict("rule")),
        other => other?,
    };
    get_rule(tx, id)
}

const RUN_COLUMNS: &str = "r.id, r.device_id, r.workflow_id, r.rule_id, r.origin, r.parent_run, r.actor, \
     r.state, r.attempt, r.steps_json, r.earlier_json, r.error, r.created_at, r.updated_at, \
     r.finished_at, r.workflow_json";

fn run_row(r: &Row) -> crate::db::sql::Result<(Run, Workflow)> {
    let state: String = r.get(7)?;
    let steps: String = r.get(9)?;
    let earlier: String = r.get(10)?;
    let workflow: String = r.get(15)?;
    let workflow: Workflow = from_json(&workflow)?;
    let run = Run {
        id: r.get(0)?,
        device_id: r.get(1)?,
        workflow_id: r.get(2)?,
        workflow_name: workflow.spec.name.clone(),
        rule_id: r.get(3)?,
        origin: r.get(4)?,
        parent_run: r.get(5)?,
        actor: r.get(6)?,
        state: crate::model::stored_state(7, &state, RunState::parse)?,
        attempt: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(1),
        steps: from_json(&steps)?,
        earlier_attempts: from_json(&earlier)?,
        error: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        finished_at: r.get(14)?,
    };
    Ok((run, workflow))
}

pub(super) fn insert_runs(
    tx: &dyn Conn,
    runs: Vec<NewRun>,
    now: i64,
) -> Result<Vec<i64>, StorageError> {
    let mut ids = Vec::new();
    for n in runs {
        if let Some(rule) = &n.rule_id {
            let busy: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM workflow_run WHERE device_id = ?1 AND rule_id = ?2
                   AND state IN ('queued', 'running') AND created_at < ?3)",
                params![n.device_id, rule, now],
                |r| r.get(0),
            )?;
            if busy {
                continue;
            }
        }
        let workflow = get_workflow(tx, &n.workflow_id)?;
        let steps: Vec<Step> = workflow
            .spec
            .run_order()
            .iter()
            .map(|a| Step::pending(a.kind()))
            .collect();
        let id: i64 = tx.query_row(
            "INSERT INTO workflow_run (device_id, workflow_id, rule_id, origin, parent_run, actor, state,
               attempt, workflow_json, steps_json, created_at, updated_at, holds_device)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 1, ?7, ?8, ?9, ?9, ?10) RETURNING id",
            params![
                n.device_id,
                n.workflow_id,
                n.rule_id,
                n.origin,
                n.parent_run,
                n.actor,
                to_json(&workflow)?,
                to_json(&steps)?,
                now,
                workflow.spec.holds_device()
            ],
            |r| r.get(0),
        )?;
        ids.push(id);
    }
    Ok(ids)
}

const EMAIL_COLUMNS: &str = "id, run_id, to_json, subject, body, state, attempts, next_attempt_at, last_error, created_at, sent_at";

fn email_row(r: &Row) -> crate::db::sql::Result<Email> {
    let to: String = r.get(2)?;
    Ok(Email {
        id: r.get(0)?,
        run_id: r.get(1)?,
        to: from_json(&to)?,
        subject: r.get(3)?,
        body: r.get(4)?,
        state: crate::model::stored_state(
            5,
            &r.get::<_, String>(5)?,
            crate::workflows::run::EmailState::parse,
        )?,
        attempts: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        next_attempt_at: r.get(7)?,
        last_error: r.get(8)?,
        created_at: r.get(9)?,
        sent_at: r.get(10)?,
    })
}

impl WorkflowStore for SqliteStorage {
    async fn list_workflows(&self) -> Result<Vec<Workflow>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {WORKFLOW_COLUMNS} FROM workflow ORDER BY name_key"
            ))?;
            let rows = stmt.query_map((), workflow_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn get_workflow(&self, id: String) -> Result<Workflow, StorageError> {
        self.read(move |c| get_workflow(c, &id)).await
    }

    async fn create_workflow(
        &self,
        w: Workflow,
        actor: String,
        now: Timestamp,
    ) -> Result<Workflow, StorageError> {
        self.write(move |tx| {
            insert_workflow(tx, &w)?;
            audit(
                tx,
                &actor,
                "workflow.create",
                "workflow",
                &w.id,
                None,
                Some(json(&w)),
                now,
            )?;
            Ok(w)
        })
        .await
    }

    async fn rewrite_workflow_documents(
        &self,
        rewrite: JsonRewrite,
        action: &'static str,
        actor: String,
        now: Timestamp,
    ) -> Result<usize, StorageError> {
        self.write(move |tx| {
            let done: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM upgrade_done WHERE name = ?1)",
                [action],
                |r| r.get(0),
            )?;
            if done {
                return Ok(0);
            }
            // (table, key column, document column): every place a workflow's definition
            // is copied to.
            const DOCUMENTS: [(&str, &str, &str); 4] = [
                ("workflow", "id", "spec_json"),
                ("workflow_run", "id", "workflow_json"),
                ("audit_log", "id", "before_json"),
                ("audit_log", "id", "after_json"),
            ];
            let mut changed = 0usize;
            for (table, key, column) in DOCUMENTS {
                // Only documents that can hold a secret field are read at all.
                let rows: Vec<(crate::db::sql::Value, String)> = tx
                    .prepare(&format!(
                        "SELECT {key}, {column} FROM {table} WHERE {column} LIKE '%\"password\"%'"
                    ))?
                    .query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                for (id, text) in rows {
                    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&text) else {
                        continue;
                    };
                    if rewrite(&mut doc).map_err(StorageError::Internal)? {
                        tx.execute(
                            &format!("UPDATE {table} SET {column} = ?2 WHERE {key} = ?1"),
                            params![id, doc.to_string()],
                        )?;
                        changed += 1;
                    }
                }
            }
            if changed > 0 {
                audit(
                    tx,
                    &actor,
                    action,
                    "workflow",
                    "*",
                    None,
                    Some(serde_json::json!({ "documents": changed })),
                    now,
                )?;
            }
            tx.execute(
                "INSERT INTO upgrade_done (name, done_at) VALUES (?1, ?2)",
                params![action, now.as_millis()],
            )?;
            Ok(changed)
        })
        .await
    }

    async fn replace_workflow(
        &self,
        w: Workflow,
        base: Option<WorkflowSpec>,
        actor: String,
        now: Timestamp,
    ) -> Result<Workflow, StorageError> {
        self.write(move |tx| {
            let before = get_workflow(tx, &w.id)?;
            if base.is_some_and(|b| b != before.spec) {
                return Err(StorageError::Changed("workflow"));
            }
            let changed = match tx.execute(
                "UPDATE workflow SET name_key = ?2, spec_json = ?3, updated_at = ?4 WHERE id = ?1",
                params![
                    w.id,
                    w.spec.name.to_lowercase(),
                    to_json(&w.spec)?,
                    now.as_millis()
                ],
            ) {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StorageError::Conflict("workflow name"));
                }
                other => other?,
            };
            if changed == 0 {
                return Err(StorageError::NotFound("workflow"));
            }
            let after = get_workflow(tx, &w.id)?;
            audit(
                tx,
                &actor,
                "workflow.update",
                "workflow",
                &w.id,
                Some(json(&before)),
                Some(json(&after)),
                now,
            )?;
            Ok(after)
        })
        .await
    }

    async fn delete_workflow(
        &self,
        id: String,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            let before = get_workflow(tx, &id)?;
            let mut stmt = tx.prepare(&format!("SELECT {RULE_COLUMNS} FROM automation_rule"))?;
            let rules: Vec<Rule> = stmt.query_map((), rule_row)?.collect::<Result<_, _>>()?;
            if let Some(r) = rules.iter().find(|r| r.spec.workflows.contains(&id)) {
                return Err(StorageError::Rejected(format!(
                    "workflow {id:?} is deployed by rule {:?}; change the rule first",
                    r.id
                )));
            }
            let mut stmt = tx.prepare(&format!("SELECT {WORKFLOW_COLUMNS} FROM workflow"))?;
            let all: Vec<Workflow> = stmt
                .query_map((), workflow_row)?
                .collect::<Result<_, _>>()?;
            if let Some(w) = all.iter().find(|w| {
                crate::workflows::validate::on_failure_target(&w.spec) == Some(id.as_str())
            }) {
                return Err(StorageError::Rejected(format!(
                    "workflow {id:?} runs when {:?} fails; change that workflow first",
                    w.id
                )));
            }
            tx.execute("DELETE FROM workflow WHERE id = ?1", [&id])?;
            audit(
                tx,
                &actor,
                "workflow.delete",
                "workflow",
                &id,
                Some(json(&before)),
                None,
                now,
            )?;
            Ok(())
        })
        .await
    }

    async fn list_rules(&self) -> Result<Vec<Rule>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {RULE_COLUMNS} FROM automation_rule ORDER BY trigger_kind, position"
            ))?;
            let rows = stmt.query_map((), rule_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn create_rule(
        &self,
        id: String,
        spec: RuleSpec,
        actor: String,
        now: Timestamp,
    ) -> Result<Rule, StorageError> {
        self.write(move |tx| {
            let rule = insert_rule(tx, &id, &spec, now.as_millis())?;
            audit(
                tx,
                &actor,
                "rule.create",
                "rule",
                &id,
                None,
                Some(json(&rule)),
                now,
            )?;
            Ok(rule)
        })
        .await
    }

    async fn replace_rule(
        &self,
        id: String,
        spec: RuleSpec,
        base: Option<RuleSpec>,
        actor: String,
        now: Timestamp,
    ) -> Result<Rule, StorageError> {
        self.write(move |tx| {
            let before = get_rule(tx, &id)?;
            if base.is_some_and(|b| b != before.spec) {
                return Err(StorageError::Changed("rule"));
            }
            let old_trigger = before.spec.trigger.kind();
            let new_trigger = spec.trigger.kind();
            let position = if old_trigger == new_trigger {
                i64::from(before.position)
            } else {
                tx.query_row(
                    "SELECT COALESCE(MAX(position), 0) + 1 FROM automation_rule WHERE trigger_kind = ?1",
                    [new_trigger],
                    |r| r.get(0),
                )?
            };
            match tx.execute(
                "UPDATE automation_rule SET name_key = ?2, trigger_kind = ?3, position = ?4, spec_json = ?5,
                   updated_at = ?6 WHERE id = ?1",
                params![id, spec.name.to_lowercase(), new_trigger, position, to_json(&spec)?, now.as_millis()],
            ) {
                Err(e) if is_unique_violation(&e) => return Err(StorageError::Conflict("rule name")),
                other => other?,
            };
            if old_trigger != new_trigger {
                let order: Vec<String> = rules_of(tx, old_trigger)?.into_iter().map(|r| r.id).collect();
                renumber(tx, &order)?;
            }
            let after = get_rule(tx, &id)?;
            audit(tx, &actor, "rule.update", "rule", &id, Some(json(&before)), Some(json(&after)), now)?;
            Ok(after)
        })
        .await
    }

    async fn delete_rule(
        &self,
        id: String,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            let before = get_rule(tx, &id)?;
            tx.execute("DELETE FROM automation_rule WHERE id = ?1", [&id])?;
            tx.execute("DELETE FROM schedule_fired WHERE rule_id = ?1", [&id])?;
            let trigger = before.spec.trigger.kind();
            let order: Vec<String> = rules_of(tx, trigger)?.into_iter().map(|r| r.id).collect();
            renumber(tx, &order)?;
            audit(
                tx,
                &actor,
                "rule.delete",
                "rule",
                &id,
                Some(json(&before)),
                None,
                now,
            )?;
            Ok(())
        })
        .await
    }

    async fn move_rule(
        &self,
        id: String,
        position: u32,
        actor: String,
        now: Timestamp,
    ) -> Result<Vec<Rule>, StorageError> {
        self.write(move |tx| {
            let rule = get_rule(tx, &id)?;
            let trigger = rule.spec.trigger.kind();
            let before = rules_of(tx, trigger)?;
            let mut order: Vec<String> = before
                .iter()
                .map(|r| r.id.clone())
                .filter(|r| *r != id)
                .collect();
            let at = (position.max(1) as usize - 1).min(order.len());
            order.insert(at, id.clone());
            renumber(tx, &order)?;
            let after = rules_of(tx, trigger)?;
            let names = |rs: &[Rule]| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
            audit(
                tx,
                &actor,
                "rule.reorder",
                "rule",
                &id,
                Some(serde_json::json!({ "trigger": trigger, "order": names(&before) })),
                Some(serde_json::json!({ "trigger": trigger, "order": names(&after) })),
                now,
            )?;
            Ok(after)
        })
        .await
    }

    async fn install_set(
        &self,
        workflows: Vec<Workflow>,
        rules: Vec<(String, RuleSpec)>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            for w in &workflows {
                let taken: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM workflow WHERE id = ?1 OR name_key = ?2)",
                    params![w.id, w.spec.name.to_lowercase()],
                    |r| r.get(0),
                )?;
                if taken {
                    return Err(StorageError::Rejected(format!(
                        "a workflow named {:?} (or with id {:?}) already exists; the standard set installs into a server without it",
                        w.spec.name, w.id
                    )));
                }
                insert_workflow(tx, w)?;
                audit(tx, &actor, "workflow.create", "workflow", &w.id, None, Some(json(w)), now)?;
            }
            for (id, spec) in &rules {
                let rule = match insert_rule(tx, id, spec, now.as_millis()) {
                    Err(StorageError::Conflict(_)) => {
                        return Err(StorageError::Rejected(format!(
                            "a rule named {:?} (or with id {id:?}) already exists",
                            spec.name
                        )));
                    }
                    other => other?,
                };
                audit(tx, &actor, "rule.create", "rule", id, None, Some(json(&rule)), now)?;
            }
            Ok(())
        })
        .await
    }

    async fn create_runs(
        &self,
        runs: Vec<NewRun>,
        now: Timestamp,
    ) -> Result<Vec<i64>, StorageError> {
        self.write(move |tx| insert_runs(tx, runs, now.as_millis()))
            .await
    }

    async fn active_runs(&self) -> Result<Vec<(Run, Workflow)>, StorageError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM workflow_run r WHERE r.state IN ('queued', 'running') ORDER BY r.id"
            ))?;
            let rows = stmt.query_map((), run_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn save_run(&self, run: Run, now: Timestamp) -> Result<(), StorageError> {
        self.write(move |tx| {
            tx.execute(
                // A run cancelled meanwhile stays cancelled.
                "UPDATE workflow_run SET state = ?2, attempt = ?3, steps_json = ?4, earlier_json = ?5,
                   error = ?6, updated_at = ?7, finished_at = ?8
                 WHERE id = ?1 AND state IN ('queued', 'running')",
                params![
                    run.id,
                    run.state.as_str(),
                    i64::from(run.attempt),
                    to_json(&run.steps)?,
                    to_json(&run.earlier_attempts)?,
                    run.error,
                    now.as_millis(),
                    run.finished_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn cancel_run(
        &self,
        id: i64,
        actor: String,
        now: Timestamp,
    ) -> Result<Run, StorageError> {
        self.write(move |tx| {
            let (mut run, _) = tx
                .query_row(&format!("SELECT {RUN_COLUMNS} FROM workflow_run r WHERE r.id = ?1"), [id], run_row)
                .optional()?
                .ok_or(StorageError::NotFound("run"))?;
            if !run.state.active() {
                return Err(StorageError::Rejected(format!("run {id} already ended ({})", run.state.as_str())));
            }
            let before = Some(json(&run));
            let why = format!("cancelled by {actor}");
            // The step under way fails with the reason; steps not started stay pending.
            for step in run.steps.iter_mut() {
                if step.status == crate::workflows::run::StepStatus::Running {
                    step.finished_at = Some(now.as_millis());
                    step.detail = Some(why.clone());
                    step.status = crate::workflows::run::StepStatus::Failed;
                }
            }
            run.state = RunState::Failed;
            run.error = Some(why);
            run.finished_at = Some(now.as_millis());
            run.updated_at = now.as_millis();
            tx.execute(
                "UPDATE workflow_run SET state = 'failed', steps_json = ?2, error = ?3, updated_at = ?4,
                   finished_at = ?4 WHERE id = ?1",
                params![id, to_json(&run.steps)?, run.error, now.as_millis()],
            )?;
            audit(tx, &actor, "run.cancel", "run", &id.to_string(), before, Some(json(&run)), now)?;
            Ok(run)
        })
        .await
    }

    async fn get_run(&self, id: i64) -> Result<Run, StorageError> {
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM workflow_run r WHERE r.id = ?1"),
                [id],
                run_row,
            )
            .optional()?
            .map(|(r, _)| r)
            .ok_or(StorageError::NotFound("run"))
        })
        .await
    }

    async fn list_runs(
        &self,
        device_id: Option<String>,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<Page<Run>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM workflow_run r
                 WHERE (r.device_id = ?1 OR ?1 IS NULL) AND (r.id < ?2 OR ?2 IS NULL)
                 ORDER BY r.id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![device_id, cursor, i64::from(limit) + 1], run_row)?;
            let runs: Vec<Run> = rows
                .map(|r| r.map(|(run, _)| run))
                .collect::<Result<_, _>>()?;
            Ok(page(runs, limit, |r| r.id.to_string()))
        })
        .await
    }

    async fn schedule_fired(
        &self,
        rule_id: String,
        launchpad_id: String,
    ) -> Result<Option<i64>, StorageError> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT occurrence FROM schedule_fired WHERE rule_id = ?1 AND launchpad_id = ?2",
                params![rule_id, launchpad_id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn fire_schedule(
        &self,
        rule_id: String,
        launchpad_id: String,
        occurrence: i64,
        runs: Vec<NewRun>,
        now: Timestamp,
    ) -> Result<Option<Vec<i64>>, StorageError> {
        self.write(move |tx| {
            let recorded = tx.execute(
                "INSERT INTO schedule_fired (rule_id, launchpad_id, occurrence) VALUES (?1, ?2, ?3)
                 ON CONFLICT (rule_id, launchpad_id) DO UPDATE SET occurrence = excluded.occurrence
                 WHERE schedule_fired.occurrence < excluded.occurrence",
                params![rule_id, launchpad_id, occurrence],
            )?;
            if recorded == 0 {
                return Ok(None);
            }
            insert_runs(tx, runs, now.as_millis()).map(Some)
        })
        .await
    }

    async fn run_holding(&self, device_id: String) -> Result<Option<String>, StorageError> {
        self.read(move |c| {
            let json: Option<String> = c
                .query_row(
                    "SELECT workflow_json FROM workflow_run WHERE device_id = ?1 AND holds_device = 1
                       AND state IN ('queued', 'running') ORDER BY id LIMIT 1",
                    [&device_id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(json
                .and_then(|j| serde_json::from_str::<Workflow>(&j).ok())
                .map(|w| w.spec.name))
        })
        .await
    }

    async fn get_launchpad(&self, id: String) -> Result<Launchpad, StorageError> {
        self.read(move |c| get_launchpad(c, &id)).await
    }

    async fn devices_with_attribute(
        &self,
        name: String,
        value: serde_json::Value,
    ) -> Result<Vec<String>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT entity_id FROM attribute_value WHERE target = 'device' AND name = ?1 AND value_json = ?2
                 ORDER BY entity_id",
            )?;
            let rows = stmt.query_map(params![name, value.to_string()], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn command_state(&self, command_id: String) -> Result<Option<String>, StorageError> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT state FROM command WHERE id = ?1",
                [command_id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn set_device_user(
        &self,
        device_id: String,
        user: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.write(move |tx| {
            let before = get_device(tx, &device_id)?;
            tx.execute(
                "UPDATE device SET device_user = ?2 WHERE id = ?1",
                params![device_id, user],
            )?;
            let after = get_device(tx, &device_id)?;
            audit(
                tx,
                &actor,
                "device.user.set",
                "device",
                &device_id,
                Some(json(&before)),
                Some(json(&after)),
                now,
            )?;
            Ok(())
        })
        .await
    }

    async fn enqueue_email(&self, email: NewEmail, now: Timestamp) -> Result<i64, StorageError> {
        self.write(move |tx| {
            Ok(tx.query_row(
                "INSERT INTO email_outbox (run_id, to_json, subject, body, state, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5) RETURNING id",
                params![email.run_id, to_json(&email.to)?, email.subject, email.body, now.as_millis()],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn due_emails(
        &self,
        now: Timestamp,
        limit: u32,
        claim_until: Timestamp,
    ) -> Result<Vec<Email>, StorageError> {
        self.write(move |tx| {
            let mut stmt = tx.prepare(&format!(
                "UPDATE email_outbox SET next_attempt_at = ?3
                 WHERE id IN (SELECT id FROM email_outbox
                              WHERE state = 'pending' AND next_attempt_at <= ?1
                              ORDER BY id LIMIT ?2)
                 RETURNING {EMAIL_COLUMNS}"
            ))?;
            let rows = stmt.query_map(
                params![now.as_millis(), i64::from(limit), claim_until.as_millis()],
                email_row,
            )?;
            let mut due: Vec<Email> = rows.collect::<Result<_, _>>()?;
            due.sort_by_key(|e| e.id);
            Ok(due)
        })
        .await
    }

    async fn save_email(&self, e: Email) -> Result<(), StorageError> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE email_outbox SET state = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5,
                   sent_at = ?6 WHERE id = ?1",
                params![e.id, e.state.as_str(), i64::from(e.attempts), e.next_attempt_at, e.last_error, e.sent_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_emails(
        &self,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<Page<Email>, StorageError> {
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {EMAIL_COLUMNS} FROM email_outbox WHERE (id < ?1 OR ?1 IS NULL) ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![cursor, i64::from(limit) + 1], email_row)?;
            let items: Vec<Email> = rows.collect::<Result<_, _>>()?;
            Ok(page(items, limit, |e| e.id.to_string()))
        })
        .await
    }
}
