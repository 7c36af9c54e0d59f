//! What arrives from outside the checkout flow: enrollment, server commands, policy,
//! offline credentials, and platform facts.

use lanyard_protocol::events::{FactsReport, Report};
use lanyard_protocol::policy::OfflineCredentialList;
use lanyard_protocol::{
    Cause, CommandEnvelope, CommandRejection, DeviceId, Policy, ServerCommand, VerifyingKey,
};

use super::Ctx;
use crate::event::FactsUpdate;
use crate::state::{Block, Enrollment, Locker, Phase};

impl Locker {
    pub(super) fn on_enrolled(
        &mut self,
        device_id: DeviceId,
        server_key: VerifyingKey,
        policy: Policy,
        cx: &mut Ctx,
    ) {
        if !matches!(self.phase, Phase::Unenrolled) {
            self.set_notice("This device is already enrolled.", cx.now);
            return;
        }
        self.enrollment = Some(Enrollment {
            device_id,
            server_key,
            enrolled_at: cx.now,
        });
        self.link.reachable = true;
        self.link.last_contact = Some(cx.now);
        self.install_policy(policy, cx);
        self.enter(Phase::CheckedIn, Cause::Enrolled, cx);
    }

    fn install_policy(&mut self, policy: Policy, cx: &mut Ctx) {
        let version = policy.version;
        if let Err(e) = policy.validate() {
            cx.report(Report::PolicyRejected {
                version,
                reason: e.to_string(),
            });
            return;
        }
        self.policy = policy;
        cx.report(Report::PolicyApplied { version });
    }

    pub(super) fn on_policy(&mut self, policy: Policy, cx: &mut Ctx) {
        if policy.version < self.policy.version {
            let reason = format!("older than version {} in force", self.policy.version);
            cx.report(Report::PolicyRejected {
                version: policy.version,
                reason,
            });
            return;
        }
        if policy == self.policy {
            return;
        }
        self.install_policy(policy, cx);
    }

    pub(super) fn on_credentials(&mut self, list: OfflineCredentialList, cx: &mut Ctx) {
        let version = list.version;
        let current = self.offline_credentials.as_ref().map_or(0, |l| l.version);
        let reason = match &self.enrollment {
            None => Some("device is not enrolled".to_owned()),
            Some(e) if e.device_id != list.device_id => Some("built for another device".into()),
            Some(_) if version < current => Some(format!("older than version {current}")),
            Some(_) => None,
        };
        match reason {
            Some(reason) => cx.report(Report::CredentialsRejected { version, reason }),
            None => {
                let entries = u32::try_from(list.entries.len()).unwrap_or(u32::MAX);
                self.offline_credentials = Some(list);
                cx.report(Report::CredentialsApplied { version, entries });
            }
        }
    }

    pub(super) fn on_command(&mut self, env: CommandEnvelope, cx: &mut Ctx) {
        let command_id = Some(env.command_id.clone());
        let Some(device) = self.enrollment.as_ref().map(|e| &e.device_id) else {
            let rejection = CommandRejection::WrongDevice;
            cx.report(Report::CommandRejected {
                command_id,
                rejection,
            });
            return;
        };
        let skew_ms = self.policy.checkout.clock_skew_secs.saturating_mul(1000);
        let mut verdict = env.check(device, cx.now, skew_ms);
        if verdict.is_ok()
            && self
                .applied_commands
                .iter()
                .any(|c| c.command_id == env.command_id)
        {
            verdict = Err(CommandRejection::Replayed);
        }
        if let Err(rejection) = verdict {
            cx.report(Report::CommandRejected {
                command_id,
                rejection,
            });
            return;
        }
        self.remember_command(env.command_id.clone(), env.expires_at);
        match env.payload {
            ServerCommand::GrantCheckout(grant) => {
                self.on_grant(env.command_id, grant, env.issued_at, cx);
            }
            ServerCommand::DenyCheckout { request_id, code } => {
                if self
                    .pending_auth
                    .as_ref()
                    .is_some_and(|p| p.request_id == request_id)
                {
                    self.pending_auth = None;
                    self.set_notice(code.message(), cx.now);
                }
                self.link.reachable = true;
                cx.report(Report::AuthorizationDenied { request_id, code });
            }
            ServerCommand::CheckIn { reason, as_of } => {
                if self.grant_issued_after(as_of.unwrap_or(env.issued_at)) {
                    // Meant for an earlier holder (a rule's check-in that reached the
                    // phone after a tap): never for this user.
                    cx.report(Report::CommandRejected {
                        command_id,
                        rejection: CommandRejection::Superseded,
                    });
                } else if let Some(user) = self.returnable_user() {
                    self.begin_return(user, Cause::RemoteCheckIn { reason }, cx);
                }
            }
            ServerCommand::Lock { reason } => match &self.phase {
                Phase::CheckedOut(c) | Phase::Blocked(Block { held: Some(c), .. }) => {
                    let block = Block {
                        conditions: match &self.phase {
                            Phase::Blocked(b) => b.conditions.clone(),
                            _ => Vec::new(),
                        },
                        held: Some(c.clone()),
                        remote_lock: Some(reason.clone()),
                    };
                    if matches!(self.phase, Phase::Blocked(_)) {
                        // Already locked: keep the lock, now with IT's reason too.
                        self.phase = Phase::Blocked(block);
                    } else {
                        self.enter(Phase::Blocked(block), Cause::RemoteLock { reason }, cx);
                    }
                }
                // Still in the cart: nobody has it yet, so locking means checking it in.
                Phase::CheckoutPending(p) => {
                    let user = p.assignment.user.clone();
                    self.begin_return(user, Cause::RemoteLock { reason }, cx);
                }
                _ => {}
            },
            ServerCommand::PasscodeClearResult { cleared: true, .. } => {
                self.passcode_confirmed_cleared(cx);
            }
            ServerCommand::PasscodeClearResult {
                cleared: false,
                detail,
            } => {
                let detail = detail.unwrap_or_else(|| "no detail from the MDM".into());
                cx.report(Report::PasscodeClearFailed { detail });
            }
            ServerCommand::ExtendCheckout { due_at } => {
                let extended = match &mut self.phase {
                    Phase::CheckedOut(c) | Phase::Blocked(Block { held: Some(c), .. }) => {
                        c.due_at = due_at;
                        true
                    }
                    _ => false,
                };
                if extended {
                    cx.report(Report::CheckoutExtended { due_at });
                }
            }
            ServerCommand::Unenroll => {
                self.pending_auth = None;
                self.passcode_clear = None;
                self.offline_credentials = None;
                self.enter(Phase::Unenrolled, Cause::Unenrolled, cx);
                self.enrollment = None;
            }
        }
    }

    pub(super) fn on_facts(&mut self, update: FactsUpdate, cx: &mut Ctx) {
        let before = self.facts.clone();
        let f = &mut self.facts;
        if let Some(v) = update.os_version {
            f.os_version = Some(v);
        }
        if let Some(p) = update.passcode_present {
            f.passcode_present = Some(p);
        }
        if let Some(mut signals) = update.compromise_signals {
            signals.sort();
            signals.dedup();
            f.compromise_signals = signals;
        }
        if let Some(b) = update.battery_percent {
            f.battery_percent = Some(b.min(100));
        }
        let bucket = |b: Option<u8>| b.map(|b| b / 10);
        let meaningful = f.os_version != before.os_version
            || f.passcode_present != before.passcode_present
            || f.compromise_signals != before.compromise_signals
            || bucket(f.battery_percent) != bucket(before.battery_percent);
        if meaningful {
            cx.report(Report::Facts(FactsReport {
                os_version: f.os_version,
                passcode_present: f.passcode_present,
                compromise_signals: f.compromise_signals.clone(),
                battery_percent: f.battery_percent,
            }));
        }
        let nobody_holds_it = matches!(
            self.phase,
            Phase::CheckedIn | Phase::Blocked(Block { held: None, .. })
        );
        match self.facts.passcode_present {
            Some(false) if self.passcode_clear.is_some() => self.passcode_confirmed_cleared(cx),
            // A passcode on a phone nobody holds must go: ask the MDM, as on a return.
            Some(true) if nobody_holds_it => self.start_passcode_clear(cx),
            _ => {}
        }
    }
}
