//! The sync client under faults: 10,000 events queued during an outage drain in order,
//! none lost, none stored twice, across timeouts, 500s, lost responses and a restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{DEVICE, user};
use lanyard_agent::runtime::Agent;
use lanyard_agent::secrets::DeviceCredential;
use lanyard_agent::store::Store;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_agent::sync::{SyncClient, SyncConfig, SyncOutcome, Transport, TransportError};
use lanyard_agent::{Effect, Event};
use lanyard_protocol::enroll::{EnrollRequest, EnrollResponse};
use lanyard_protocol::events::Report;
use lanyard_protocol::sync::{SyncRequest, SyncResponse};
use lanyard_protocol::{
    AuthorizeRequest, AuthorizeResponse, CheckoutGrant, CommandEnvelope, CommandRejection,
    DeviceId, DeviceStatus, DockLocation, EventRecord, GrantId, PROTOCOL_VERSION, Policy,
    ServerCommand, Signed, SigningKey, Timestamp, UnlockMethod,
};

const T0: Timestamp = Timestamp(common::T0);
const SECRET: &str = "device-secret";

/// The documented server contract, in memory: records stored idempotently by
/// `(device, seq)`, `acked_seq` = highest contiguous sequence stored, commands resent
/// until the device lists them as handled.
#[derive(Default)]
struct ReferenceServer {
    stored: Mutex<BTreeMap<u64, EventRecord>>,
    deliveries: AtomicU64,
    duplicates: AtomicU64,
    commands: Mutex<Vec<(lanyard_protocol::CommandId, Signed)>>,
}

impl ReferenceServer {
    fn apply(&self, req: &SyncRequest) -> SyncResponse {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let mut stored = self.stored.lock().unwrap();
        for r in &req.events {
            if stored.insert(r.seq, r.clone()).is_some() {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        let acked_seq = (1..)
            .take_while(|s| stored.contains_key(s))
            .last()
            .unwrap_or(0);
        let mut commands = self.commands.lock().unwrap();
        commands.retain(|(id, _)| !req.handled_commands.contains(id));
        SyncResponse {
            v: PROTOCOL_VERSION,
            acked_seq,
            commands: commands.iter().map(|(_, s)| s.clone()).collect(),
            policy: None,
            offline_credentials: None,
            server_time: T0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// Never reached the server.
    Timeout,
    /// The server failed before applying anything.
    ServerError,
    /// The server applied the batch; the answer was lost on the way back.
    LostResponse,
}

/// Wraps the reference server with a seeded fault plan.
struct Faulty {
    server: ReferenceServer,
    rng: Mutex<u64>,
    /// Percent of calls that fail, split evenly between the three fault kinds.
    fault_percent: u64,
    down: std::sync::atomic::AtomicBool,
}

impl Faulty {
    fn new(seed: u64, fault_percent: u64) -> Self {
        Faulty {
            server: ReferenceServer::default(),
            rng: Mutex::new(seed | 1),
            fault_percent,
            down: false.into(),
        }
    }

    fn next_fault(&self) -> Fault {
        if self.down.load(Ordering::Relaxed) {
            return Fault::Timeout;
        }
        let mut x = self.rng.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let roll = *x % 100;
        if roll >= self.fault_percent {
            return Fault::None;
        }
        match roll % 3 {
            0 => Fault::Timeout,
            1 => Fault::ServerError,
            _ => Fault::LostResponse,
        }
    }
}

impl Transport for Faulty {
    async fn enroll(&self, _req: &EnrollRequest) -> Result<EnrollResponse, TransportError> {
        Err(TransportError::Unreachable("not used here".into()))
    }

    async fn sync(
        &self,
        credential: &DeviceCredential,
        req: &SyncRequest,
    ) -> Result<SyncResponse, TransportError> {
        assert_eq!(credential.authorization(), format!("Bearer {SECRET}"));
        match self.next_fault() {
            Fault::None => Ok(self.server.apply(req)),
            Fault::Timeout => Err(TransportError::Timeout),
            Fault::ServerError => Err(TransportError::Server {
                status: 500,
                message: "boom".into(),
            }),
            Fault::LostResponse => {
                self.server.apply(req);
                Err(TransportError::Timeout)
            }
        }
    }

    async fn authorize(
        &self,
        _c: &DeviceCredential,
        _r: &AuthorizeRequest,
    ) -> Result<AuthorizeResponse, TransportError> {
        Err(TransportError::Unreachable("not used here".into()))
    }
}

fn credential() -> DeviceCredential {
    DeviceCredential::new(DeviceId::new(DEVICE), SECRET)
}

fn enrolled_agent(store: Store, key: &SigningKey) -> Agent {
    let (mut agent, _) = Agent::open(store, T0).unwrap();
    agent
        .enroll(
            DeviceId::new(DEVICE),
            key.verifying_key(),
            &key.sign(&Policy::default()).unwrap(),
            T0,
        )
        .unwrap();
    agent
}

/// Queues `n` dock/undock records while the server is away; returns them as produced.
fn queue_events(agent: &mut Agent, n: usize) -> Vec<EventRecord> {
    let mut produced: Vec<EventRecord> = agent.store().outbox(usize::MAX).unwrap();
    agent.handle(Event::SyncFailed, T0).unwrap();
    let mut i = 0u64;
    while produced.len() < n {
        i += 1;
        let at = T0.plus_millis(i);
        let event = if i % 2 == 1 {
            Event::Docked {
                location: DockLocation {
                    launchpad: Some("cart-1".into()),
                    port: Some((i % 20) as u32),
                },
            }
        } else {
            Event::Undocked
        };
        for e in agent.handle(event, at).unwrap() {
            if let Effect::Record(r) = e {
                produced.push(r);
            }
        }
    }
    produced
}

/// Syncs until the outbox is empty; returns the number of attempts.
async fn drain<T: Transport>(client: &mut SyncClient<T>, agent: &mut Agent, limit: usize) -> usize {
    let mut attempts = 0;
    while agent.store().outbox_len().unwrap() > 0 {
        attempts += 1;
        assert!(attempts <= limit, "did not drain within {limit} attempts");
        client.sync_once(agent, T0).await.unwrap();
    }
    attempts
}

fn assert_server_holds_exactly(server: &ReferenceServer, produced: &[EventRecord]) {
    let stored = server.stored.lock().unwrap();
    assert_eq!(stored.len(), produced.len(), "nothing lost");
    for (want, (seq, got)) in produced.iter().zip(stored.iter()) {
        assert_eq!(*seq, want.seq);
        assert_eq!(got, want, "stored record differs from the one produced");
    }
    let seqs: Vec<u64> = stored.keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=produced.len() as u64).collect::<Vec<_>>(),
        "in order, no gap"
    );
}

fn config() -> SyncConfig {
    SyncConfig {
        batch_size: 500,
        ..SyncConfig::default()
    }
}

#[tokio::test]
async fn ten_thousand_queued_events_drain_in_order_through_faults() {
    let (key, _) = SigningKey::generate().unwrap();
    let mut agent = enrolled_agent(Store::open_in_memory().unwrap(), &key);
    let produced = queue_events(&mut agent, 10_000);
    assert!(agent.store().outbox_len().unwrap() >= 10_000);

    let mut client = SyncClient::new(Faulty::new(7, 40), credential(), config(), 1);
    let attempts = drain(&mut client, &mut agent, 400).await;
    let server = &client.transport().server;
    assert_server_holds_exactly(server, &produced);
    assert!(
        server.duplicates.load(Ordering::Relaxed) > 0,
        "lost responses made the client resend"
    );
    assert!(attempts > 20, "faults were injected ({attempts} attempts)");
    assert_eq!(agent.locker().status(), DeviceStatus::CheckedIn);
    assert!(agent.locker().link.reachable);
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_drain_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    let (key, _) = SigningKey::generate().unwrap();
    let mut agent = enrolled_agent(Store::open(&path).unwrap(), &key);
    let produced = queue_events(&mut agent, 2_000);
    let transport = Faulty::new(11, 30);
    let mut client = SyncClient::new(
        transport,
        credential(),
        SyncConfig {
            batch_size: 300,
            ..config()
        },
        2,
    );
    for _ in 0..4 {
        client.sync_once(&mut agent, T0).await.unwrap();
    }
    let left = agent.store().outbox_len().unwrap();
    assert!(left > 0 && left < 2_000, "stopped part-way ({left} left)");
    drop(agent); // power cut mid-drain

    let (mut agent, _) = Agent::open(Store::open(&path).unwrap(), T0).unwrap();
    assert_eq!(
        agent.store().outbox_len().unwrap(),
        left,
        "the outbox survived"
    );
    drain(&mut client, &mut agent, 200).await;
    assert_server_holds_exactly(&client.transport().server, &produced);
}

#[tokio::test]
async fn failures_back_off_with_growing_jittered_delays_and_reset_on_success() {
    let (key, _) = SigningKey::generate().unwrap();
    let mut agent = enrolled_agent(Store::open_in_memory().unwrap(), &key);
    let faulty = Faulty::new(3, 0);
    faulty.down.store(true, Ordering::Relaxed);
    let cfg = SyncConfig {
        backoff_base: Duration::from_secs(2),
        backoff_cap: Duration::from_secs(60),
        ..config()
    };
    let mut client = SyncClient::new(faulty, credential(), cfg, 9);
    let mut delays = Vec::new();
    for _ in 0..7 {
        match client.sync_once(&mut agent, T0).await.unwrap().0 {
            SyncOutcome::Failed { retry_in, .. } => delays.push(retry_in),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    assert!(
        !agent.locker().link.reachable,
        "the core knows the server is away"
    );
    for (n, d) in delays.iter().enumerate() {
        let ceiling = Duration::from_secs(2u64 << n).min(Duration::from_secs(60));
        assert!(*d >= ceiling / 2 && *d <= ceiling, "attempt {n}: {d:?}");
    }
    client.transport().down.store(false, Ordering::Relaxed);
    assert!(matches!(
        client.sync_once(&mut agent, T0).await.unwrap().0,
        SyncOutcome::Synced { .. }
    ));
    assert!(agent.locker().link.reachable);
    client.transport().down.store(true, Ordering::Relaxed);
    match client.sync_once(&mut agent, T0).await.unwrap().0 {
        SyncOutcome::Failed { retry_in, .. } => {
            assert!(retry_in <= Duration::from_secs(2), "reset after success")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_grant_resent_after_a_lost_response_is_applied_once() {
    let (key, _) = SigningKey::generate().unwrap();
    let mut agent = enrolled_agent(Store::open_in_memory().unwrap(), &key);
    agent
        .handle(
            Event::Docked {
                location: DockLocation::default(),
            },
            T0,
        )
        .unwrap();
    let env = CommandEnvelope {
        v: PROTOCOL_VERSION,
        device_id: DEVICE.into(),
        command_id: "c-grant".into(),
        issued_at: T0,
        expires_at: T0.plus_secs(60),
        payload: ServerCommand::GrantCheckout(CheckoutGrant {
            grant_id: GrantId::new("g1"),
            request_id: None,
            user: user("alice"),
            method: UnlockMethod::CartBadge,
            display_text: None,
        }),
    };
    let transport = Faulty::new(1, 0);
    transport
        .server
        .commands
        .lock()
        .unwrap()
        .push(("c-grant".into(), key.sign(&env).unwrap()));
    let mut client = SyncClient::new(transport, credential(), config(), 3);

    let (outcome, effects) = client.sync_once(&mut agent, T0).await.unwrap();
    assert!(matches!(outcome, SyncOutcome::Synced { commands: 1, .. }));
    assert_eq!(agent.locker().status(), DeviceStatus::CheckoutPending);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::ShowScreen(s) if s.is_unlocked()))
    );

    // The app restarts before its next sync: the list of handled commands was in
    // memory, so the server, never told, sends the grant again. The core refuses it as a
    // replay; the phone stays granted once.
    let transport = client.into_transport();
    let mut client = SyncClient::new(transport, credential(), config(), 4);
    let (outcome, effects) = client.sync_once(&mut agent, T0.plus_secs(1)).await.unwrap();
    assert!(matches!(outcome, SyncOutcome::Synced { commands: 1, .. }));
    let reports: Vec<Report> = effects
        .iter()
        .filter_map(|e| {
            if let Effect::Record(r) = e {
                Some(r.reports.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    assert!(
        reports.iter().any(|r| matches!(
            r,
            Report::CommandRejected {
                rejection: CommandRejection::Replayed,
                ..
            }
        )),
        "{reports:?}"
    );
    assert_eq!(agent.locker().status(), DeviceStatus::CheckoutPending);
    assert_eq!(
        agent.locker().user().map(|u| u.username.as_str()),
        Some("alice")
    );
    // The next sync tells the server, which stops resending.
    client.sync_once(&mut agent, T0.plus_secs(2)).await.unwrap();
    assert!(
        client
            .transport()
            .server
            .commands
            .lock()
            .unwrap()
            .is_empty(),
        "server stopped resending"
    );
}

#[tokio::test]
async fn the_http_transport_reports_unreachable_and_timeout() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let t = HttpTransport::new(
        format!("http://{closed_addr}").parse().unwrap(),
        Duration::from_millis(500),
    )
    .unwrap();
    let req = AuthorizeRequest {
        request_id: "r1".into(),
        device_id: DEVICE.into(),
        credential: lanyard_protocol::Credential::Badge {
            badge: lanyard_protocol::BadgeId::new("1"),
        },
        presented_at: T0,
    };
    assert!(matches!(
        t.authorize(&credential(), &req).await,
        Err(TransportError::Unreachable(_))
    ));

    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let t = HttpTransport::new(
        format!("http://{addr}").parse().unwrap(),
        Duration::from_millis(300),
    )
    .unwrap();
    assert_eq!(
        t.authorize(&credential(), &req).await.unwrap_err(),
        TransportError::Timeout
    );
    hold.abort();
}
