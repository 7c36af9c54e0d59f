//! The real transport: HTTPS with reqwest and rustls on the ring provider (no OpenSSL,
//! no aws-lc), JSON bodies, the device credential as a bearer token.

use std::time::Duration;

use lanyard_protocol::enroll::{EnrollRequest, EnrollResponse, paths};
use lanyard_protocol::sync::{SyncRequest, SyncResponse};
use lanyard_protocol::{AuthorizeRequest, AuthorizeResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::{Transport, TransportError};
use crate::secrets::DeviceCredential;

/// Time allowed beyond a long-poll's own wait before the request counts as lost.
const SLACK: Duration = Duration::from_secs(10);

/// HTTPS to one Lanyard server.
#[derive(Clone)]
pub struct HttpTransport {
    base: Url,
    client: reqwest::Client,
    timeout: Duration,
}

/// Installs ring as the process-wide rustls provider (idempotent). Any reqwest client
/// in a process that links this crate needs it, HTTPS or not, because reqwest builds its
/// TLS configuration up front.
pub fn install_ring_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl HttpTransport {
    /// A transport to `base` (the server URL from enrollment). `timeout` bounds ordinary
    /// requests; long-polls get their wait on top.
    pub fn new(base: Url, timeout: Duration) -> Result<Self, TransportError> {
        install_ring_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("lanyard-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Unreachable(format!("building the HTTP client: {e}")))?;
        Ok(HttpTransport {
            base,
            client,
            timeout,
        })
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        credential: Option<&DeviceCredential>,
        body: &B,
        timeout: Duration,
    ) -> Result<R, TransportError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| TransportError::Malformed(e.to_string()))?;
        let mut req = self.client.post(url).timeout(timeout).json(body);
        if let Some(c) = credential {
            req = req.header(reqwest::header::AUTHORIZATION, c.authorization());
        }
        let resp = req.send().await.map_err(classify)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(classify)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| TransportError::Malformed(e.to_string()));
        }
        // Every server error is JSON {code, message}; fall back to the raw text if not.
        let (code, message) = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => (
                v["code"].as_str().unwrap_or("unknown").to_owned(),
                v["message"].as_str().unwrap_or_default().to_owned(),
            ),
            Err(_) => (
                "unknown".to_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ),
        };
        let status = status.as_u16();
        if status >= 500 {
            Err(TransportError::Server { status, message })
        } else {
            Err(TransportError::Rejected {
                status,
                code,
                message,
            })
        }
    }
}

fn classify(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_decode() || e.is_body() {
        TransportError::Malformed(e.to_string())
    } else {
        TransportError::Unreachable(e.to_string())
    }
}

impl Transport for HttpTransport {
    async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, TransportError> {
        self.post(paths::ENROLL, None, req, self.timeout).await
    }

    async fn sync(
        &self,
        credential: &DeviceCredential,
        req: &SyncRequest,
    ) -> Result<SyncResponse, TransportError> {
        let timeout = Duration::from_secs(u64::from(req.wait_secs)) + SLACK.max(self.timeout);
        self.post(paths::SYNC, Some(credential), req, timeout).await
    }

    async fn authorize(
        &self,
        credential: &DeviceCredential,
        req: &AuthorizeRequest,
    ) -> Result<AuthorizeResponse, TransportError> {
        self.post(paths::AUTHORIZE, Some(credential), req, self.timeout)
            .await
    }
}
