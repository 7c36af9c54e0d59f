//! Load benchmark of the server: device syncs and cart badge taps.
//!
//! Runs the real `lanyard-server` binary as its own process (so its CPU time and memory
//! can be read from /proc apart from the load generator's), enrolls devices over HTTP,
//! docks them in carts, then measures
//! 1. sustained device syncs (each carrying one new event) from many concurrent clients;
//! 2. a burst of badge taps at cart readers (tap-to-grant latency), the load generator
//!    playing each granted phone being unplugged so its cart is free for the next tap.
//!
//! Run: `cargo bench -p lanyard-server --bench load` (defaults: 10,000 devices,
//! 20 s of syncs, 500 taps). `LOAD_DEVICES`, `LOAD_SECS`, `LOAD_TAPS`, `LOAD_CLIENTS`
//! override. Prints a table and one JSON line; figures go in docs/BENCHMARKS.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // bench code

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// Resident memory in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0 // µs → ms
}

struct Server {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lanyard-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_owned();
    Server {
        child,
        base,
        _dir: dir,
        data,
    }
}

fn admin_token(data: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lanyard-server"))
        .args(["token", "create", "--role", "admin", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Device {
    id: String,
    credential: String,
    seq: AtomicU64,
}

fn event(seq: u64, at: i64, reports: Value) -> Value {
    json!({"seq": seq, "at": at, "status": "checked_in", "reports": reports})
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n_devices = env("LOAD_DEVICES", 10_000) as usize;
    let secs = env("LOAD_SECS", 20);
    let n_taps = env("LOAD_TAPS", 500) as usize;
    let clients = env("LOAD_CLIENTS", 64) as usize;
    let per_cart = 20usize;
    let n_carts = n_devices.div_ceil(per_cart);

    let server = start_server();
    let base = server.base.clone();
    let token = admin_token(&server.data);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let post = |path: String, bearer: String, body: Value| {
        let http = http.clone();
        async move {
            let r = http
                .post(path)
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert!(status.is_success(), "{status} {v}");
            v
        }
    };

    // Setup: carts, a multi-use enrollment token, users with badges.
    let t = Instant::now();
    let mut cart_credentials = Vec::new();
    for c in 0..n_carts {
        let v = post(
            format!("{base}/api/v1/launchpads"),
            token.clone(),
            json!({"id": format!("cart-{c}"), "name": format!("Cart {c}"), "ports": per_cart}),
        )
        .await;
        cart_credentials.push(v["credential"].as_str().unwrap().to_owned());
    }
    let enroll_token = post(
        format!("{base}/api/v1/enrollment-tokens"),
        token.clone(),
        json!({"label": "load"}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut users = Vec::new();
    for u in 0..n_taps {
        let name = format!("user{u}");
        post(
            format!("{base}/api/v1/users"),
            token.clone(),
            json!({"username": name, "display_name": name}),
        )
        .await;
        post(
            format!("{base}/api/v1/users/{name}/badges"),
            token.clone(),
            json!({"badge": format!("badge-{u}")}),
        )
        .await;
        users.push(name);
    }

    // Enroll and dock every device (concurrently).
    let devices: Arc<Vec<Device>> = {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let next = next.clone();
            let http = http.clone();
            let base = base.clone();
            let enroll_token = enroll_token.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n_devices {
                        break;
                    }
                    let v: Value = http
                        .post(format!("{base}/device/v1/enroll"))
                        .json(&json!({"v": 1, "token": enroll_token, "device": {"serial": format!("SN{i:06}")}}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let id = v["device_id"].as_str().unwrap().to_owned();
                    let credential = v["device_credential"].as_str().unwrap().to_owned();
                    let docked = event(
                        1,
                        0,
                        json!([{"type": "docked", "location": {"launchpad": format!("cart-{}", i / per_cart), "port": (i % per_cart) + 1}},
                               {"type": "facts", "battery_percent": 50 + (i % 50)}]),
                    );
                    let r = http
                        .post(format!("{base}/device/v1/sync"))
                        .bearer_auth(&credential)
                        .json(&json!({"v": 1, "device_id": id, "events": [docked]}))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                    mine.push(Device { id, credential, seq: AtomicU64::new(2) });
                }
                mine
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        Arc::new(all)
    };
    let setup_secs = t.elapsed().as_secs_f64();
    let pid = server.child.id();

    // Phase 1: sustained syncs, each with one new event.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cpu0 = cpu_secs(pid);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..clients {
        let devices = devices.clone();
        let http = http.clone();
        let base = base.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let d = &devices[i % devices.len()];
                i += clients;
                let seq = d.seq.fetch_add(1, Ordering::Relaxed);
                let body = json!({"v": 1, "device_id": d.id, "events": [event(seq, seq as i64, json!([{"type": "undocked"}]))]});
                let started = Instant::now();
                let ok = http
                    .post(format!("{base}/device/v1/sync"))
                    .bearer_auth(&d.credential)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                lat.push(started.elapsed().as_micros() as u64);
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut sync_errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        sync_errors += e;
    }
    let elapsed = t.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    lat.sort_unstable();
    let syncs = lat.len() as f64;

    // Phase 2: a burst of badge taps, one per user, spread over the carts. Devices must be
    // docked again first (phase 1 reported them undocked).
    for d in devices.iter() {
        let seq = d.seq.fetch_add(1, Ordering::Relaxed);
        let body = json!({"v": 1, "device_id": d.id, "events": [event(seq, seq as i64, json!([{"type": "docked", "location": {}}]))]});
        http.post(format!("{base}/device/v1/sync"))
            .bearer_auth(&d.credential)
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    let tap_cpu0 = cpu_secs(pid);
    let t = Instant::now();
    let mut tasks = Vec::new();
    let next = Arc::new(AtomicUsize::new(0));
    let users = Arc::new(users);
    let carts = Arc::new(cart_credentials);
    let by_id: Arc<std::collections::HashMap<String, usize>> = Arc::new(
        devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect(),
    );
    for _ in 0..clients.min(32) {
        let next = next.clone();
        let http = http.clone();
        let base = base.clone();
        let users = users.clone();
        let carts = carts.clone();
        let devices = devices.clone();
        let by_id = by_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let u = next.fetch_add(1, Ordering::Relaxed);
                if u >= users.len() {
                    break;
                }
                let started = Instant::now();
                let v: Value = http
                    .post(format!("{base}/launchpad/v1/tap"))
                    .bearer_auth(&carts[u % carts.len()])
                    .json(&json!({"badge": format!("badge-{u}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                out.push((
                    started.elapsed().as_micros() as u64,
                    v["beep"].as_u64().unwrap_or(0),
                ));
                // Play the phone: the clinician takes it, so the cart is free for the next tap.
                let granted = v["device_id"].as_str().and_then(|id| by_id.get(id));
                if let Some(d) = granted.map(|&i| &devices[i]) {
                    let seq = d.seq.fetch_add(1, Ordering::Relaxed);
                    let record = json!({"seq": seq, "at": seq, "status": "checked_out",
                        "user": {"username": format!("user{u}"), "display_name": "x"},
                        "reports": [{"type": "undocked"}]});
                    let body = json!({"v": 1, "device_id": d.id, "events": [record]});
                    let r = http
                        .post(format!("{base}/device/v1/sync"))
                        .bearer_auth(&d.credential)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                }
            }
            out
        }));
    }
    let mut taps = Vec::new();
    for t in tasks {
        taps.extend(t.await.unwrap());
    }
    let tap_secs = t.elapsed().as_secs_f64();
    let tap_cpu = cpu_secs(pid) - tap_cpu0;
    let granted = taps.iter().filter(|(_, b)| *b == 1).count();
    let mut tap_lat: Vec<u64> = taps.iter().map(|(l, _)| *l).collect();
    tap_lat.sort_unstable();

    let rss = rss_mib(pid);
    println!(
        "devices enrolled and docked : {n_devices} in {n_carts} carts (setup {setup_secs:.1} s)"
    );
    println!("sync clients                : {clients}");
    println!(
        "syncs                       : {syncs:.0} in {elapsed:.1} s = {:.0} syncs/s, errors {sync_errors}",
        syncs / elapsed
    );
    println!(
        "sync latency ms             : p50 {:.2}  p95 {:.2}  p99 {:.2}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99)
    );
    println!(
        "server CPU per 1,000 syncs  : {:.3} s",
        cpu / syncs * 1000.0
    );
    println!(
        "cart taps                   : {} in {tap_secs:.2} s, granted {granted}",
        taps.len()
    );
    println!(
        "tap-to-grant latency ms     : p50 {:.2}  p99 {:.2}",
        percentile(&tap_lat, 0.5),
        percentile(&tap_lat, 0.99)
    );
    println!(
        "server CPU per tap          : {:.2} ms",
        tap_cpu / taps.len().max(1) as f64 * 1000.0
    );
    println!("server RSS                  : {rss:.0} MiB");
    println!(
        "{}",
        json!({
            "devices": n_devices, "syncs_per_sec": syncs / elapsed, "sync_errors": sync_errors,
            "sync_p50_ms": percentile(&lat, 0.5), "sync_p99_ms": percentile(&lat, 0.99),
            "cpu_s_per_1000_syncs": cpu / syncs * 1000.0, "taps": taps.len(), "taps_granted": granted,
            "tap_p50_ms": percentile(&tap_lat, 0.5), "tap_p99_ms": percentile(&tap_lat, 0.99), "rss_mib": rss
        })
    );
}
