//! Criterion benchmarks of the durable store: what one committed transition costs.
//!
//! Run: `cargo bench -p lanyard-agent --bench store`. Figures go in docs/BENCHMARKS.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // bench code

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lanyard_agent::store::Store;
use lanyard_agent::{Effect, Event, Locker, Verified, handle};
use lanyard_protocol::events::Report;
use lanyard_protocol::policy::AppLogout;
use lanyard_protocol::{
    AppId, DeviceId, DeviceStatus, DockLocation, EventRecord, Policy, SigningKey, Timestamp,
};

const T0: Timestamp = Timestamp(1_767_000_000_000);

/// A realistic enrolled state (default compliance rules, two apps) and one record.
fn state_and_record() -> (Locker, EventRecord) {
    let (key, _) = SigningKey::generate().unwrap();
    let policy = Policy {
        app_logouts: vec![
            AppLogout {
                app: AppId::new("com.epic.rover"),
                name: "Rover".into(),
            },
            AppLogout {
                app: AppId::new("com.vocera.app"),
                name: "Vocera".into(),
            },
        ],
        ..Policy::default()
    };
    let policy = Verified::open(&key.sign(&policy).unwrap(), &key.verifying_key()).unwrap();
    let (l, effects) = handle(
        Locker::new(),
        Event::Enrolled {
            device_id: DeviceId::new("dev-1"),
            server_key: key.verifying_key(),
            policy,
        },
        T0,
    );
    let mut record = effects
        .into_iter()
        .find_map(|e| {
            if let Effect::Record(r) = e {
                Some(r)
            } else {
                None
            }
        })
        .unwrap();
    record.status = DeviceStatus::Returning;
    record.reports = vec![Report::Docked {
        location: DockLocation {
            launchpad: Some("cart-4west".into()),
            port: Some(7),
        },
    }];
    (l, record)
}

fn bench_commit(c: &mut Criterion, name: &str, mut store: Store) {
    let (state, mut record) = state_and_record();
    let mut seq = 1u64;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                record.seq = seq;
                seq += 1;
                let effects = [Effect::Record(record.clone())];
                let start = Instant::now();
                store.commit(&state, &effects).unwrap();
                total += start.elapsed();
            }
            // Keep the outbox the size a healthy device has between syncs.
            store.ack_through(seq.saturating_sub(100)).unwrap();
            total
        })
    });
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let file = Store::open(&dir.path().join("agent.db")).unwrap();
    bench_commit(
        c,
        "durable_transition_commit (file, WAL, synchronous=FULL)",
        file,
    );
    bench_commit(
        c,
        "transition_commit (in-memory, no fsync)",
        Store::open_in_memory().unwrap(),
    );
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
