//! The checkout / check-in journey of seeds 000 and 001, one rule per test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

mod common;

use common::{DEVICE, Harness, user};
use lanyard_agent::{Effect, Event, FactsUpdate, Screen};
use lanyard_protocol::events::{GrantRejection, LogoutOutcome, Report};
use lanyard_protocol::kdf::SlowHash;
use lanyard_protocol::policy::EmergencyPin;
use lanyard_protocol::{
    AppId, Cause, CheckoutGrant, CommandRejection, Credential, DenialCode, DeviceStatus, GrantId,
    Password, Policy, ServerCommand, Timestamp, UnlockMethod,
};

fn authorize_request(h: &Harness) -> Option<lanyard_protocol::AuthorizeRequest> {
    h.last.iter().find_map(|e| match e {
        Effect::Authorize(r) => Some(r.clone()),
        _ => None,
    })
}

#[test]
fn badge_tap_asks_the_server_then_grant_shows_the_name_and_unplug_completes() {
    let mut h = Harness::new();
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    h.tap("0012345");
    let req = authorize_request(&h).expect("authorize effect");
    assert!(matches!(req.credential, Credential::Badge { .. }));
    assert_eq!(req.device_id.as_str(), DEVICE);
    assert!(matches!(h.screen(), Screen::Locked { busy: true, .. }));

    h.grant("alice", UnlockMethod::PhoneBadge);
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
    assert!(h.locker.pending_auth.is_none());
    match h.screen() {
        Screen::CheckoutPending {
            display_name, text, ..
        } => {
            assert_eq!(display_name, "alice (display)");
            assert_eq!(text, "Checked out to alice (display)");
        }
        s => panic!("unexpected screen {s:?}"),
    }
    let rec = h.last_record().expect("record");
    assert_eq!(
        rec.user.as_ref().map(|u| u.username.as_str()),
        Some("alice")
    );
    assert!(matches!(
        rec.transition.as_ref().map(|t| &t.cause),
        Some(Cause::Granted { .. })
    ));

    h.advance_secs(20);
    h.undock();
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
    let t = h
        .last_record()
        .and_then(|r| r.transition.clone())
        .expect("transition");
    assert_eq!(
        (t.from, t.to, t.cause),
        (
            DeviceStatus::CheckoutPending,
            DeviceStatus::CheckedOut,
            Cause::Undocked
        )
    );
    assert!(h.screen().is_unlocked());
}

#[test]
fn a_grant_not_followed_by_an_unplug_expires_after_the_window_and_checks_in() {
    let mut h = Harness::new();
    h.grant("alice", UnlockMethod::CartBadge);
    assert!(h.has(|e| matches!(e, Effect::ScheduleWake { at } if *at == h.now.plus_secs(60))));
    h.advance_secs(59);
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
    h.advance_secs(1);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert_eq!(h.username(), None);
    let t = h
        .last_record()
        .and_then(|r| r.transition.clone())
        .expect("transition");
    assert_eq!(t.cause, Cause::GrantExpired);
    assert!(h.has(|e| matches!(e, Effect::ShowScreen(Screen::Locked { .. }))));
    // An unplug after the window does not check the phone out.
    h.undock();
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert!(!h.screen().is_unlocked());
}

#[test]
fn late_unplug_with_no_tick_in_between_still_respects_the_window() {
    let mut h = Harness::new();
    h.grant("alice", UnlockMethod::CartBadge);
    h.now = h.now.plus_secs(61);
    h.undock();
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
}

#[test]
fn the_window_comes_from_policy() {
    let mut p = Policy::default();
    p.checkout.undock_window_secs = 10;
    let mut h = Harness::with_policy(p);
    h.grant("alice", UnlockMethod::CartBadge);
    h.advance_secs(10);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
}

#[test]
fn grant_to_an_unplugged_phone_completes_at_once() {
    let mut h = Harness::new();
    h.undock();
    h.grant("alice", UnlockMethod::PhoneBadge);
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
}

fn checked_out(h: &mut Harness, name: &str) {
    h.grant(name, UnlockMethod::PhoneBadge);
    h.undock();
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
}

#[test]
fn docking_a_checked_out_phone_locks_logs_out_and_clears_the_passcode_with_no_server() {
    let mut h = Harness::new();
    checked_out(&mut h, "alice");
    h.send(Event::SyncFailed);
    h.advance_secs(3600);
    h.dock();
    assert_eq!(h.status(), DeviceStatus::Returning);
    assert!(!h.screen().is_unlocked());
    assert!(h.has(|e| matches!(e, Effect::ShowScreen(Screen::Locked { .. }))));
    assert!(h.has(
        |e| matches!(e, Effect::LogOutApps { apps } if apps[0].app.as_str() == "com.epic.rover")
    ));
    assert!(h.has(|e| matches!(e, Effect::RequestPasscodeClear { attempt: 1 })));

    h.send(Event::AppLogoutFinished {
        app: AppId::new("com.epic.rover"),
        outcome: LogoutOutcome::Done,
    });
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert_eq!(h.username(), None, "check-in clears the Device User");
    let rec = h.last_record().expect("record");
    assert_eq!(rec.user, None);
    assert_eq!(
        rec.transition.as_ref().map(|t| t.cause.clone()),
        Some(Cause::ReturnCompleted)
    );
}

#[test]
fn an_app_that_never_answers_does_not_hold_the_check_in() {
    let mut h = Harness::new();
    checked_out(&mut h, "alice");
    h.dock();
    h.advance_secs(29);
    assert_eq!(h.status(), DeviceStatus::Returning);
    h.advance_secs(1);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert!(h.last_reports().contains(&Report::AppLogout {
        app: AppId::new("com.epic.rover"),
        outcome: LogoutOutcome::TimedOut
    }));
}

#[test]
fn with_no_apps_to_log_out_a_dock_checks_in_immediately() {
    let mut h = Harness::with_policy(Policy::default());
    checked_out(&mut h, "alice");
    h.dock();
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    let t = h
        .last_record()
        .and_then(|r| r.transition.clone())
        .expect("transition");
    assert_eq!((t.from, t.cause), (DeviceStatus::CheckedOut, Cause::Docked));
}

#[test]
fn passcode_clear_is_retried_with_growing_delays_until_confirmed() {
    let mut h = Harness::with_policy(Policy::default());
    checked_out(&mut h, "alice");
    h.dock();
    assert!(h.has(|e| matches!(e, Effect::RequestPasscodeClear { attempt: 1 })));
    h.advance_secs(30);
    assert!(h.has(|e| matches!(e, Effect::RequestPasscodeClear { attempt: 2 })));
    h.advance_secs(30);
    assert!(
        !h.has(|e| matches!(e, Effect::RequestPasscodeClear { .. })),
        "second delay is 60 s"
    );
    h.advance_secs(30);
    assert!(h.has(|e| matches!(e, Effect::RequestPasscodeClear { attempt: 3 })));
    h.command(ServerCommand::PasscodeClearResult {
        cleared: false,
        detail: Some("NotNow".into()),
    });
    assert!(h.locker.passcode_clear.is_some());
    h.command(ServerCommand::PasscodeClearResult {
        cleared: true,
        detail: None,
    });
    assert!(h.last_reports().contains(&Report::PasscodeCleared));
    assert!(h.locker.passcode_clear.is_none());
    h.advance_secs(10_000);
    assert!(!h.has(|e| matches!(e, Effect::RequestPasscodeClear { .. })));
}

#[test]
fn the_platform_reporting_no_passcode_also_confirms_the_clear() {
    let mut h = Harness::with_policy(Policy::default());
    checked_out(&mut h, "alice");
    h.dock();
    h.facts(FactsUpdate {
        passcode_present: Some(false),
        ..Default::default()
    });
    assert!(h.locker.passcode_clear.is_none());
    assert!(h.last_reports().contains(&Report::PasscodeCleared));
}

#[test]
fn one_user_per_device() {
    let mut h = Harness::new();
    h.grant("alice", UnlockMethod::CartBadge);
    h.grant("bob", UnlockMethod::CartBadge);
    assert_eq!(h.username().as_deref(), Some("alice"));
    assert!(h.last_reports().iter().any(|r| matches!(
        r,
        Report::GrantRejected {
            reason: GrantRejection::AssignedToAnotherUser,
            ..
        }
    )));
    h.undock();
    h.grant("bob", UnlockMethod::PhoneBadge);
    assert_eq!(h.username().as_deref(), Some("alice"));
    // The same user again is a re-authentication, not a second assignment.
    h.grant("alice", UnlockMethod::PhoneBadge);
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
}

#[test]
fn a_second_tap_by_the_same_user_while_pending_renews_the_window() {
    let mut h = Harness::new();
    h.grant("alice", UnlockMethod::CartBadge);
    h.advance_secs(50);
    h.grant("alice", UnlockMethod::CartBadge);
    h.advance_secs(50);
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
}

#[test]
fn grants_are_refused_while_returning() {
    let mut h = Harness::new();
    checked_out(&mut h, "alice");
    h.dock();
    h.grant("bob", UnlockMethod::CartBadge);
    assert_eq!(h.status(), DeviceStatus::Returning);
    assert!(h.last_reports().iter().any(|r| matches!(
        r,
        Report::GrantRejected {
            reason: GrantRejection::Returning,
            ..
        }
    )));
}

#[test]
fn offline_badge_in_the_signed_list_unlocks_and_is_reported() {
    let mut h = Harness::new();
    h.offline_list(&[("0012345", "alice")], 86_400);
    h.send(Event::SyncFailed);
    h.tap("0012345");
    assert!(
        authorize_request(&h).is_none(),
        "known offline: no server round trip"
    );
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
    assert_eq!(h.username().as_deref(), Some("alice"));
    assert!(h.last_reports().contains(&Report::OfflineUnlock {
        method: UnlockMethod::OfflineBadge,
        user: user("alice")
    }));
    h.undock();
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
}

#[test]
fn unlisted_or_expired_offline_badges_stay_locked() {
    let mut h = Harness::new();
    h.offline_list(&[("0012345", "alice")], 3600);
    h.send(Event::SyncFailed);
    h.tap("9999999");
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert!(h.last_reports().contains(&Report::OfflineBadgeRejected));
    assert!(matches!(
        h.screen(),
        Screen::Locked {
            notice: Some(_),
            ..
        }
    ));
    h.advance_secs(3600);
    h.tap("0012345");
    assert_eq!(
        h.status(),
        DeviceStatus::CheckedIn,
        "list past its validity"
    );
}

#[test]
fn an_unanswered_tap_falls_back_to_the_offline_list() {
    let mut h = Harness::new();
    h.offline_list(&[("0012345", "alice")], 86_400);
    h.tap("0012345");
    let req = authorize_request(&h).expect("asked the server first");
    h.send(Event::AuthorizationFailed {
        request_id: req.request_id.clone(),
    });
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
    assert!(!h.locker.link.reachable);
    let reports = h.last_reports();
    assert!(
        reports
            .iter()
            .any(|r| matches!(r, Report::OfflineUnlock { .. }))
    );

    // Same story when the server is silent until the deadline.
    let mut h = Harness::new();
    h.offline_list(&[("0012345", "alice")], 86_400);
    h.tap("0012345");
    h.advance_secs(4);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    h.advance_secs(1);
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
}

fn pin_policy(pin: &str) -> Policy {
    let mut p = Policy::default();
    p.emergency_pin = Some(EmergencyPin {
        hash: SlowHash::new(pin.as_bytes(), b"pin-salt".to_vec(), 1000),
        user: lanyard_protocol::UserRef {
            username: "emergency".into(),
            display_name: "Emergency access".into(),
        },
    });
    p
}

#[test]
fn emergency_pin_unlocks_with_no_network_and_is_reported() {
    let mut h = Harness::with_policy(pin_policy("482916"));
    h.send(Event::SyncFailed);
    h.pin("482916");
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
    assert_eq!(h.username().as_deref(), Some("emergency"));
    assert!(h.last_reports().iter().any(|r| matches!(
        r,
        Report::OfflineUnlock {
            method: UnlockMethod::EmergencyPin,
            ..
        }
    )));
    h.undock();
    assert_eq!(h.screen().display_name(), Some("Emergency access"));
}

#[test]
fn the_mdm_configured_pin_unlocks_when_the_policy_sets_none_and_yields_to_the_policy() {
    let mut h = Harness::new();
    h.pin("482916");
    assert_eq!(
        h.status(),
        DeviceStatus::CheckedIn,
        "no PIN set up anywhere"
    );
    let managed = SlowHash::new(b"482916", b"mdm-salt".to_vec(), 1000);
    h.send(Event::ManagedEmergencyPin {
        hash: Some(managed.clone()),
    });
    h.pin("000000");
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    h.pin("482916");
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
    assert_eq!(h.username().as_deref(), Some("emergency"));

    // A signed policy PIN takes precedence over the managed one.
    let mut h = Harness::with_policy(pin_policy("135790"));
    h.send(Event::ManagedEmergencyPin {
        hash: Some(managed),
    });
    h.pin("482916");
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    h.pin("135790");
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
}

#[test]
fn wrong_pins_are_rate_limited_with_growing_delays() {
    let mut h = Harness::with_policy(pin_policy("482916"));
    for _ in 0..2 {
        h.pin("000000");
        assert!(h.last_reports().iter().any(|r| matches!(
            r,
            Report::PinRejected {
                locked_until: None,
                ..
            }
        )));
    }
    h.pin("000000");
    let until = h
        .locker
        .pin_guard
        .locked_until
        .expect("locked after 3 failures");
    assert_eq!(until, h.now.plus_secs(30));
    // Even the right PIN is not checked during the delay.
    h.pin("482916");
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    h.advance_secs(30);
    h.pin("000000");
    assert_eq!(h.locker.pin_guard.locked_until, Some(h.now.plus_secs(60)));
    h.advance_secs(60);
    h.pin("482916");
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
    assert_eq!(h.locker.pin_guard.failures, 0);
}

#[test]
fn malformed_pins_are_refused_without_counting() {
    let mut h = Harness::with_policy(pin_policy("482916"));
    for bad in ["123", "123456789", "12ab"] {
        h.pin(bad);
        assert_eq!(h.locker.pin_guard.failures, 0);
        assert!(matches!(
            h.screen(),
            Screen::Locked {
                notice: Some(_),
                ..
            }
        ));
    }
    let mut h = Harness::new();
    h.pin("1234");
    assert_eq!(h.status(), DeviceStatus::CheckedIn, "no PIN configured");
}

#[test]
fn password_goes_to_the_server_and_a_denial_is_shown() {
    let mut h = Harness::new();
    h.send(Event::PasswordEntered {
        username: " alice ".into(),
        password: Password::new("pw"),
    });
    let req = authorize_request(&h).expect("authorize");
    match &req.credential {
        Credential::Password { username, password } => {
            assert_eq!(username, "alice");
            assert_eq!(password.expose(), "pw");
        }
        c => panic!("unexpected {c:?}"),
    }
    h.command(ServerCommand::DenyCheckout {
        request_id: req.request_id.clone(),
        code: DenialCode::InvalidCredentials,
    });
    assert!(
        matches!(h.screen(), Screen::Locked { notice: Some(n), .. } if n.contains("incorrect"))
    );
    // The notice goes away by itself.
    h.advance_secs(10);
    assert!(h.has(|e| matches!(e, Effect::ShowScreen(Screen::Locked { notice: None, .. }))));
}

#[test]
fn password_with_the_server_away_explains_the_alternatives() {
    let mut h = Harness::new();
    h.send(Event::PasswordEntered {
        username: "alice".into(),
        password: Password::new("pw"),
    });
    let req = authorize_request(&h).expect("authorize");
    h.send(Event::AuthorizationFailed {
        request_id: req.request_id,
    });
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert!(matches!(h.screen(), Screen::Locked { notice: Some(n), .. } if n.contains("PIN")));
    h.send(Event::PasswordEntered {
        username: "".into(),
        password: Password::new(""),
    });
    assert!(authorize_request(&h).is_none());
}

#[test]
fn replayed_expired_and_misaddressed_commands_are_refused_and_reported() {
    let mut h = Harness::new();
    let env = h.envelope(ServerCommand::CheckIn {
        reason: "test".into(),
        as_of: None,
    });
    h.deliver(&env);
    h.deliver(&env);
    assert!(h.last_reports().iter().any(|r| matches!(
        r,
        Report::CommandRejected {
            rejection: CommandRejection::Replayed,
            ..
        }
    )));
    let mut old = h.envelope(ServerCommand::Unenroll);
    old.expires_at = Timestamp(h.now.0 - 3_600_000);
    old.issued_at = Timestamp(h.now.0 - 3_700_000);
    h.deliver(&old);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert!(h.last_reports().iter().any(|r| matches!(
        r,
        Report::CommandRejected {
            rejection: CommandRejection::Expired,
            ..
        }
    )));
    let mut other = h.envelope(ServerCommand::Unenroll);
    other.device_id = "dev-2".into();
    h.deliver(&other);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    h.send(Event::CommandRefused {
        command_id: None,
        rejection: CommandRejection::BadSignature {
            detail: "bad".into(),
        },
    });
    assert!(h.last_record().is_some(), "edge refusals are recorded too");
}

#[test]
fn remote_check_in_runs_the_return_without_a_dock() {
    let mut h = Harness::new();
    checked_out(&mut h, "alice");
    h.command(ServerCommand::CheckIn {
        reason: "lost badge".into(),
        as_of: None,
    });
    assert_eq!(h.status(), DeviceStatus::Returning);
    assert!(!h.screen().is_unlocked());
    h.advance_secs(30);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
}

#[test]
fn a_check_in_queued_before_the_grant_cannot_take_the_phone_from_its_new_user() {
    let mut h = Harness::new();
    // A rule's check-in is queued while the phone sits in the cart...
    let stale = h.envelope(ServerCommand::CheckIn {
        reason: "workflow Check In".into(),
        as_of: None,
    });
    h.advance_secs(2);
    // ...alice taps and is granted, and only then does the check-in arrive.
    checked_out(&mut h, "alice");
    h.deliver(&stale);
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
    assert_eq!(h.username().as_deref(), Some("alice"));
    assert!(h.last_reports().contains(&Report::CommandRejected {
        command_id: Some(stale.command_id.clone()),
        rejection: CommandRejection::Superseded,
    }));
    // A rule's check-in issued after the grant, for a trigger that fired before it.
    h.advance_secs(2);
    h.command(ServerCommand::CheckIn {
        reason: "workflow Check In".into(),
        as_of: Some(stale.issued_at),
    });
    assert_eq!(h.status(), DeviceStatus::CheckedOut);
    // A check-in meant for the holder still returns the phone.
    h.advance_secs(2);
    h.command(ServerCommand::CheckIn {
        reason: "lost badge".into(),
        as_of: None,
    });
    assert_eq!(h.status(), DeviceStatus::Returning);
}

#[test]
fn unenroll_returns_to_the_enrollment_screen() {
    let mut h = Harness::new();
    h.command(ServerCommand::Unenroll);
    assert_eq!(h.status(), DeviceStatus::Unenrolled);
    assert_eq!(h.screen(), Screen::Enrollment);
    h.tap("0012345");
    assert!(authorize_request(&h).is_none());
}

#[test]
fn host_restart_reissues_the_safe_effects() {
    let mut h = Harness::new();
    checked_out(&mut h, "alice");
    h.dock();
    // Simulate a crash: the store reloads the last durable state.
    let json = serde_json::to_string(&h.locker).expect("serialize");
    h.locker = serde_json::from_str(&json).expect("deserialize");
    h.send(Event::HostStarted);
    assert!(h.has(|e| matches!(e, Effect::ShowScreen(Screen::Locked { .. }))));
    assert!(h.has(|e| matches!(e, Effect::LogOutApps { .. })));
    assert!(h.has(|e| matches!(e, Effect::RequestPasscodeClear { .. })));
    assert!(h.has(|e| matches!(e, Effect::ScheduleWake { .. })));
    assert!(h.last_record().is_none(), "a restart is not a state change");
}

#[test]
fn raw_badge_ids_never_reach_records_or_persisted_state() {
    let mut h = Harness::new();
    h.offline_list(&[("31337-BADGE", "alice")], 86_400);
    h.tap("31337-BADGE");
    let state = serde_json::to_string(&h.locker).expect("serialize");
    assert!(
        !state.contains("31337"),
        "pending tap must not persist the badge"
    );
    h.send(Event::SyncFailed);
    h.advance_secs(10);
    h.tap("31337-BADGE");
    let all = serde_json::to_string(&h.records).expect("serialize");
    assert!(!all.contains("31337"));
    assert!(!format!("{:?}", h.locker).contains("31337"));
}

#[test]
fn every_record_carries_the_next_sequence_number() {
    let mut h = Harness::new();
    checked_out(&mut h, "alice");
    h.dock();
    h.advance_secs(60);
    let seqs: Vec<u64> = h.records.iter().map(|r| r.seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
}

#[test]
fn facts_are_reported_when_they_change_meaningfully() {
    let mut h = Harness::new();
    h.facts(FactsUpdate {
        battery_percent: Some(81),
        ..Default::default()
    });
    assert!(
        h.last_reports()
            .iter()
            .any(|r| matches!(r, Report::Facts(_)))
    );
    h.facts(FactsUpdate {
        battery_percent: Some(83),
        ..Default::default()
    });
    assert!(
        h.last_record().is_none(),
        "same 10 % step: nothing to report"
    );
    h.facts(FactsUpdate {
        battery_percent: Some(79),
        ..Default::default()
    });
    assert!(
        h.last_reports()
            .iter()
            .any(|r| matches!(r, Report::Facts(_)))
    );
}

#[test]
fn a_remote_lock_keeps_the_user_until_they_authenticate_again() {
    let mut h = Harness::new();
    checked_out(&mut h, "alice");
    h.command(ServerCommand::Lock {
        reason: "reported missing".into(),
    });
    assert_eq!(h.status(), DeviceStatus::Blocked);
    assert!(!h.screen().is_unlocked());
    assert_eq!(h.username().as_deref(), Some("alice"), "still assigned");
    match h.screen() {
        Screen::Blocked {
            reasons,
            display_name,
        } => {
            assert!(reasons[0].contains("reported missing"));
            assert_eq!(display_name.as_deref(), Some("alice (display)"));
        }
        s => panic!("unexpected {s:?}"),
    }
    let t = h
        .last_record()
        .and_then(|r| r.transition.clone())
        .expect("transition");
    assert_eq!(
        t.cause,
        Cause::RemoteLock {
            reason: "reported missing".into()
        }
    );
    h.grant("bob", UnlockMethod::PhoneBadge);
    assert_eq!(
        h.status(),
        DeviceStatus::Blocked,
        "someone else cannot take it"
    );
    h.grant("alice", UnlockMethod::PhoneBadge);
    assert_eq!(
        h.status(),
        DeviceStatus::CheckedOut,
        "alice re-authenticates"
    );
    assert!(h.screen().is_unlocked());
}

#[test]
fn a_remote_lock_of_a_phone_still_in_the_cart_checks_it_in() {
    let mut h = Harness::new();
    h.grant("alice", UnlockMethod::CartBadge);
    h.command(ServerCommand::Lock {
        reason: "wrong user".into(),
    });
    assert_eq!(h.username(), None);
    assert!(!h.screen().is_unlocked());
    let mut idle = Harness::new();
    idle.command(ServerCommand::Lock { reason: "x".into() });
    assert_eq!(idle.status(), DeviceStatus::CheckedIn, "nothing to lock");
}

#[test]
fn a_blank_page_comes_first_when_the_policy_asks_for_it_even_with_no_apps() {
    for (apps, blank) in [(true, true), (false, true), (true, false)] {
        let mut p = lanyard_protocol::Policy::default();
        p.version = 1;
        p.blank_page_before_check_in = blank;
        if apps {
            p.app_logouts = vec![lanyard_protocol::policy::AppLogout {
                app: AppId::new("com.epic.rover"),
                name: "Rover".into(),
            }];
        }
        let mut h = Harness::with_policy(p);
        checked_out(&mut h, "alice");
        let effects = h.dock().to_vec();
        let blank_at = effects
            .iter()
            .position(|e| matches!(e, Effect::OpenBlankPage));
        let logout_at = effects
            .iter()
            .position(|e| matches!(e, Effect::LogOutApps { .. }));
        assert_eq!(blank_at.is_some(), blank, "apps {apps} blank {blank}");
        assert_eq!(logout_at.is_some(), apps);
        if let (Some(b), Some(l)) = (blank_at, logout_at) {
            assert!(b < l, "the blank page comes before the logouts");
        }
        let want = if apps {
            DeviceStatus::Returning
        } else {
            DeviceStatus::CheckedIn
        };
        assert_eq!(h.status(), want);
    }
}

#[test]
fn a_grant_for_a_tap_the_phone_gave_up_on_never_unlocks_it() {
    let mut h = Harness::new();
    h.tap("0012345");
    let req = authorize_request(&h).expect("asked the server");
    // The server is stalled past the timeout: the clinician is told the tap failed.
    h.advance_secs(5);
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    let reports = h.last_reports();
    assert!(
        reports.iter().any(|r| matches!(
            r,
            Report::AuthorizationAbandoned { request_id } if *request_id == req.request_id
        )),
        "the phone tells the server it gave up: {reports:?}"
    );
    // The late answer (or the next sync bringing it) is refused and reported.
    h.command(ServerCommand::GrantCheckout(CheckoutGrant {
        grant_id: GrantId::new("g-late"),
        request_id: Some(req.request_id.clone()),
        user: user("alice"),
        method: UnlockMethod::PhoneBadge,
        display_text: None,
    }));
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    assert!(h.last_reports().iter().any(|r| matches!(
        r,
        Report::CommandRejected {
            rejection: CommandRejection::Abandoned,
            ..
        }
    )));
    // A grant answering an older request while a newer one waits is refused too; the
    // answer to the newer one unlocks.
    h.send(Event::SyncSucceeded);
    h.tap("0012345");
    let newer = authorize_request(&h).expect("asked again");
    h.command(ServerCommand::GrantCheckout(CheckoutGrant {
        grant_id: GrantId::new("g-old"),
        request_id: Some(req.request_id),
        user: user("alice"),
        method: UnlockMethod::PhoneBadge,
        display_text: None,
    }));
    assert_eq!(h.status(), DeviceStatus::CheckedIn);
    h.command(ServerCommand::GrantCheckout(CheckoutGrant {
        grant_id: GrantId::new("g-new"),
        request_id: Some(newer.request_id),
        user: user("alice"),
        method: UnlockMethod::PhoneBadge,
        display_text: None,
    }));
    assert_eq!(h.status(), DeviceStatus::CheckoutPending);
}
