//! The transition function: `handle(state, event, now) -> (state, effects)`.
//!
//! One call runs in four steps: let time pass (expiries, deadlines, retries and the
//! compliance tiers they reach), apply the event, re-evaluate compliance, then finish.
//!
//! Every phase change writes exactly one outbox record at the moment it happens, so a
//! call that sees two changes (a grant that lapsed, then a new grant) writes two, and the
//! server can replay the chain `from -> to` without gaps. Reports that are not followed by
//! a change go into one trailing record. The screen and the next wake-up are emitted
//! once, at the end, and only when they changed.

mod checkin;
mod checkout;
mod inbound;

use lanyard_protocol::events::Report;
use lanyard_protocol::{Cause, EventRecord, Timestamp, Transition};

use crate::compliance;
use crate::effect::Effect;
use crate::event::Event;
use crate::state::{Block, Checkout, Locker, Notice, Phase};

/// How long a notice (denial, hint) stays on the locked screen.
const NOTICE_MILLIS: u64 = 10_000;
/// Most command ids remembered for replay protection.
const MAX_APPLIED_COMMANDS: usize = 1024;

/// Advances `state` by one `event` at `now` and returns the new state with the effects
/// the host must carry out. Pure: no clock, no I/O.
pub fn handle(mut state: Locker, event: Event, now: Timestamp) -> (Locker, Vec<Effect>) {
    let effects = state.apply(event, now);
    (state, effects)
}

/// What one call accumulates before it is turned into effects.
pub(crate) struct Ctx {
    pub now: Timestamp,
    pub effects: Vec<Effect>,
    pub reports: Vec<Report>,
    pub urgent: bool,
}

impl Ctx {
    fn new(now: Timestamp) -> Self {
        Ctx {
            now,
            effects: Vec::new(),
            reports: Vec::new(),
            urgent: false,
        }
    }

    pub fn report(&mut self, r: Report) {
        self.reports.push(r);
    }

    pub fn effect(&mut self, e: Effect) {
        self.effects.push(e);
    }
}

impl Locker {
    /// In-place form of [`handle`].
    pub fn apply(&mut self, event: Event, now: Timestamp) -> Vec<Effect> {
        let restarted = matches!(event, Event::HostStarted);
        let mut cx = Ctx::new(now);

        self.pass_time(&mut cx);
        self.enforce_compliance(&mut cx);
        self.dispatch(event, &mut cx);
        self.enforce_compliance(&mut cx);
        if restarted {
            self.reissue_after_restart(&mut cx);
        }
        self.finish(cx, restarted)
    }

    fn dispatch(&mut self, event: Event, cx: &mut Ctx) {
        match event {
            Event::Enrolled {
                device_id,
                server_key,
                policy,
            } => self.on_enrolled(device_id, server_key, policy.into_inner(), cx),
            Event::BadgeTapped { badge } => self.on_badge(badge, cx),
            Event::PasswordEntered { username, password } => {
                self.on_password(username, password, cx)
            }
            Event::PinEntered { pin } => self.on_pin(&pin, cx),
            Event::AuthorizationFailed { request_id } => {
                self.on_authorization_failed(&request_id, cx)
            }
            Event::Command(envelope) => self.on_command(envelope.into_inner(), cx),
            Event::CommandRefused {
                command_id,
                rejection,
            } => cx.report(Report::CommandRejected {
                command_id,
                rejection,
            }),
            Event::SignedPayloadRefused { kind, reason } => {
                cx.report(Report::SignedPayloadRefused { kind, reason })
            }
            Event::PolicyUpdated(policy) => self.on_policy(policy.into_inner(), cx),
            Event::OfflineCredentialsUpdated(list) => self.on_credentials(list.into_inner(), cx),
            Event::Docked { location } => self.on_docked(location, cx),
            Event::Undocked => self.on_undocked(cx),
            Event::AppLogoutFinished { app, outcome } => self.on_app_logout(app, outcome, cx),
            Event::PlatformFacts(update) => self.on_facts(update, cx),
            Event::ManagedEmergencyPin { hash } => {
                if self.managed_emergency_pin != hash {
                    // A new PIN starts with a clean slate of attempts.
                    self.pin_guard = Default::default();
                    self.managed_emergency_pin = hash;
                }
            }
            Event::SyncSucceeded => {
                self.link.reachable = true;
                self.link.last_contact = Some(cx.now);
            }
            Event::SyncFailed => self.link.reachable = false,
            Event::Tick | Event::HostStarted => {}
        }
    }

    /// Deadlines that fall due by time alone.
    fn pass_time(&mut self, cx: &mut Ctx) {
        let now = cx.now;
        if let Phase::CheckoutPending(p) = &self.phase
            && now >= p.expires_at
        {
            self.set_notice("Checkout timed out. Tap your badge again.", now);
            self.enter(Phase::CheckedIn, Cause::GrantExpired, cx);
        }
        if matches!(&self.phase, Phase::Returning(r) if now >= r.deadline) {
            self.finish_return(cx);
        }
        if self
            .pending_auth
            .as_ref()
            .is_some_and(|p| now >= p.deadline)
        {
            self.authorization_unanswered(cx);
        }
        self.retry_passcode_clear(cx);
        let skew = self.policy.checkout.clock_skew_secs;
        self.applied_commands
            .retain(|c| c.expires_at.plus_secs(skew) >= now);
        if self.notice.as_ref().is_some_and(|n| n.until <= now) {
            self.notice = None;
        }
    }

    /// Fires compliance tiers and applies block / lock / release to the phase.
    fn enforce_compliance(&mut self, cx: &mut Ctx) {
        let outcome = compliance::evaluate(self, cx.now);
        cx.reports.extend(outcome.reports);
        cx.urgent |= outcome.urgent;
        for message in outcome.alerts {
            cx.effect(Effect::RaiseAlert { message });
        }
        match &self.phase {
            Phase::CheckedIn | Phase::CheckoutPending(_) => {
                let blocks = compliance::blocking(self);
                if !blocks.is_empty() {
                    let cause = Cause::ComplianceEnforced {
                        conditions: blocks.clone(),
                    };
                    self.enter(
                        Phase::Blocked(Block {
                            conditions: blocks,
                            held: None,
                            remote_lock: None,
                        }),
                        cause,
                        cx,
                    );
                }
            }
            Phase::CheckedOut(c) => {
                let locks = compliance::locking(self, c.reauthenticated_at, cx.now);
                if !locks.is_empty() {
                    let held = Some(c.clone());
                    let cause = Cause::ComplianceEnforced {
                        conditions: locks.clone(),
                    };
                    self.enter(
                        Phase::Blocked(Block {
                            conditions: locks,
                            held,
                            remote_lock: None,
                        }),
                        cause,
                        cx,
                    );
                }
            }
            Phase::Blocked(Block {
                held: None,
                conditions,
                ..
            }) => {
                let blocks = compliance::blocking(self);
                if blocks.is_empty() {
                    self.enter(Phase::CheckedIn, Cause::ComplianceCleared, cx);
                } else if &blocks != conditions {
                    self.phase = Phase::Blocked(Block {
                        conditions: blocks,
                        held: None,
                        remote_lock: None,
                    });
                }
            }
            Phase::Blocked(Block {
                held: Some(c),
                conditions,
                remote_lock,
            }) => {
                // Stays locked until the holder re-authenticates, even if the cause cleared.
                let locks = compliance::locking(self, c.reauthenticated_at, cx.now);
                if !locks.is_empty() && &locks != conditions {
                    let held = Some(c.clone());
                    self.phase = Phase::Blocked(Block {
                        conditions: locks,
                        held,
                        remote_lock: remote_lock.clone(),
                    });
                }
            }
            Phase::Unenrolled | Phase::Returning(_) => {}
        }
    }

    /// Moves to `phase` and writes the outbox record of that change, carrying the
    /// reports gathered so far.
    pub(crate) fn enter(&mut self, phase: Phase, cause: Cause, cx: &mut Ctx) {
        let was_in = matches!(
            self.phase,
            Phase::CheckedIn | Phase::Blocked(Block { held: None, .. })
        );
        let now_in = matches!(
            phase,
            Phase::CheckedIn | Phase::Blocked(Block { held: None, .. })
        );
        if now_in && !was_in {
            self.checked_in_since = cx.now;
        }
        let from = self.status();
        self.phase = phase;
        let transition = Transition {
            from,
            to: self.status(),
            cause,
        };
        self.record(Some(transition), cx);
    }

    /// Appends one outbox record with the next sequence number.
    fn record(&mut self, transition: Option<Transition>, cx: &mut Ctx) {
        let record = EventRecord {
            seq: self.next_seq,
            at: cx.now,
            status: self.status(),
            user: self.user().cloned(),
            transition,
            reports: std::mem::take(&mut cx.reports),
        };
        self.next_seq += 1;
        cx.effects.push(Effect::Record(record));
    }

    pub(crate) fn set_notice(&mut self, text: impl Into<String>, now: Timestamp) {
        self.notice = Some(Notice {
            text: text.into(),
            until: now.plus_millis(NOTICE_MILLIS),
        });
    }

    /// A fresh device-made id (`{device}-{prefix}{n}`), unique per device.
    pub(crate) fn local_id(&mut self, prefix: &str) -> String {
        let n = self.next_local_id;
        self.next_local_id += 1;
        let device = self
            .enrollment
            .as_ref()
            .map_or("unenrolled", |e| e.device_id.as_str());
        format!("{device}-{prefix}{n}")
    }

    pub(crate) fn remember_command(
        &mut self,
        id: lanyard_protocol::CommandId,
        expires_at: Timestamp,
    ) {
        if self.applied_commands.len() >= MAX_APPLIED_COMMANDS {
            self.applied_commands.remove(0);
        }
        self.applied_commands.push(crate::state::AppliedCommand {
            command_id: id,
            expires_at,
        });
    }

    /// The next instant something changes by time alone.
    fn next_wake(&self, now: Timestamp) -> Option<Timestamp> {
        let mut candidates: Vec<Timestamp> = Vec::with_capacity(8);
        match &self.phase {
            Phase::CheckoutPending(p) => candidates.push(p.expires_at),
            Phase::CheckedOut(Checkout { due_at, .. }) => candidates.push(*due_at),
            Phase::Returning(r) => candidates.push(r.deadline),
            _ => {}
        }
        candidates.extend(self.pending_auth.as_ref().map(|p| p.deadline));
        candidates.extend(self.passcode_clear.as_ref().map(|p| p.next_retry_at));
        candidates.extend(self.notice.as_ref().map(|n| n.until));
        candidates.extend(compliance::next_change(self, now));
        candidates.into_iter().filter(|t| *t > now).min()
    }

    fn reissue_after_restart(&mut self, cx: &mut Ctx) {
        if let Phase::Returning(r) = &self.phase {
            let apps = self
                .policy
                .app_logouts
                .iter()
                .filter(|a| r.waiting.contains(&a.app))
                .cloned()
                .collect::<Vec<_>>();
            if !apps.is_empty() {
                cx.effect(Effect::LogOutApps { apps });
            }
        }
        if let Some(p) = &self.passcode_clear {
            cx.effect(Effect::RequestPasscodeClear {
                attempt: p.attempts,
            });
        }
    }

    fn finish(&mut self, mut cx: Ctx, restarted: bool) -> Vec<Effect> {
        let now = cx.now;
        if !cx.reports.is_empty() {
            self.record(None, &mut cx);
        }
        let mut effects = std::mem::take(&mut cx.effects);
        let screen = self.screen(now);
        if restarted || self.shown.as_ref() != Some(&screen) {
            effects.push(Effect::ShowScreen(screen.clone()));
            self.shown = Some(screen);
        }
        if cx.urgent {
            effects.push(Effect::RequestSync);
        }
        let wake = self.next_wake(now);
        if restarted || wake != self.scheduled_wake {
            if let Some(at) = wake {
                effects.push(Effect::ScheduleWake { at });
            }
            self.scheduled_wake = wake;
        }
        effects
    }
}
