//! `GET /metrics` in the Prometheus text format.
//!
//! Requests are counted and timed per *matched route* (never the raw path, so ids do not
//! multiply the series), plus domain counters (sync events stored, cart taps by beep
//! code) and, computed at scrape time, the number of devices in each status.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::AppError;
use crate::state::AppState;
use crate::storage::Storage;

/// Histogram buckets for request latency, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use (several servers in one test
/// process share it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Route-level middleware: one counter and one latency histogram per route and method.
pub async fn track(req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("lanyard_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("lanyard_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations", description = "Open, unless the server was given a metrics token (--metrics-token): then it needs `Authorization: Bearer <token>`.", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String), (status = 401, description = "a metrics token is configured and was not given", body = crate::error::ErrorBody)))]
pub async fn render<S: Storage>(
    State(st): State<AppState<S>>,
    parts: axum::http::request::Parts,
) -> Result<Response, AppError> {
    if let Some(want) = &st.metrics_token_hash {
        let token = crate::extract::bearer(&parts)?;
        if crate::keys::sha256(token.as_bytes()) != **want {
            return Err(AppError::Unauthorized("wrong metrics token".into()));
        }
    }
    let Some(handle) = handle() else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "metrics recorder unavailable"
        )));
    };
    let mut body = handle.render();
    body.push_str(
        "# HELP lanyard_devices Devices by checkout status.\n# TYPE lanyard_devices gauge\n",
    );
    for (status, n) in st.storage.device_status_counts().await? {
        body.push_str(&format!("lanyard_devices{{status=\"{status}\"}} {n}\n"));
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response())
}
