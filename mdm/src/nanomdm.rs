//! The first MDM connector: NanoMDM's HTTP API (enqueue, push) and its webhook events.
//!
//! Contract: `shared/reference/nanomdm/` (openapi.yaml, webhook-event.schema.json).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use url::Url;

use crate::MdmCommand;

/// Why a connector call failed. NanoMDM's own JSON answers, even a 500, are not
/// failures here: they say per enrollment what happened ([`EnqueueOutcome::of`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The MDM could not be reached: the request never left (nothing was queued).
    #[error("MDM unreachable: {0}")]
    Unreachable(String),
    /// The request was sent but no answer came back (a timeout, a cut connection):
    /// the command may or may not be queued.
    #[error("no answer from the MDM: {0}")]
    NoAnswer(String),
    /// The API key was refused.
    #[error("MDM refused the API key (check --nanomdm-api-key)")]
    Unauthorized,
    /// An answer that is not NanoMDM's JSON (a 404 page when the URL lost its path, a
    /// proxy's error page): its status and the start of its body.
    #[error("MDM answered HTTP {status}: {body} (check --nanomdm-url, path included)")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The first 200 characters of the body.
        body: String,
    },
    /// An answer that does not follow the contract.
    #[error("unexpected MDM answer: {0}")]
    Malformed(String),
}

/// NanoMDM's API answer for enqueue and push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ApiResult {
    /// The HTTP status it came with (200, 207, or 500 when every enrollment failed at
    /// something — for an enqueue, often only the push).
    #[serde(skip)]
    pub http_status: u16,
    /// True when pushes were skipped (`nopush`).
    #[serde(default)]
    pub no_push: bool,
    /// A push error for the whole request.
    pub push_error: Option<String>,
    /// A command error for the whole request.
    pub command_error: Option<String>,
    /// The command's UUID.
    pub command_uuid: Option<String>,
    /// The command's RequestType.
    pub request_type: Option<String>,
    /// Per enrollment id.
    #[serde(default)]
    pub status: BTreeMap<String, EnrollmentResult>,
}

/// One enrollment's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EnrollmentResult {
    /// The APNs push id on success.
    pub push_result: Option<String>,
    /// Why the push failed.
    pub push_error: Option<String>,
    /// Why the command could not be queued.
    pub command_error: Option<String>,
}

/// What became of one enrollment's enqueue, read from NanoMDM's answer.
///
/// NanoMDM queues the command first and pushes after, and answers 500 when every push
/// failed even though the command is queued (`../shared/reference/nanomdm/captures`):
/// so the push is reported apart, and only a command error means "not queued".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// The command is in the device's queue; the device fetches it at its next check-in.
    Queued {
        /// What became of the push that asks the device to check in now.
        push: PushOutcome,
    },
    /// NanoMDM did not queue it (its reason).
    NotQueued(String),
    /// NanoMDM knows no device by this enrollment id (nothing will ever fetch it).
    UnknownEnrollment(String),
    /// No answer came back (a timeout, a cut connection): the command may or may not be
    /// queued. Never enqueue it again; wait for the device, or give up at the deadline.
    Uncertain(String),
}

/// The push that follows an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// APNs took it (its push id).
    Sent(String),
    /// Not asked for (`nopush`).
    Skipped,
    /// It failed (NanoMDM's reason); the device still fetches the command at its next
    /// check-in, and a later push may wake it sooner.
    Failed(String),
}

/// NanoMDM's per-id message for an id it never saw enroll (it has no push token).
const UNKNOWN_ID: &str = "push data missing for id";

impl EnqueueOutcome {
    /// Reads the connector's answer for `enrollment_id`.
    pub fn of(answer: &Result<ApiResult, ConnectorError>, enrollment_id: &str) -> EnqueueOutcome {
        let result = match answer {
            Ok(r) => r,
            Err(ConnectorError::NoAnswer(why)) => return EnqueueOutcome::Uncertain(why.clone()),
            Err(e) => return EnqueueOutcome::NotQueued(e.to_string()),
        };
        let pushed = |push_result: Option<&String>| match push_result {
            Some(id) => PushOutcome::Sent(id.clone()),
            None => PushOutcome::Skipped,
        };
        match result.status.get(enrollment_id) {
            Some(s) => {
                if let Some(e) = &s.command_error {
                    EnqueueOutcome::NotQueued(e.clone())
                } else if let Some(p) = &s.push_error {
                    if s.push_result.is_none() && p.contains(UNKNOWN_ID) {
                        EnqueueOutcome::UnknownEnrollment(format!(
                            "NanoMDM has no enrollment {enrollment_id}: {p}"
                        ))
                    } else {
                        EnqueueOutcome::Queued {
                            push: PushOutcome::Failed(p.clone()),
                        }
                    }
                } else {
                    EnqueueOutcome::Queued {
                        push: pushed(s.push_result.as_ref()),
                    }
                }
            }
            None => {
                if let Some(e) = &result.command_error {
                    EnqueueOutcome::NotQueued(e.clone())
                } else if let Some(p) = &result.push_error {
                    EnqueueOutcome::Queued {
                        push: PushOutcome::Failed(p.clone()),
                    }
                } else if result.http_status == 500 {
                    EnqueueOutcome::NotQueued(
                        "NanoMDM answered 500 without a reason for this enrollment".into(),
                    )
                } else {
                    EnqueueOutcome::Queued {
                        push: PushOutcome::Skipped,
                    }
                }
            }
        }
    }
}

/// What Lanyard asks of an MDM.
pub trait MdmConnector: Send + Sync {
    /// Queues `command` (as `command_uuid`) for the enrollments, pushing them unless
    /// `push` is false.
    fn enqueue(
        &self,
        enrollment_ids: &[String],
        command: &MdmCommand,
        command_uuid: &str,
        push: bool,
    ) -> impl Future<Output = Result<ApiResult, ConnectorError>> + Send;
    /// Asks the enrollments to check in.
    fn push(
        &self,
        enrollment_ids: &[String],
    ) -> impl Future<Output = Result<ApiResult, ConnectorError>> + Send;
}

/// A NanoMDM server.
pub struct NanoMdm {
    base: Url,
    api_key: String,
    client: reqwest::Client,
}

impl NanoMdm {
    /// A connector to the NanoMDM at `base` with its API key. A path in `base` is kept
    /// (`https://host/nanomdm` serves `https://host/nanomdm/v1/enqueue/…`).
    pub fn new(base: Url, api_key: impl Into<String>) -> Result<Self, ConnectorError> {
        Self::with_timeout(base, api_key, Duration::from_secs(15))
    }

    /// As [`NanoMdm::new`], giving up on an answer after `timeout`.
    pub fn with_timeout(
        mut base: Url,
        api_key: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, ConnectorError> {
        // `Url::join` replaces the last path segment unless the path ends with `/`.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // reqwest is built with rustls; ring is the provider (no aws-lc, no OpenSSL).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ConnectorError::Unreachable(e.to_string()))?;
        Ok(NanoMdm {
            base,
            api_key: api_key.into(),
            client,
        })
    }

    fn url(&self, path: &str, ids: &[String]) -> Result<Url, ConnectorError> {
        let ids: Vec<String> = ids
            .iter()
            .map(|id| url::form_urlencoded::byte_serialize(id.as_bytes()).collect())
            .collect();
        self.base
            .join(&format!("{path}/{}", ids.join(",")))
            .map_err(|e| ConnectorError::Malformed(e.to_string()))
    }

    async fn answer(resp: reqwest::Response) -> Result<ApiResult, ConnectorError> {
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ConnectorError::Unauthorized);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ConnectorError::NoAnswer(e.without_url().to_string()))?;
        let json = match serde_json::from_slice::<ApiResult>(&body) {
            Ok(mut r) if matches!(status.as_u16(), 200 | 207 | 500) => {
                r.http_status = status.as_u16();
                Some(r)
            }
            _ => None,
        };
        json.ok_or_else(|| ConnectorError::Refused {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(200)
                .collect(),
        })
    }

    /// A transport error: unreachable when the request never left, no answer when it
    /// may have arrived.
    fn sent_error(e: reqwest::Error) -> ConnectorError {
        let never_left = e.is_connect() || e.is_builder();
        let msg = e.without_url().to_string();
        if never_left {
            ConnectorError::Unreachable(msg)
        } else {
            ConnectorError::NoAnswer(msg)
        }
    }
}

impl MdmConnector for NanoMdm {
    async fn enqueue(
        &self,
        enrollment_ids: &[String],
        command: &MdmCommand,
        command_uuid: &str,
        push: bool,
    ) -> Result<ApiResult, ConnectorError> {
        let mut url = self.url("v1/enqueue", enrollment_ids)?;
        if !push {
            url.query_pairs_mut().append_pair("nopush", "1");
        }
        let body = command
            .to_plist(command_uuid)
            .map_err(|e| ConnectorError::Malformed(e.to_string()))?;
        let resp = self
            .client
            .put(url)
            .basic_auth("nanomdm", Some(&self.api_key))
            .header(reqwest::header::CONTENT_TYPE, "application/xml")
            .body(body)
            .send()
            .await
            .map_err(Self::sent_error)?;
        Self::answer(resp).await
    }

    async fn push(&self, enrollment_ids: &[String]) -> Result<ApiResult, ConnectorError> {
        let resp = self
            .client
            .get(self.url("v1/push", enrollment_ids)?)
            .basic_auth("nanomdm", Some(&self.api_key))
            .send()
            .await
            .map_err(Self::sent_error)?;
        Self::answer(resp).await
    }
}

/// Why a webhook body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// The `X-Hmac-Signature` is missing or does not match.
    #[error("webhook signature missing or invalid")]
    BadSignature,
    /// The body is not an event of the documented shape.
    #[error("webhook event is malformed: {0}")]
    Malformed(String),
}

/// How a device answered a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportStatus {
    /// Done.
    Acknowledged,
    /// Failed (see the error chain).
    Error,
    /// The command was malformed.
    CommandFormatError,
    /// Not now (typically locked); it will come again.
    NotNow,
    /// The device is idle (no result).
    Idle,
    /// A status this build does not know.
    Other(String),
}

/// One entry of a device's `ErrorChain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainError {
    /// Error code.
    pub code: i64,
    /// Error domain.
    pub domain: String,
    /// Localized description.
    pub description: String,
}

/// One update a device is offered (from its `AvailableOSUpdates` answer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsUpdateOffer {
    /// Apple's product key, to schedule this very update.
    pub product_key: String,
    /// e.g. `18.6.2`.
    pub version: String,
    /// A configuration-data or firmware update rather than an OS version.
    #[serde(default)]
    pub not_os: bool,
}

/// A webhook event, reduced to what Lanyard acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// `mdm.Authenticate`: a device enrolled (or re-enrolled, e.g. after an erase) in
    /// the MDM; the MDM's word on which serial number a UDID belongs to.
    Authenticate {
        /// Device UDID.
        udid: String,
        /// Its serial number, when the device sent one.
        serial: Option<String>,
    },
    /// `mdm.TokenUpdate`: carries the UnlockToken needed to build ClearPasscode.
    TokenUpdate {
        /// Device UDID.
        udid: String,
        /// The UnlockToken, when the device sent one. Secret: never log it.
        unlock_token: Option<Vec<u8>>,
    },
    /// `mdm.Connect`: a command report.
    CommandReport {
        /// Device UDID.
        udid: String,
        /// The command.
        command_uuid: Option<String>,
        /// The outcome.
        status: ReportStatus,
        /// On `Error`, the device's error chain.
        error_chain: Vec<ChainError>,
        /// The answer to `AvailableOSUpdates`: the updates Apple offers the device.
        available_os_updates: Option<Vec<OsUpdateOffer>>,
    },
    /// `mdm.CheckOut`: the device left the MDM (its management profile was removed);
    /// no command reaches it any more.
    CheckOut {
        /// Device UDID.
        udid: String,
    },
    /// Any other topic (recorded, not acted on).
    Other {
        /// The topic.
        topic: String,
    },
}

#[derive(Deserialize)]
struct RawEvent {
    topic: String,
    checkin_event: Option<RawCheckin>,
    acknowledge_event: Option<RawAck>,
}

#[derive(Deserialize)]
struct RawCheckin {
    #[serde(default)]
    udid: String,
    raw_payload: String,
}

#[derive(Deserialize)]
struct RawAck {
    #[serde(default)]
    udid: String,
    status: String,
    command_uuid: Option<String>,
    raw_payload: String,
}

/// What identifies a webhook POST: NanoMDM's `event_id` and `created_at` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct WebhookMeta {
    /// Unique per event.
    pub event_id: Option<String>,
    /// When NanoMDM made the event (RFC 3339, e.g. `2026-12-01T07:41:10.607700409Z`).
    pub created_at: Option<String>,
}

/// Reads a webhook body's [`WebhookMeta`] (check the signature first).
pub fn webhook_meta(body: &[u8]) -> Result<WebhookMeta, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))
}

/// Checks `X-Hmac-Signature` (base64 HMAC-SHA256 of the raw body) in constant time.
pub fn signature_valid(body: &[u8], key: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header.and_then(|h| STANDARD.decode(h.trim()).ok()) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::verify(&key, body, &sig).is_ok()
}

fn plist_of(b64: &str) -> Result<plist::Dictionary, WebhookError> {
    let bytes = STANDARD
        .decode(b64)
        .map_err(|e| WebhookError::Malformed(format!("raw_payload: {e}")))?;
    plist::Value::from_reader(std::io::Cursor::new(bytes))
        .map_err(|e| WebhookError::Malformed(format!("raw_payload plist: {e}")))?
        .into_dictionary()
        .ok_or_else(|| WebhookError::Malformed("raw_payload is not a dictionary".into()))
}

/// Verifies (when a key is configured) and parses one webhook body.
pub fn parse_webhook(
    body: &[u8],
    hmac_key: Option<&[u8]>,
    signature: Option<&str>,
) -> Result<WebhookEvent, WebhookError> {
    if let Some(key) = hmac_key
        && !signature_valid(body, key, signature)
    {
        return Err(WebhookError::BadSignature);
    }
    let raw: RawEvent =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    match (raw.topic.as_str(), raw.checkin_event, raw.acknowledge_event) {
        ("mdm.Authenticate", Some(c), _) => {
            let payload = plist_of(&c.raw_payload)?;
            let serial = payload
                .get("SerialNumber")
                .and_then(|v| v.as_string())
                .map(str::to_owned);
            Ok(WebhookEvent::Authenticate {
                udid: c.udid,
                serial,
            })
        }
        ("mdm.CheckOut", Some(c), _) => Ok(WebhookEvent::CheckOut { udid: c.udid }),
        ("mdm.TokenUpdate", Some(c), _) => {
            let payload = plist_of(&c.raw_payload)?;
            let unlock_token = payload
                .get("UnlockToken")
                .and_then(|v| v.as_data())
                .map(<[u8]>::to_vec);
            Ok(WebhookEvent::TokenUpdate {
                udid: c.udid,
                unlock_token,
            })
        }
        ("mdm.Connect", _, Some(a)) => {
            let status = match a.status.as_str() {
                "Acknowledged" => ReportStatus::Acknowledged,
                "Error" => ReportStatus::Error,
                "CommandFormatError" => ReportStatus::CommandFormatError,
                "NotNow" => ReportStatus::NotNow,
                "Idle" => ReportStatus::Idle,
                other => ReportStatus::Other(other.to_owned()),
            };
            let payload = plist_of(&a.raw_payload)?;
            let error_chain = payload
                .get("ErrorChain")
                .and_then(|v| v.as_array())
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.as_dictionary())
                        .map(|d| ChainError {
                            code: d
                                .get("ErrorCode")
                                .and_then(|v| v.as_signed_integer())
                                .unwrap_or_default(),
                            domain: d
                                .get("ErrorDomain")
                                .and_then(|v| v.as_string())
                                .unwrap_or_default()
                                .to_owned(),
                            description: d
                                .get("LocalizedDescription")
                                .and_then(|v| v.as_string())
                                .unwrap_or_default()
                                .to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let command_uuid = a.command_uuid.or_else(|| {
                payload
                    .get("CommandUUID")
                    .and_then(|v| v.as_string())
                    .map(str::to_owned)
            });
            let available_os_updates = payload
                .get("AvailableOSUpdates")
                .and_then(|v| v.as_array())
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.as_dictionary())
                        .filter_map(|d| {
                            let flag =
                                |k: &str| d.get(k).and_then(|v| v.as_boolean()).unwrap_or(false);
                            Some(OsUpdateOffer {
                                product_key: d.get("ProductKey")?.as_string()?.to_owned(),
                                version: d.get("Version")?.as_string()?.to_owned(),
                                not_os: flag("IsConfigDataUpdate") || flag("IsFirmwareUpdate"),
                            })
                        })
                        .collect()
                });
            Ok(WebhookEvent::CommandReport {
                udid: a.udid,
                command_uuid,
                status,
                error_chain,
                available_os_updates,
            })
        }
        (topic, _, _) => Ok(WebhookEvent::Other {
            topic: topic.to_owned(),
        }),
    }
}
