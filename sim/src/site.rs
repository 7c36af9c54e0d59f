//! The server side of a run: an embedded server on the simulation's clock or a running
//! one, and the site the simulation needs (carts, clinicians with badges, a token).

use anyhow::{Context, bail};
use lanyard_protocol::Timestamp;
use serde_json::{Value, json};

use crate::clock::SimClock;

/// The admin API.
#[derive(Clone)]
pub struct Admin {
    /// Base URL.
    pub base: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    /// An admin client for `base` with an API token.
    pub fn new(base: String, token: String, http: reqwest::Client) -> Admin {
        Admin { base, token, http }
    }

    /// `POST` with a JSON body; errors unless 2xx.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {v}");
        }
        Ok(v)
    }

    /// `GET`; errors unless 2xx.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET {path}: {status} {v}");
        }
        Ok(v)
    }

    /// A cart reader's badge tap.
    pub async fn cart_tap(&self, credential: &str, badge: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}/launchpad/v1/tap", self.base))
            .bearer_auth(credential)
            .json(&json!({ "badge": badge }))
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("cart tap: {status} {v}");
        }
        Ok(v)
    }

    /// A badge tapped at a cart, tapped again while the cart says it is busy (it
    /// answers at once with the port whose phone must be taken first), as a clinician
    /// waiting behind a colleague does; at most 30 s. Returns the last answer and when
    /// its tap began (tap-to-unlock is timed from the tap that was served).
    pub async fn cart_tap_until_served(
        &self,
        credential: &str,
        badge: &str,
    ) -> anyhow::Result<(Value, std::time::Instant)> {
        let mut waited = std::time::Duration::ZERO;
        loop {
            let started = std::time::Instant::now();
            let answer = self.cart_tap(credential, badge).await?;
            if answer["reason"] != "cart_busy" || waited >= std::time::Duration::from_secs(30) {
                return Ok((answer, started));
            }
            let pause = std::time::Duration::from_millis(50);
            tokio::time::sleep(pause).await;
            waited += pause;
        }
    }
}

/// A server started in this process, on the simulation's clock.
pub struct Embedded {
    /// The server.
    pub server: lanyard_server::EmbeddedServer,
    _dir: tempfile::TempDir,
    /// An admin token.
    pub token: String,
}

/// Starts an embedded server in a temporary data directory.
pub async fn embedded(clock: &SimClock) -> anyhow::Result<Embedded> {
    use lanyard_server::keys::{random_token, sha256};
    use lanyard_server::model::Role;
    use lanyard_server::storage::Storage;
    let dir = tempfile::tempdir()?;
    let mut config =
        lanyard_server::ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("data"));
    // Offline badge hashes at production cost would dominate set-up (docs/BENCHMARKS.md
    // measures them); the simulation only needs them to be right.
    config.offline_iterations = 1_000;
    config.clock = Some(clock.for_server());
    // The token first: opening the state migrates the database, which must not race
    // the server's own start.
    let token = {
        let state = lanyard_server::open_state(&config, clock.for_server().0)?;
        let token = random_token(32).map_err(|e| anyhow::anyhow!("{e}"))?;
        state
            .storage
            .create_api_token(
                sha256(token.as_bytes()),
                Role::Admin,
                "simulator".into(),
                clock.now(),
            )
            .await
            .context("creating the simulator's admin token")?;
        token
    };
    let server = lanyard_server::EmbeddedServer::start(config).await?;
    Ok(Embedded {
        server,
        _dir: dir,
        token,
    })
}

/// What the simulation created on the server.
pub struct Site {
    /// Cart ids, by index.
    pub carts: Vec<String>,
    /// Cart reader credentials, by index.
    pub readers: Vec<String>,
    /// The enrollment link.
    pub link: String,
}

/// Creates `carts` carts of `ports` ports, `users` clinicians with badges, and a token.
/// Names carry `run` so runs against one server never collide.
pub async fn create(
    admin: &Admin,
    run: &str,
    carts: usize,
    ports: u32,
    users: usize,
    devices: usize,
    _now: Timestamp,
) -> anyhow::Result<Site> {
    let mut site = Site {
        carts: Vec::new(),
        readers: Vec::new(),
        link: String::new(),
    };
    for c in 0..carts {
        let id = format!("{run}-cart-{c}");
        let v = admin
            .post(
                "/api/v1/launchpads",
                json!({"id": id, "name": format!("Sim cart {c}"), "ports": ports,
                    "department": format!("Unit {}", c % 8), "timezone": "UTC"}),
            )
            .await?;
        let credential = v["credential"]
            .as_str()
            .context("the cart has no reader credential")?;
        site.carts.push(id);
        site.readers.push(credential.to_owned());
    }
    for u in 0..users {
        let name = user_name(run, u);
        admin
            .post(
                "/api/v1/users",
                json!({"username": name, "display_name": format!("Clinician {u}")}),
            )
            .await?;
        admin
            .post(
                &format!("/api/v1/users/{name}/badges"),
                json!({"badge": badge(run, u)}),
            )
            .await?;
    }
    let token = admin
        .post(
            "/api/v1/enrollment-tokens",
            json!({"label": format!("{run} fleet"), "uses": devices}),
        )
        .await?;
    site.link = token["link"]
        .as_str()
        .context("the token has no link")?
        .to_owned();
    Ok(site)
}

/// Username of clinician `u`.
pub fn user_name(run: &str, u: usize) -> String {
    format!("{run}-u{u}")
}

/// Badge of clinician `u`.
pub fn badge(run: &str, u: usize) -> String {
    format!("{run}-badge-{u:06}")
}
