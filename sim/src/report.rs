//! What the simulation counts, and the summary it prints.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// Counters shared by every task of the run.
#[derive(Default)]
pub struct Stats {
    /// Badge taps at cart readers.
    pub cart_taps: AtomicU64,
    /// Badge taps on phones.
    pub phone_taps: AtomicU64,
    /// Sync attempts a phone made with no network.
    pub offline_syncs: AtomicU64,
    /// Phones docked in a cart other than the one they left.
    pub wrong_cart_returns: AtomicU64,
    /// Phones returned after their holder's shift ended (more than 30 min late).
    pub late_returns: AtomicU64,
    beeps: Mutex<BTreeMap<u64, u64>>,
    unlock_us: Mutex<Vec<u64>>,
    sync_us: Mutex<Vec<u64>>,
    errors: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stats {
    /// A tap's beep code (1 granted; 2 unknown badge; 3 no device; 4 user has one).
    pub fn beep(&self, code: u64) {
        *lock(&self.beeps).entry(code).or_default() += 1;
    }

    /// Time from a tap to the phone's unlocked screen.
    pub fn unlocked_after(&self, d: Duration) {
        lock(&self.unlock_us).push(d.as_micros() as u64);
    }

    /// One sync round trip.
    pub fn sync_latency(&self, d: Duration) {
        lock(&self.sync_us).push(d.as_micros() as u64);
    }

    /// Something that should not happen (kept for the summary).
    pub fn error(&self, what: String) {
        lock(&self.errors).push(what);
    }

    /// Errors so far.
    pub fn error_count(&self) -> usize {
        lock(&self.errors).len()
    }

    /// Syncs so far.
    pub fn syncs(&self) -> usize {
        lock(&self.sync_us).len()
    }

    /// The summary as JSON (also printed as text).
    pub fn summary(&self, extra: Value) -> Value {
        let pct = |v: &mut Vec<u64>| {
            v.sort_unstable();
            let p = |q: f64| {
                if v.is_empty() {
                    return 0.0;
                }
                let i = ((v.len() as f64 - 1.0) * q).round() as usize;
                v[i] as f64 / 1000.0
            };
            json!({"count": v.len(), "p50_ms": p(0.5), "p95_ms": p(0.95), "p99_ms": p(0.99), "max_ms": p(1.0)})
        };
        let beeps: BTreeMap<String, u64> = lock(&self.beeps)
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let errors = lock(&self.errors);
        let mut out = json!({
            "taps": self.cart_taps.load(Ordering::Relaxed) + self.phone_taps.load(Ordering::Relaxed),
            "cart_taps": self.cart_taps.load(Ordering::Relaxed),
            "phone_taps": self.phone_taps.load(Ordering::Relaxed),
            "grants_by_beep_code": beeps,
            "tap_to_unlock": pct(&mut lock(&self.unlock_us)),
            "sync_latency": pct(&mut lock(&self.sync_us)),
            "offline_sync_attempts": self.offline_syncs.load(Ordering::Relaxed),
            "wrong_cart_returns": self.wrong_cart_returns.load(Ordering::Relaxed),
            "late_returns": self.late_returns.load(Ordering::Relaxed),
            "errors": errors.len(),
            "first_errors": errors.iter().take(5).cloned().collect::<Vec<_>>(),
        });
        if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
            o.extend(e);
        }
        out
    }
}

/// The summary as a few readable lines.
pub fn print_text(s: &Value) {
    let l = |k: &str| &s[k];
    println!(
        "devices               : {} in {} carts",
        l("devices"),
        l("carts")
    );
    println!(
        "simulated             : {} h in {:.1} s of wall time",
        l("simulated_hours"),
        l("wall_secs").as_f64().unwrap_or(0.0)
    );
    println!(
        "taps                  : {} ({} at carts, {} on phones)",
        l("taps"),
        l("cart_taps"),
        l("phone_taps")
    );
    println!("beep codes            : {}", l("grants_by_beep_code"));
    let p = |k: &str| {
        let v = &s[k];
        format!(
            "p50 {} ms  p95 {} ms  p99 {} ms  (n = {})",
            v["p50_ms"], v["p95_ms"], v["p99_ms"], v["count"]
        )
    };
    println!("tap-to-unlock         : {}", p("tap_to_unlock"));
    println!("sync latency          : {}", p("sync_latency"));
    println!(
        "returns               : {} to the wrong cart, {} late, {} overdue at the end",
        l("wrong_cart_returns"),
        l("late_returns"),
        l("overdue_at_end")
    );
    println!("offline sync attempts : {}", l("offline_sync_attempts"));
    println!(
        "errors                : {} {}",
        l("errors"),
        l("first_errors")
    );
    println!("events lost           : {}", l("events_lost"));
    println!(
        "state disagreements   : {} {}",
        l("state_disagreements"),
        l("disagreement_examples")
    );
}
