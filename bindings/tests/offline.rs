//! The exported API driven from Rust with no server: errors, host-capability failures,
//! shutdown. (The full journey against a real server runs from Python and Kotlin.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lanyard_ffi::{
    ApiError, AppSessions, AppToLogOut, DeviceDetails, HostError, LockerAgent, LockerPhase,
    Notifier, ScreenModel, ScreenPresenter, SecretStorage,
};

#[derive(Default)]
struct Host {
    screens: Mutex<Vec<ScreenModel>>,
    secrets: Mutex<HashMap<String, Vec<u8>>>,
    fail_screens: bool,
}

impl ScreenPresenter for Host {
    fn show_screen(&self, screen: ScreenModel) -> Result<(), HostError> {
        self.screens.lock().unwrap().push(screen);
        if self.fail_screens {
            return Err(HostError::Unexpected {
                reason: "view hierarchy not ready".into(),
            });
        }
        Ok(())
    }
    fn open_blank_page(&self) -> Result<(), HostError> {
        Ok(())
    }
}

impl AppSessions for Host {
    fn log_out(&self, _app: AppToLogOut) -> Result<(), HostError> {
        Ok(())
    }
}

impl SecretStorage for Host {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.secrets.lock().unwrap().get(&key).cloned())
    }
    fn put(&self, key: String, value: Vec<u8>) -> Result<(), HostError> {
        self.secrets.lock().unwrap().insert(key, value);
        Ok(())
    }
    fn delete(&self, key: String) -> Result<(), HostError> {
        self.secrets.lock().unwrap().remove(&key);
        Ok(())
    }
}

impl Notifier for Host {
    fn notify(&self, _text: String) -> Result<(), HostError> {
        Ok(())
    }
}

fn open(dir: &std::path::Path, host: &Arc<Host>) -> Result<Arc<LockerAgent>, ApiError> {
    LockerAgent::new(
        dir.to_string_lossy().into_owned(),
        host.clone(),
        host.clone(),
        host.clone(),
        host.clone(),
        None,
    )
}

#[test]
fn an_unenrolled_agent_refuses_events_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::default());
    let agent = open(dir.path(), &host).unwrap();
    assert_eq!(agent.current_screen(), ScreenModel::Enrollment);
    assert_eq!(
        host.screens.lock().unwrap().first(),
        Some(&ScreenModel::Enrollment),
        "the screen is shown at open"
    );
    assert_eq!(
        agent.badge_tapped("0012345".into()),
        Err(ApiError::NotEnrolled)
    );
    assert_eq!(agent.sync_now(), Err(ApiError::NotEnrolled));
    assert!(matches!(
        agent.enroll_with_link("lanyard://enroll?token=x".into(), DeviceDetails::default()),
        Err(ApiError::InvalidEnrollment { .. })
    ));
    // Nothing listens on port 9 of loopback: unreachable, not refused.
    let link = "lanyard://enroll?server=http%3A%2F%2F127.0.0.1%3A9&token=tok";
    assert!(matches!(
        agent.enroll_with_link(link.into(), DeviceDetails::default()),
        Err(ApiError::ServerUnreachable { .. })
    ));
    assert!(host.secrets.lock().unwrap().is_empty());
    assert_eq!(agent.status().unwrap().phase, LockerPhase::Unenrolled);
    // Dock events need no enrollment (a phone may sit in a cart before it enrolls).
    assert_eq!(
        agent.docked(None, Some(0)).map(|_| ()),
        Err(ApiError::InvalidInput {
            field: "port".into(),
            reason: "ports are counted from 1".into()
        })
    );
    agent.docked(Some("cart-1".into()), Some(2)).unwrap();
}

#[test]
fn a_failing_presenter_is_counted_and_a_shut_down_agent_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host {
        fail_screens: true,
        ..Host::default()
    });
    let agent = open(dir.path(), &host).unwrap();
    let status = agent.status().unwrap();
    assert!(status.host_errors >= 1);
    assert!(
        status
            .last_host_error
            .unwrap()
            .contains("view hierarchy not ready")
    );
    agent.undocked().unwrap();
    agent.shutdown();
    agent.shutdown();
    assert_eq!(agent.undocked(), Err(ApiError::Closed));
    assert!(matches!(
        agent.start_sync(lanyard_ffi::SyncSettings::default()),
        Err(ApiError::Closed)
    ));
    drop(agent);
    // The data directory carries on in a new agent.
    let again = open(dir.path(), &Arc::new(Host::default())).unwrap();
    assert_eq!(again.current_screen(), ScreenModel::Enrollment);
}

#[test]
fn a_stopped_sync_task_frees_its_slot_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::default());
    let agent = open(dir.path(), &host).unwrap();
    let first = agent
        .start_sync(lanyard_ffi::SyncSettings::default())
        .unwrap();
    assert!(agent.status().unwrap().syncing);
    assert!(matches!(
        agent.start_sync(lanyard_ffi::SyncSettings::default()),
        Err(ApiError::SyncAlreadyRunning)
    ));
    first.stop();
    assert!(!first.is_running());
    assert!(!agent.status().unwrap().syncing);
    // A new loop may start straight away, and the old handle's release leaves it alone.
    let second = agent
        .start_sync(lanyard_ffi::SyncSettings::default())
        .unwrap();
    drop(first);
    assert!(second.is_running());
    assert!(agent.status().unwrap().syncing);
    drop(second);
    assert!(!agent.status().unwrap().syncing);
    agent.shutdown();
}
