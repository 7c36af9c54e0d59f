//! `lanyard-server demo`: a server seeded with carts, users with badges and passwords,
//! and docked devices, so the admin API and cart taps can be tried at once.
//!
//! The demo devices are records only — no agent runs behind them (`lanyard-sim` will
//! drive live phones). Seeding happens once: a data directory that already has users is
//! left as it is.

use lanyard_protocol::enroll::DeviceInfo;
use lanyard_protocol::events::{FactsReport, Report};
use lanyard_protocol::{BadgeId, Cause, DeviceStatus, DockLocation, EventRecord, Transition};

use crate::domain::directory::{
    CreateLaunchpad, CreateUser, checked_launchpad, checked_user, hash_password,
};
use crate::keys::{random_token, sha256};
use crate::model::Role;
use crate::state::AppState;
use crate::storage::{NewDevice, NewEnrollmentToken, Storage};

const ACTOR: &str = "demo-seed";

/// What the operator needs to know, printed once.
pub struct DemoSeed {
    /// Lines to print (tokens, credentials, badges).
    pub lines: Vec<String>,
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Seeds the demo data unless users already exist.
pub async fn seed<S: Storage>(st: &AppState<S>, server_url: &str) -> anyhow::Result<DemoSeed> {
    if !st
        .storage
        .list_users(None, None, 1)
        .await
        .map_err(err)?
        .items
        .is_empty()
    {
        return Ok(DemoSeed {
            lines: vec!["demo data already present; nothing seeded".into()],
        });
    }
    let now = st.now();
    let mut lines = Vec::new();
    let admin = random_token(32)?;
    st.storage
        .create_api_token(sha256(admin.as_bytes()), Role::Admin, "demo".into(), now)
        .await
        .map_err(err)?;
    lines.push(format!("admin API token (shown once): {admin}"));

    let carts = [
        (
            "4west-cart-1",
            "4 West cart 1",
            10,
            "4 West",
            "America/Chicago",
        ),
        (
            "ed-cart-1",
            "Emergency cart 1",
            8,
            "Emergency",
            "America/Chicago",
        ),
    ];
    for (id, name, ports, department, tz) in carts {
        let cart = checked_launchpad(CreateLaunchpad {
            id: id.into(),
            name: name.into(),
            ports,
            department: Some(department.into()),
            facility: Some("St Mary Demo Hospital".into()),
            manager: Some("it-manager@stmary.example".into()),
            timezone: Some(tz.into()),
        })
        .map_err(err)?;
        let credential = random_token(32)?;
        st.storage
            .create_launchpad(cart, sha256(credential.as_bytes()), ACTOR.into(), now)
            .await
            .map_err(err)?;
        lines.push(format!("cart {id}: reader credential {credential}"));
    }

    let people = [
        ("alice", "Alice Moreau, RN"),
        ("bob", "Bob Okafor, RN"),
        ("carol", "Carol Diaz, MD"),
        ("dan", "Dan Smith, RT"),
    ];
    for (i, (username, display)) in people.iter().enumerate() {
        let (mut user, password) = checked_user(CreateUser {
            username: (*username).into(),
            display_name: (*display).into(),
            email: Some(format!("{username}@stmary.example")),
            groups: vec!["Nursing".into()],
            device_limit: Some(1),
            password: Some("demo-password".into()),
        })
        .map_err(err)?;
        if let Some(p) = password {
            user.password = Some(hash_password(p).await.map_err(err)?);
        }
        st.storage
            .create_user(user, ACTOR.into(), now)
            .await
            .map_err(err)?;
        let badge = BadgeId::new(format!("{}", 1001 + i));
        st.storage
            .add_badge(
                (*username).into(),
                st.keys.badge_hash(&badge),
                ACTOR.into(),
                now,
            )
            .await
            .map_err(err)?;
        crate::offline::learn_now(st, &badge)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        lines.push(format!(
            "user {username}: badge {}, password demo-password",
            badge.expose()
        ));
    }

    let token = random_token(24)?;
    let enrollment = NewEnrollmentToken {
        token_hash: sha256(token.as_bytes()),
        label: "demo".into(),
        uses: None,
        expires_at: now.plus_secs(30 * 86_400),
        launchpad_id: None,
        department: None,
        replaces_existing: false,
    };
    st.storage
        .create_enrollment_token(enrollment, ACTOR.into(), now)
        .await
        .map_err(err)?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("server", server_url)
        .append_pair("token", &token)
        .finish();
    lines.push(format!(
        "enrollment link for real phones: lanyard://enroll?{query}"
    ));

    // Demo devices: enrolled with the same token, docked with varied battery levels.
    let mut n = 0;
    for (cart, _, ports, _, _) in carts {
        for port in 1..=ports.min(6) {
            n += 1;
            let id = format!("demo-{cart}-{port}");
            let info = DeviceInfo {
                serial: Some(format!("DEMO{n:04}")),
                model: Some("iPhone15,2".into()),
                name: Some(format!("{cart} #{port}")),
                ..DeviceInfo::default()
            };
            let device = NewDevice {
                id: id.clone(),
                credential_hash: sha256(random_token(32)?.as_bytes()),
                info,
            };
            st.storage
                .transact({
                    let token_hash = sha256(token.as_bytes());
                    move |tx| crate::domain::enrollment::enroll(tx, &token_hash, &device, now)
                })
                .await
                .map_err(err)?
                .map_err(|refused| err(format!("{refused:?}")))?;
            let record = EventRecord {
                seq: 1,
                at: now,
                status: DeviceStatus::CheckedIn,
                user: None,
                transition: Some(Transition {
                    from: DeviceStatus::Unenrolled,
                    to: DeviceStatus::CheckedIn,
                    cause: Cause::Enrolled,
                }),
                reports: vec![
                    Report::Docked {
                        location: DockLocation {
                            launchpad: Some(cart.into()),
                            port: Some(port),
                        },
                    },
                    Report::Facts(FactsReport {
                        battery_percent: Some(40 + (port as u8 * 9) % 60),
                        ..FactsReport::default()
                    }),
                ],
            };
            st.storage
                .transact(move |tx| {
                    crate::domain::sync::apply(tx, &id, vec![record], &[], &Default::default(), now)
                })
                .await
                .map_err(err)?;
        }
    }
    lines.push(format!(
        "{n} demo devices docked (records only; no agent behind them)"
    ));
    Ok(DemoSeed { lines })
}
