//! The external badge lookup service: `GET {url}?id={badge}` → `{"user": "alice"}`.
//!
//! Hospitals that keep raw badge ids on their own network run such a service (the
//! pattern Imprivata uses); the server asks it when a badge is not in its own table.
//! The raw id travels only on that request and is never logged.

use std::time::Duration;

use lanyard_protocol::BadgeId;
use serde::Deserialize;
use url::Url;

use crate::error::AppError;

/// How long a lookup may take before the tap answers "automation error".
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// A configured lookup service.
pub struct BadgeLookup {
    url: Url,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    user: Option<String>,
}

impl BadgeLookup {
    /// A client for the service at `url`.
    pub fn new(url: Url) -> anyhow::Result<Self> {
        // reqwest is built with rustls for this; ring is the provider (no aws-lc).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().timeout(LOOKUP_TIMEOUT).build()?;
        Ok(BadgeLookup { url, client })
    }

    /// The username for `badge`, `None` when the service does not know it. Any other
    /// answer is an error (the tap beeps 3, "automation error").
    pub async fn lookup(&self, badge: &BadgeId) -> Result<Option<String>, AppError> {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("id", badge.expose());
        let resp = self.client.get(url).send().await.map_err(|e| {
            AppError::Internal(anyhow::anyhow!("badge lookup: {}", e.without_url()))
        })?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(AppError::Internal(anyhow::anyhow!(
                "badge lookup answered {}",
                resp.status()
            )));
        }
        let answer: Answer = resp.json().await.map_err(|e| {
            AppError::Internal(anyhow::anyhow!("badge lookup answer: {}", e.without_url()))
        })?;
        Ok(answer
            .user
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty()))
    }
}
