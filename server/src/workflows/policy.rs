//! What workflows put into the phones' signed policy: the Logout Actions (and "launch a
//! blank page first") of the Check In Device actions that the check-in rules deploy. Phones log these apps out at every
//! dock by themselves (offline too), which is when seed 000's Check In runs them.

use lanyard_protocol::AppId;
use lanyard_protocol::policy::AppLogout;

use super::model::Action;
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::Storage;

/// Recomputes the policy's app logouts from the enabled check-in rules (in their order)
/// and their workflows; a change makes a new signed policy version for the phones.
pub async fn sync_check_in_policy<S: Storage>(
    st: &AppState<S>,
    actor: &str,
) -> Result<(), AppError> {
    let mut rules = st.storage.list_rules().await?;
    rules.retain(|r| r.spec.enabled && r.spec.trigger.kind() == "checked_in");
    rules.sort_by_key(|r| r.position);
    let workflows = st.storage.list_workflows().await?;
    let mut apps: Vec<AppLogout> = Vec::new();
    let mut blank_page = false;
    for rule in &rules {
        for id in &rule.spec.workflows {
            let Some(w) = workflows.iter().find(|w| &w.id == id) else {
                continue;
            };
            for action in &w.spec.actions {
                let Action::CheckInDevice {
                    logout_apps,
                    launch_blank_page,
                } = action
                else {
                    continue;
                };
                blank_page |= *launch_blank_page;
                for a in logout_apps {
                    if !apps.iter().any(|x| x.app.as_str() == a.app) {
                        apps.push(AppLogout {
                            app: AppId::new(a.app.clone()),
                            name: a.name.clone(),
                        });
                    }
                }
            }
        }
    }
    let (actor, now) = (format!("{actor} (via workflows)"), st.now());
    let changed = st
        .storage
        .transact(move |tx| {
            crate::domain::policy::change(tx, &actor, "policy.app_logouts", now, |p| {
                p.app_logouts = apps;
                p.blank_page_before_check_in = blank_page;
                Ok(())
            })
        })
        .await?;
    if changed.is_some() {
        st.invalidate_policy();
    }
    Ok(())
}
