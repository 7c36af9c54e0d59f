//! The agent as a host runs it: the pure core plus its durable store.
//!
//! `Agent::handle` computes the next state and effects, commits the state and its
//! outbox records in one transaction, and only then hands the effects back to the host.
//! If the commit fails, the in-memory state does not move and no effect is returned, so
//! the phone never acts on a decision it could lose in a power cut.
//!
//! Signed server payloads enter here: the runtime checks each signature against the key
//! pinned at enrollment, feeds the core only [`Verified`] values, and keeps policy and
//! offline lists exactly as received so they can be checked again on every start.

use lanyard_protocol::events::PayloadKind;
use lanyard_protocol::policy::OfflineCredentialList;
use lanyard_protocol::{
    CommandEnvelope, DeviceId, Policy, Signed, Timestamp, VerifyingKey, signing::SignatureError,
};
use serde::de::DeserializeOwned;

use crate::store::{Store, StoreError};
use crate::{Effect, Event, Locker, Verified};

/// The core and its store, kept in step.
pub struct Agent {
    locker: Locker,
    store: Store,
}

impl Agent {
    /// Loads the last committed state from `store` (a fresh locker if there is none),
    /// re-verifies the stored policy and offline list against the pinned key, and returns
    /// the effects to carry out after a (re)start: the current screen, pending app
    /// logouts, the passcode clear still being tracked, the next wake-up.
    pub fn open(store: Store, now: Timestamp) -> Result<(Agent, Vec<Effect>), StoreError> {
        let mut locker = store.load_state()?.unwrap_or_default();
        let problems = reverify_cached(&mut locker, &store)?;
        let mut agent = Agent { locker, store };
        let mut effects = Vec::new();
        for (kind, reason) in problems {
            effects.extend(agent.handle(Event::SignedPayloadRefused { kind, reason }, now)?);
        }
        effects.extend(agent.handle(Event::HostStarted, now)?);
        Ok((agent, effects))
    }

    /// Feeds one event. The returned effects may be carried out: their state is durable.
    /// A policy or offline list the core applies is stored as received, in the same
    /// transaction, so the next start can check it again.
    pub fn handle(&mut self, event: Event, now: Timestamp) -> Result<Vec<Effect>, StoreError> {
        let candidate = SignedCandidate::of(&event);
        let (next, effects) = crate::handle(self.locker.clone(), event, now);
        let signed = candidate
            .as_ref()
            .filter(|c| c.applied(&next))
            .map(|c| (c.kind, c.version, &c.signed));
        // An idle tick changes nothing: skip the transaction and its fsync.
        let has_records = effects.iter().any(|e| matches!(e, Effect::Record(_)));
        if has_records || next != self.locker || signed.is_some() {
            self.store.commit_with(&next, &effects, signed)?;
            self.locker = next;
        }
        Ok(effects)
    }

    /// Completes enrollment: pins `server_key` and applies the signed initial policy.
    pub fn enroll(
        &mut self,
        device_id: DeviceId,
        server_key: VerifyingKey,
        policy: &Signed,
        now: Timestamp,
    ) -> Result<Vec<Effect>, StoreError> {
        match Verified::<Policy>::open(policy, &server_key) {
            Ok(policy) => self.handle(
                Event::Enrolled {
                    device_id,
                    server_key,
                    policy,
                },
                now,
            ),
            Err(e) => self.refuse(PayloadKind::Policy, e, now),
        }
    }

    /// A signed server command: verified against the pinned key, then applied (or
    /// refused, recorded and reported).
    pub fn receive_command(
        &mut self,
        signed: &Signed,
        now: Timestamp,
    ) -> Result<Vec<Effect>, StoreError> {
        let verified = self
            .pinned_key()
            .map(|key| Verified::<CommandEnvelope>::open(signed, &key));
        let event = match verified {
            Some(Ok(v)) => Event::Command(v),
            Some(Err(e)) => Event::CommandRefused {
                command_id: claimed_command_id(signed),
                rejection: e.into(),
            },
            None => Event::CommandRefused {
                command_id: claimed_command_id(signed),
                rejection: lanyard_protocol::CommandRejection::WrongDevice,
            },
        };
        self.handle(event, now)
    }

    /// A signed policy from the server.
    pub fn receive_policy(
        &mut self,
        signed: &Signed,
        now: Timestamp,
    ) -> Result<Vec<Effect>, StoreError> {
        match self
            .pinned_key()
            .map(|key| Verified::<Policy>::open(signed, &key))
        {
            Some(Ok(p)) => self.handle(Event::PolicyUpdated(p), now),
            Some(Err(e)) => self.refuse(PayloadKind::Policy, e, now),
            None => self.not_enrolled(PayloadKind::Policy, now),
        }
    }

    /// A signed offline credential list from the server.
    pub fn receive_offline_credentials(
        &mut self,
        signed: &Signed,
        now: Timestamp,
    ) -> Result<Vec<Effect>, StoreError> {
        let kind = PayloadKind::OfflineCredentials;
        match self
            .pinned_key()
            .map(|key| Verified::<OfflineCredentialList>::open(signed, &key))
        {
            Some(Ok(l)) => self.handle(Event::OfflineCredentialsUpdated(l), now),
            Some(Err(e)) => self.refuse(kind, e, now),
            None => self.not_enrolled(kind, now),
        }
    }

    fn refuse(
        &mut self,
        kind: PayloadKind,
        e: SignatureError,
        now: Timestamp,
    ) -> Result<Vec<Effect>, StoreError> {
        self.handle(
            Event::SignedPayloadRefused {
                kind,
                reason: e.to_string(),
            },
            now,
        )
    }

    fn not_enrolled(
        &mut self,
        kind: PayloadKind,
        now: Timestamp,
    ) -> Result<Vec<Effect>, StoreError> {
        let reason = "device is not enrolled".to_owned();
        self.handle(Event::SignedPayloadRefused { kind, reason }, now)
    }

    fn pinned_key(&self) -> Option<VerifyingKey> {
        self.locker.enrollment.as_ref().map(|e| e.server_key)
    }

    /// The current (committed) state.
    pub fn locker(&self) -> &Locker {
        &self.locker
    }

    /// The store, for the sync client's outbox reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, for acknowledging records the server made durable.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

/// Checks the stored signed copies against the pinned key and against what the state
/// holds. A copy that fails, or differs from the state, means the database was altered
/// outside the agent: the state falls back to what still verifies (the default policy,
/// no offline list) and each problem is returned to be recorded and reported.
fn reverify_cached(
    locker: &mut Locker,
    store: &Store,
) -> Result<Vec<(PayloadKind, String)>, StoreError> {
    let Some(key) = locker.enrollment.as_ref().map(|e| e.server_key) else {
        return Ok(Vec::new());
    };
    let mut problems = Vec::new();
    let policy = check::<Policy>(store.signed(PayloadKind::Policy)?, &key);
    let policy_ok = match &policy {
        Ok(Some(p)) => *p == locker.policy,
        Ok(None) => locker.policy == Policy::default(),
        Err(_) => false,
    };
    if !policy_ok {
        problems.push((PayloadKind::Policy, describe(&policy)));
        locker.policy = policy.ok().flatten().unwrap_or_default();
    }
    let list = check::<OfflineCredentialList>(store.signed(PayloadKind::OfflineCredentials)?, &key);
    let list_ok = match &list {
        Ok(stored) => stored.as_ref() == locker.offline_credentials.as_ref(),
        Err(_) => false,
    };
    if !list_ok {
        problems.push((PayloadKind::OfflineCredentials, describe(&list)));
        // Only a list that verifies may unlock anything offline.
        locker.offline_credentials = list.ok().flatten();
    }
    Ok(problems)
}

/// The command id a payload claims, for the refusal report; not trusted for anything else.
pub(crate) fn claimed_command_id(signed: &Signed) -> Option<lanyard_protocol::CommandId> {
    let value: serde_json::Value = serde_json::from_str(&signed.payload).ok()?;
    Some(value.get("command_id")?.as_str()?.into())
}

/// A signed payload an event carries, and how to tell whether the core applied it.
struct SignedCandidate {
    kind: PayloadKind,
    version: u64,
    signed: Signed,
    policy: Option<Policy>,
    list: Option<OfflineCredentialList>,
}

impl SignedCandidate {
    fn of(event: &Event) -> Option<SignedCandidate> {
        let (kind, version, signed, policy, list) = match event {
            Event::Enrolled { policy, .. } | Event::PolicyUpdated(policy) => {
                let p: &Policy = policy;
                (
                    PayloadKind::Policy,
                    p.version,
                    policy.signed(),
                    Some(p.clone()),
                    None,
                )
            }
            Event::OfflineCredentialsUpdated(list) => {
                let l: &OfflineCredentialList = list;
                (
                    PayloadKind::OfflineCredentials,
                    l.version,
                    list.signed(),
                    None,
                    Some(l.clone()),
                )
            }
            _ => return None,
        };
        Some(SignedCandidate {
            kind,
            version,
            signed: signed.clone(),
            policy,
            list,
        })
    }

    /// True when the state after the event holds exactly this payload.
    fn applied(&self, next: &Locker) -> bool {
        match (&self.policy, &self.list) {
            (Some(p), _) => next.enrollment.is_some() && &next.policy == p,
            (_, Some(l)) => next.offline_credentials.as_ref() == Some(l),
            _ => false,
        }
    }
}

fn check<T: DeserializeOwned>(
    signed: Option<Signed>,
    key: &VerifyingKey,
) -> Result<Option<T>, SignatureError> {
    signed
        .map(|s| Verified::<T>::open(&s, key).map(Verified::into_inner))
        .transpose()
}

fn describe<T>(outcome: &Result<Option<T>, SignatureError>) -> String {
    match outcome {
        Err(e) => format!("stored copy no longer verifies ({e}); fell back to a safe default"),
        Ok(Some(_)) => "state differs from its stored signed copy; restored the signed copy".into(),
        Ok(None) => {
            "state holds a payload with no stored signed copy; fell back to a safe default".into()
        }
    }
}
