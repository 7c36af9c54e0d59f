//! Checkout: badge, password and PIN unlocks, grants, and the unplug that completes them.

use lanyard_protocol::events::{GrantRejection, Report};
use lanyard_protocol::{
    AuthorizeRequest, BadgeId, Cause, CheckoutGrant, CommandId, CommandRejection, Credential,
    GrantId, Password, Pin, RequestId, UnlockMethod, UserRef,
};

use super::Ctx;
use crate::compliance;
use crate::effect::Effect;
use crate::offline::{self, OfflineMiss};
use crate::screen::fill_template;
use crate::state::{Assignment, Block, Checkout, Locker, Pending, PendingAuth, Phase};

pub use lanyard_protocol::policy::MANAGED_PIN_USER;

/// Whether someone may start an unlock in this phase: `Err(Some(hint))` refuses with a
/// hint for the screen, `Err(None)` refuses silently (the phone is already in use).
fn unlock_allowed(phase: &Phase) -> Result<(), Option<String>> {
    match phase {
        Phase::CheckedIn | Phase::Blocked(Block { held: Some(_), .. }) => Ok(()),
        Phase::CheckedOut(_) => Err(None),
        Phase::Unenrolled => Err(Some("This device is not enrolled yet.".into())),
        Phase::CheckoutPending(p) => Err(Some(format!(
            "Reserved for {}. Unplug the device to start.",
            p.assignment.user.display_name
        ))),
        Phase::Returning(_) => Err(Some("Checking in. Try again in a moment.".into())),
        Phase::Blocked(Block { held: None, .. }) => {
            Err(Some("Checkout is blocked on this device.".into()))
        }
    }
}

impl Locker {
    /// True (and the hint shown) when no unlock may start now.
    fn refuse_unlock(&mut self, cx: &mut Ctx) -> bool {
        match unlock_allowed(&self.phase) {
            Ok(()) => false,
            Err(hint) => {
                if let Some(hint) = hint {
                    self.set_notice(hint, cx.now);
                }
                true
            }
        }
    }

    pub(super) fn on_badge(&mut self, badge: BadgeId, cx: &mut Ctx) {
        if self.refuse_unlock(cx) {
            return;
        }
        if self.link.reachable {
            let credential = Credential::Badge {
                badge: badge.clone(),
            };
            self.request_authorization(credential, UnlockMethod::PhoneBadge, Some(badge), cx);
        } else {
            self.offline_badge(&badge, None, cx);
        }
    }

    pub(super) fn on_password(&mut self, username: String, password: Password, cx: &mut Ctx) {
        if self.refuse_unlock(cx) {
            return;
        }
        let username = username.trim().to_owned();
        if username.is_empty() || password.expose().is_empty() {
            self.set_notice("Enter your username and password.", cx.now);
            return;
        }
        let credential = Credential::Password { username, password };
        self.request_authorization(credential, UnlockMethod::Password, None, cx);
    }

    fn request_authorization(
        &mut self,
        credential: Credential,
        method: UnlockMethod,
        badge: Option<BadgeId>,
        cx: &mut Ctx,
    ) {
        let Some(device_id) = self.enrollment.as_ref().map(|e| e.device_id.clone()) else {
            return;
        };
        let request_id = RequestId(self.local_id("r"));
        let deadline = cx
            .now
            .plus_secs(self.policy.checkout.authorize_timeout_secs);
        self.pending_auth = Some(PendingAuth {
            request_id: request_id.clone(),
            method,
            deadline,
            badge,
        });
        self.notice = None;
        cx.report(Report::AuthorizationRequested {
            request_id: request_id.clone(),
            method,
        });
        cx.effect(Effect::Authorize(AuthorizeRequest {
            request_id,
            device_id,
            credential,
            presented_at: cx.now,
        }));
    }

    pub(super) fn on_authorization_failed(&mut self, request_id: &RequestId, cx: &mut Ctx) {
        if self
            .pending_auth
            .as_ref()
            .is_some_and(|p| &p.request_id == request_id)
        {
            self.authorization_unanswered(cx);
        }
    }

    /// The server did not answer: a badge falls back to the offline list, a password
    /// cannot be checked offline.
    pub(super) fn authorization_unanswered(&mut self, cx: &mut Ctx) {
        let Some(pending) = self.pending_auth.take() else {
            return;
        };
        self.link.reachable = false;
        // Whatever the server decided for this request arrives too late: the phone
        // refuses it (Abandoned) and tells the server, which frees it at once.
        cx.report(Report::AuthorizationAbandoned {
            request_id: pending.request_id.clone(),
        });
        match pending.badge {
            Some(badge) => self.offline_badge(&badge, Some(pending.request_id), cx),
            None => {
                cx.report(Report::AuthorizationUnavailable {
                    request_id: pending.request_id,
                });
                let hint = match pending.method {
                    UnlockMethod::Password => {
                        "Server unreachable: passwords cannot be checked. Use your badge or the emergency PIN."
                    }
                    _ => "Server unreachable. Tap your badge again.",
                };
                self.set_notice(hint, cx.now);
            }
        }
    }

    fn offline_badge(&mut self, badge: &BadgeId, request_id: Option<RequestId>, cx: &mut Ctx) {
        if self.refuse_unlock(cx) {
            return;
        }
        let Some(device) = self.enrollment.as_ref().map(|e| &e.device_id) else {
            return;
        };
        let found =
            offline::match_badge(self.offline_credentials.as_ref(), device, badge, cx.now).cloned();
        match found {
            Ok(user) => self.unlock_offline(user, UnlockMethod::OfflineBadge, cx),
            Err(miss) => {
                if let Some(request_id) = request_id {
                    cx.report(Report::AuthorizationUnavailable { request_id });
                }
                if miss == OfflineMiss::NotListed {
                    cx.report(Report::OfflineBadgeRejected);
                }
                self.set_notice(
                    "Server unreachable and this badge cannot be checked offline. Use the emergency PIN or try again.",
                    cx.now,
                );
            }
        }
    }

    /// Grants the device with no server (offline badge or PIN) under a device-made
    /// grant id, and reports it for the server to see on reconnect.
    fn unlock_offline(&mut self, user: UserRef, method: UnlockMethod, cx: &mut Ctx) {
        let grant_id = GrantId(self.local_id("o"));
        let assignment = self.assignment(user.clone(), grant_id, method, None, cx);
        if self.apply_grant(assignment, cx) {
            cx.report(Report::OfflineUnlock { method, user });
        }
    }

    pub(super) fn on_pin(&mut self, pin: &Pin, cx: &mut Ctx) {
        if self.refuse_unlock(cx) {
            return;
        }
        let now = cx.now;
        if let Some(until) = self.pin_guard.locked_until.filter(|u| *u > now) {
            let secs = until.millis_since(now).div_ceil(1000);
            self.set_notice(format!("Too many wrong PINs. Try again in {secs} s."), now);
            cx.report(Report::PinRejected {
                failures: self.pin_guard.failures,
                locked_until: Some(until),
            });
            return;
        }
        if !offline::pin_is_well_formed(pin) {
            self.set_notice("The emergency PIN is 4 to 8 digits.", now);
            return;
        }
        // The signed policy's PIN wins; the MDM's managed one is the fallback.
        let managed =
            self.managed_emergency_pin
                .clone()
                .map(|hash| lanyard_protocol::policy::EmergencyPin {
                    hash,
                    user: UserRef {
                        username: MANAGED_PIN_USER.into(),
                        display_name: "Emergency access".into(),
                    },
                });
        let Some(emergency) = self.policy.emergency_pin.clone().or(managed) else {
            self.set_notice("Emergency unlock is not set up on this device.", now);
            return;
        };
        if emergency.hash.verify(pin.expose().as_bytes()) {
            self.pin_guard = Default::default();
            self.unlock_offline(emergency.user, UnlockMethod::EmergencyPin, cx);
        } else {
            let c = &self.policy.checkout;
            let failures = self.pin_guard.failures.saturating_add(1);
            let locked_until =
                offline::pin_lockout_secs(failures, c.pin_free_attempts, c.pin_lockout_base_secs)
                    .map(|s| now.plus_secs(s));
            self.pin_guard.failures = failures;
            self.pin_guard.locked_until = locked_until;
            cx.report(Report::PinRejected {
                failures,
                locked_until,
            });
            self.set_notice("Wrong PIN.", now);
        }
    }

    pub(crate) fn assignment(
        &self,
        user: UserRef,
        grant_id: GrantId,
        method: UnlockMethod,
        display_text: Option<String>,
        cx: &Ctx,
    ) -> Assignment {
        let display_text = display_text.unwrap_or_else(|| {
            fill_template(
                &self.policy.checkout_text_template,
                &user.display_name,
                &user.username,
            )
        });
        Assignment {
            user,
            grant_id,
            method,
            display_text,
            granted_at: cx.now,
            grant_issued_at: None,
        }
    }

    /// A grant from the server (phone tap, password, or cart-reader tap).
    pub(super) fn on_grant(
        &mut self,
        command_id: CommandId,
        grant: CheckoutGrant,
        issued_at: lanyard_protocol::Timestamp,
        cx: &mut Ctx,
    ) {
        if let Some(request_id) = &grant.request_id {
            if self.pending_auth.as_ref().map(|p| &p.request_id) != Some(request_id) {
                // Not the request the phone waits for: one it gave up on (the clinician
                // was told the tap failed) or an older one. Never unlock for it.
                cx.report(Report::CommandRejected {
                    command_id: Some(command_id),
                    rejection: CommandRejection::Abandoned,
                });
                return;
            }
            self.pending_auth = None;
        }
        let mut assignment = self.assignment(
            grant.user,
            grant.grant_id,
            grant.method,
            grant.display_text,
            cx,
        );
        assignment.grant_issued_at = Some(issued_at);
        self.apply_grant(assignment, cx);
    }

    /// Applies a grant, from the server or from an offline unlock. One user per device:
    /// a grant for someone else is refused while the device is assigned.
    pub(crate) fn apply_grant(&mut self, a: Assignment, cx: &mut Ctx) -> bool {
        enum Step {
            Start,
            Refresh,
            Reauthenticate,
            Reject(GrantRejection),
        }
        let now = cx.now;
        let same_user = |u: &UserRef| u.username == a.user.username;
        let step = match &self.phase {
            Phase::Unenrolled => Step::Reject(GrantRejection::NotEnrolled),
            Phase::CheckedIn if !compliance::blocking(self).is_empty() => {
                Step::Reject(GrantRejection::ComplianceBlocked)
            }
            Phase::CheckedIn => Step::Start,
            Phase::CheckoutPending(p) if same_user(&p.assignment.user) => Step::Refresh,
            Phase::CheckedOut(c) if same_user(&c.assignment.user) => Step::Reauthenticate,
            Phase::Blocked(Block { held: Some(c), .. }) if same_user(&c.assignment.user) => {
                Step::Reauthenticate
            }
            Phase::CheckoutPending(_)
            | Phase::CheckedOut(_)
            | Phase::Blocked(Block { held: Some(_), .. }) => {
                Step::Reject(GrantRejection::AssignedToAnotherUser)
            }
            Phase::Returning(_) => Step::Reject(GrantRejection::Returning),
            Phase::Blocked(Block { held: None, .. }) => {
                Step::Reject(GrantRejection::ComplianceBlocked)
            }
        };
        let c = &self.policy.checkout;
        let (window, lending) = (c.undock_window_secs, c.lending_period_secs);
        match step {
            Step::Start => {
                let cause = Cause::Granted {
                    grant_id: a.grant_id.clone(),
                    method: a.method,
                };
                let phase = if self.dock.is_docked() {
                    Phase::CheckoutPending(Pending {
                        assignment: a,
                        expires_at: now.plus_secs(window),
                    })
                } else {
                    // Already unplugged: nothing left to wait for.
                    Phase::CheckedOut(Checkout {
                        assignment: a,
                        since: now,
                        due_at: now.plus_secs(lending),
                        reauthenticated_at: None,
                    })
                };
                self.enter(phase, cause, cx);
            }
            Step::Refresh => {
                if let Phase::CheckoutPending(p) = &mut self.phase {
                    p.assignment = a;
                    p.expires_at = now.plus_secs(window);
                }
            }
            Step::Reauthenticate => match &mut self.phase {
                Phase::CheckedOut(c) => c.reauthenticated_at = Some(now),
                Phase::Blocked(Block { held: Some(c), .. }) => {
                    let mut c = c.clone();
                    c.reauthenticated_at = Some(now);
                    self.enter(Phase::CheckedOut(c), Cause::Reauthenticated, cx);
                }
                _ => {}
            },
            Step::Reject(reason) => {
                cx.report(Report::GrantRejected {
                    grant_id: a.grant_id,
                    reason,
                });
                let hint = match reason {
                    GrantRejection::AssignedToAnotherUser => {
                        "This device is assigned to someone else."
                    }
                    GrantRejection::Returning => "Checking in. Try again in a moment.",
                    GrantRejection::ComplianceBlocked => "Checkout is blocked on this device.",
                    GrantRejection::NotEnrolled => "This device is not enrolled yet.",
                };
                self.set_notice(hint, now);
                return false;
            }
        }
        self.notice = None;
        true
    }

    pub(super) fn on_undocked(&mut self, cx: &mut Ctx) {
        self.dock.docked = Some(false);
        cx.report(Report::Undocked);
        if let Phase::CheckoutPending(p) = &self.phase {
            let checkout = Checkout {
                assignment: p.assignment.clone(),
                since: cx.now,
                due_at: cx.now.plus_secs(self.policy.checkout.lending_period_secs),
                reauthenticated_at: None,
            };
            self.enter(Phase::CheckedOut(checkout), Cause::Undocked, cx);
        }
    }
}
