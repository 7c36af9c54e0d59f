//! Foundation end-to-end checks: the real server answers over HTTP, and a checkout
//! journey survives the JSON wire format in both directions (signed commands down,
//! outbox records up), exactly as the sync client will carry them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

use lanyard_agent::{Effect, Event, Locker, Verified, handle};
use lanyard_e2e::TestServer;
use lanyard_protocol::sync::{SyncRequest, SyncResponse};
use lanyard_protocol::{
    BadgeId, CheckoutGrant, CommandEnvelope, DeviceId, DeviceStatus, DockLocation, GrantId,
    PROTOCOL_VERSION, Policy, ServerCommand, Signed, SigningKey, Timestamp, UnlockMethod, UserRef,
};

#[tokio::test]
async fn server_is_healthy_over_http_and_stops_cleanly() {
    let server = TestServer::start().await.unwrap();
    let body: serde_json::Value = lanyard_e2e::http_client()
        .get(format!("{}/healthz", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    server.stop().await.unwrap();
}

/// Feeds an event and returns the outbox records it produced.
fn step(locker: &mut Locker, event: Event, now: Timestamp) -> Vec<lanyard_protocol::EventRecord> {
    let (next, effects) = handle(std::mem::take(locker), event, now);
    *locker = next;
    effects
        .into_iter()
        .filter_map(|e| {
            if let Effect::Record(r) = e {
                Some(r)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn a_checkout_journey_crosses_the_wire_format_intact() {
    let (server_key, _) = SigningKey::generate().unwrap();
    let pinned = server_key.verifying_key();
    let device = DeviceId::new("dev-wire");
    let mut now = Timestamp(1_767_000_000_000);
    let mut locker = Locker::new();
    let mut outbox = Vec::new();

    // Enrollment: the policy arrives signed, as JSON text.
    let policy_json = serde_json::to_string(&server_key.sign(&Policy::default()).unwrap()).unwrap();
    let policy: Signed = serde_json::from_str(&policy_json).unwrap();
    let policy = Verified::open(&policy, &pinned).unwrap();
    outbox.extend(step(
        &mut locker,
        Event::Enrolled {
            device_id: device.clone(),
            server_key: pinned,
            policy,
        },
        now,
    ));
    outbox.extend(step(
        &mut locker,
        Event::Docked {
            location: DockLocation::default(),
        },
        now,
    ));
    outbox.extend(step(
        &mut locker,
        Event::BadgeTapped {
            badge: BadgeId::new("0042"),
        },
        now,
    ));
    let request_id = locker.pending_auth.as_ref().unwrap().request_id.clone();

    // The server's answer travels inside a sync response.
    let envelope = CommandEnvelope {
        v: PROTOCOL_VERSION,
        device_id: device.clone(),
        command_id: "c-1".into(),
        issued_at: now,
        expires_at: now.plus_secs(60),
        payload: ServerCommand::GrantCheckout(CheckoutGrant {
            grant_id: GrantId::new("g-1"),
            request_id: Some(request_id),
            user: UserRef {
                username: "alice".into(),
                display_name: "Alice".into(),
            },
            method: UnlockMethod::PhoneBadge,
            display_text: None,
        }),
    };
    let response = SyncResponse {
        v: PROTOCOL_VERSION,
        acked_seq: 0,
        commands: vec![server_key.sign(&envelope).unwrap()],
        policy: None,
        offline_credentials: None,
        server_time: now,
    };
    let wire = serde_json::to_string(&response).unwrap();
    let response: SyncResponse = serde_json::from_str(&wire).unwrap();
    for signed in &response.commands {
        let cmd = Verified::open(signed, &pinned).unwrap();
        outbox.extend(step(&mut locker, Event::Command(cmd), now));
    }
    now = now.plus_secs(5);
    outbox.extend(step(&mut locker, Event::Undocked, now));
    assert_eq!(locker.status(), DeviceStatus::CheckedOut);
    now = now.plus_secs(8 * 3600);
    outbox.extend(step(
        &mut locker,
        Event::Docked {
            location: DockLocation::default(),
        },
        now,
    ));
    assert_eq!(locker.status(), DeviceStatus::CheckedIn);

    // The outbox goes up as a sync request and parses back identical, in order.
    let request = SyncRequest {
        v: PROTOCOL_VERSION,
        device_id: device,
        events: outbox.clone(),
        handled_commands: vec!["c-1".into()],
        policy_version: 0,
        credentials_version: 0,
        wait_secs: 0,
    };
    let wire = serde_json::to_string(&request).unwrap();
    assert!(
        !wire.contains("0042"),
        "raw badge id must not travel in the outbox"
    );
    let back: SyncRequest = serde_json::from_str(&wire).unwrap();
    assert_eq!(back, request);
    let statuses: Vec<DeviceStatus> = back
        .events
        .iter()
        .filter_map(|r| r.transition.as_ref().map(|t| t.to))
        .collect();
    assert_eq!(
        statuses,
        vec![
            DeviceStatus::CheckedIn,
            DeviceStatus::CheckoutPending,
            DeviceStatus::CheckedOut,
            DeviceStatus::CheckedIn
        ]
    );
    let seqs: Vec<u64> = back.events.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_tampered_command_does_not_verify() {
    let (server_key, _) = SigningKey::generate().unwrap();
    let envelope = CommandEnvelope {
        v: PROTOCOL_VERSION,
        device_id: "d".into(),
        command_id: "c".into(),
        issued_at: Timestamp(0),
        expires_at: Timestamp(1),
        payload: ServerCommand::CheckIn {
            reason: "x".into(),
            as_of: None,
        },
    };
    let mut signed = server_key.sign(&envelope).unwrap();
    signed.payload = signed.payload.replace("\"d\"", "\"e\"");
    assert!(Verified::<CommandEnvelope>::open(&signed, &server_key.verifying_key()).is_err());
}
