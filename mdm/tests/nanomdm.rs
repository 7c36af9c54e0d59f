//! The NanoMDM connector against a local fake that follows NanoMDM's documented contract
//! (openapi.yaml): Basic auth `nanomdm:<key>`, the raw command plist as the body, a JSON
//! result with a per-enrollment status map. And webhook events as NanoMDM posts them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lanyard_mdm::MdmCommand;
use lanyard_mdm::nanomdm::{
    ConnectorError, MdmConnector, NanoMdm, ReportStatus, WebhookError, WebhookEvent, parse_webhook,
};
use serde_json::json;

const KEY: &str = "nanomdm-api-key";

#[derive(Default)]
struct Fake {
    queued: Mutex<Vec<(String, plist::Value, bool)>>,
}

fn authorized(headers: &HeaderMap) -> bool {
    let expected = format!("Basic {}", STANDARD.encode(format!("nanomdm:{KEY}")));
    headers.get("authorization").and_then(|h| h.to_str().ok()) == Some(expected.as_str())
}

async fn enqueue(
    State(fake): State<Arc<Fake>>,
    Path(ids): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    let cmd = plist::Value::from_reader_xml(body.as_ref()).unwrap();
    let top = cmd.as_dictionary().unwrap();
    let uuid = top["CommandUUID"].as_string().unwrap().to_owned();
    let request_type = top["Command"].as_dictionary().unwrap()["RequestType"]
        .as_string()
        .unwrap()
        .to_owned();
    let no_push = query.as_deref() == Some("nopush=1");
    let mut status = serde_json::Map::new();
    let mut failed = 0;
    let ids: Vec<&str> = ids.split(',').collect();
    for id in &ids {
        if id.starts_with("unknown") {
            failed += 1;
            status.insert(
                (*id).into(),
                json!({"command_error": "enrollment not found"}),
            );
        } else {
            fake.queued
                .lock()
                .unwrap()
                .push(((*id).into(), cmd.clone(), no_push));
            status.insert(
                (*id).into(),
                json!({"push_result": "6E14E52F-7F07-42C7-8367-4D81441DC85F"}),
            );
        }
    }
    let code = match failed {
        0 => StatusCode::OK,
        n if n == ids.len() => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::MULTI_STATUS,
    };
    let body = json!({"command_uuid": uuid, "request_type": request_type, "no_push": no_push, "status": status});
    (code, body.to_string())
}

async fn push(Path(ids): Path<String>, headers: HeaderMap) -> (StatusCode, String) {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    let status: serde_json::Map<_, _> = ids
        .split(',')
        .map(|id| (id.to_owned(), json!({"push_result": "A1B2"})))
        .collect();
    (StatusCode::OK, json!({"status": status}).to_string())
}

async fn fake_nanomdm() -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/v1/enqueue/{ids}", put(enqueue))
        .route("/v1/push/{ids}", get(push))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/"), fake)
}

#[tokio::test]
async fn enqueue_sends_the_exact_plist_with_basic_auth_and_reads_the_result() {
    let (base, fake) = fake_nanomdm().await;
    let mdm = NanoMdm::new(base.parse().unwrap(), KEY).unwrap();
    let cmd = MdmCommand::ClearPasscode {
        unlock_token: vec![9, 8, 7],
    };
    let udid = "00008030-001A2B3C4D5E6F70".to_owned();
    let result = mdm
        .enqueue(
            std::slice::from_ref(&udid),
            &cmd,
            "C7FC0872-F22F-4823-8AE0-F3D0174FB48A",
            true,
        )
        .await
        .unwrap();
    assert_eq!(result.request_type.as_deref(), Some("ClearPasscode"));
    assert!(result.status[&udid].push_result.is_some());
    assert!(!result.no_push);
    let queued = fake.queued.lock().unwrap().clone();
    let (id, plist, no_push) = &queued[0];
    assert_eq!((id.as_str(), *no_push), (udid.as_str(), false));
    let command = plist.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap();
    assert_eq!(command["UnlockToken"].as_data(), Some(&[9, 8, 7][..]));

    // nopush, several ids with one unknown (207), all unknown (500), a wrong key (401).
    let ids = vec!["dev-a".to_owned(), "unknown-b".to_owned()];
    let result = mdm
        .enqueue(&ids, &MdmCommand::RestartDevice, "U-2", false)
        .await
        .unwrap();
    assert!(result.no_push);
    assert_eq!(
        result.status["unknown-b"].command_error.as_deref(),
        Some("enrollment not found")
    );
    let all_bad = mdm
        .enqueue(
            &["unknown-c".to_owned()],
            &MdmCommand::RestartDevice,
            "U-3",
            true,
        )
        .await;
    // NanoMDM's 500 is a JSON answer like the others: per enrollment, what happened.
    let all_bad = all_bad.unwrap();
    assert_eq!(all_bad.http_status, 500);
    assert!(matches!(
        lanyard_mdm::nanomdm::EnqueueOutcome::of(&Ok(all_bad), "unknown-c"),
        lanyard_mdm::nanomdm::EnqueueOutcome::NotQueued(why) if why == "enrollment not found"
    ));
    let wrong = NanoMdm::new(base.parse().unwrap(), "nope").unwrap();
    assert!(matches!(
        wrong
            .enqueue(&ids, &MdmCommand::RestartDevice, "U-4", true)
            .await,
        Err(ConnectorError::Unauthorized)
    ));
    let pushed = mdm.push(&ids[..1]).await.unwrap();
    assert!(pushed.status["dev-a"].push_result.is_some());
}

fn plist_b64(dict: plist::Dictionary) -> String {
    let mut out = Vec::new();
    plist::Value::Dictionary(dict)
        .to_writer_xml(&mut out)
        .unwrap();
    STANDARD.encode(out)
}

fn sign(body: &[u8], key: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    STANDARD.encode(ring::hmac::sign(&k, body).as_ref())
}

#[test]
fn webhook_events_are_verified_and_parsed() {
    let mut token_update = plist::Dictionary::new();
    token_update.insert("MessageType".into(), "TokenUpdate".into());
    token_update.insert("UnlockToken".into(), plist::Value::Data(vec![0xAA, 0xBB]));
    let body = json!({
        "topic": "mdm.TokenUpdate",
        "event_id": "e1",
        "created_at": "2026-11-21T10:00:00Z",
        "checkin_event": {"udid": "UDID-1", "enrollment_id": "UDID-1", "raw_payload": plist_b64(token_update), "token_update_tally": 1}
    })
    .to_string();
    let key = b"webhook-key";
    let event = parse_webhook(
        body.as_bytes(),
        Some(key),
        Some(&sign(body.as_bytes(), key)),
    )
    .unwrap();
    assert_eq!(
        event,
        WebhookEvent::TokenUpdate {
            udid: "UDID-1".into(),
            unlock_token: Some(vec![0xAA, 0xBB])
        }
    );
    assert_eq!(
        parse_webhook(
            body.as_bytes(),
            Some(key),
            Some(&sign(body.as_bytes(), b"other"))
        ),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        parse_webhook(body.as_bytes(), Some(key), None),
        Err(WebhookError::BadSignature)
    );
    assert!(
        parse_webhook(body.as_bytes(), None, None).is_ok(),
        "no key configured: no check"
    );

    let mut report = plist::Dictionary::new();
    report.insert("Status".into(), "Error".into());
    report.insert("CommandUUID".into(), "C-9".into());
    let mut err = plist::Dictionary::new();
    err.insert("ErrorCode".into(), plist::Value::Integer(12021.into()));
    err.insert("ErrorDomain".into(), "MCMDMErrorDomain".into());
    err.insert(
        "LocalizedDescription".into(),
        "The passcode could not be cleared.".into(),
    );
    report.insert(
        "ErrorChain".into(),
        plist::Value::Array(vec![plist::Value::Dictionary(err)]),
    );
    let body = json!({
        "topic": "mdm.Connect", "created_at": "2026-11-21T10:00:01Z",
        "acknowledge_event": {"udid": "UDID-1", "status": "Error", "raw_payload": plist_b64(report)}
    })
    .to_string();
    match parse_webhook(body.as_bytes(), None, None).unwrap() {
        WebhookEvent::CommandReport {
            command_uuid,
            status,
            error_chain,
            ..
        } => {
            assert_eq!(
                command_uuid.as_deref(),
                Some("C-9"),
                "taken from the report when absent"
            );
            assert_eq!(status, ReportStatus::Error);
            assert_eq!(error_chain[0].code, 12021);
        }
        e => panic!("{e:?}"),
    }
    let mut not_now = plist::Dictionary::new();
    not_now.insert("Status".into(), "NotNow".into());
    let body = json!({"topic": "mdm.Connect", "created_at": "x",
        "acknowledge_event": {"udid": "U", "status": "NotNow", "command_uuid": "C-10", "raw_payload": plist_b64(not_now)}})
    .to_string();
    assert!(matches!(
        parse_webhook(body.as_bytes(), None, None).unwrap(),
        WebhookEvent::CommandReport {
            status: ReportStatus::NotNow,
            ..
        }
    ));
    assert!(matches!(
        parse_webhook(b"{\"topic\": 5}", None, None),
        Err(WebhookError::Malformed(_))
    ));
    let other = json!({"topic": "mdm.CheckOut", "created_at": "x"}).to_string();
    assert_eq!(
        parse_webhook(other.as_bytes(), None, None).unwrap(),
        WebhookEvent::Other {
            topic: "mdm.CheckOut".into()
        }
    );
}

#[test]
fn an_available_os_updates_answer_lists_the_offered_versions() {
    use lanyard_mdm::nanomdm::OsUpdateOffer;
    let item = |key: &str, version: &str, config: bool| {
        let mut d = plist::Dictionary::new();
        d.insert("ProductKey".into(), key.into());
        d.insert("Version".into(), version.into());
        d.insert("IsConfigDataUpdate".into(), plist::Value::Boolean(config));
        d.insert("HumanReadableName".into(), format!("iOS {version}").into());
        plist::Value::Dictionary(d)
    };
    let mut report = plist::Dictionary::new();
    report.insert("Status".into(), "Acknowledged".into());
    report.insert("CommandUUID".into(), "C-11".into());
    report.insert(
        "AvailableOSUpdates".into(),
        plist::Value::Array(vec![
            item("iOSUpdate22G86", "18.6.2", false),
            item("RSR-1", "18.6.2 (a)", true),
        ]),
    );
    let body = json!({"topic": "mdm.Connect", "created_at": "x",
        "acknowledge_event": {"udid": "U", "status": "Acknowledged", "command_uuid": "C-11", "raw_payload": plist_b64(report)}})
    .to_string();
    match parse_webhook(body.as_bytes(), None, None).unwrap() {
        WebhookEvent::CommandReport {
            available_os_updates,
            ..
        } => assert_eq!(
            available_os_updates,
            Some(vec![
                OsUpdateOffer {
                    product_key: "iOSUpdate22G86".into(),
                    version: "18.6.2".into(),
                    not_os: false
                },
                OsUpdateOffer {
                    product_key: "RSR-1".into(),
                    version: "18.6.2 (a)".into(),
                    not_os: true
                },
            ])
        ),
        e => panic!("{e:?}"),
    }
}

/// NanoMDM's recorded webhook POSTs (a real v0.9 run) verify with that run's key and
/// parse: Authenticate carries the serial number the UDID belongs to.
#[test]
fn recorded_webhooks_verify_and_authenticate_names_the_serial() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/nanomdm/captures/webhook-posts.json");
    let posts: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let key = b"5ea85a098a41082564e6131fc990382e71e1306d3f62e253";
    let mut authenticated = Vec::new();
    for post in &posts {
        let body = post["body"].as_str().unwrap();
        let signature = post["headers"]["X-Hmac-Signature"].as_str();
        let event = parse_webhook(body.as_bytes(), Some(key), signature).unwrap();
        if let WebhookEvent::Authenticate { udid, serial } = event {
            authenticated.push((udid, serial));
        }
    }
    assert_eq!(
        authenticated,
        [
            (
                "D5990253-C030-416D-8686-FA4A2445BCE0".to_owned(),
                Some("2UXT6H5KVTN8".to_owned())
            ),
            (
                "EDFCB699-5C23-48DE-B24C-D48996CCE7D2".to_owned(),
                Some("UPP563VAFSTR".to_owned())
            ),
        ]
    );
}
