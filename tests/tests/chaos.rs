//! A shift change through a load balancer in front of two replicas on one PostgreSQL
//! database, while replica A is killed with SIGKILL and started again, over and over.
//! Every clinician (limit: one phone) taps two phones at once each round, takes what
//! is granted, and brings it back. Nothing may give: no clinician ever holds two
//! phones, no phone record is lost or stored twice, and at the end every phone and the
//! server agree on who has what. Runs in the suite's PostgreSQL pass.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lanyard_agent::Event;
use lanyard_agent::sync::SyncOutcome;
use lanyard_e2e::harness::{Admin, Phone, authorize_request, now};
use lanyard_e2e::replica::{LoadBalancer, ReplicaProcess};
use lanyard_e2e::{TestServer, http_client};
use lanyard_protocol::{BadgeId, DeviceStatus, DockLocation};
use lanyard_server::{EmbeddedServer, ServerConfig};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const CLINICIANS: usize = 6;
const PHONES: usize = 2 * CLINICIANS;
/// Rounds at least, and on until replica A has died this often.
const ROUNDS: usize = 4;
const KILLS: usize = 8;
const CART: &str = "cart-ed";

/// Exchanges cut by a dying replica (reported, to show the chaos reached the phones).
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// One sync that may fail (the replica it reached died under it): whether it went through.
async fn try_sync(phone: &mut Phone) -> bool {
    let synced = matches!(
        phone.client.sync_once(&mut phone.agent, now()).await,
        Ok((SyncOutcome::Synced { .. }, _))
    );
    if !synced {
        FAILED.fetch_add(1, Ordering::Relaxed);
    }
    synced
}

/// Syncs until everything the phone recorded is acknowledged and `done` holds, retrying
/// through failures; false when that does not happen within 30 s.
async fn settle(phone: &mut Phone, done: impl Fn(&Phone) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if try_sync(phone).await && phone.agent.store().outbox_len().unwrap() == 0 && done(phone) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn dock(phone: &mut Phone, port: u32) {
    phone
        .agent
        .handle(
            Event::Docked {
                location: DockLocation {
                    launchpad: Some(CART.into()),
                    port: Some(port),
                },
            },
            now(),
        )
        .unwrap();
}

/// Who holds each phone by the phones' own account (checkout pending or out).
async fn held_on_phones(phones: &[Arc<Mutex<Phone>>]) -> Vec<Option<String>> {
    let mut held = Vec::new();
    for p in phones {
        let p = p.lock().await;
        let holding = matches!(
            p.status(),
            DeviceStatus::CheckoutPending | DeviceStatus::CheckedOut
        );
        held.push(
            p.agent
                .locker()
                .phase
                .user()
                .filter(|_| holding)
                .map(|u| u.username.clone()),
        );
    }
    held
}

fn no_one_twice<'a>(holders: impl IntoIterator<Item = &'a str>, what: &str) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for h in holders {
        *count.entry(h).or_default() += 1;
    }
    for (user, n) in count {
        assert!(n <= 1, "{user} holds {n} phones ({what})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_change_survives_a_replica_killed_again_and_again() {
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("not applicable on SQLite: one file takes one server");
        return;
    }
    let admin_url = std::env::var("LANYARD_TEST_PG_URL").unwrap();
    let url = lanyard_e2e::postgres_db::create_database(admin_url)
        .await
        .unwrap();
    let lb = LoadBalancer::start().await;
    // B stays up (it is how the test reads the server's view); A is the one that dies.
    let b_dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into(), b_dir.path().join("data"));
    config.database_url = Some(url.clone());
    config.key_encryption_key = Some(lanyard_e2e::postgres_db::TEST_KEK.into());
    config.public_url = Some(lb.base_url.parse().unwrap());
    config.offline_iterations = 1_000;
    let b = TestServer {
        server: EmbeddedServer::start(config).await.unwrap(),
        data_dir: b_dir,
        database_url: Some(url.clone()),
    };
    let mut a = ReplicaProcess::start(&url, &[("LANYARD_PUBLIC_URL", &lb.base_url)]).await;
    lb.set_backends(&[&a.base_url, &b.base_url()]);
    let admin = Admin {
        base: b.base_url(),
        token: b.token("admin").await.unwrap(),
        http: http_client(),
    };
    admin
        .ok(
            "/api/v1/launchpads",
            json!({"id": CART, "name": "ED Cart 1", "ports": PHONES, "department": "ED"}),
        )
        .await;
    for c in 0..CLINICIANS {
        admin
            .ok(
                "/api/v1/users",
                json!({"username": format!("rn{c}"), "display_name": format!("RN {c}"), "device_limit": 1}),
            )
            .await;
        admin
            .ok(
                &format!("/api/v1/users/rn{c}/badges"),
                json!({"badge": format!("80000{c}")}),
            )
            .await;
    }
    let token = admin
        .ok(
            "/api/v1/enrollment-tokens",
            json!({"label": "ED", "launchpad_id": CART, "department": "ED"}),
        )
        .await;
    let link = token["link"].as_str().unwrap();
    assert!(link.contains(&lb.base_url.replace(':', "%3A").replace('/', "%2F")));
    let mut phones = Vec::new();
    for port in 1..=PHONES {
        let mut phone = Phone::enroll(link).await;
        phone.dock(CART, u32::try_from(port).unwrap(), 90).await;
        phones.push(Arc::new(Mutex::new(phone)));
    }

    // The chaos: A dies every 0.7 s and comes back on a new port 0.3 s later.
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let chaos = {
        let (done, kills, b_url) = (done.clone(), kills.clone(), b.base_url());
        let lb_backends = move |a: &str| [a.to_owned(), b_url.clone()];
        let lb = &lb;
        async move {
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(700)).await;
                a.kill();
                kills.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                a.restart().await;
                let [x, y] = lb_backends(&a.base_url);
                lb.set_backends(&[&x, &y]);
            }
            a
        }
    };
    let shift = async {
        let mut granted = 0;
        let mut round = 0;
        while round < ROUNDS || kills.load(Ordering::SeqCst) < KILLS {
            round += 1;
            // Each clinician taps two phones at the same moment.
            let mut taps = tokio::task::JoinSet::new();
            for (i, phone) in phones.iter().enumerate() {
                let clinician = ((i + round) % PHONES) / 2;
                let phone = phone.clone();
                taps.spawn(async move {
                    let mut p = phone.lock().await;
                    let effects = p
                        .agent
                        .handle(
                            Event::BadgeTapped {
                                badge: BadgeId::new(format!("80000{clinician}")),
                            },
                            now(),
                        )
                        .unwrap();
                    let req = authorize_request(&effects);
                    let p = &mut *p;
                    let answer = p.client.send_authorization(&req).await;
                    if answer.is_err() {
                        FAILED.fetch_add(1, Ordering::Relaxed);
                    }
                    p.client
                        .apply_authorization(&mut p.agent, &req, answer, now())
                        .unwrap();
                    if p.status() == DeviceStatus::CheckoutPending {
                        p.agent.handle(Event::Undocked, now()).unwrap();
                        try_sync(p).await;
                    }
                });
            }
            taps.join_all().await;
            let held = held_on_phones(&phones).await;
            no_one_twice(held.iter().flatten().map(String::as_str), "phones' view");
            granted += held.iter().flatten().count();
            let (_, page) = admin.get("/api/v1/devices?limit=500").await;
            let server_held = page["items"].as_array().unwrap().iter().filter_map(|d| {
                matches!(
                    d["status"].as_str(),
                    Some("checkout_pending" | "checked_out")
                )
                .then(|| d["device_user"].as_str())
                .flatten()
            });
            no_one_twice(server_held, "server's view");
            // Every phone taken comes back to its port and checks in.
            let mut returns = tokio::task::JoinSet::new();
            for (i, phone) in phones.iter().enumerate() {
                let phone = phone.clone();
                returns.spawn(async move {
                    let mut p = phone.lock().await;
                    if p.status() != DeviceStatus::CheckedIn {
                        dock(&mut p, u32::try_from(i + 1).unwrap());
                    }
                    let back = settle(&mut p, |p| p.status() == DeviceStatus::CheckedIn).await;
                    assert!(back, "phone {i} never checked back in: {:?}", p.status());
                });
            }
            returns.join_all().await;
        }
        (granted, round)
    };
    let ((granted, rounds), a) = {
        let shift = async {
            let shifted = shift.await;
            done.store(true, Ordering::SeqCst);
            shifted
        };
        tokio::join!(shift, chaos)
    };
    let kills = kills.load(Ordering::SeqCst);
    let failed = FAILED.load(Ordering::Relaxed);
    eprintln!(
        "{granted} checkouts in {rounds} rounds; replica A killed {kills} times; \
         {failed} exchanges cut"
    );
    assert!(
        granted >= rounds * CLINICIANS / 2,
        "the shift got phones out despite the chaos: {granted}"
    );

    // Every record each phone made is stored once, without a gap, and both sides agree.
    for phone in &phones {
        let mut p = phone.lock().await;
        assert!(settle(&mut p, |_| true).await, "phone {} settles", p.id);
        let made = p.agent.locker().next_seq - 1;
        let stored = lanyard_e2e::postgres_db::query_ints(
            &url,
            "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM device_event WHERE device_id = ?1",
            &p.id,
        )
        .unwrap();
        assert_eq!(
            stored,
            [made as i64, made as i64],
            "phone {}: records",
            p.id
        );
        let (_, d): (u16, Value) = admin.get(&format!("/api/v1/devices/{}", p.id)).await;
        assert_eq!(d["last_seq"], made, "{d:#}");
        assert_eq!(d["status"], "checked_in", "{d:#}");
        assert_eq!(p.status(), DeviceStatus::CheckedIn);
        assert_eq!(d["device_user"], Value::Null, "{d:#}");
    }
    drop(a);
    b.stop().await.unwrap();
}
