//! CSV import of device attributes: Device Home and typed custom attributes by serial,
//! all or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_protocol::enroll::DeviceInfo;
use lanyard_server::import::{self, ImportError};
use lanyard_server::keys::sha256;
use lanyard_server::model::{AttributeDef, AttributeTarget, AttributeType};
use lanyard_server::state::system_clock;
use lanyard_server::storage::{NewDevice, NewEnrollmentToken, Storage};
use lanyard_server::{ServerConfig, open_state};

#[tokio::test]
async fn device_attributes_import_by_serial_with_typed_values() {
    let dir = tempfile::tempdir().unwrap();
    let st = open_state(
        &ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("d")),
        system_clock(),
    )
    .unwrap();
    let now = st.now();
    let token = NewEnrollmentToken {
        token_hash: sha256(b"t"),
        label: "t".into(),
        uses: None,
        expires_at: now.plus_secs(3600),
        launchpad_id: None,
        department: Some("4 West".into()),
        replaces_existing: false,
    };
    st.storage
        .create_enrollment_token(token, "test".into(), now)
        .await
        .unwrap();
    for (id, serial) in [("dev-a", "SN-A"), ("dev-b", "SN-B")] {
        let info = DeviceInfo {
            serial: Some(serial.into()),
            ..DeviceInfo::default()
        };
        let device = NewDevice {
            id: id.into(),
            credential_hash: sha256(id.as_bytes()),
            info,
        };
        st.storage
            .transact(move |tx| {
                lanyard_server::domain::enrollment::enroll(tx, &sha256(b"t"), &device, now)
            })
            .await
            .unwrap()
            .unwrap();
    }
    for (name, value_type) in [
        ("Floor", AttributeType::Int),
        ("Loaner", AttributeType::Bool),
    ] {
        let def = AttributeDef {
            target: AttributeTarget::Device,
            name: name.into(),
            value_type,
            builtin: false,
        };
        st.storage
            .create_attribute(def, "test".into(), now)
            .await
            .unwrap();
    }

    let bad =
        "serial,device_home,Floor,Loaner\nSN-A,ICU,3,yes\nSN-X,ICU,1,no\nSN-B,ED,second,maybe\n";
    match import::devices(&st, bad.as_bytes(), "import:test").await {
        Err(ImportError::Invalid(problems)) => {
            assert_eq!(problems.len(), 3, "{problems:?}");
            assert!(problems[0].starts_with("row 3:") && problems[0].contains("SN-X"));
            assert!(problems.iter().any(|p| p.starts_with("row 4: Floor")));
            assert!(problems.iter().any(|p| p.starts_with("row 4: Loaner")));
        }
        other => panic!("expected row errors, got {other:?}"),
    }
    let a = st
        .storage
        .device_by_serial("SN-A".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        a.device_home.as_deref(),
        Some("4 West"),
        "nothing imported from a bad file"
    );

    let good = "serial,device_home,Floor,Loaner\nSN-A,ICU,3,yes\nSN-B,,7,\n";
    assert_eq!(
        import::devices(&st, good.as_bytes(), "import:test")
            .await
            .unwrap(),
        2
    );
    let a = st
        .storage
        .device_by_serial("SN-A".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.device_home.as_deref(), Some("ICU"));
    let values = st
        .storage
        .attribute_values(AttributeTarget::Device, "dev-a".into())
        .await
        .unwrap();
    assert_eq!(values["Floor"], 3);
    assert_eq!(values["Loaner"], true);
    let b = st
        .storage
        .device_by_serial("SN-B".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.device_home, None, "an empty cell clears Device Home");
    let values = st
        .storage
        .attribute_values(AttributeTarget::Device, "dev-b".into())
        .await
        .unwrap();
    assert_eq!(
        (values.get("Floor"), values.get("Loaner")),
        (Some(&serde_json::json!(7)), None)
    );

    let unknown_column = "serial,Wing\nSN-A,B\n";
    assert!(matches!(
        import::devices(&st, unknown_column.as_bytes(), "x").await,
        Err(ImportError::Invalid(_))
    ));
    let log = st
        .storage
        .list_audit(Default::default(), None, 50)
        .await
        .unwrap();
    assert!(
        log.items
            .iter()
            .any(|e| e.action == "device.home.set" && e.actor == "import:test")
    );
}
