//! Redeeming an enrollment invite and carrying out authorizations through a transport.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

mod common;

use std::sync::Mutex;

use common::{DEVICE, user};
use lanyard_agent::enrollment::EnrollmentInvite;
use lanyard_agent::runtime::Agent;
use lanyard_agent::secrets::{DeviceCredential, MemorySecretStore};
use lanyard_agent::store::Store;
use lanyard_agent::sync::{EnrollError, SyncClient, SyncConfig, Transport, TransportError, enroll};
use lanyard_agent::{Effect, Event, Screen};
use lanyard_protocol::enroll::{DeviceInfo, EnrollRequest, EnrollResponse};
use lanyard_protocol::events::{PayloadKind, Report};
use lanyard_protocol::sync::{SyncRequest, SyncResponse};
use lanyard_protocol::{
    AuthorizeRequest, AuthorizeResponse, BadgeId, CheckoutGrant, CommandEnvelope, DenialCode,
    DeviceId, DeviceStatus, DockLocation, GrantId, PROTOCOL_VERSION, Policy, ServerCommand,
    SigningKey, Timestamp, UnlockMethod,
};

const T0: Timestamp = Timestamp(common::T0);

/// Answers from a script; records what it was sent.
struct Scripted {
    key: SigningKey,
    policy_signer: SigningKey,
    /// What to answer to the next authorization: a payload to sign, or a failure.
    authorize: Mutex<Option<Result<ServerCommand, TransportError>>>,
    seen_tokens: Mutex<Vec<String>>,
}

impl Transport for Scripted {
    async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, TransportError> {
        self.seen_tokens.lock().unwrap().push(req.token.clone());
        if req.token != "good-token" {
            return Err(TransportError::Rejected {
                status: 403,
                code: "invalid_enrollment_token".into(),
                message: "unknown or expired token".into(),
            });
        }
        let mut policy = Policy::default();
        policy.version = 3;
        Ok(EnrollResponse {
            v: PROTOCOL_VERSION,
            device_id: DeviceId::new(DEVICE),
            device_credential: "cred-123".into(),
            server_key: self.key.verifying_key(),
            policy: self.policy_signer.sign(&policy).unwrap(),
        })
    }

    async fn sync(
        &self,
        _c: &DeviceCredential,
        _r: &SyncRequest,
    ) -> Result<SyncResponse, TransportError> {
        Err(TransportError::Timeout)
    }

    async fn authorize(
        &self,
        c: &DeviceCredential,
        req: &AuthorizeRequest,
    ) -> Result<AuthorizeResponse, TransportError> {
        assert_eq!(c.authorization(), "Bearer cred-123");
        let payload = self
            .authorize
            .lock()
            .unwrap()
            .take()
            .expect("scripted answer")?;
        let payload = match payload {
            ServerCommand::GrantCheckout(mut g) => {
                g.request_id = Some(req.request_id.clone());
                ServerCommand::GrantCheckout(g)
            }
            ServerCommand::DenyCheckout { code, .. } => ServerCommand::DenyCheckout {
                request_id: req.request_id.clone(),
                code,
            },
            other => other,
        };
        let env = CommandEnvelope {
            v: PROTOCOL_VERSION,
            device_id: req.device_id.clone(),
            command_id: format!("c-{}", req.request_id).as_str().into(),
            issued_at: req.presented_at,
            expires_at: req.presented_at.plus_secs(60),
            payload,
        };
        Ok(AuthorizeResponse {
            command: self.key.sign(&env).unwrap(),
        })
    }
}

fn scripted(policy_ok: bool) -> Scripted {
    let (key, doc) = SigningKey::generate().unwrap();
    let policy_signer = if policy_ok {
        SigningKey::from_pkcs8(&doc).unwrap()
    } else {
        SigningKey::generate().unwrap().0
    };
    Scripted {
        key,
        policy_signer,
        authorize: Mutex::new(None),
        seen_tokens: Mutex::new(Vec::new()),
    }
}

fn invite(token: &str) -> EnrollmentInvite {
    format!("lanyard://enroll?server=https%3A%2F%2Flanyard.example.org&token={token}")
        .parse()
        .unwrap()
}

async fn enrolled() -> (Scripted, Agent, DeviceCredential) {
    let t = scripted(true);
    let secrets = MemorySecretStore::default();
    let (mut agent, _) = Agent::open(Store::open_in_memory().unwrap(), T0).unwrap();
    let (cred, _) = enroll(
        &t,
        &invite("good-token"),
        DeviceInfo::default(),
        &secrets,
        &mut agent,
        T0,
    )
    .await
    .unwrap();
    (t, agent, cred)
}

#[tokio::test]
async fn enrollment_pins_the_key_keeps_the_credential_secret_and_applies_the_policy() {
    let t = scripted(true);
    let secrets = MemorySecretStore::default();
    let (mut agent, _) = Agent::open(Store::open_in_memory().unwrap(), T0).unwrap();
    let err = enroll(
        &t,
        &invite("bad-token"),
        DeviceInfo::default(),
        &secrets,
        &mut agent,
        T0,
    )
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        EnrollError::Transport(TransportError::Rejected { status: 403, .. })
    ));
    assert_eq!(agent.locker().status(), DeviceStatus::Unenrolled);

    let (cred, effects) = enroll(
        &t,
        &invite("good-token"),
        DeviceInfo::default(),
        &secrets,
        &mut agent,
        T0,
    )
    .await
    .unwrap();
    assert_eq!(cred.device_id.as_str(), DEVICE);
    assert_eq!(DeviceCredential::load(&secrets).unwrap(), Some(cred));
    let l = agent.locker();
    assert_eq!(l.status(), DeviceStatus::CheckedIn);
    assert_eq!(
        l.enrollment.as_ref().unwrap().server_key,
        t.key.verifying_key()
    );
    assert_eq!(l.policy.version, 3);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::ShowScreen(Screen::Locked { .. })))
    );
    assert!(
        !serde_json::to_string(l).unwrap().contains("cred-123"),
        "credential not in the agent state"
    );
    let again = enroll(
        &t,
        &invite("good-token"),
        DeviceInfo::default(),
        &secrets,
        &mut agent,
        T0,
    )
    .await;
    assert!(matches!(again, Err(EnrollError::Refused(_))));
}

#[tokio::test]
async fn an_enrollment_whose_policy_does_not_verify_is_refused_and_leaves_no_credential() {
    let t = scripted(false);
    let secrets = MemorySecretStore::default();
    let (mut agent, _) = Agent::open(Store::open_in_memory().unwrap(), T0).unwrap();
    let err = enroll(
        &t,
        &invite("good-token"),
        DeviceInfo::default(),
        &secrets,
        &mut agent,
        T0,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EnrollError::Refused(_)));
    assert_eq!(DeviceCredential::load(&secrets).unwrap(), None);
    assert_eq!(agent.locker().status(), DeviceStatus::Unenrolled);
    let reports: Vec<Report> = agent
        .store()
        .outbox(100)
        .unwrap()
        .into_iter()
        .flat_map(|r| r.reports)
        .collect();
    assert!(reports.iter().any(|r| matches!(
        r,
        Report::SignedPayloadRefused {
            kind: PayloadKind::Policy,
            ..
        }
    )));
}

fn authorize_effect(effects: &[Effect]) -> AuthorizeRequest {
    effects
        .iter()
        .find_map(|e| {
            if let Effect::Authorize(r) = e {
                Some(r.clone())
            } else {
                None
            }
        })
        .expect("an authorize effect")
}

#[tokio::test]
async fn a_tap_is_authorized_through_the_transport_grant_or_denial() {
    let (t, mut agent, cred) = enrolled().await;
    agent
        .handle(
            Event::Docked {
                location: DockLocation::default(),
            },
            T0,
        )
        .unwrap();
    let mut client = SyncClient::new(t, cred, SyncConfig::default(), 5);

    let effects = agent
        .handle(
            Event::BadgeTapped {
                badge: BadgeId::new("111"),
            },
            T0,
        )
        .unwrap();
    let req = authorize_effect(&effects);
    *client.transport().authorize.lock().unwrap() = Some(Ok(ServerCommand::DenyCheckout {
        request_id: req.request_id.clone(),
        code: DenialCode::BadgeNotFound,
    }));
    client.authorize(&mut agent, &req, T0).await.unwrap();
    assert_eq!(agent.locker().status(), DeviceStatus::CheckedIn);
    assert!(
        matches!(agent.locker().screen(T0), Screen::Locked { notice: Some(n), .. } if n.contains("not recognized"))
    );

    let effects = agent
        .handle(
            Event::BadgeTapped {
                badge: BadgeId::new("222"),
            },
            T0.plus_secs(1),
        )
        .unwrap();
    let req = authorize_effect(&effects);
    *client.transport().authorize.lock().unwrap() =
        Some(Ok(ServerCommand::GrantCheckout(CheckoutGrant {
            grant_id: GrantId::new("g-1"),
            request_id: None,
            user: user("alice"),
            method: UnlockMethod::PhoneBadge,
            display_text: Some("Checked out to Alice".into()),
        })));
    let effects = client
        .authorize(&mut agent, &req, T0.plus_secs(1))
        .await
        .unwrap();
    assert_eq!(agent.locker().status(), DeviceStatus::CheckoutPending);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::ShowScreen(s) if s.is_unlocked()))
    );
}

#[tokio::test]
async fn no_answer_falls_back_to_the_offline_list() {
    let (t, mut agent, cred) = enrolled().await;
    agent
        .handle(
            Event::Docked {
                location: DockLocation::default(),
            },
            T0,
        )
        .unwrap();
    let salt = b"s".to_vec();
    let list = lanyard_protocol::policy::OfflineCredentialList {
        device_id: DEVICE.into(),
        version: 1,
        valid_until: T0.plus_secs(3600),
        entries: vec![lanyard_protocol::policy::OfflineCredential {
            badge_hash: lanyard_protocol::kdf::derive(b"333", &salt, 1000),
            user: user("bob"),
        }],
        salt,
        iterations: 1000,
    };
    agent
        .receive_offline_credentials(&t.key.sign(&list).unwrap(), T0)
        .unwrap();
    let mut client = SyncClient::new(t, cred, SyncConfig::default(), 6);
    let effects = agent
        .handle(
            Event::BadgeTapped {
                badge: BadgeId::new("333"),
            },
            T0,
        )
        .unwrap();
    let req = authorize_effect(&effects);
    *client.transport().authorize.lock().unwrap() =
        Some(Err(TransportError::Unreachable("down".into())));
    client.authorize(&mut agent, &req, T0).await.unwrap();
    assert_eq!(agent.locker().status(), DeviceStatus::CheckoutPending);
    assert_eq!(
        agent.locker().user().map(|u| u.username.as_str()),
        Some("bob")
    );
}
