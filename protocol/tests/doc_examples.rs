//! Every JSON example in docs/protocol.md parses as the type it is labelled with,
//! and survives a round trip through that type.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_protocol::policy::OfflineCredentialList;
use lanyard_protocol::sync::{SyncRequest, SyncResponse};
use lanyard_protocol::{AuthorizeRequest, AuthorizeResponse, CommandEnvelope, Policy, Signed};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn roundtrip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(json: &str) {
    let value: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}\n{json}"));
    let again: T = serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
    assert_eq!(again, value);
}

#[test]
fn protocol_doc_examples_parse() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
        .expect("docs/protocol.md");
    let mut checked = 0;
    for part in doc.split("<!-- type: ").skip(1) {
        let (ty, rest) = part.split_once(" -->").expect("marker end");
        let body = rest.split_once("```json").expect("json block").1;
        let json = body.split_once("```").expect("block end").0;
        match ty {
            "Signed" => roundtrip::<Signed>(json),
            "CommandEnvelope" => roundtrip::<CommandEnvelope>(json),
            "AuthorizeRequest" => roundtrip::<AuthorizeRequest>(json),
            "AuthorizeResponse" => roundtrip::<AuthorizeResponse>(json),
            "SyncRequest" => {
                roundtrip::<SyncRequest>(json);
                // A record names a user only while someone holds the phone, as the
                // core writes them (a returning phone's record carries none).
                let r: SyncRequest = serde_json::from_str(json).unwrap();
                for e in &r.events {
                    let held = matches!(
                        e.status,
                        lanyard_protocol::DeviceStatus::CheckoutPending
                            | lanyard_protocol::DeviceStatus::CheckedOut
                            | lanyard_protocol::DeviceStatus::Blocked
                    );
                    assert!(held || e.user.is_none(), "record {} names a user", e.seq);
                }
            }
            "SyncResponse" => roundtrip::<SyncResponse>(json),
            "Policy" => {
                roundtrip::<Policy>(json);
                let p: Policy = serde_json::from_str(json).unwrap();
                p.validate().expect("documented policy is valid");
            }
            "OfflineCredentialList" => roundtrip::<OfflineCredentialList>(json),
            other => panic!("docs/protocol.md labels an unknown type {other}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 8, "every labelled example was checked");
}
