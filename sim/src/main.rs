//! `lanyard-sim`: a fleet of simulated phones — each the real agent core with its real
//! store and HTTP sync client — in carts, against a real Lanyard server, through a day of
//! shift changes. Prints a summary; `--json` puts it on the last line as one object.
//!
//! `lanyard-sim --embedded --devices 200 --json` starts a server in this process on the
//! simulation's clock (a day runs in seconds); `--server URL --token T` drives a running
//! server in real time.

mod clock;
mod phone;
mod report;
mod scenario;
mod site;
mod soak;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_protocol::{DeviceStatus, Timestamp};
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use crate::clock::SimClock;
use crate::phone::SimPhone;
use crate::report::Stats;
use crate::scenario::{Return, Shift};
use crate::site::{Admin, Site};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
/// 2026-03-02 06:00 UTC, a Monday: the embedded run's start.
const EMBEDDED_START: Timestamp = Timestamp(1_772_431_200_000);

/// Fleet simulator for Lanyard.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Start a server in this process, on the simulation's clock.
    #[arg(long, conflicts_with = "server")]
    embedded: bool,
    /// Performance record: start this lanyard-server binary as its own process, soak it
    /// in real time, then play a shift-change burst of cart taps (docs/BENCHMARKS.md).
    #[arg(long, conflicts_with_all = ["server", "embedded"])]
    server_bin: Option<String>,
    /// Soak: seconds of steady syncing before the burst.
    #[arg(long, default_value_t = 120)]
    soak_secs: u64,
    /// Soak: each phone syncs this often.
    #[arg(long, default_value_t = 60)]
    sync_interval_secs: u64,
    /// Soak: phones long-poll as real ones do, each holding a connection while it has
    /// nothing to send (instead of syncing once per interval); the interval then only
    /// spreads their start.
    #[arg(long)]
    long_poll: bool,
    /// Soak: server processes on one database, phones and taps spread over them (more
    /// than one needs LANYARD_DATABASE_URL, passed on to the servers).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Soak: cart taps in the burst.
    #[arg(long, default_value_t = 500)]
    burst_taps: usize,
    /// Soak: seconds the burst is spread over.
    #[arg(long, default_value_t = 60)]
    burst_secs: u64,
    /// A running server's base URL (the run is then in real time).
    #[arg(long, requires = "token")]
    server: Option<String>,
    /// An admin API token for `--server`.
    #[arg(long)]
    token: Option<String>,
    /// Phones in the fleet.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Ports per cart.
    #[arg(long, default_value_t = 10)]
    ports: u32,
    /// Simulated hours (from 06:00; shift changes at 07:00 and 19:00). Fractions are
    /// fine: against a running server the run is in real time.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// Simulated seconds per step.
    #[arg(long, default_value_t = 60)]
    step_secs: i64,
    /// Seed for every random choice (same seed, same plan).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most HTTP exchanges in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Print the summary as one JSON object on the last line.
    #[arg(long)]
    json: bool,
}

/// The fleet and where each phone sits.
struct Fleet {
    phones: Vec<Arc<Mutex<SimPhone>>>,
    by_id: HashMap<String, usize>,
    /// Per cart, per port (index port-1): the phone docked there.
    ports: Vec<Vec<Option<usize>>>,
    next_sync: Vec<i64>,
}

impl Fleet {
    fn free_port(&self, preferred: usize) -> (usize, u32) {
        let n = self.ports.len();
        for k in 0..n {
            let c = (preferred + k) % n;
            if let Some(p) = self.ports[c].iter().position(Option::is_none) {
                return (c, p as u32 + 1);
            }
        }
        // Every port is taken (more phones than ports): the phone lies on top of the cart.
        (preferred, 1)
    }

    fn vacate(&mut self, phone: usize) {
        for cart in &mut self.ports {
            for slot in cart.iter_mut() {
                if *slot == Some(phone) {
                    *slot = None;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(bin) = args.server_bin.clone() {
        lanyard_agent::sync::http::install_ring_provider();
        let summary = soak::run(soak::Soak {
            server_bin: bin,
            devices: args.devices,
            ports: args.ports,
            soak_secs: args.soak_secs,
            sync_interval_secs: args.sync_interval_secs,
            burst_taps: args.burst_taps,
            burst_secs: args.burst_secs,
            concurrency: args.concurrency,
            long_poll: args.long_poll,
            replicas: args.replicas,
        })
        .await?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        if args.json {
            println!("{summary}");
        }
        return Ok(());
    }
    if !args.embedded && args.server.is_none() {
        bail!("choose --embedded, --server URL --token T, or --server-bin PATH");
    }
    if args.devices == 0
        || args.ports == 0
        || args.step_secs <= 0
        || args.hours.is_nan()
        || args.hours <= 0.0
    {
        bail!("--devices, --ports, --step-secs and --hours must be positive");
    }
    lanyard_agent::sync::http::install_ring_provider();
    // Nothing may hang a run: a request the server does not answer in two minutes is an
    // error in the summary.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let wall = Instant::now();
    let realtime = !args.embedded;
    let start = if realtime {
        Timestamp(i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis(),
        )?)
    } else {
        EMBEDDED_START
    };
    let clock = SimClock::new(start);
    let (_embedded, admin) = if args.embedded {
        let e = site::embedded(&clock).await?;
        let admin = Admin::new(e.server.base_url(), e.token.clone(), http.clone());
        (Some(e), admin)
    } else {
        let base = args.server.clone().context("--server")?;
        let token = args.token.clone().context("--token")?;
        (
            None,
            Admin::new(base.trim_end_matches('/').to_owned(), token, http.clone()),
        )
    };
    // Against a running server, names carry the start time so runs never collide.
    let run = if realtime {
        format!("sim{}-{}", args.seed, start.as_millis() / 1000)
    } else {
        format!("sim{}", args.seed)
    };
    let span_ms = (args.hours * HOUR as f64) as i64;
    let carts = args.devices.div_ceil(args.ports as usize);
    let users = scenario::users(args.devices);
    let site = site::create(&admin, &run, carts, args.ports, users, args.devices, start).await?;
    let stats = Arc::new(Stats::default());
    let fleet = enroll(&args, &site, &clock, &stats).await?;
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut shifts = scenario::plan(&mut rng, start, span_ms, args.devices, carts);
    let fleet = Arc::new(Mutex::new(fleet));
    let ctx = Arc::new(Ctx {
        clock: clock.clone(),
        admin,
        site,
        run,
        stats: stats.clone(),
        gate: Semaphore::new(args.concurrency),
    });

    let steps = (span_ms / (args.step_secs * 1000)).max(1) as u64;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for step in 0..steps {
        let t = Timestamp(start.as_millis() + step as i64 * args.step_secs * 1000);
        if realtime {
            let wait = t.as_millis() - clock_now_ms();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
        }
        let t = clock.jump(t);
        play_step(&ctx, &fleet, &mut shifts, t, &mut rng).await?;
        if step % 10 == 0 {
            let out = shifts.iter().filter(|s| s.phone.is_some()).count();
            bar.set_message(format!(
                "{} carried, {} syncs, {} errors",
                out,
                stats.syncs(),
                stats.error_count()
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    // Everyone back in coverage: every phone drains its outbox, then both sides compare.
    let end = Timestamp(start.as_millis() + steps as i64 * args.step_secs * 1000);
    clock.jump(end);
    let summary = reconcile(&ctx, &fleet).await?;
    let mut summary = stats.summary(summary);
    if let Some(o) = summary.as_object_mut() {
        o.insert("devices".into(), json!(args.devices));
        o.insert("carts".into(), json!(carts));
        o.insert("simulated_hours".into(), json!(args.hours));
        o.insert("wall_secs".into(), json!(wall.elapsed().as_secs_f64()));
        o.insert("embedded".into(), json!(args.embedded));
        o.insert("seed".into(), json!(args.seed));
    }
    report::print_text(&summary);
    if args.json {
        println!("{summary}");
    }
    Ok(())
}

fn clock_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What every task of a step needs.
struct Ctx {
    clock: SimClock,
    admin: Admin,
    site: Site,
    run: String,
    stats: Arc<Stats>,
    gate: Semaphore,
}

/// Enrolls the fleet (concurrently) and docks each phone in its cart.
async fn enroll(
    args: &Args,
    site: &Site,
    clock: &SimClock,
    stats: &Arc<Stats>,
) -> anyhow::Result<Fleet> {
    let invite: EnrollmentInvite = site.link.parse()?;
    let transport = HttpTransport::new(invite.server.clone(), Duration::from_secs(30))?;
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let mut set = JoinSet::new();
    for i in 0..args.devices {
        let (invite, transport, gate) = (invite.clone(), transport.clone(), gate.clone());
        let cart = (
            i / args.ports as usize,
            (i % args.ports as usize) as u32 + 1,
        );
        let cart_id = site.carts[cart.0].clone();
        let now = clock.now();
        let stats = stats.clone();
        set.spawn(async move {
            let _permit = gate.acquire().await?;
            let mut phone = SimPhone::enroll(i, transport, &invite, now, cart, &cart_id, 0).await?;
            phone.drain(now, &stats).await?;
            anyhow::Ok(phone)
        });
    }
    let carts = args.devices.div_ceil(args.ports as usize);
    let mut fleet = Fleet {
        phones: Vec::new(),
        by_id: HashMap::new(),
        ports: vec![vec![None; args.ports as usize]; carts],
        next_sync: vec![0; args.devices],
    };
    let mut phones: Vec<SimPhone> = Vec::new();
    while let Some(done) = set.join_next().await {
        phones.push(done??);
    }
    phones.sort_by_key(|p| p.idx);
    for p in phones {
        if let Some((c, port)) = p.cart {
            fleet.ports[c][port as usize - 1] = Some(p.idx);
        }
        fleet.by_id.insert(p.id.clone(), p.idx);
        // Stagger the periodic syncs over ten minutes.
        fleet.next_sync[p.idx] = clock.now().as_millis() + (p.idx as i64 % 600) * 1000;
        fleet.phones.push(Arc::new(Mutex::new(p)));
    }
    Ok(fleet)
}

/// One step: returns due, taps due, periodic syncs due.
async fn play_step(
    ctx: &Arc<Ctx>,
    fleet: &Arc<Mutex<Fleet>>,
    shifts: &mut [Shift],
    t: Timestamp,
    rng: &mut fastrand::Rng,
) -> anyhow::Result<()> {
    let mut f = fleet.lock().await;
    // Returns: local to each phone (docking needs no network).
    for s in shifts.iter_mut() {
        let (Some(p), Some(at)) = (s.phone, s.return_at) else {
            continue;
        };
        if at > t {
            continue;
        }
        let target = match s.how {
            Return::WrongCart => {
                ctx.stats.wrong_cart_returns.fetch_add(1, Ordering::Relaxed);
                (s.cart + 1 + rng.usize(0..f.ports.len().max(2) - 1)) % f.ports.len()
            }
            Return::Late => {
                ctx.stats.late_returns.fetch_add(1, Ordering::Relaxed);
                s.cart
            }
            _ => s.cart,
        };
        let (c, port) = f.free_port(target);
        f.ports[c][port as usize - 1] = Some(p);
        f.phones[p]
            .lock()
            .await
            .dock((c, port), &ctx.site.carts[c], ctx.clock.now())?;
        f.next_sync[p] = t.as_millis();
        s.phone = None;
        s.return_at = None;
    }
    let mut set = JoinSet::new();
    // Taps.
    for (k, s) in shifts.iter_mut().enumerate() {
        if s.tapped || s.tap_at > t {
            continue;
        }
        s.tapped = true;
        let on_phone = if s.at_cart {
            None
        } else {
            f.ports[s.cart].iter().flatten().copied().next()
        };
        let ctx = ctx.clone();
        let fleet = fleet.clone();
        let (user, cart, seed) = (s.user, s.cart, rng.u64(..));
        let phone = on_phone.map(|p| f.phones[p].clone());
        set.spawn(async move { tap(ctx, fleet, k, user, cart, phone, seed).await });
    }
    // Periodic syncs.
    for i in 0..f.phones.len() {
        if f.next_sync[i] > t.as_millis() {
            continue;
        }
        let docked = f.ports.iter().any(|c| c.contains(&Some(i)));
        f.next_sync[i] = t.as_millis() + if docked { 10 * MIN } else { 5 * MIN };
        let (ctx, phone) = (ctx.clone(), f.phones[i].clone());
        set.spawn(async move {
            let _permit = ctx.gate.acquire().await?;
            let mut p = phone.lock().await;
            let now = ctx.clock.now();
            p.charge_until(now)?;
            p.tick(now)?;
            p.drain(now, &ctx.stats).await?;
            anyhow::Ok(None)
        });
    }
    drop(f);
    while let Some(done) = set.join_next().await {
        if let Some((k, phone)) = done?? {
            let mut f = fleet.lock().await;
            f.vacate(phone);
            f.next_sync[phone] = t.as_millis() + 5 * MIN;
            shifts[k].phone = Some(phone);
        }
    }
    Ok(())
}

/// A clinician's tap, at the cart's reader or on a docked phone; on an unlock, they
/// take the phone out of the cart. Returns (shift, phone) when they got one.
async fn tap(
    ctx: Arc<Ctx>,
    fleet: Arc<Mutex<Fleet>>,
    shift: usize,
    user: usize,
    cart: usize,
    on_phone: Option<Arc<Mutex<SimPhone>>>,
    seed: u64,
) -> anyhow::Result<Option<(usize, usize)>> {
    let _permit = ctx.gate.acquire().await?;
    let badge = site::badge(&ctx.run, user);
    let mut rng = fastrand::Rng::with_seed(seed);
    let phone = if let Some(phone) = on_phone {
        ctx.stats.phone_taps.fetch_add(1, Ordering::Relaxed);
        let mut p = phone.lock().await;
        if p.status() != DeviceStatus::CheckedIn || p.cart.is_none() {
            // Someone took it first: this clinician tries the cart's reader instead.
            drop(p);
            return cart_tap(&ctx, &fleet, shift, &badge, cart, &mut rng).await;
        }
        match p.tap(&badge, ctx.clock.now()).await? {
            Some(d) => {
                ctx.stats.beep(1);
                ctx.stats.unlocked_after(d);
                take(&ctx, &mut p, &mut rng).await?;
                Some(p.idx)
            }
            None => {
                // Refused on the phone (its notice says why).
                ctx.stats.beep(0);
                None
            }
        }
    } else {
        return cart_tap(&ctx, &fleet, shift, &badge, cart, &mut rng).await;
    };
    Ok(phone.map(|p| (shift, p)))
}

async fn cart_tap(
    ctx: &Arc<Ctx>,
    fleet: &Arc<Mutex<Fleet>>,
    shift: usize,
    badge: &str,
    cart: usize,
    rng: &mut fastrand::Rng,
) -> anyhow::Result<Option<(usize, usize)>> {
    ctx.stats.cart_taps.fetch_add(1, Ordering::Relaxed);
    let (answer, started) = match ctx
        .admin
        .cart_tap_until_served(&ctx.site.readers[cart], badge)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            ctx.stats.error(format!("cart tap: {e:#}"));
            return Ok(None);
        }
    };
    let beep = answer["beep"].as_u64().unwrap_or(0);
    ctx.stats.beep(beep);
    let Some(device) = answer["device_id"].as_str() else {
        return Ok(None);
    };
    let (phone, idx) = {
        let f = fleet.lock().await;
        let Some(&idx) = f.by_id.get(device) else {
            ctx.stats
                .error(format!("cart granted unknown device {device}"));
            return Ok(None);
        };
        (f.phones[idx].clone(), idx)
    };
    let mut p = phone.lock().await;
    // A docked phone long-polls: the grant reaches it as soon as it is issued.
    p.drain(ctx.clock.now(), &ctx.stats).await?;
    if !p.unlocked(ctx.clock.now()) {
        ctx.stats.error(format!(
            "cart {cart} granted {device}, which did not unlock ({:?})",
            p.status()
        ));
        return Ok(None);
    }
    ctx.stats.unlocked_after(started.elapsed());
    take(ctx, &mut p, rng).await?;
    Ok(Some((shift, idx)))
}

/// The clinician unplugs the phone and walks off; the phone reports it while still on
/// the unit's Wi-Fi, and one in twenty then loses the network for two to eight hours.
async fn take(ctx: &Ctx, p: &mut SimPhone, rng: &mut fastrand::Rng) -> anyhow::Result<()> {
    let now = ctx.clock.now();
    p.undock(now)?;
    p.drain(now, &ctx.stats).await?;
    if rng.u32(0..100) < 5 {
        p.offline_until = Some(Timestamp(now.as_millis() + rng.i64(2 * HOUR..8 * HOUR)));
    }
    Ok(())
}

/// Everyone back in coverage: each phone drains, then phone and server are compared.
async fn reconcile(ctx: &Arc<Ctx>, fleet: &Arc<Mutex<Fleet>>) -> anyhow::Result<serde_json::Value> {
    let phones = fleet.lock().await.phones.clone();
    let mut set = JoinSet::new();
    for phone in &phones {
        let (ctx, phone) = (ctx.clone(), phone.clone());
        set.spawn(async move {
            let _permit = ctx.gate.acquire().await?;
            let mut p = phone.lock().await;
            p.offline_until = None;
            let now = ctx.clock.now();
            p.tick(now)?;
            p.drain(now, &ctx.stats).await?;
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    let mut lost = 0u64;
    let mut disagreements = Vec::new();
    let mut overdue = 0u64;
    for phone in &phones {
        let p = phone.lock().await;
        let d = ctx.admin.get(&format!("/api/v1/devices/{}", p.id)).await?;
        let server_seq = d["last_seq"].as_u64().unwrap_or(0);
        lost += p.last_seq().saturating_sub(server_seq) + p.outbox_len();
        if d["overdue"] == true {
            overdue += 1;
        }
        let phone_status = serde_json::to_value(p.status())?;
        let phone_user = p.username();
        if d["status"] != phone_status || d["device_user"].as_str() != phone_user.as_deref() {
            disagreements.push(format!(
                "{}: phone {} {:?}, server {} {}",
                p.id, phone_status, phone_user, d["status"], d["device_user"]
            ));
        }
    }
    Ok(json!({
        "events_lost": lost,
        "state_disagreements": disagreements.len(),
        "disagreement_examples": disagreements.iter().take(5).collect::<Vec<_>>(),
        "overdue_at_end": overdue,
    }))
}
