//! Check-in: docking a checked-out phone, app logout, and passcode-clear tracking.
//!
//! Everything that makes a returned phone safe is local: the lock is immediate and the
//! app logouts are asked of the host. Only the passcode clear needs the MDM, so it is
//! tracked (and retried) apart from the return, which never waits for the network.

use lanyard_protocol::events::{LogoutOutcome, Report};
use lanyard_protocol::{AppId, Cause, DockLocation, Timestamp, UserRef};

use super::Ctx;
use crate::effect::Effect;
use crate::state::{Block, Locker, PasscodeClear, Phase, Return};

impl Locker {
    pub(super) fn on_docked(&mut self, location: DockLocation, cx: &mut Ctx) {
        self.dock.docked = Some(true);
        if location.launchpad.is_some() || location.port.is_some() {
            self.dock.last_location = location.clone();
        }
        cx.report(Report::Docked { location });
        if let Some(user) = self.returnable_user() {
            self.begin_return(user, Cause::Docked, cx);
        }
    }

    /// The user to check in, if this phase is one a dock (or a remote check-in) ends.
    pub(super) fn returnable_user(&self) -> Option<UserRef> {
        match &self.phase {
            Phase::CheckoutPending(p) => Some(p.assignment.user.clone()),
            Phase::CheckedOut(c) | Phase::Blocked(Block { held: Some(c), .. }) => {
                Some(c.assignment.user.clone())
            }
            _ => None,
        }
    }

    /// True when the checkout a remote check-in would end was granted by the server
    /// after `issued_at` (the check-in was queued for an earlier holder, or none).
    pub(super) fn grant_issued_after(&self, issued_at: Timestamp) -> bool {
        let assignment = match &self.phase {
            Phase::CheckoutPending(p) => &p.assignment,
            Phase::CheckedOut(c) | Phase::Blocked(Block { held: Some(c), .. }) => &c.assignment,
            _ => return false,
        };
        assignment.grant_issued_at.is_some_and(|g| g > issued_at)
    }

    /// Locks at once, asks the apps to log out and the MDM to clear the passcode. With no
    /// apps configured the device is checked in immediately.
    pub(super) fn begin_return(&mut self, user: UserRef, cause: Cause, cx: &mut Ctx) {
        self.pending_auth = None;
        self.start_passcode_clear(cx);
        if self.policy.blank_page_before_check_in {
            cx.effect(Effect::OpenBlankPage);
        }
        let apps = self.policy.app_logouts.clone();
        if apps.is_empty() {
            self.enter(Phase::CheckedIn, cause, cx);
            return;
        }
        let waiting = apps.iter().map(|a| a.app.clone()).collect();
        let deadline = cx
            .now
            .plus_secs(self.policy.checkout.app_logout_timeout_secs);
        cx.effect(Effect::LogOutApps { apps });
        let ret = Return {
            user,
            started_at: cx.now,
            deadline,
            waiting,
            outcomes: Vec::new(),
        };
        self.enter(Phase::Returning(ret), cause, cx);
    }

    pub(super) fn on_app_logout(&mut self, app: AppId, outcome: LogoutOutcome, cx: &mut Ctx) {
        cx.report(Report::AppLogout {
            app: app.clone(),
            outcome: outcome.clone(),
        });
        let Phase::Returning(r) = &mut self.phase else {
            return;
        };
        let Some(pos) = r.waiting.iter().position(|a| a == &app) else {
            return;
        };
        r.waiting.remove(pos);
        r.outcomes.push((app, outcome));
        if r.waiting.is_empty() {
            self.finish_return(cx);
        }
    }

    /// Ends a return: apps that never answered are reported as timed out.
    pub(super) fn finish_return(&mut self, cx: &mut Ctx) {
        let Phase::Returning(r) = &mut self.phase else {
            return;
        };
        for app in r.waiting.drain(..) {
            cx.report(Report::AppLogout {
                app,
                outcome: LogoutOutcome::TimedOut,
            });
        }
        self.enter(Phase::CheckedIn, Cause::ReturnCompleted, cx);
    }

    /// Starts tracking a passcode clear unless the device is known to have no passcode.
    pub(super) fn start_passcode_clear(&mut self, cx: &mut Ctx) {
        if self.facts.passcode_present == Some(false) || self.passcode_clear.is_some() {
            return;
        }
        let retry = self.policy.checkout.passcode_clear_retry_secs;
        self.passcode_clear = Some(PasscodeClear {
            requested_at: cx.now,
            attempts: 1,
            next_retry_at: cx.now.plus_secs(retry),
        });
        cx.effect(Effect::RequestPasscodeClear { attempt: 1 });
        cx.report(Report::PasscodeClearRequested { attempt: 1 });
    }

    /// Asks again, with a doubling delay, until the clear is confirmed.
    pub(super) fn retry_passcode_clear(&mut self, cx: &mut Ctx) {
        let c = &self.policy.checkout;
        let (base, max) = (c.passcode_clear_retry_secs, c.passcode_clear_retry_max_secs);
        let Some(p) = self
            .passcode_clear
            .as_mut()
            .filter(|p| cx.now >= p.next_retry_at)
        else {
            return;
        };
        p.attempts = p.attempts.saturating_add(1);
        let factor = 1u64
            .checked_shl((p.attempts - 1).min(20))
            .unwrap_or(u64::MAX);
        p.next_retry_at = cx.now.plus_secs(base.saturating_mul(factor).min(max));
        let attempt = p.attempts;
        cx.effect(Effect::RequestPasscodeClear { attempt });
        cx.report(Report::PasscodeClearRequested { attempt });
    }

    /// The passcode is gone (MDM acknowledgement or the platform's own report).
    pub(super) fn passcode_confirmed_cleared(&mut self, cx: &mut Ctx) {
        self.facts.passcode_present = Some(false);
        if self.passcode_clear.take().is_some() {
            cx.report(Report::PasscodeCleared);
        }
    }
}
