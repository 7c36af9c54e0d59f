//! The sync client: carries the outbox up and commands, policy and offline lists down.
//!
//! The network sits behind [`Transport`] so tests and the simulator can inject faults;
//! [`http::HttpTransport`] is the real one (reqwest, rustls with ring). The client keeps
//! no state that matters across a crash: the outbox lives in the store and is trimmed
//! only through the sequence number the server acknowledged, and commands the server
//! resends after a lost response are refused as replays by the core. So a device resumes
//! exactly where it stopped, however long it was away.

pub mod backoff;
pub mod http;

use std::future::Future;
use std::time::Duration;

use lanyard_protocol::enroll::{EnrollRequest, EnrollResponse};
use lanyard_protocol::sync::{SyncRequest, SyncResponse};
use lanyard_protocol::{
    AuthorizeRequest, AuthorizeResponse, CommandId, PROTOCOL_VERSION, Timestamp,
};

use crate::runtime::Agent;
use crate::secrets::DeviceCredential;
use crate::store::StoreError;
use crate::{Effect, Event};
pub use backoff::Backoff;

/// Why a request did not get a usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection (DNS, refused, TLS, network down).
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// Connected, but no answer in time. The server may or may not have applied it.
    #[error("request timed out")]
    Timeout,
    /// The server failed (5xx); worth retrying.
    #[error("server error {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server refused the request (4xx); retrying the same request will not help.
    #[error("server refused the request ({status} {code}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The stable error code from the JSON body.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The answer could not be read.
    #[error("unreadable answer: {0}")]
    Malformed(String),
}

/// The device API as the client needs it.
pub trait Transport: Send + Sync {
    /// Redeems an enrollment token.
    fn enroll(
        &self,
        req: &EnrollRequest,
    ) -> impl Future<Output = Result<EnrollResponse, TransportError>> + Send;
    /// One sync round trip (may long-poll up to `req.wait_secs`).
    fn sync(
        &self,
        credential: &DeviceCredential,
        req: &SyncRequest,
    ) -> impl Future<Output = Result<SyncResponse, TransportError>> + Send;
    /// Asks for a checkout.
    fn authorize(
        &self,
        credential: &DeviceCredential,
        req: &AuthorizeRequest,
    ) -> impl Future<Output = Result<AuthorizeResponse, TransportError>> + Send;
}

/// What one sync attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The round trip completed.
    Synced {
        /// Records sent.
        sent: usize,
        /// Highest sequence the server made durable.
        acked_seq: u64,
        /// Commands received.
        commands: usize,
        /// True when more records wait: sync again at once.
        more: bool,
    },
    /// It failed; try again after `retry_in`.
    Failed {
        /// What went wrong.
        error: TransportError,
        /// The backoff delay before the next attempt.
        retry_in: Duration,
    },
}

/// Tunables of the client.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Most records per request.
    pub batch_size: usize,
    /// Long-poll wait when nothing is queued, so a grant arrives as soon as it is issued.
    pub long_poll_secs: u32,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_cap: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            batch_size: 500,
            long_poll_secs: 25,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
        }
    }
}

/// Drives sync for one device.
pub struct SyncClient<T> {
    transport: T,
    credential: DeviceCredential,
    config: SyncConfig,
    backoff: Backoff,
    /// Command ids received since the last successful sync, so the server stops resending.
    handled: Vec<CommandId>,
}

impl<T: Transport> SyncClient<T> {
    /// A client for the enrolled device holding `credential`.
    pub fn new(transport: T, credential: DeviceCredential, config: SyncConfig, seed: u64) -> Self {
        let backoff = Backoff::new(config.backoff_base, config.backoff_cap, seed);
        SyncClient {
            transport,
            credential,
            config,
            backoff,
            handled: Vec::new(),
        }
    }

    /// The transport, e.g. for a test to inspect or reconfigure it.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Gives the transport back (e.g. to build a new client after an app restart).
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// One round trip: send the oldest unacknowledged records, trim what the server
    /// acknowledged, apply what came back. Returns the outcome and the effects the host
    /// must carry out (already durable).
    pub async fn sync_once(
        &mut self,
        agent: &mut Agent,
        now: Timestamp,
    ) -> Result<(SyncOutcome, Vec<Effect>), StoreError> {
        let events = agent.store().outbox(self.config.batch_size)?;
        let last_sent = events.last().map(|e| e.seq);
        let locker = agent.locker();
        let req = SyncRequest {
            v: PROTOCOL_VERSION,
            device_id: self.credential.device_id.clone(),
            wait_secs: if events.is_empty() {
                self.config.long_poll_secs
            } else {
                0
            },
            handled_commands: self.handled.clone(),
            policy_version: locker.policy.version,
            credentials_version: locker.offline_credentials.as_ref().map_or(0, |c| c.version),
            events,
        };
        let sent = req.events.len();
        let resp = match self.transport.sync(&self.credential, &req).await {
            Ok(resp) => resp,
            Err(error) => {
                let retry_in = self.backoff.next_delay();
                let effects = agent.handle(Event::SyncFailed, now)?;
                return Ok((SyncOutcome::Failed { error, retry_in }, effects));
            }
        };
        self.backoff.reset();
        self.handled.clear();
        agent.store_mut().ack_through(resp.acked_seq)?;
        let mut effects = agent.handle(Event::SyncSucceeded, now)?;
        if let Some(policy) = &resp.policy {
            effects.extend(agent.receive_policy(policy, now)?);
        }
        if let Some(list) = &resp.offline_credentials {
            effects.extend(agent.receive_offline_credentials(list, now)?);
        }
        for command in &resp.commands {
            effects.extend(agent.receive_command(command, now)?);
            if let Some(id) = crate::runtime::claimed_command_id(command) {
                self.handled.push(id);
            }
        }
        // Go again at once only while records wait *and* the server took what was sent;
        // a server that acknowledges nothing gets the normal cadence, not a busy loop.
        let progressed = last_sent.is_none_or(|seq| resp.acked_seq >= seq);
        let outcome = SyncOutcome::Synced {
            sent,
            acked_seq: resp.acked_seq,
            commands: resp.commands.len(),
            more: progressed && agent.store().outbox_len()? > 0,
        };
        Ok((outcome, effects))
    }
}
