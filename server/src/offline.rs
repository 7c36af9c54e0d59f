//! Offline credential lists: what lets a badge unlock a phone while the server is out of
//! reach. The design (docs/security.md): each phone's list holds, for each badge of the
//! users whose groups include its Device Home (the unit's staff), `PBKDF2(badge id,
//! that phone's salt, N)`, signed, bound to the phone, valid 24 hours, refreshed every
//! 6 hours and as soon as an admin change (a badge revoked, a user moved, a phone
//! rehomed) could change it. The server keeps no badge id a copy of its database would
//! reveal: each registered badge keeps its id sealed under the sealing key (stored when
//! the id passes through — registration, import, an online tap), and each phone's
//! entries are computed from it once, in the background, and kept sealed too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanyard_protocol::policy::{OfflineCredential, OfflineCredentialList};
use lanyard_protocol::{BadgeId, Signed};

use crate::error::AppError;
use crate::model::Device;
use crate::state::AppState;
use crate::storage::Storage;
use crate::storage::offline::{OfflineBadge, OfflineListRow, SealedEntry};

/// PBKDF2 iterations of offline entries (docs/BENCHMARKS.md: ~19 ms per entry on one
/// core here, ~93 ms on a phone five times slower).
pub const DEFAULT_ITERATIONS: u32 = 100_000;
/// How long a phone may use a list.
const VALID_MS: i64 = 24 * 3600 * 1000;
/// How often a list is rebuilt even when nothing changed (so it never runs out while
/// the phone is online).
const REFRESH_MS: i64 = 6 * 3600 * 1000;

/// How long the newest audit id is trusted before it is read again.
const MARK_TTL: Duration = Duration::from_secs(1);
/// How long the badge table is trusted when no audited change happened (ids learned at
/// taps are not audited).
const BADGES_TTL: Duration = Duration::from_secs(30);
/// A phone that did not take its list gets it again after this long, not at every sync.
const RESEND_AFTER: Duration = Duration::from_secs(60);
/// Most phones waiting for entries at once; past it a phone is picked up again at its
/// next list build.
const MAX_PENDING: usize = 4096;

/// What the server remembers between syncs, so a phone whose list is current costs no
/// database read. (One server process owns the database; a multi-node backend would keep
/// this in the shared store instead.)
pub struct OfflineCache {
    rows: Mutex<HashMap<String, (OfflineListRow, Option<Instant>)>>,
    mark: Mutex<Option<(i64, Instant)>>,
    badges: Mutex<Option<BadgeSnapshot>>,
    /// Phones whose missing entries are being computed.
    pending: Mutex<HashSet<String>>,
    /// One computation at a time: entries are slow on purpose, and a fleet's first lists
    /// must not take every core from the taps.
    compute: tokio::sync::Semaphore,
}

impl Default for OfflineCache {
    fn default() -> Self {
        OfflineCache {
            rows: Mutex::default(),
            mark: Mutex::default(),
            badges: Mutex::default(),
            pending: Mutex::default(),
            compute: tokio::sync::Semaphore::new(1),
        }
    }
}

/// The badge table as read at an audit mark and an instant.
type BadgeSnapshot = (i64, Instant, Arc<Vec<OfflineBadge>>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn audit_mark<S: Storage>(st: &AppState<S>) -> Result<i64, AppError> {
    if let Some((mark, at)) = *lock(&st.offline.mark)
        && at.elapsed() < MARK_TTL
    {
        return Ok(mark);
    }
    let mark = st.storage.audit_mark().await?;
    *lock(&st.offline.mark) = Some((mark, Instant::now()));
    Ok(mark)
}

async fn badges<S: Storage>(
    st: &AppState<S>,
    mark: i64,
) -> Result<Arc<Vec<OfflineBadge>>, AppError> {
    if let Some((m, at, b)) = lock(&st.offline.badges).as_ref()
        && *m == mark
        && at.elapsed() < BADGES_TTL
    {
        return Ok(b.clone());
    }
    let b = Arc::new(st.storage.offline_badges().await?);
    *lock(&st.offline.badges) = Some((mark, Instant::now(), b.clone()));
    Ok(b)
}

/// Stores a registered badge's sealed id, so phones' offline entries can be computed.
pub async fn learn_now<S: Storage>(st: &AppState<S>, badge: &BadgeId) -> Result<(), AppError> {
    let badge_hash = st.keys.badge_hash(badge);
    let sealed = st.keys.seal_badge(&badge_hash, badge)?;
    st.storage.set_offline_sealed(badge_hash, sealed).await?;
    Ok(())
}

/// After an online tap of a registered badge: if it has no sealed id yet (it was
/// registered before offline lists were per phone), store it in the background so the
/// tap's answer never waits on it.
pub fn learn<S: Storage>(st: &AppState<S>, badge: &BadgeId) {
    let st = st.clone();
    let badge = badge.clone();
    tokio::spawn(async move {
        let needed = st
            .storage
            .needs_offline_sealed(st.keys.badge_hash(&badge))
            .await;
        let result = match needed {
            Ok(true) => learn_now(&st, &badge).await,
            Ok(false) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "sealed badge id not stored");
        }
    });
}

/// Computes a phone's missing entries in the background (one phone at a time), stores
/// them sealed and marks its list for rebuilding, so its next sync brings them.
fn compute_entries<S: Storage>(st: &AppState<S>, device_id: &str, missing: Vec<OfflineBadge>) {
    {
        let mut pending = lock(&st.offline.pending);
        if pending.len() >= MAX_PENDING || !pending.insert(device_id.to_owned()) {
            return;
        }
    }
    let st = st.clone();
    let device_id = device_id.to_owned();
    tokio::spawn(async move {
        let result = async {
            let _permit = st
                .offline
                .compute
                .acquire()
                .await
                .map_err(|e| AppError::Internal(anyhow::anyhow!("offline entries: {e}")))?;
            let keys = st.keys.clone();
            let iterations = st.offline_iterations;
            let id = device_id.clone();
            let entries = tokio::task::spawn_blocking(move || {
                let salt = keys.device_offline_salt(&id);
                let mut out = Vec::with_capacity(missing.len());
                for b in &missing {
                    let badge = keys.open_badge(&b.badge_hash, &b.sealed)?;
                    let entry = keys.offline_entry(&badge, &salt, iterations);
                    out.push(SealedEntry {
                        sealed: keys.seal_entry(&id, &b.badge_hash, &entry)?,
                        badge_hash: b.badge_hash.clone(),
                    });
                }
                anyhow::Ok(out)
            })
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("offline entries: {e}")))??;
            st.storage
                .save_offline_entries(device_id.clone(), iterations, entries)
                .await?;
            lock(&st.offline.rows).remove(&device_id);
            Ok::<(), AppError>(())
        }
        .await;
        lock(&st.offline.pending).remove(&device_id);
        if let Err(e) = result {
            tracing::warn!(error = %e, device = %device_id, "offline entries not computed");
        }
    });
}

/// The signed list to send a device at this sync, if it needs one: none yet, an admin
/// change since the last, due for refresh, or the device holds another version (sent
/// again at most once a minute).
pub async fn list_for_sync<S: Storage>(
    st: &AppState<S>,
    device: &Device,
    held_version: u64,
) -> Result<Option<Signed>, AppError> {
    let audit_mark = audit_mark(st).await?;
    let cached = lock(&st.offline.rows).get(&device.id).cloned();
    let (row, last_sent) = match cached {
        Some((r, sent)) => (Some(r), sent),
        None => (st.storage.offline_list(device.id.clone()).await?, None),
    };
    let now = st.now().as_millis();
    let lagging = row.as_ref().is_some_and(|r| held_version != r.version)
        && last_sent.is_none_or(|t| t.elapsed() >= RESEND_AFTER);
    let due = match &row {
        None => true,
        Some(r) => r.audit_mark < audit_mark || now >= r.built_at + REFRESH_MS || lagging,
    };
    if !due {
        if let Some(r) = row {
            lock(&st.offline.rows).insert(device.id.clone(), (r, last_sent));
        }
        return Ok(None);
    }
    let iterations = st.offline_iterations;
    let mut entries: Vec<OfflineCredential> = Vec::new();
    if let Some(home) = device.device_home.as_deref() {
        let stored: HashMap<Vec<u8>, Vec<u8>> = st
            .storage
            .offline_entries(device.id.to_string(), iterations)
            .await?
            .into_iter()
            .map(|e| (e.badge_hash, e.sealed))
            .collect();
        let mut missing = Vec::new();
        for b in badges(st, audit_mark).await?.iter() {
            let member = b
                .groups
                .iter()
                .any(|g| g.trim().eq_ignore_ascii_case(home.trim()));
            if !member {
                continue;
            }
            match stored.get(&b.badge_hash) {
                Some(sealed) => entries.push(OfflineCredential {
                    badge_hash: st.keys.open_entry(&device.id, &b.badge_hash, sealed)?,
                    user: b.user.clone(),
                }),
                None => missing.push(b.clone()),
            }
        }
        if !missing.is_empty() {
            compute_entries(st, &device.id, missing);
        }
    }
    let digest = crate::keys::sha256(&serde_json::to_vec(&entries).map_err(anyhow::Error::new)?);
    let fresh = |r: &OfflineListRow| r.digest == digest && now < r.built_at + REFRESH_MS;
    let row = match row {
        // Nothing changed for this phone: remember the audit mark, send nothing.
        Some(r) if fresh(&r) && !lagging => {
            let row = OfflineListRow { audit_mark, ..r };
            st.storage
                .save_offline_list(device.id.clone(), row.clone())
                .await?;
            lock(&st.offline.rows).insert(device.id.clone(), (row, last_sent));
            return Ok(None);
        }
        // The phone lacks the current list: send it again as it was.
        Some(r) if fresh(&r) => OfflineListRow { audit_mark, ..r },
        other => OfflineListRow {
            version: other.map_or(1, |r| r.version + 1),
            digest,
            audit_mark,
            built_at: now,
            valid_until: now + VALID_MS,
        },
    };
    let list = OfflineCredentialList {
        device_id: device.id.as_str().into(),
        version: row.version,
        valid_until: lanyard_protocol::Timestamp(row.valid_until),
        salt: st.keys.device_offline_salt(&device.id),
        iterations,
        entries,
    };
    let signed = st.keys.signing.sign(&list).map_err(anyhow::Error::new)?;
    st.storage
        .save_offline_list(device.id.clone(), row.clone())
        .await?;
    lock(&st.offline.rows).insert(device.id.clone(), (row, Some(Instant::now())));
    Ok(Some(signed))
}
