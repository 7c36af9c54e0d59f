//! Criterion benchmarks of `handle`: the decisions a clinician waits on.
//!
//! Run: `cargo bench -p lanyard-agent --bench handle`. Figures go in docs/BENCHMARKS.md.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lanyard_agent::{Event, Locker, Verified, handle};
use lanyard_protocol::kdf;
use lanyard_protocol::policy::{AppLogout, OfflineCredential, OfflineCredentialList};
use lanyard_protocol::{
    AppId, BadgeId, CheckoutGrant, CommandEnvelope, DeviceId, DockLocation, GrantId,
    PROTOCOL_VERSION, Policy, ServerCommand, SigningKey, Timestamp, UnlockMethod, UserRef,
};

const T0: Timestamp = Timestamp(1_767_000_000_000);

fn user(n: &str) -> UserRef {
    UserRef {
        username: n.into(),
        display_name: format!("{n} RN"),
    }
}

/// An enrolled, docked, checked-in locker with a realistic policy.
fn checked_in(key: &SigningKey) -> Locker {
    let mut policy = Policy::default();
    policy.app_logouts = vec![
        AppLogout {
            app: AppId::new("com.epic.rover"),
            name: "Rover".into(),
        },
        AppLogout {
            app: AppId::new("com.vocera.app"),
            name: "Vocera".into(),
        },
    ];
    let policy = Verified::open(&key.sign(&policy).unwrap(), &key.verifying_key()).unwrap();
    let (l, _) = handle(
        Locker::new(),
        Event::Enrolled {
            device_id: DeviceId::new("dev-1"),
            server_key: key.verifying_key(),
            policy,
        },
        T0,
    );
    let (l, _) = handle(
        l,
        Event::Docked {
            location: DockLocation::default(),
        },
        T0,
    );
    l
}

fn grant_event(key: &SigningKey, l: &Locker, n: u64) -> Event {
    let env = CommandEnvelope {
        v: PROTOCOL_VERSION,
        device_id: "dev-1".into(),
        command_id: format!("c{n}").as_str().into(),
        issued_at: T0,
        expires_at: T0.plus_secs(60),
        payload: ServerCommand::GrantCheckout(CheckoutGrant {
            grant_id: GrantId::new(format!("g{n}")),
            request_id: l.pending_auth.as_ref().map(|p| p.request_id.clone()),
            user: user("alice"),
            method: UnlockMethod::PhoneBadge,
            display_text: None,
        }),
    };
    Event::Command(Verified::open(&key.sign(&env).unwrap(), &key.verifying_key()).unwrap())
}

fn benches(c: &mut Criterion) {
    let (key, _) = SigningKey::generate().unwrap();
    let base = checked_in(&key);
    let now = T0.plus_secs(1);

    c.bench_function("badge_tap_online (tap -> authorize request)", |b| {
        b.iter_batched(
            || base.clone(),
            |l| {
                black_box(handle(
                    l,
                    Event::BadgeTapped {
                        badge: BadgeId::new("0012345"),
                    },
                    now,
                ))
            },
            BatchSize::SmallInput,
        )
    });

    let (tapped, _) = handle(
        base.clone(),
        Event::BadgeTapped {
            badge: BadgeId::new("0012345"),
        },
        now,
    );
    let grant = grant_event(&key, &tapped, 1);
    c.bench_function("grant_to_unlock (verified grant -> unlocked screen)", |b| {
        b.iter_batched(
            || (tapped.clone(), grant.clone()),
            |(l, e)| black_box(handle(l, e, now)),
            BatchSize::SmallInput,
        )
    });

    let (pending, _) = handle(tapped.clone(), grant.clone(), now);
    c.bench_function("undock_completes_checkout", |b| {
        b.iter_batched(
            || pending.clone(),
            |l| black_box(handle(l, Event::Undocked, now)),
            BatchSize::SmallInput,
        )
    });

    let (out, _) = handle(pending.clone(), Event::Undocked, now);
    let later = now.plus_secs(8 * 3600);
    c.bench_function("dock_to_locked (checked out -> returning, locked)", |b| {
        b.iter_batched(
            || out.clone(),
            |l| {
                black_box(handle(
                    l,
                    Event::Docked {
                        location: DockLocation::default(),
                    },
                    later,
                ))
            },
            BatchSize::SmallInput,
        )
    });

    c.bench_function("tick_idle_checked_in", |b| {
        b.iter_batched(
            || base.clone(),
            |l| black_box(handle(l, Event::Tick, now)),
            BatchSize::SmallInput,
        )
    });

    // Edge cost, outside `handle`: one Ed25519 verification per server command.
    let env_signed = {
        let env = CommandEnvelope {
            v: PROTOCOL_VERSION,
            device_id: "dev-1".into(),
            command_id: "c-v".into(),
            issued_at: T0,
            expires_at: T0.plus_secs(60),
            payload: ServerCommand::CheckIn {
                reason: "x".into(),
                as_of: None,
            },
        };
        key.sign(&env).unwrap()
    };
    let vk = key.verifying_key();
    c.bench_function("verify_signed_command (edge, Ed25519)", |b| {
        b.iter(|| {
            black_box(Verified::<CommandEnvelope>::open(
                black_box(&env_signed),
                &vk,
            ))
        })
    });

    // Offline unlock pays one deliberate PBKDF2 per tap (10,000 iterations here).
    let salt = b"device-salt".to_vec();
    let entries = (0..500)
        .map(|i| OfflineCredential {
            badge_hash: kdf::derive(format!("badge-{i}").as_bytes(), &salt, 10_000),
            user: user(&format!("u{i}")),
        })
        .collect();
    let list = OfflineCredentialList {
        device_id: "dev-1".into(),
        version: 1,
        valid_until: T0.plus_secs(86_400),
        salt,
        iterations: 10_000,
        entries,
    };
    let list = Verified::open(&key.sign(&list).unwrap(), &vk).unwrap();
    let (offline, _) = handle(base.clone(), Event::OfflineCredentialsUpdated(list), now);
    let (offline, _) = handle(offline, Event::SyncFailed, now);
    let mut group = c.benchmark_group("offline");
    group.sample_size(20);
    group.bench_function("offline_badge_unlock (PBKDF2 10k, 500 entries)", |b| {
        b.iter_batched(
            || offline.clone(),
            |l| {
                black_box(handle(
                    l,
                    Event::BadgeTapped {
                        badge: BadgeId::new("badge-499"),
                    },
                    now,
                ))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(handle_benches, benches);
criterion_main!(handle_benches);
