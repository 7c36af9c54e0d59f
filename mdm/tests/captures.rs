//! The connector against NanoMDM's recorded answers (`shared/reference/nanomdm/captures`,
//! a real v0.9 run): each enqueue answer a real NanoMDM gave is served back as it was
//! recorded, and the connector must read what became of the command from it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lanyard_mdm::MdmCommand;
use lanyard_mdm::nanomdm::{ConnectorError, EnqueueOutcome, MdmConnector, NanoMdm, PushOutcome};
use serde_json::Value;

fn exchanges() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/nanomdm/captures/api-exchanges.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Serves one recorded answer to whatever comes, and keeps the paths asked for.
#[derive(Clone)]
struct Replay {
    answer: Arc<Value>,
    paths: Arc<Mutex<Vec<String>>>,
}

async fn replay(State(r): State<Replay>, req: Request) -> Response {
    r.paths.lock().unwrap().push(req.uri().path().to_owned());
    let a = &r.answer;
    let status =
        StatusCode::from_u16(u16::try_from(a["status"].as_u64().unwrap()).unwrap()).unwrap();
    (
        status,
        [(
            header::CONTENT_TYPE,
            a["response_content_type"].as_str().unwrap().to_owned(),
        )],
        a["response_body"].as_str().unwrap().to_owned(),
    )
        .into_response()
}

async fn serve(answer: Value) -> (String, Arc<Mutex<Vec<String>>>) {
    let paths = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().fallback(replay).with_state(Replay {
        answer: Arc::new(answer),
        paths: paths.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), paths)
}

/// The enrollment id a recorded exchange was for (the last path segment).
fn id_of(exchange: &Value) -> String {
    exchange["path"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

async fn outcome_of(exchange: &Value, base_path: &str) -> (EnqueueOutcome, Vec<String>) {
    let (base, paths) = serve(exchange.clone()).await;
    let mdm = NanoMdm::new(format!("{base}{base_path}").parse().unwrap(), "key").unwrap();
    let id = id_of(exchange);
    let answer = mdm
        .enqueue(
            std::slice::from_ref(&id),
            &MdmCommand::RestartDevice,
            "U-1",
            true,
        )
        .await;
    let paths = paths.lock().unwrap().clone();
    (EnqueueOutcome::of(&answer, &id), paths)
}

#[tokio::test]
async fn every_recorded_enqueue_answer_reads_as_what_became_of_the_command() {
    let recorded = exchanges();
    let by_shape = |pred: &dyn Fn(&Value) -> bool| {
        recorded
            .iter()
            .find(|e| pred(e))
            .cloned()
            .expect("a recorded exchange of that shape")
    };
    let body = |e: &Value| e["response_body"].as_str().unwrap().to_owned();

    // 200, pushed.
    let ok = by_shape(&|e| e["status"] == 200);
    let (outcome, _) = outcome_of(&ok, "").await;
    assert!(
        matches!(&outcome, EnqueueOutcome::Queued { push: PushOutcome::Sent(id) } if !id.is_empty()),
        "{outcome:?}"
    );

    // 500 with a top-level push_error (no push certificate): queued all the same, with
    // NanoMDM's reason kept.
    let no_cert = by_shape(&|e| e["status"] == 500 && body(e).contains("retrieving push cert"));
    let (outcome, _) = outcome_of(&no_cert, "").await;
    match outcome {
        EnqueueOutcome::Queued {
            push: PushOutcome::Failed(why),
        } => assert!(why.contains("retrieving push cert"), "{why}"),
        other => panic!("{other:?}"),
    }

    // 500 with a per-id push_error next to a push_result (APNs: BadDeviceToken): queued.
    let bad_token = by_shape(&|e| body(e).contains("BadDeviceToken"));
    let (outcome, _) = outcome_of(&bad_token, "").await;
    match outcome {
        EnqueueOutcome::Queued {
            push: PushOutcome::Failed(why),
        } => assert!(why.contains("BadDeviceToken"), "{why}"),
        other => panic!("{other:?}"),
    }

    // 500 "push data missing for id": an id NanoMDM never saw enroll.
    let unknown = by_shape(&|e| body(e).contains("push data missing"));
    let (outcome, _) = outcome_of(&unknown, "").await;
    assert!(
        matches!(&outcome, EnqueueOutcome::UnknownEnrollment(why) if why.contains("push data missing")),
        "{outcome:?}"
    );

    // 404 plain text (the URL lost its path): not queued, and the answer says so.
    let lost_path = by_shape(&|e| e["status"] == 404);
    let (outcome, _) = outcome_of(&lost_path, "").await;
    match outcome {
        EnqueueOutcome::NotQueued(why) => {
            assert!(why.contains("HTTP 404"), "{why}");
            assert!(why.contains("404 page not found"), "{why}");
            assert!(why.contains("--nanomdm-url"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_path_in_the_connector_url_is_kept_with_or_without_a_trailing_slash() {
    let ok = exchanges()
        .into_iter()
        .find(|e| e["status"] == 200)
        .unwrap();
    let id = id_of(&ok);
    for base_path in ["/nanomdm", "/nanomdm/"] {
        let (_, paths) = outcome_of(&ok, base_path).await;
        assert_eq!(paths, [format!("/nanomdm/v1/enqueue/{id}")], "{base_path}");
    }
}

#[tokio::test]
async fn an_mdm_that_is_not_there_is_unreachable_and_nothing_was_queued() {
    // A port nothing listens on: bound, then closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mdm = NanoMdm::new(format!("http://{addr}").parse().unwrap(), "key").unwrap();
    let id = "D5990253-C030-416D-8686-FA4A2445BCE0".to_owned();
    let answer = mdm
        .enqueue(
            std::slice::from_ref(&id),
            &MdmCommand::RestartDevice,
            "U-1",
            true,
        )
        .await;
    assert!(
        matches!(answer, Err(ConnectorError::Unreachable(_))),
        "{answer:?}"
    );
    assert!(matches!(
        EnqueueOutcome::of(&answer, &id),
        EnqueueOutcome::NotQueued(_)
    ));
}

#[tokio::test]
async fn an_mdm_that_takes_the_request_and_never_answers_may_have_queued_it() {
    // Bound and listening (connections complete in the backlog), never answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mdm = NanoMdm::with_timeout(
        format!("http://{addr}").parse().unwrap(),
        "key",
        std::time::Duration::from_millis(300),
    )
    .unwrap();
    let id = "D5990253-C030-416D-8686-FA4A2445BCE0".to_owned();
    let answer = mdm
        .enqueue(
            std::slice::from_ref(&id),
            &MdmCommand::RestartDevice,
            "U-1",
            true,
        )
        .await;
    assert!(
        matches!(answer, Err(ConnectorError::NoAnswer(_))),
        "{answer:?}"
    );
    assert!(matches!(
        EnqueueOutcome::of(&answer, &id),
        EnqueueOutcome::Uncertain(_)
    ));
    drop(listener);
}
