//! One simulated phone: the real agent core with its real (in-memory SQLite) store and
//! the real HTTP sync client, plus what the simulation knows about where it is.

use std::time::{Duration, Instant};

use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_agent::runtime::Agent;
use lanyard_agent::secrets::MemorySecretStore;
use lanyard_agent::store::Store;
use lanyard_agent::sync::http::HttpTransport;
use lanyard_agent::sync::{SyncClient, SyncConfig, SyncOutcome, enroll};
use lanyard_agent::{Effect, Event, FactsUpdate};
use lanyard_protocol::enroll::DeviceInfo;
use lanyard_protocol::{BadgeId, DeviceStatus, DockLocation, Timestamp};

use crate::report::Stats;

/// A phone in the fleet.
pub struct SimPhone {
    /// Index in the fleet.
    pub idx: usize,
    /// Server device id.
    pub id: String,
    agent: Agent,
    client: SyncClient<HttpTransport>,
    /// The cart it is docked in (None while carried).
    pub cart: Option<(usize, u32)>,
    /// Battery 0–100.
    pub battery: f64,
    /// No network until then (simulated ms).
    pub offline_until: Option<Timestamp>,
    battery_at: Timestamp,
    battery_reported: f64,
}

impl SimPhone {
    /// Enrolls a new phone and docks it at `cart`/`port`.
    pub async fn enroll(
        idx: usize,
        transport: HttpTransport,
        invite: &EnrollmentInvite,
        now: Timestamp,
        cart: (usize, u32),
        cart_id: &str,
        long_poll_secs: u32,
    ) -> anyhow::Result<SimPhone> {
        let (mut agent, _) = Agent::open(Store::open_in_memory()?, now)?;
        let info = DeviceInfo {
            serial: Some(format!("SIM{idx:07}")),
            udid: Some(format!("00008030-{idx:016X}")),
            model: Some("iPhone15,2".into()),
            os_version: "17.4.1".parse().ok(),
            name: Some(format!("Sim {idx}")),
        };
        let secrets = MemorySecretStore::default();
        let (credential, _) = enroll(&transport, invite, info, &secrets, &mut agent, now).await?;
        // With nothing to send, a real phone's sync waits up to this long for a command.
        let config = SyncConfig {
            long_poll_secs,
            ..SyncConfig::default()
        };
        let id = credential.device_id.to_string();
        let mut phone = SimPhone {
            idx,
            id,
            agent,
            client: SyncClient::new(transport, credential, config, idx as u64),
            cart: None,
            battery: 60.0 + (idx % 40) as f64,
            offline_until: None,
            battery_at: now,
            battery_reported: -100.0,
        };
        phone.dock(cart, cart_id, now)?;
        // A phone reports its battery when it starts, so the server can hand it out.
        phone.battery_reported = phone.battery;
        phone.report_battery(now)?;
        Ok(phone)
    }

    /// The core's status.
    pub fn status(&self) -> DeviceStatus {
        self.agent.locker().status()
    }

    /// Who holds it, per the core.
    pub fn username(&self) -> Option<String> {
        self.agent.locker().user().map(|u| u.username.clone())
    }

    /// The highest record sequence the phone has made.
    pub fn last_seq(&self) -> u64 {
        self.agent.locker().next_seq.saturating_sub(1)
    }

    /// Records not yet acknowledged.
    pub fn outbox_len(&self) -> u64 {
        self.agent.store().outbox_len().unwrap_or(u64::MAX)
    }

    fn feed(&mut self, event: Event, now: Timestamp) -> anyhow::Result<Vec<Effect>> {
        Ok(self.agent.handle(event, now)?)
    }

    /// Put on a charger in a cart.
    pub fn dock(
        &mut self,
        cart: (usize, u32),
        cart_id: &str,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        self.cart = Some(cart);
        self.feed(
            Event::Docked {
                location: DockLocation {
                    launchpad: Some(cart_id.into()),
                    port: Some(cart.1),
                },
            },
            now,
        )?;
        Ok(())
    }

    /// Taken off the charger.
    pub fn undock(&mut self, now: Timestamp) -> anyhow::Result<()> {
        self.cart = None;
        self.feed(Event::Undocked, now)?;
        Ok(())
    }

    /// Time passes.
    pub fn tick(&mut self, now: Timestamp) -> anyhow::Result<()> {
        self.feed(Event::Tick, now)?;
        Ok(())
    }

    /// Reports the battery level.
    pub fn report_battery(&mut self, now: Timestamp) -> anyhow::Result<()> {
        let level = self.battery.clamp(0.0, 100.0).round() as u8;
        self.feed(
            Event::PlatformFacts(FactsUpdate {
                battery_percent: Some(level),
                ..FactsUpdate::default()
            }),
            now,
        )?;
        Ok(())
    }

    /// True when the phone has no network at `now`.
    pub fn offline(&self, now: Timestamp) -> bool {
        self.offline_until.is_some_and(|t| now < t)
    }

    /// One sync round trip (or, offline, the failure the core hears about).
    pub async fn sync(&mut self, now: Timestamp, stats: &Stats) -> anyhow::Result<bool> {
        if self.offline(now) {
            self.feed(Event::SyncFailed, now)?;
            stats
                .offline_syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(false);
        }
        let started = Instant::now();
        let (outcome, _) = self.client.sync_once(&mut self.agent, now).await?;
        stats.sync_latency(started.elapsed());
        match outcome {
            SyncOutcome::Synced { more, .. } => Ok(more),
            SyncOutcome::Failed { error, .. } => {
                stats.error(format!("sync {}: {error}", self.id));
                Ok(false)
            }
        }
    }

    /// Syncs until nothing is left to send (bounded).
    pub async fn drain(&mut self, now: Timestamp, stats: &Stats) -> anyhow::Result<()> {
        for _ in 0..8 {
            let more = self.sync(now, stats).await?;
            if !more && self.outbox_len() == 0 {
                break;
            }
        }
        Ok(())
    }

    /// A badge tapped on the phone itself, authorized over HTTP. Returns the time to an
    /// unlocked screen, if it unlocked.
    pub async fn tap(&mut self, badge: &str, now: Timestamp) -> anyhow::Result<Option<Duration>> {
        let started = Instant::now();
        let effects = self.feed(
            Event::BadgeTapped {
                badge: BadgeId::new(badge),
            },
            now,
        )?;
        let Some(req) = effects.iter().find_map(|e| match e {
            Effect::Authorize(r) => Some(r.clone()),
            _ => None,
        }) else {
            return Ok(None);
        };
        if self.offline(now) {
            self.feed(
                Event::AuthorizationFailed {
                    request_id: req.request_id,
                },
                now,
            )?;
        } else {
            self.client.authorize(&mut self.agent, &req, now).await?;
        }
        Ok(self
            .agent
            .locker()
            .screen(now)
            .is_unlocked()
            .then(|| started.elapsed()))
    }

    /// True when the screen is unlocked (a grant arrived).
    pub fn unlocked(&self, now: Timestamp) -> bool {
        self.agent.locker().screen(now).is_unlocked()
    }
}

impl SimPhone {
    /// Battery since the last update: +25 %/h in a cart, -6 %/h carried; reported to the
    /// core (and so to the server) when it moved by 5 points or more.
    pub fn charge_until(&mut self, now: Timestamp) -> anyhow::Result<()> {
        let hours = (now.as_millis() - self.battery_at.as_millis()).max(0) as f64 / 3_600_000.0;
        self.battery_at = now;
        let rate = if self.cart.is_some() { 25.0 } else { -6.0 };
        self.battery = (self.battery + rate * hours).clamp(0.0, 100.0);
        if (self.battery - self.battery_reported).abs() >= 5.0 {
            self.battery_reported = self.battery;
            self.report_battery(now)?;
        }
        Ok(())
    }
}
