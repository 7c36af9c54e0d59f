//! The performance record: a real-time soak against the server as its own process (so
//! its CPU time and memory are read from /proc apart from the simulator's), then a
//! shift-change burst of cart taps while the fleet keeps syncing.
//!
//! `lanyard-sim --server-bin target/release/lanyard-server --devices 10000 --json`

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_protocol::Timestamp;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use crate::phone::SimPhone;
use crate::report::Stats;
use crate::site::{self, Admin};

/// What the soak needs from the command line.
pub struct Soak {
    /// The server binary to start.
    pub server_bin: String,
    /// Phones.
    pub devices: usize,
    /// Ports per cart.
    pub ports: u32,
    /// Seconds of steady syncing before the burst.
    pub soak_secs: u64,
    /// Each phone syncs this often.
    pub sync_interval_secs: u64,
    /// Taps in the burst.
    pub burst_taps: usize,
    /// Over how many seconds.
    pub burst_secs: u64,
    /// Most exchanges in flight.
    pub concurrency: usize,
    /// Phones long-poll as real ones do (each holds a connection while it has nothing
    /// to send) instead of syncing once per interval.
    pub long_poll: bool,
    /// Server processes on one database (more than one needs `LANYARD_DATABASE_URL`).
    pub replicas: usize,
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `replicas` servers (each with a data directory of its own; the database, when
/// `LANYARD_DATABASE_URL` names one, is shared) and creates an admin token.
fn start_servers(bin: &str, replicas: usize) -> anyhow::Result<(Vec<Server>, String)> {
    if replicas > 1 && std::env::var_os("LANYARD_DATABASE_URL").is_none() {
        bail!("--replicas {replicas} needs LANYARD_DATABASE_URL (one SQLite file, one server)");
    }
    let servers = (0..replicas.max(1))
        .map(|_| start_server(bin))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = Command::new(bin)
        .args(["token", "create", "--role", "admin", "--data-dir"])
        .arg(servers[0]._dir.path().join("data"))
        .output()
        .with_context(|| format!("running {bin}"))?;
    if !out.status.success() {
        bail!(
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok((servers, token))
}

fn start_server(bin: &str) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // The server prints its address once it listens: that line is the signal.
    let base = loop {
        let line = lines.next().context("server exited before listening")??;
        if let Some(addr) = line.split("listening on ").nth(1) {
            break addr.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Server {
        child,
        base,
        _dir: dir,
    })
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // USER_HZ
}

/// Resident memory in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
}

fn cpu_all(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_secs(*p)).sum()
}

fn rss_all(pids: &[u32]) -> f64 {
    pids.iter().map(|p| rss_mib(*p)).sum()
}

type Phones = Arc<Vec<Arc<Mutex<SimPhone>>>>;

/// Runs the soak and the burst; returns the summary.
pub async fn run(cfg: Soak) -> anyhow::Result<Value> {
    let (servers, token) = start_servers(&cfg.server_bin, cfg.replicas)?;
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    // Taps and phones are spread over the replicas, as a load balancer would.
    let admins: Vec<Admin> = servers
        .iter()
        .map(|s| Admin::new(s.base.clone(), token.clone(), http.clone()))
        .collect();
    let run = "soak";
    let carts = cfg.devices.div_ceil(cfg.ports as usize);
    let setup = Instant::now();
    let site = site::create(
        &admins[0],
        run,
        carts,
        cfg.ports,
        cfg.burst_taps,
        cfg.devices,
        now(),
    )
    .await?;
    let stats = Arc::new(Stats::default());
    let invite: EnrollmentInvite = site.link.parse()?;
    let transports = servers
        .iter()
        .map(|s| {
            Ok(HttpTransport::new(
                s.base.parse()?,
                Duration::from_secs(60),
            )?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let long_poll_secs = if cfg.long_poll { LONG_POLL_SECS } else { 0 };
    let gate = Arc::new(Semaphore::new(cfg.concurrency));
    let mut set = JoinSet::new();
    for i in 0..cfg.devices {
        let (invite, transport, gate, stats) = (
            invite.clone(),
            transports[i % transports.len()].clone(),
            gate.clone(),
            stats.clone(),
        );
        let cart = (i / cfg.ports as usize, (i % cfg.ports as usize) as u32 + 1);
        let cart_id = site.carts[cart.0].clone();
        set.spawn(async move {
            let _permit = gate.acquire().await?;
            let mut p =
                SimPhone::enroll(i, transport, &invite, now(), cart, &cart_id, long_poll_secs)
                    .await?;
            p.drain(now(), &stats).await?;
            anyhow::Ok(p)
        });
    }
    let mut phones = Vec::with_capacity(cfg.devices);
    while let Some(done) = set.join_next().await {
        phones.push(done??);
    }
    phones.sort_by_key(|p| p.idx);
    let by_id: std::collections::HashMap<String, usize> =
        phones.iter().map(|p| (p.id.clone(), p.idx)).collect();
    let phones: Phones = Arc::new(
        phones
            .into_iter()
            .map(|p| Arc::new(Mutex::new(p)))
            .collect(),
    );
    let setup_secs = setup.elapsed().as_secs_f64();
    // Setup syncs are not part of the measurement.
    let stats = Arc::new(Stats::default());

    let stop = Arc::new(AtomicBool::new(false));
    let syncs = Arc::new(AtomicU64::new(0));
    let held = Arc::new(AtomicU64::new(0));
    // When each phone last unlocked (long-poll mode: the phone's own loop sees it).
    let unlocked: Arc<Vec<tokio::sync::watch::Sender<Option<Instant>>>> = Arc::new(
        (0..cfg.devices)
            .map(|_| tokio::sync::watch::Sender::new(None))
            .collect(),
    );
    let syncer = if cfg.long_poll {
        long_polls(
            &phones,
            &stats,
            &stop,
            &syncs,
            &held,
            &unlocked,
            Duration::from_secs(cfg.sync_interval_secs.max(1)),
        )
    } else {
        periodic_syncs(
            &phones,
            &gate,
            &stats,
            &stop,
            &syncs,
            Duration::from_secs(cfg.sync_interval_secs.max(1)),
        )
    };
    if cfg.long_poll {
        // The soak starts once (nearly) every phone holds its long-poll.
        let deadline = Instant::now() + Duration::from_secs(120);
        while held.load(Ordering::Relaxed) < (cfg.devices as u64) * 95 / 100
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let cpu0 = cpu_all(&pids);
    let syncs0 = syncs.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(cfg.soak_secs)).await;
    let soak_elapsed = t0.elapsed().as_secs_f64();
    let soak_syncs = syncs.load(Ordering::Relaxed) - syncs0;
    let soak_cpu = cpu_all(&pids) - cpu0;
    let soak_rss = rss_all(&pids);
    let held_at_soak_end = held.load(Ordering::Relaxed);
    let soak_sync = stats.summary(json!({}))["sync_latency"].clone();

    // The burst: taps spread evenly over the window at the carts, while syncs go on.
    let burst = Arc::new(Stats::default());
    let cpu1 = cpu_all(&pids);
    let syncs1 = syncs.load(Ordering::Relaxed);
    let t1 = Instant::now();
    let mut taps = JoinSet::new();
    for u in 0..cfg.burst_taps {
        let at = Duration::from_secs(cfg.burst_secs).mul_f64(u as f64 / cfg.burst_taps as f64);
        if let Some(wait) = at.checked_sub(t1.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let (admin, phones, burst, stats, unlocked) = (
            admins[u % admins.len()].clone(),
            phones.clone(),
            burst.clone(),
            stats.clone(),
            unlocked.clone(),
        );
        let reader = site.readers[u % carts].clone();
        let badge = site::badge(run, u);
        let by_id = by_id.clone();
        let long_poll = cfg.long_poll;
        taps.spawn(async move {
            burst.cart_taps.fetch_add(1, Ordering::Relaxed);
            let (answer, started) = admin.cart_tap_until_served(&reader, &badge).await?;
            burst.beep(answer["beep"].as_u64().unwrap_or(0));
            let Some(idx) = answer["device_id"].as_str().and_then(|d| by_id.get(d)) else {
                return anyhow::Ok(());
            };
            if long_poll {
                // The phone's held long-poll brings the grant: its own loop unlocks it.
                let mut seen = unlocked[*idx].subscribe();
                let waited = tokio::time::timeout(
                    Duration::from_secs(10),
                    seen.wait_for(|t| t.is_some_and(|t| t >= started)),
                )
                .await;
                match waited {
                    Ok(Ok(t)) => {
                        let at = (*t).unwrap_or(started);
                        burst.unlocked_after(at.duration_since(started));
                    }
                    _ => burst.error(format!("granted phone {idx} did not unlock in 10 s")),
                }
                return anyhow::Ok(());
            }
            let mut p = phones[*idx].lock().await;
            // Without long-polls the phone syncs as soon as the tap is answered.
            p.drain(now(), &stats).await?;
            if p.unlocked(now()) {
                burst.unlocked_after(started.elapsed());
                p.undock(now())?;
                p.drain(now(), &stats).await?;
            } else {
                burst.error(format!("granted phone {} did not unlock", p.id));
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = taps.join_next().await {
        if let Err(e) = done.map_err(anyhow::Error::from).and_then(|r| r) {
            burst.error(format!("tap: {e:#}"));
        }
    }
    let burst_elapsed = t1.elapsed().as_secs_f64();
    let burst_cpu = cpu_all(&pids) - cpu1;
    let burst_syncs = syncs.load(Ordering::Relaxed) - syncs1;
    let held_after_burst = held.load(Ordering::Relaxed);
    let rss_after_burst = rss_all(&pids);
    stop.store(true, Ordering::Relaxed);
    // Long-polls end by themselves within their wait; the summary does not wait for them.
    if !cfg.long_poll {
        syncer.await?;
    } else {
        syncer.abort();
    }
    let burst_summary = burst.summary(json!({}));
    let all = stats.summary(json!({}));
    Ok(json!({
        "mode": if cfg.long_poll { "soak, long-polling phones" } else { "soak" },
        "replicas": servers.len(),
        "devices": cfg.devices,
        "carts": carts,
        "setup_secs": setup_secs,
        "sync_interval_secs": if cfg.long_poll { json!(null) } else { json!(cfg.sync_interval_secs) },
        "long_poll_secs": long_poll_secs,
        "long_polls_held_at_soak_end": held_at_soak_end,
        "long_polls_held_after_burst": held_after_burst,
        "soak_secs": soak_elapsed,
        "soak_syncs": soak_syncs,
        "syncs_per_sec": soak_syncs as f64 / soak_elapsed,
        "server_cpu_secs_per_1000_syncs": soak_cpu / (soak_syncs.max(1) as f64) * 1000.0,
        "server_cpu_percent_of_one_core": soak_cpu / soak_elapsed * 100.0,
        "server_rss_mib": soak_rss,
        "soak_sync_latency": soak_sync,
        "burst_taps": cfg.burst_taps,
        "burst_secs": burst_elapsed,
        "burst_beeps": burst_summary["grants_by_beep_code"],
        "tap_to_unlock": burst_summary["tap_to_unlock"],
        "burst_server_cpu_secs": burst_cpu,
        "burst_syncs": burst_syncs,
        "server_rss_mib_after_burst": rss_after_burst,
        "errors": all["errors"].as_u64().unwrap_or(0) + burst_summary["errors"].as_u64().unwrap_or(0),
        "first_errors": [all["first_errors"].clone(), burst_summary["first_errors"].clone()],
    }))
}

/// How long a phone's sync waits for a command when it has nothing to send (the
/// agent's default).
const LONG_POLL_SECS: u32 = 25;

/// Every phone syncs once per `interval`, spread evenly.
fn periodic_syncs(
    phones: &Phones,
    gate: &Arc<Semaphore>,
    stats: &Arc<Stats>,
    stop: &Arc<AtomicBool>,
    syncs: &Arc<AtomicU64>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let (phones, gate, stats, stop, syncs) = (
        phones.clone(),
        gate.clone(),
        stats.clone(),
        stop.clone(),
        syncs.clone(),
    );
    tokio::spawn(async move {
        let n = phones.len();
        let started = Instant::now();
        let mut round = 0u64;
        let mut tasks = JoinSet::new();
        'outer: loop {
            for i in 0..n {
                if stop.load(Ordering::Relaxed) {
                    break 'outer;
                }
                let due = interval.mul_f64(round as f64 + i as f64 / n as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                let (phone, gate, task_stats, syncs) = (
                    phones[i].clone(),
                    gate.clone(),
                    stats.clone(),
                    syncs.clone(),
                );
                tasks.spawn(async move {
                    let _permit = gate.acquire().await?;
                    let mut p = phone.lock().await;
                    let t = now();
                    p.charge_until(t)?;
                    p.tick(t)?;
                    p.sync(t, &task_stats).await?;
                    syncs.fetch_add(1, Ordering::Relaxed);
                    anyhow::Ok(())
                });
                while let Some(done) = tasks.try_join_next() {
                    if let Err(e) = done.map_err(anyhow::Error::from).and_then(|r| r) {
                        stats.error(format!("sync task: {e:#}"));
                    }
                }
            }
            round += 1;
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done.map_err(anyhow::Error::from).and_then(|r| r) {
                stats.error(format!("sync task: {e:#}"));
            }
        }
    })
}

/// Every phone in a loop of its own, as the app runs: sync (holding a long-poll when
/// there is nothing to send), unlock and leave the cart when a grant arrives. Phones
/// start spread over `spread` so they do not all connect at once.
fn long_polls(
    phones: &Phones,
    stats: &Arc<Stats>,
    stop: &Arc<AtomicBool>,
    syncs: &Arc<AtomicU64>,
    held: &Arc<AtomicU64>,
    unlocked: &Arc<Vec<tokio::sync::watch::Sender<Option<Instant>>>>,
    spread: Duration,
) -> tokio::task::JoinHandle<()> {
    let (phones, stats, stop, syncs, held, unlocked) = (
        phones.clone(),
        stats.clone(),
        stop.clone(),
        syncs.clone(),
        held.clone(),
        unlocked.clone(),
    );
    tokio::spawn(async move {
        let n = phones.len();
        let mut tasks = JoinSet::new();
        for i in 0..n {
            let (phone, stats, stop, syncs, held, unlocked) = (
                phones[i].clone(),
                stats.clone(),
                stop.clone(),
                syncs.clone(),
                held.clone(),
                unlocked.clone(),
            );
            let start = spread.mul_f64(i as f64 / n as f64);
            tasks.spawn(async move {
                tokio::time::sleep(start).await;
                let mut p = phone.lock().await;
                while !stop.load(Ordering::Relaxed) {
                    let waits = p.outbox_len() == 0;
                    if waits {
                        held.fetch_add(1, Ordering::Relaxed);
                    }
                    let synced = p.sync(now(), &stats).await;
                    if waits {
                        held.fetch_sub(1, Ordering::Relaxed);
                    }
                    syncs.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = synced {
                        stats.error(format!("sync {}: {e:#}", p.id));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    // A grant unlocked the docked phone: the clinician takes it.
                    if p.cart.is_some() && p.unlocked(now()) {
                        unlocked[i].send_replace(Some(Instant::now()));
                        if let Err(e) = p.undock(now()) {
                            stats.error(format!("undock {}: {e:#}", p.id));
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    })
}
