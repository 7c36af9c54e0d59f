//! Every command this crate can build, checked against Apple's own schema for it
//! (`shared/reference/apple-device-management/mdm/commands`): the request type, every
//! required key present, no key the schema does not define, each value of the declared
//! type and inside its `rangelist`, nested dictionaries and arrays checked against their
//! `subkeys`, and every emitted key supported on iOS (Lanyard drives iPhones).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use lanyard_mdm::{
    InstallAction, MdmCommand, OsUpdate, ReturnToService, Setting, WallpaperLocation,
};
use plist::Value;
use serde_yaml_ng::Value as Yaml;

fn commands_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/apple-device-management/mdm/commands")
}

/// The schema whose `payload.requesttype` is `request_type`.
fn schema_for(request_type: &str) -> Yaml {
    for entry in std::fs::read_dir(commands_dir()).expect("Apple's schemas beside the repository") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // Cheap pre-filter: only parse the file that names this request type (one file
        // elsewhere holds a recursive alias no command of ours needs).
        if !text.contains(&format!("requesttype: {request_type}\n")) {
            continue;
        }
        let yaml: Yaml = serde_yaml_ng::from_str(&text).unwrap();
        if yaml["payload"]["requesttype"].as_str() == Some(request_type) {
            return yaml;
        }
    }
    panic!("no Apple schema for {request_type}");
}

fn ios_unsupported(node: &Yaml) -> bool {
    node["supportedOS"]["iOS"]["introduced"].as_str() == Some("n/a")
}

fn check_value(value: &Value, spec: &Yaml, path: &str, errors: &mut Vec<String>) {
    let ty = spec["type"].as_str().unwrap_or("<any>");
    let ok = match ty {
        "<string>" => value.as_string().is_some(),
        "<data>" => value.as_data().is_some(),
        "<boolean>" => value.as_boolean().is_some(),
        "<integer>" => value.as_signed_integer().is_some() || value.as_unsigned_integer().is_some(),
        "<real>" => value.as_real().is_some() || value.as_signed_integer().is_some(),
        "<array>" => value.as_array().is_some(),
        "<dictionary>" => value.as_dictionary().is_some(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{path}: expected {ty}, got {value:?}"));
        return;
    }
    if let Some(allowed) = spec["rangelist"].as_sequence() {
        let matches = allowed.iter().any(|a| match (a, value) {
            (Yaml::String(a), Value::String(v)) => a == v,
            (Yaml::Number(a), v) => a.as_i64() == v.as_signed_integer(),
            (Yaml::Bool(a), Value::Boolean(v)) => a == v,
            _ => false,
        });
        if !matches {
            errors.push(format!("{path}: {value:?} is not in the rangelist"));
        }
    }
    match (ty, value) {
        ("<dictionary>", Value::Dictionary(d)) => {
            if let Some(keys) = spec["subkeys"].as_sequence() {
                check_dictionary(d, keys, path, errors);
            }
        }
        ("<array>", Value::Array(items)) => {
            let Some(variants) = spec["subkeys"].as_sequence() else {
                return;
            };
            for (i, v) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                // Several subkeys: the items are different dictionaries, each naming its
                // kind in `Item` (how Settings lists its settings).
                let item = if variants.len() > 1 {
                    let kind = v
                        .as_dictionary()
                        .and_then(|d| d.get("Item"))
                        .and_then(Value::as_string);
                    match variants
                        .iter()
                        .find(|k| kind.is_some() && k["key"].as_str() == kind)
                    {
                        Some(k) => k,
                        None => {
                            errors.push(format!(
                                "{item_path}: Item {kind:?} is not one the schema lists"
                            ));
                            continue;
                        }
                    }
                } else {
                    &variants[0]
                };
                if ios_unsupported(item) {
                    errors.push(format!("{item_path}: not supported on iOS"));
                }
                check_value(v, item, &item_path, errors);
                // A string item whose schema lists subkeys may only be one of their names
                // (how DeviceInformation's query names are given).
                if let (Value::String(s), Some(names)) = (v, item["subkeys"].as_sequence()) {
                    match names.iter().find(|k| k["key"].as_str() == Some(s.as_str())) {
                        None => errors.push(format!(
                            "{item_path}: {s:?} is not a value the schema lists"
                        )),
                        Some(k) if ios_unsupported(k) => {
                            errors.push(format!("{item_path}: {s:?} is not supported on iOS"))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        _ => {}
    }
}

fn check_dictionary(d: &plist::Dictionary, keys: &[Yaml], path: &str, errors: &mut Vec<String>) {
    for spec in keys {
        let key = spec["key"].as_str().unwrap_or_default();
        if spec["presence"].as_str() == Some("required") && !d.contains_key(key) {
            errors.push(format!("{path}.{key}: required key missing"));
        }
    }
    for (key, value) in d {
        let Some(spec) = keys
            .iter()
            .find(|s| s["key"].as_str() == Some(key.as_str()))
        else {
            errors.push(format!("{path}.{key}: not a key of the schema"));
            continue;
        };
        if ios_unsupported(spec) {
            errors.push(format!("{path}.{key}: not supported on iOS"));
        }
        check_value(value, spec, &format!("{path}.{key}"), errors);
    }
}

/// Checks one command; returns the problems found.
fn problems(cmd: &MdmCommand) -> Vec<String> {
    let schema = schema_for(cmd.request_type());
    let mut errors = Vec::new();
    if ios_unsupported(&schema["payload"]) {
        errors.push(format!("{} is not supported on iOS", cmd.request_type()));
    }
    let mut dict = cmd.command_dictionary();
    assert_eq!(
        dict.remove("RequestType")
            .and_then(|v| v.into_string())
            .as_deref(),
        Some(cmd.request_type())
    );
    let keys = schema["payloadkeys"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    check_dictionary(&dict, &keys, cmd.request_type(), &mut errors);
    errors
}

fn every_command() -> Vec<MdmCommand> {
    let s = |v: &str| Some(v.to_owned());
    vec![
        MdmCommand::ClearPasscode {
            unlock_token: vec![1, 2, 3],
        },
        MdmCommand::DeviceLock {
            message: None,
            phone_number: None,
        },
        MdmCommand::DeviceLock {
            message: s("Return to 4 West"),
            phone_number: s("+1 555 0100"),
        },
        MdmCommand::RestartDevice,
        MdmCommand::ShutDownDevice,
        MdmCommand::AvailableOsUpdates,
        MdmCommand::EraseDevice {
            preserve_data_plan: None,
            disallow_proximity_setup: None,
            return_to_service: None,
        },
        MdmCommand::EraseDevice {
            preserve_data_plan: Some(true),
            disallow_proximity_setup: Some(true),
            return_to_service: Some(ReturnToService {
                enabled: true,
                wifi_profile_data: Some(b"<wifi/>".to_vec()),
                mdm_profile_data: Some(b"<mdm/>".to_vec()),
            }),
        },
        MdmCommand::DeviceInformation {
            queries: vec![
                "OSVersion".into(),
                "BatteryLevel".into(),
                "SerialNumber".into(),
                "UDID".into(),
            ],
        },
        MdmCommand::InstallProfile {
            payload: b"<plist/>".to_vec(),
        },
        MdmCommand::RemoveProfile {
            identifier: "org.stmary.wifi".into(),
        },
        MdmCommand::EnableLostMode {
            message: s("Lost"),
            phone_number: s("+1 555 0100"),
            footnote: s("St Mary IT"),
        },
        MdmCommand::DisableLostMode,
        MdmCommand::ScheduleOSUpdate {
            updates: vec![
                OsUpdate {
                    product_key: None,
                    product_version: Some("17.6.1".into()),
                    install_action: InstallAction::InstallAsap,
                },
                OsUpdate {
                    product_key: Some("iOSUpdate21G93".into()),
                    product_version: None,
                    install_action: InstallAction::InstallForceRestart,
                },
            ],
        },
        MdmCommand::Settings {
            items: vec![
                Setting::TimeZone("America/Chicago".into()),
                Setting::DeviceName("4 West #3".into()),
                Setting::Wallpaper {
                    image: vec![0x89, b'P', b'N', b'G'],
                    location: WallpaperLocation::LockScreen,
                },
            ],
        },
    ]
}

#[test]
fn every_command_lanyard_builds_matches_apples_schema() {
    for cmd in every_command() {
        let p = problems(&cmd);
        assert!(p.is_empty(), "{}: {p:#?}", cmd.request_type());
    }
}

#[test]
fn the_validator_catches_what_apples_schema_forbids() {
    // Guards the check above against a validator that accepts anything.
    let mut dict = MdmCommand::ClearPasscode {
        unlock_token: vec![1],
    }
    .command_dictionary();
    dict.remove("UnlockToken");
    dict.insert("Bogus".into(), Value::Boolean(true));
    let schema = schema_for("ClearPasscode");
    let mut errors = Vec::new();
    check_dictionary(
        &dict,
        schema["payloadkeys"].as_sequence().unwrap(),
        "ClearPasscode",
        &mut errors,
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("UnlockToken: required key missing")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Bogus: not a key of the schema")),
        "{errors:?}"
    );

    let restart = schema_for("RestartDevice");
    let mut d = plist::Dictionary::new();
    d.insert("NotifyUser".into(), Value::Boolean(true));
    let mut errors = Vec::new();
    check_dictionary(
        &d,
        restart["payloadkeys"].as_sequence().unwrap(),
        "RestartDevice",
        &mut errors,
    );
    assert!(
        errors.iter().any(|e| e.contains("not supported on iOS")),
        "macOS-only key: {errors:?}"
    );

    let mut settings = MdmCommand::Settings {
        items: vec![Setting::TimeZone("UTC".into())],
    }
    .command_dictionary();
    settings.remove("RequestType");
    if let Some(Value::Array(items)) = settings.get_mut("Settings") {
        let mut odd = plist::Dictionary::new();
        odd.insert("Item".into(), Value::String("Teleport".into()));
        items.push(Value::Dictionary(odd));
    }
    let mut errors = Vec::new();
    check_dictionary(
        &settings,
        schema_for("Settings")["payloadkeys"].as_sequence().unwrap(),
        "Settings",
        &mut errors,
    );
    assert!(errors.iter().any(|e| e.contains("Teleport")), "{errors:?}");

    let bad = MdmCommand::DeviceInformation {
        queries: vec!["NotAQuery".into()],
    };
    assert!(problems(&bad).iter().any(|e| e.contains("NotAQuery")));
    let wrong_type = MdmCommand::RemoveProfile {
        identifier: String::new(),
    };
    let mut d = wrong_type.command_dictionary();
    d.insert("Identifier".into(), Value::Integer(5.into()));
    d.remove("RequestType");
    let mut errors = Vec::new();
    check_dictionary(
        &d,
        schema_for("RemoveProfile")["payloadkeys"]
            .as_sequence()
            .unwrap(),
        "RemoveProfile",
        &mut errors,
    );
    assert!(
        errors.iter().any(|e| e.contains("expected <string>")),
        "{errors:?}"
    );
}

#[test]
fn the_plist_is_the_command_dictionary_with_its_uuid() {
    let xml = MdmCommand::ClearPasscode {
        unlock_token: vec![0xde, 0xad],
    }
    .to_plist("6F9A0C55-1D2B-4E8C-9B0A-0123456789AB")
    .unwrap();
    let value = Value::from_reader_xml(xml.as_slice()).unwrap();
    let top = value.as_dictionary().unwrap();
    assert_eq!(
        top["CommandUUID"].as_string(),
        Some("6F9A0C55-1D2B-4E8C-9B0A-0123456789AB")
    );
    let cmd = top["Command"].as_dictionary().unwrap();
    assert_eq!(cmd["RequestType"].as_string(), Some("ClearPasscode"));
    assert_eq!(cmd["UnlockToken"].as_data(), Some(&[0xde, 0xad][..]));
}

fn profile_schema(file: &str) -> Yaml {
    let path = commands_dir().join("../profiles").join(file);
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks a profile: its top level against `TopLevel.yaml`, each payload against
/// `CommonPayloadKeys.yaml` plus the payload type's own schema.
fn profile_problems(mut top: plist::Dictionary, payload_schemas: &[&str]) -> Vec<String> {
    let mut errors = Vec::new();
    assert_eq!(
        top.get("PayloadType").and_then(Value::as_string),
        Some("Configuration")
    );
    let content = top.remove("PayloadContent").expect("PayloadContent");
    let top_keys = profile_schema("TopLevel.yaml")["payloadkeys"]
        .as_sequence()
        .cloned()
        .unwrap();
    // PayloadContent is required: put a stand-in back for the presence check.
    top.insert("PayloadContent".into(), Value::Array(Vec::new()));
    check_dictionary(&top, &top_keys, "profile", &mut errors);
    let common = profile_schema("CommonPayloadKeys.yaml")["payloadkeys"]
        .as_sequence()
        .cloned()
        .unwrap();
    for (i, item) in content.as_array().unwrap().iter().enumerate() {
        let d = item.as_dictionary().unwrap();
        let kind = d
            .get("PayloadType")
            .and_then(Value::as_string)
            .unwrap_or_default();
        let file = payload_schemas
            .iter()
            .find(|f| f.starts_with(kind))
            .unwrap_or_else(|| panic!("no schema for {kind}"));
        let schema = profile_schema(file);
        assert_eq!(schema["payload"]["payloadtype"].as_str(), Some(kind));
        if ios_unsupported(&schema["payload"]) {
            errors.push(format!("{kind} is not supported on iOS"));
        }
        let mut keys = common.clone();
        keys.extend(schema["payloadkeys"].as_sequence().cloned().unwrap());
        check_dictionary(d, &keys, &format!("PayloadContent[{i}]"), &mut errors);
    }
    errors
}

#[test]
fn the_provisioning_wifi_profile_matches_apples_schemas() {
    use lanyard_mdm::profile::{
        EapType, EnterpriseWifi, Payload, Profile, TtlsInner, WifiEncryption, WifiPayload,
    };
    let wifi = |enc, password: Option<&str>| WifiPayload {
        uuid: "0C8F3A52-7A1B-4C55-9A5E-3B1D2C4E5F60".into(),
        ssid: "StMary-Provisioning".into(),
        encryption: enc,
        password: password.map(str::to_owned),
        enterprise: None,
        auto_join: true,
        hidden: false,
        disable_mac_randomization: true,
    };
    // The clinical network: WPA2 Enterprise, PEAP against the hospital's RADIUS, and
    // EAP-TLS with a certificate payload for the phones that have one.
    let peap = WifiPayload {
        ssid: "StMary-Clinical".into(),
        enterprise: Some(EnterpriseWifi {
            eap_types: vec![EapType::Peap, EapType::Ttls],
            username: Some("svc-iphone".into()),
            password: Some("s3cret".into()),
            outer_identity: Some("anonymous".into()),
            trusted_server_names: vec!["radius.stmary.org".into()],
            ttls_inner: Some(TtlsInner::Mschapv2),
            identity_certificate_uuid: None,
            anchor_certificate_uuids: vec!["1E2D3C4B-5A69-4788-9766-554433221100".into()],
        }),
        ..wifi(WifiEncryption::Wpa2, None)
    };
    let tls = WifiPayload {
        enterprise: Some(EnterpriseWifi {
            eap_types: vec![EapType::Tls],
            identity_certificate_uuid: Some("2F3E4D5C-6B7A-4899-8877-665544332211".into()),
            ..EnterpriseWifi::default()
        }),
        ..wifi(WifiEncryption::Wpa3, None)
    };
    for payload in [
        wifi(WifiEncryption::Wpa2, Some("correct horse battery")),
        wifi(WifiEncryption::None, None),
        peap,
        tls,
    ] {
        let profile = Profile {
            identifier: "org.stmary.lanyard.provisioning".into(),
            uuid: "5B7E1D2C-3A4F-4B6E-8C9D-0E1F2A3B4C5D".into(),
            display_name: "Provisioning Wi-Fi".into(),
            organization: Some("St Mary IT".into()),
            remove_after_secs: Some(3600),
            payloads: vec![Payload::Wifi(payload)],
        };
        let p = profile_problems(profile.dictionary(), &["com.apple.wifi.managed.yaml"]);
        assert!(p.is_empty(), "{p:#?}");
        let xml = profile.to_mobileconfig().unwrap();
        let parsed = Value::from_reader_xml(xml.as_slice()).unwrap();
        assert_eq!(
            parsed.as_dictionary().unwrap()["DurationUntilRemoval"].as_real(),
            Some(3600.0)
        );
    }
    // A payload key the Wi-Fi schema does not define is caught.
    let mut d = Payload::Wifi(wifi(WifiEncryption::Wpa3, Some("x"))).dictionary("org.x", 1);
    d.insert("SSID".into(), Value::String("typo".into()));
    let mut keys = profile_schema("CommonPayloadKeys.yaml")["payloadkeys"]
        .as_sequence()
        .cloned()
        .unwrap();
    keys.extend(
        profile_schema("com.apple.wifi.managed.yaml")["payloadkeys"]
            .as_sequence()
            .cloned()
            .unwrap(),
    );
    let mut errors = Vec::new();
    check_dictionary(&d, &keys, "wifi", &mut errors);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("SSID: not a key of the schema")),
        "{errors:?}"
    );
}

const EXCHANGE_TEMPLATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadType</key><string>com.apple.eas.account</string>
  <key>PayloadVersion</key><integer>1</integer>
  <key>PayloadIdentifier</key><string>org.stmary.mail.$USERID$</string>
  <key>PayloadUUID</key><string>7D0C5E2A-1B3C-4D5E-8F90-A1B2C3D4E5F6</string>
  <key>PayloadDisplayName</key><string>Mail for $DISPLAY_NAME$</string>
  <key>Host</key><string>mail.stmary.org</string>
  <key>SSL</key><true/>
  <key>UserName</key><string>$USERID$</string>
  <key>EmailAddress</key><string>$EMAIL$</string>
</dict>
</plist>"#;

#[test]
fn a_dynamic_config_profile_filled_for_a_clinician_matches_apples_schemas() {
    use lanyard_mdm::dynamic::{DynamicProfile, ProfileVariables};
    let profile = DynamicProfile::new(EXCHANGE_TEMPLATE).unwrap();
    assert_eq!(profile.variables(), ["USERID", "DISPLAY_NAME", "EMAIL"]);
    // A name that would break naive substitution.
    let vars = ProfileVariables::for_user(
        "obrien",
        "Siobhán O'Brien & <Sons>",
        Some("obrien@stmary.org"),
    );
    let xml = profile
        .render(&vars, "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D")
        .unwrap();
    let top = Value::from_reader_xml(xml.as_slice()).unwrap();
    let top = top.into_dictionary().unwrap();
    let p = profile_problems(top.clone(), &["com.apple.eas.account.yaml"]);
    assert!(p.is_empty(), "{p:#?}");
    let payload = top["PayloadContent"].as_array().unwrap()[0]
        .as_dictionary()
        .unwrap();
    assert_eq!(
        payload["PayloadDisplayName"].as_string(),
        Some("Mail for Siobhán O'Brien & <Sons>")
    );
    assert_eq!(payload["UserName"].as_string(), Some("obrien"));
    assert_eq!(payload.len(), 9, "no key was added by a value");
    // What the phone is sent is an InstallProfile command Apple's schema accepts.
    let cmd = MdmCommand::InstallProfile { payload: xml };
    let p = problems(&cmd);
    assert!(p.is_empty(), "{p:#?}");
}

#[test]
fn the_lock_screen_message_profile_matches_apples_schemas() {
    use lanyard_mdm::profile::{Payload, Profile};
    let profile = Profile {
        identifier: "org.stmary.lanyard.lockscreen".into(),
        uuid: "6C8F1E2D-3B4A-4C5D-9E6F-7A8B9C0D1E2F".into(),
        display_name: "Lock Screen Message".into(),
        organization: None,
        remove_after_secs: None,
        payloads: vec![Payload::LockScreenMessage {
            uuid: "7D9A2F3E-4C5B-4D6E-8F70-8B9CAD0E1F30".into(),
            footnote: Some("If found, return this device to 4 West.\nC39XK0001".into()),
            asset_tag: Some("C39XK0001".into()),
        }],
    };
    let p = profile_problems(
        profile.dictionary(),
        &["com.apple.shareddeviceconfiguration.yaml"],
    );
    assert!(p.is_empty(), "{p:#?}");
}
