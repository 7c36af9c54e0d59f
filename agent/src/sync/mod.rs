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

use lanyard_protocol::enroll::{DeviceInfo, EnrollRequest, EnrollResponse};
use lanyard_protocol::sync::{SyncRequest, SyncResponse};
use lanyard_protocol::{
    AuthorizeRequest, AuthorizeResponse, CommandId, PROTOCOL_VERSION, Signed, Timestamp,
};

use crate::enrollment::EnrollmentInvite;
use crate::runtime::Agent;
use crate::secrets::{DeviceCredential, SecretStore, SecretStoreError};
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

    /// The credential the client presents.
    pub fn credential(&self) -> &DeviceCredential {
        &self.credential
    }

    /// The transport, e.g. for a test to inspect or reconfigure it.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Gives the transport back (e.g. to build a new client after an app restart).
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// One round trip: [`SyncClient::prepare`], [`SyncClient::send`], [`SyncClient::apply`].
    /// Hosts that share the agent between tasks call the three steps themselves, so the
    /// agent is not held while a long-poll waits.
    pub async fn sync_once(
        &mut self,
        agent: &mut Agent,
        now: Timestamp,
    ) -> Result<(SyncOutcome, Vec<Effect>), StoreError> {
        let req = self.prepare(agent)?;
        let result = self.send(&req).await;
        self.apply(agent, &req, result, now)
    }

    /// The next request: the oldest unacknowledged records (long-polling when there are
    /// none), the commands handled since the last success, the versions held.
    pub fn prepare(&self, agent: &Agent) -> Result<SyncRequest, StoreError> {
        let events = agent.store().outbox(self.config.batch_size)?;
        let locker = agent.locker();
        Ok(SyncRequest {
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
        })
    }

    /// Sends `req`; touches no agent state.
    pub async fn send(&self, req: &SyncRequest) -> Result<SyncResponse, TransportError> {
        self.transport.sync(&self.credential, req).await
    }

    /// Applies the result of sending `req`: on success trims the outbox through the
    /// acknowledged sequence and applies policy, offline list and commands; on failure
    /// tells the core the server is away and computes the backoff.
    pub fn apply(
        &mut self,
        agent: &mut Agent,
        req: &SyncRequest,
        result: Result<SyncResponse, TransportError>,
        now: Timestamp,
    ) -> Result<(SyncOutcome, Vec<Effect>), StoreError> {
        let resp = match result {
            Ok(resp) => resp,
            Err(error) => {
                let retry_in = self.backoff.next_delay();
                let effects = agent.handle(Event::SyncFailed, now)?;
                return Ok((SyncOutcome::Failed { error, retry_in }, effects));
            }
        };
        self.backoff.reset();
        // The server has seen these; anything received below is handled anew.
        self.handled.retain(|id| !req.handled_commands.contains(id));
        agent.store_mut().ack_through(resp.acked_seq)?;
        let mut effects = agent.handle(Event::SyncSucceeded, now)?;
        if let Some(policy) = &resp.policy {
            effects.extend(agent.receive_policy(policy, now)?);
        }
        if let Some(list) = &resp.offline_credentials {
            effects.extend(agent.receive_offline_credentials(list, now)?);
        }
        for command in &resp.commands {
            effects.extend(self.receive_command(agent, command, now)?);
        }
        // Go again at once only while records wait *and* the server took what was sent;
        // a server that acknowledges nothing gets the normal cadence, not a busy loop.
        let progressed = req.events.last().is_none_or(|r| resp.acked_seq >= r.seq);
        let outcome = SyncOutcome::Synced {
            sent: req.events.len(),
            acked_seq: resp.acked_seq,
            commands: resp.commands.len(),
            more: progressed && agent.store().outbox_len()? > 0,
        };
        Ok((outcome, effects))
    }

    fn receive_command(
        &mut self,
        agent: &mut Agent,
        command: &Signed,
        now: Timestamp,
    ) -> Result<Vec<Effect>, StoreError> {
        let effects = agent.receive_command(command, now)?;
        if let Some(id) = crate::runtime::claimed_command_id(command)
            && !self.handled.contains(&id)
        {
            self.handled.push(id);
        }
        Ok(effects)
    }

    /// Carries out an [`Effect::Authorize`]: the server's signed answer (grant or denial)
    /// is applied; no answer tells the core, which falls back to the offline list for a
    /// badge. Needs no long-poll slot: a tap never waits for a sync.
    pub async fn authorize(
        &mut self,
        agent: &mut Agent,
        req: &AuthorizeRequest,
        now: Timestamp,
    ) -> Result<Vec<Effect>, StoreError> {
        let result = self.send_authorization(req).await;
        self.apply_authorization(agent, req, result, now)
    }

    /// Sends an authorization request; touches no agent state, so a host sharing the
    /// agent between tasks need not hold it while the server answers.
    pub async fn send_authorization(
        &self,
        req: &AuthorizeRequest,
    ) -> Result<AuthorizeResponse, TransportError> {
        self.transport.authorize(&self.credential, req).await
    }

    /// Applies the answer to `req`: the signed grant or denial, or, with no answer, the
    /// core's offline fallback.
    pub fn apply_authorization(
        &mut self,
        agent: &mut Agent,
        req: &AuthorizeRequest,
        result: Result<AuthorizeResponse, TransportError>,
        now: Timestamp,
    ) -> Result<Vec<Effect>, StoreError> {
        match result {
            Ok(resp) => self.receive_command(agent, &resp.command, now),
            Err(_) => agent.handle(
                Event::AuthorizationFailed {
                    request_id: req.request_id.clone(),
                },
                now,
            ),
        }
    }
}

/// Why enrollment did not complete.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The server could not be reached or refused the token.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The credential could not be kept in the host's secret store.
    #[error(transparent)]
    Secrets(#[from] SecretStoreError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server's answer did not hold together (its policy does not verify under the
    /// key it sent, or the device is already enrolled); recorded by the agent.
    #[error("enrollment refused by the device: {0}")]
    Refused(String),
}

/// Redeems an enrollment invite: asks the server, keeps the device credential in the
/// host's secret store, pins the server key and applies the signed initial policy.
pub async fn enroll<T: Transport>(
    transport: &T,
    invite: &EnrollmentInvite,
    device: DeviceInfo,
    secrets: &dyn SecretStore,
    agent: &mut Agent,
    now: Timestamp,
) -> Result<(DeviceCredential, Vec<Effect>), EnrollError> {
    if agent.locker().enrollment.is_some() {
        return Err(EnrollError::Refused(
            "this device is already enrolled".into(),
        ));
    }
    let resp = transport.enroll(&enroll_request(invite, device)).await?;
    complete_enrollment(resp, secrets, agent, now)
}

/// The request that redeems `invite` for this device.
pub fn enroll_request(invite: &EnrollmentInvite, device: DeviceInfo) -> EnrollRequest {
    EnrollRequest {
        v: PROTOCOL_VERSION,
        token: invite.token.clone(),
        device,
    }
}

/// Applies the server's answer to an enrollment: keeps the device credential in the
/// host's secret store, pins the server key and applies the signed initial policy. A
/// policy that does not verify undoes the credential. Hosts that must not hold the agent
/// across the network call (the FFI) send the request themselves and call this.
pub fn complete_enrollment(
    resp: EnrollResponse,
    secrets: &dyn SecretStore,
    agent: &mut Agent,
    now: Timestamp,
) -> Result<(DeviceCredential, Vec<Effect>), EnrollError> {
    let credential = DeviceCredential::new(resp.device_id.clone(), resp.device_credential);
    credential.save(secrets)?;
    let effects = agent.enroll(resp.device_id, resp.server_key, &resp.policy, now)?;
    if agent.locker().enrollment.is_none() {
        DeviceCredential::forget(secrets)?;
        return Err(EnrollError::Refused(
            "the initial policy does not verify under the server key".into(),
        ));
    }
    Ok((credential, effects))
}
