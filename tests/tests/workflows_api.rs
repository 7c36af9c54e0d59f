//! Workflows and automation rules over the admin API: what is refused (naming the
//! field), the read-only default folders, rule ordering, and seed 000's standard set
//! compared field by field with the guide itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_e2e::{TestServer, http_client};
use serde_json::{Value, json};

async fn req(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = http_client()
        .request(m, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn workflow(actions: Value) -> Value {
    json!({"name": "Custom", "model": "over_the_air", "actions": actions})
}

fn site() -> Value {
    json!({"dep_profile": "St Mary DEP", "wifi_ssid": "StMary-Provisioning", "wifi_password": "provision-me"})
}

#[tokio::test]
async fn invalid_workflows_and_rules_are_refused_naming_the_problem() {
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let t = server.token("admin").await.unwrap();
    let post = |path: &'static str, body: Value| {
        let (base, t) = (base.clone(), t.clone());
        async move { req(&base, &t, "POST", path, Some(body)).await }
    };
    let cases = [
        (workflow(json!([{"type": "teleport"}])), "teleport"),
        (
            workflow(json!([{"type": "reboot", "force": true}])),
            "force",
        ),
        (
            workflow(json!([{"type": "set_timezone", "timezone": "America/Chicgo"}])),
            "actions[0].timezone",
        ),
        (
            workflow(
                json!([{"type": "send_email", "to": ["it@example.org"], "subject": "Device [Device Seriall]", "body": "x"}]),
            ),
            "[Device Seriall]",
        ),
        (
            workflow(
                json!([{"type": "reboot"}, {"type": "on_failure", "retry": true, "max_attempts": 11}]),
            ),
            "actions[1].max_attempts",
        ),
        (
            workflow(
                json!([{"type": "reboot"}, {"type": "on_failure", "run_workflow": "nowhere"}]),
            ),
            "actions[1].run_workflow",
        ),
        (
            workflow(json!([{"type": "set_attribute", "attribute": "Shoe Size", "value": "9"}])),
            "actions[0].attribute",
        ),
        (
            json!({"name": "X", "model": "over_the_air", "folder": "checkout_workflows", "actions": [{"type": "reboot"}]}),
            "folder",
        ),
        // iOS Express Checkout runs without the MDM: an MDM step is refused, named.
        (
            json!({"name": "X", "model": "express_checkout", "actions": [
                {"type": "check_out_device", "display_text": "[Display Name]"},
                {"type": "set_wallpaper", "image_base64": "iVBORw0KGgo=", "location": "lock_screen"}
            ]}),
            "actions[1]: set_wallpaper needs the MDM",
        ),
    ];
    for (body, needle) in cases {
        let (s, b) = post("/api/v1/workflows", body.clone()).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert!(
            b["message"].as_str().unwrap().contains(needle),
            "{needle} not named in {b}"
        );
    }

    // A cycle of "run another workflow": A fails into B, then B into A is refused.
    let (s, a) = post(
        "/api/v1/workflows",
        json!({"name": "A", "model": "over_the_air", "actions": [{"type": "reboot"}]}),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let (s, b) = post("/api/v1/workflows", json!({"name": "B", "model": "over_the_air", "actions": [{"type": "reboot"}, {"type": "on_failure", "run_workflow": "a"}]})).await;
    assert_eq!(s, 201, "{b}");
    let (s, e) = req(&base, &t, "PUT", "/api/v1/workflows/a", Some(json!({"name": "A", "model": "over_the_air", "actions": [{"type": "reboot"}, {"type": "on_failure", "run_workflow": "b"}]}))).await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("cycle: a → b → a"),
        "{e}"
    );
    // A workflow another one runs on failure cannot be deleted.
    let (s, e) = req(&base, &t, "DELETE", "/api/v1/workflows/a", None).await;
    assert_eq!(s, 422, "{e}");

    let rule = |conditions: Value, workflows: Value, trigger: Value| json!({"name": "R", "trigger": trigger, "conditions": conditions, "workflows": workflows, "enabled": true});
    let checked_in = json!({"type": "checked_in"});
    let rule_cases = [
        (
            rule(
                json!([{"field": "port_number", "op": "greater_than_or_equal", "value": 16}, {"field": "port_number", "op": "less_than_or_equal", "value": 10}]),
                json!(["a"]),
                checked_in.clone(),
            ),
            "port range reversed",
        ),
        (
            rule(json!([]), json!(["missing"]), checked_in.clone()),
            "workflows[0]",
        ),
        (
            rule(
                json!([]),
                json!(["a"]),
                json!({"type": "schedule", "date": "2025-01-07", "time": "25:00", "repeats": "daily"}),
            ),
            "trigger.time",
        ),
        (
            rule(
                json!([{"field": "device_home", "op": "is_not", "value": "[Departmnet]"}]),
                json!(["a"]),
                checked_in.clone(),
            ),
            "[Departmnet]",
        ),
        (
            rule(
                json!([{"field": "checkout_status", "op": "is", "value": "docked"}]),
                json!(["a"]),
                checked_in.clone(),
            ),
            "conditions[0].value",
        ),
        (
            rule(
                json!([{"field": "battery_level", "op": "less_than", "value": 150}]),
                json!(["a"]),
                checked_in.clone(),
            ),
            "conditions[0].value: must be 0 to 100",
        ),
        (
            rule(
                json!([{"field": "port_number", "op": "is", "value": 0}]),
                json!(["a"]),
                checked_in.clone(),
            ),
            "conditions[0].value: must be 1 to 64",
        ),
    ];
    for (body, needle) in rule_cases {
        let (s, b) = post("/api/v1/rules", body.clone()).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert!(
            b["message"].as_str().unwrap().contains(needle),
            "{needle} not named in {b}"
        );
    }
    server.stop().await.unwrap();
}

/// `Name: **X**` → X, from the guide's text.
fn bold_after<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    line.strip_prefix(label)?
        .trim()
        .strip_prefix("**")?
        .strip_suffix("**")
}

#[tokio::test]
async fn the_standard_set_matches_the_reference_architecture_guide() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/seeds/000_0d889932b4d8da7e.txt"
    ))
    .expect("seed 000 beside the repository");
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let t = server.token("admin").await.unwrap();
    let (s, b) = req(
        &base,
        &t,
        "POST",
        "/api/v1/workflows/install-standard",
        Some(site()),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    // This server has no MDM and no SMTP relay: the answer says what will fail, and why.
    let needs_mdm: Vec<&str> = b["needs_mdm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for name in ["Check In", "iOS Provisioning"] {
        assert!(needs_mdm.contains(&name), "{name} needs the MDM: {b}");
    }
    assert!(!needs_mdm.contains(&"Set Device Home"), "{b}");
    let warnings = b["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{b}");
    let mdm = warnings[0].as_str().unwrap();
    assert!(mdm.starts_with("no MDM is configured"), "{mdm}");
    assert!(
        mdm.contains("Check In") && mdm.contains("blocks checkout"),
        "{mdm}"
    );
    assert!(
        warnings[1].as_str().unwrap().starts_with("no SMTP relay"),
        "{b}"
    );
    let (_, workflows) = req(&base, &t, "GET", "/api/v1/workflows", None).await;
    let (_, rules) = req(&base, &t, "GET", "/api/v1/rules", None).await;
    let workflows = workflows.as_array().unwrap();
    let rules = rules.as_array().unwrap();
    assert_eq!(workflows.len(), 8);
    assert_eq!(rules.len(), 9);

    // Every "Name / Description" pair of the guide is an installed workflow or rule with
    // that exact description; workflow pairs are followed by their Workflow Model.
    let lines: Vec<&str> = guide
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut seen_workflows = 0;
    let mut seen_rules = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = bold_after(line, "Name:") else {
            continue;
        };
        let description =
            bold_after(lines[i + 1], "Description:").expect("a description follows each name");
        // The guide's one typo ("Update iOS Ports Ports 6-10") is installed without it.
        let name = name.replace("Ports Ports", "Ports");
        if let Some(model) = lines[i + 2].strip_prefix("Workflow Model: ☒ ") {
            let w = workflows
                .iter()
                .find(|w| w["name"] == name.as_str())
                .unwrap_or_else(|| panic!("workflow {name}"));
            assert_eq!(w["description"], description, "{name}");
            let want = match model {
                "Device Enrollment Program" => "device_enrollment_program",
                "iOS Express Checkout" => "express_checkout",
                "Over the Air" => "over_the_air",
                other => panic!("model {other}"),
            };
            assert_eq!(w["model"], want, "{name}");
            seen_workflows += 1;
        } else {
            let r = rules
                .iter()
                .find(|r| r["name"] == name.as_str())
                .unwrap_or_else(|| panic!("rule {name}"));
            assert_eq!(r["description"], description, "{name}");
            seen_rules += 1;
        }
    }
    assert_eq!((seen_workflows, seen_rules), (8, 9));

    // Organizing Workflows: each folder holds what the guide lists under it.
    let (_, folders) = req(&base, &t, "GET", "/api/v1/workflow-folders", None).await;
    let folder = |title: &str| -> Vec<String> {
        let f = folders
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["title"] == title)
            .unwrap();
        let mut names: Vec<String> = f["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                workflows.iter().find(|w| w["id"] == *id).unwrap()["name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        names.sort();
        names
    };
    let organizing = guide
        .split("Use the **Organize** feature in the **Workflows** tab to move")
        .nth(1)
        .unwrap();
    let mut current = None;
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in organizing.lines() {
        if let Some(title) = line.strip_prefix("- ") {
            current = Some(title.trim().to_owned());
            expected.entry(title.trim().to_owned()).or_default();
        } else if let (Some(item), Some(f)) = (line.trim().strip_prefix("- "), &current)
            && !item.starts_with('(')
            && !item.starts_with('⚠')
        {
            expected.get_mut(f).unwrap().push(item.trim().to_owned());
        }
    }
    assert_eq!(expected.len(), 5);
    for (title, mut names) in expected {
        names.sort();
        assert_eq!(folder(&title), names, "{title}");
    }

    // The actions and rules the guide spells out.
    let w = |id: &str| workflows.iter().find(|w| w["id"] == id).unwrap().clone();
    assert_eq!(
        w("check-in")["actions"],
        json!([
            {"type": "perform_mdm_command", "clear_passcode": true, "delete_from_mdm": false},
            {"type": "check_in_device", "launch_blank_page": true},
            {"type": "on_failure", "retry": true, "max_attempts": 2, "reboot_and_check_in": false},
        ])
    );
    assert_eq!(
        w("incorrect-device-home")["actions"][0]["to"],
        json!(["[Launchpad Manager]"])
    );
    assert!(guide.contains("Tab: **Before Deployment**"));
    assert_eq!(
        w("incorrect-device-home")["actions"][0]["when"],
        "before_deployment"
    );
    assert!(
        guide.contains(
            w("incorrect-device-home")["actions"][0]["subject"]
                .as_str()
                .unwrap()
        )
    );
    assert_eq!(w("checkout")["actions"][1]["reboot_and_check_in"], true);
    assert_eq!(
        w("ios-provisioning")["actions"][3]["forget_after_minutes"],
        60
    );
    assert_eq!(
        w("ios-provisioning")["actions"][3]["disable_mac_randomization"],
        true
    );
    let checked_in: Vec<&str> = rules
        .iter()
        .filter(|r| r["trigger"]["type"] == "checked_in")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(checked_in, ["Incorrect Device Home", "Check In"]);
    let r = |name: &str| rules.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(
        r("Incorrect Device Home")["workflows"],
        json!(["incorrect-device-home", "check-in"])
    );
    assert_eq!(
        r("Incorrect Device Home")["conditions"],
        json!([{"field": "device_home", "op": "is_not", "value": "[Department]"}])
    );
    for (name, time, low, high) in [
        ("Update iOS Ports 1-5", "06:00", None, 5),
        ("Update iOS Ports 6-10", "12:00", Some(6), 10),
        ("Update iOS Ports 11-15", "18:00", Some(11), 15),
        ("Update iOS Ports 16-20", "00:00", Some(16), 24),
    ] {
        let rule = r(name);
        assert_eq!(rule["enabled"], false, "{name}");
        assert_eq!(
            rule["trigger"],
            json!({"type": "schedule", "date": "2025-01-07", "time": time, "repeats": "daily"})
        );
        assert_eq!(rule["workflows"], json!(["update-ios", "check-in"]));
        let mut want = vec![
            json!({"field": "checkout_status", "op": "is", "value": "checked_in"}),
            json!({"field": "battery_level", "op": "greater_than", "value": 50}),
        ];
        if let Some(low) = low {
            want.push(json!({"field": "port_number", "op": "greater_than_or_equal", "value": low}));
        }
        want.push(json!({"field": "port_number", "op": "less_than_or_equal", "value": high}));
        assert_eq!(rule["conditions"], Value::Array(want), "{name}");
    }

    // Default folders are read-only; a clone lands in Custom Workflows and can change.
    let (s, e) = req(&base, &t, "PUT", "/api/v1/workflows/check-in", Some(json!({"name": "Check In", "model": "device_enrollment_program", "actions": [{"type": "reboot"}]}))).await;
    assert_eq!(s, 422, "{e}");
    let (s, c) = req(
        &base,
        &t,
        "POST",
        "/api/v1/workflows/check-in/clone",
        Some(json!({"name": "Check In (4 West)"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["folder"], "custom_workflows");
    assert_eq!(c["id"], "check-in-4-west");
    // Installing twice is refused, leaving the set as it was.
    let (s, e) = req(
        &base,
        &t,
        "POST",
        "/api/v1/workflows/install-standard",
        Some(site()),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    // Reordering: Check In moves to the top of the check-in rules.
    let (s, moved) = req(
        &base,
        &t,
        "POST",
        "/api/v1/rules/check-in/move",
        Some(json!({"position": 1})),
    )
    .await;
    assert_eq!(s, 200, "{moved}");
    let order: Vec<&str> = moved
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["check-in", "incorrect-device-home"]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rules_and_workflows_change_in_part_move_between_folders_and_helpdesk_deploys() {
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let t = server.token("admin").await.unwrap();
    let helpdesk = server.token("helpdesk").await.unwrap();
    let (s, b) = req(
        &base,
        &t,
        "POST",
        "/api/v1/workflows/install-standard",
        Some(site()),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (base, t) = (base.clone(), t.clone());
        async move { req(&base, &t, method, &path, body).await }
    };

    // A rule with conditions: PATCH {"enabled": false} keeps them.
    let (_, rules) = call("GET", "/api/v1/rules".into(), None).await;
    let with_conditions = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["enabled"] == true && !r["conditions"].as_array().unwrap().is_empty())
        .expect("a standard rule with conditions")
        .clone();
    let id = with_conditions["id"].as_str().unwrap();
    let (s, patched) = call(
        "PATCH",
        format!("/api/v1/rules/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["conditions"], with_conditions["conditions"]);
    assert_eq!(patched["workflows"], with_conditions["workflows"]);
    let (s, b) = call(
        "PATCH",
        format!("/api/v1/rules/{id}"),
        Some(json!({"workflows": ["no-such-workflow"]})),
    )
    .await;
    assert!(s == 400 || s == 422, "{s} {b}");
    assert!(
        b["message"].as_str().unwrap().contains("no-such-workflow"),
        "{b}"
    );
    let (s, _) = call(
        "PATCH",
        "/api/v1/rules/nope".into(),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s, 404);
    let (_, audit) = call("GET", format!("/api/v1/audit?target_id={id}"), None).await;
    assert!(!audit["items"].as_array().unwrap().is_empty(), "{audit}");

    // A workflow an enabled rule deploys cannot be deprecated; once no rule uses it, it can.
    let (_, rules) = call("GET", "/api/v1/rules".into(), None).await;
    let used = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["enabled"] == true)
        .unwrap()
        .clone();
    let wid = used["workflows"][0].as_str().unwrap().to_owned();
    let move_to = |folder: &'static str| {
        call(
            "POST",
            format!("/api/v1/workflows/{wid}/move"),
            Some(json!({"folder": folder})),
        )
    };
    let (s, b) = move_to("deprecated_workflows").await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains(used["name"].as_str().unwrap()),
        "{b}"
    );
    for r in rules.as_array().unwrap() {
        if r["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == wid.as_str())
        {
            let (s, b) = call(
                "PATCH",
                format!("/api/v1/rules/{}", r["id"].as_str().unwrap()),
                Some(json!({"enabled": false})),
            )
            .await;
            assert_eq!(s, 200, "{b}");
        }
    }
    let (s, moved) = move_to("deprecated_workflows").await;
    assert_eq!(s, 200, "{moved}");
    assert_eq!(moved["folder"], "deprecated_workflows");
    let (_, folders) = call("GET", "/api/v1/workflow-folders".into(), None).await;
    let deprecated = folders
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == "deprecated_workflows" || f["id"] == "deprecated_workflows")
        .unwrap_or_else(|| panic!("{folders}"))
        .to_string();
    assert!(deprecated.contains(&wid), "{deprecated}");
    // Deprecated is read-only; back into Custom Workflows it can be changed in part.
    let (s, _) = call(
        "PATCH",
        format!("/api/v1/workflows/{wid}"),
        Some(json!({"description": "x"})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, b) = move_to("checkout_workflows").await;
    assert_eq!(s, 422, "{b}");
    let (s, back) = move_to("custom_workflows").await;
    assert_eq!(
        (s, back["folder"].as_str()),
        (200, Some("custom_workflows")),
        "{back}"
    );
    let (s, changed) = call(
        "PATCH",
        format!("/api/v1/workflows/{wid}"),
        Some(json!({"description": "Kept for 4 West"})),
    )
    .await;
    assert_eq!(s, 200, "{changed}");
    assert_eq!(changed["description"], "Kept for 4 West");
    assert_eq!(changed["actions"], moved["actions"], "actions kept");
    let (s, b) = call(
        "PATCH",
        format!("/api/v1/workflows/{wid}"),
        Some(json!({"actions": [{"type": "teleport"}]})),
    )
    .await;
    assert_eq!(s, 400, "{b}");

    // Helpdesk deploys a workflow to phones, but not one that erases them.
    let (_, workflows) = call("GET", "/api/v1/workflows".into(), None).await;
    let erases = workflows
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["actions"].to_string().contains("\"erase\""))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = json!({"devices": ["dev-none"]});
    let (s, b) = req(
        &base,
        &helpdesk,
        "POST",
        &format!("/api/v1/workflows/{erases}/deploy"),
        Some(target.clone()),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert!(b["message"].as_str().unwrap().contains("erases"), "{b}");
    let (s, b) = req(
        &base,
        &helpdesk,
        "POST",
        &format!("/api/v1/workflows/{wid}/deploy"),
        Some(target),
    )
    .await;
    assert_ne!(s, 403, "helpdesk may deploy: {b}");
    let (s, _) = req(
        &base,
        &helpdesk,
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s, 403, "helpdesk does not change rules");
    server.stop().await.unwrap();
}

/// Seed 000's admin journey through the API alone, as a new IT admin plays it: the
/// guide's attributes, carts and users, phones enrolled into a cart, the standard set,
/// the Incorrect Device Home rule moved first, a cloned Check In, a phone erased and
/// enrolled again, a busy cart, a policy change reaching a phone, a search and a
/// filtered audit export.
#[tokio::test]
async fn seed_000s_admin_journey_through_the_api() {
    use lanyard_agent::Event;
    use lanyard_e2e::harness::{Admin, Phone, RawPhone, fake_nanomdm, mdm_enrolled, now};
    use lanyard_protocol::DeviceStatus;
    use lanyard_protocol::enroll::DeviceInfo;

    let (mdm_url, _fake) = fake_nanomdm().await;
    let server = TestServer::start_with(|c| {
        c.nanomdm_url = Some(mdm_url.parse().unwrap());
        c.nanomdm_api_key = Some("mdm-key".into());
        c.nanomdm_webhook_key = Some("hook-key".into());
    })
    .await
    .unwrap();
    let admin = Admin {
        base: server.base_url(),
        token: server.token("admin").await.unwrap(),
        http: http_client(),
    };
    let patch = |path: String, body: Value| {
        let (base, t) = (admin.base.clone(), admin.token.clone());
        async move { req(&base, &t, "PATCH", &path, Some(body)).await }
    };

    // Launchpad Attributes, as the guide lists them, and one of the site's own.
    for name in ["Department", "Facility", "Launchpad Manager", "Timezone"] {
        let (s, b) = admin
            .post(
                "/api/v1/attributes",
                json!({"target": "launchpad", "name": name, "value_type": "string"}),
            )
            .await;
        assert_eq!(
            (s, b["builtin"].as_bool()),
            (200, Some(true)),
            "{name}: {b}"
        );
    }
    admin
        .ok(
            "/api/v1/attributes",
            json!({"target": "device", "name": "Asset Tag", "value_type": "string"}),
        )
        .await;
    // Carts and clinicians.
    let mut readers = Vec::new();
    for (id, dept) in [("cart-4w", "4 West"), ("cart-5e", "5 East")] {
        let cart = admin
            .ok(
                "/api/v1/launchpads",
                json!({"id": id, "name": id, "ports": 10, "department": dept,
                "facility": "St Mary", "manager": "mgr@stmary.example", "timezone": "America/Chicago"}),
            )
            .await;
        readers.push(cart["credential"].as_str().unwrap().to_owned());
    }
    for (u, name, badge) in [
        ("alice", "Alice Moreau, RN", "0012345"),
        ("bob", "Bob Okafor, RN", "0067890"),
    ] {
        admin
            .ok(
                "/api/v1/users",
                json!({"username": u, "display_name": name, "email": format!("{u}@stmary.example"), "groups": ["4 West"]}),
            )
            .await;
        admin
            .ok(
                &format!("/api/v1/users/{u}/badges"),
                json!({"badge": badge}),
            )
            .await;
    }
    // The standard set: with an MDM, only the missing SMTP relay is worth a warning.
    let installed = admin
        .ok(
            "/api/v1/workflows/install-standard",
            json!({"dep_profile": "St Mary DEP", "wifi_ssid": "StMary-Provisioning", "wifi_password": "provision-me"}),
        )
        .await;
    let warnings = installed["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{installed}");
    assert!(warnings[0].as_str().unwrap().starts_with("no SMTP relay"));
    // "Reorder the Incorrect Device Home rule to be the first rule."
    let moved = admin
        .ok(
            "/api/v1/rules/incorrect-device-home/move",
            json!({"position": 1}),
        )
        .await;
    assert_eq!(moved[0]["id"], "incorrect-device-home", "{moved}");
    // A Check In for 4 West: cloned, changed in part, and deployed by its rule.
    let clone = admin
        .ok(
            "/api/v1/workflows/check-in/clone",
            json!({"name": "Check In 4 West"}),
        )
        .await;
    let clone_id = clone["id"].as_str().unwrap().to_owned();
    let (s, b) = patch(
        format!("/api/v1/workflows/{clone_id}"),
        json!({"description": "4 West: logs Epic Rover out"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = patch(
        "/api/v1/rules/check-in".into(),
        json!({"workflows": [clone_id]}),
    )
    .await;
    assert_eq!(
        (s, b["workflows"][0].as_str()),
        (200, Some(clone_id.as_str())),
        "{b}"
    );

    // Phones enrolled into cart 4 West and docked.
    let token = admin
        .ok(
            "/api/v1/enrollment-tokens",
            json!({"label": "4 West", "launchpad_id": "cart-4w", "department": "4 West"}),
        )
        .await;
    let link = token["link"].as_str().unwrap().to_owned();
    let mut p1 = Phone::enroll(&link).await;
    p1.dock("cart-4w", 1, 95).await;
    let mut p2 = Phone::enroll(&link).await;
    p2.dock("cart-4w", 2, 80).await;

    // A phone erased by Provisioning enrolls again: its old record is replaced, and
    // what IT set on it is handed on.
    let info = DeviceInfo {
        serial: Some("F2LXK0XXHG99".into()),
        udid: Some("00008030-0000000000000099".into()),
        model: Some("iPhone15,2".into()),
        ..Default::default()
    };
    let (udid, serial) = (info.udid.clone().unwrap(), info.serial.clone().unwrap());
    assert_eq!(mdm_enrolled(&admin.base, &udid, &serial).await, 200);
    let before = RawPhone::enroll(&link, info.clone()).await.unwrap();
    let (s, _) = req(
        &admin.base,
        &admin.token,
        "PUT",
        &format!("/api/v1/devices/{}/attributes/Asset%20Tag", before.id),
        Some(json!({"value": "SMH-00417"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(mdm_enrolled(&admin.base, &udid, &serial).await, 200);
    let after = RawPhone::enroll(&link, info).await.unwrap();
    let (_, old) = admin.get(&format!("/api/v1/devices/{}", before.id)).await;
    assert_eq!(old["admin_state"], "retired", "{old}");
    let (_, attrs) = admin
        .get(&format!("/api/v1/devices/{}/attributes", after.id))
        .await;
    assert_eq!(attrs["Asset Tag"], "SMH-00417");

    // Shift change at a busy cart: Alice's phone waits in its port; Bob hears so at once.
    let tap = |badge: &'static str| {
        let (base, reader) = (admin.base.clone(), readers[0].clone());
        async move {
            let r = http_client()
                .post(format!("{base}/launchpad/v1/tap"))
                .bearer_auth(reader)
                .json(&json!({"badge": badge}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let alice = tap("0012345").await;
    assert_eq!(
        (alice["beep"].as_u64(), alice["port"].as_u64()),
        (Some(1), Some(1)),
        "{alice}"
    );
    let bob = tap("0067890").await;
    assert_eq!(
        (bob["reason"].as_str(), bob["port"].as_u64()),
        (Some("cart_busy"), Some(1)),
        "{bob}"
    );
    p1.sync().await;
    assert_eq!(p1.status(), DeviceStatus::CheckoutPending);
    p1.agent.handle(Event::Undocked, now()).unwrap();
    p1.sync().await;
    let bob = tap("0067890").await;
    assert_eq!(
        (bob["beep"].as_u64(), bob["port"].as_u64()),
        (Some(1), Some(2)),
        "{bob}"
    );
    let (_, refused) = admin.get("/api/v1/cart-taps?refused=true").await;
    assert_eq!(refused["items"][0]["reason"], "cart_busy", "{refused}");

    // A policy change reaches a phone at its next sync.
    let (s, b) = patch(
        "/api/v1/policy".into(),
        json!({"lock_screen_text": "If found, return to 4 West"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    p2.sync().await;
    assert_eq!(
        p2.agent.locker().policy.lock_screen_text,
        "If found, return to 4 West"
    );

    // A search, and a filtered audit export.
    let (_, found) = admin.get("/api/v1/devices?q=f2lxk0xxhg99").await;
    let ids: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "the old record and the new: {found}");
    assert!(ids.contains(&after.id.as_str()) && ids.contains(&before.id.as_str()));
    let (_, holder) = admin.get("/api/v1/devices?q=alice@stmary.example").await;
    assert_eq!(holder["items"][0]["id"], p1.id.as_str(), "{holder}");
    let csv = http_client()
        .get(format!("{}/api/v1/audit.csv?action=policy.", admin.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(rows.iter().any(|r| r.contains("policy.update")), "{csv}");
    assert!(rows.iter().all(|r| r.contains(",policy.")), "{csv}");
    server.stop().await.unwrap();
}

/// A patch is saved only onto the version it was merged into: a rule or workflow
/// changed since is reported as changed (the PATCH handler then merges again), so two
/// admins' patches never overwrite each other.
#[tokio::test]
async fn a_patch_merged_into_an_old_version_is_not_saved_over_a_newer_one() {
    use lanyard_server::storage::{StorageError, WorkflowStore};
    let server = TestServer::start().await.unwrap();
    let base = server.base_url();
    let t = server.token("admin").await.unwrap();
    let (s, _) = req(
        &base,
        &t,
        "POST",
        "/api/v1/workflows/install-standard",
        Some(site()),
    )
    .await;
    assert_eq!(s, 201);
    let st = lanyard_server::open_state(&server.config(), lanyard_server::state::system_clock())
        .unwrap();
    let now = lanyard_e2e::harness::now();
    let rules = st.storage.list_rules().await.unwrap();
    let rule = rules.iter().find(|r| r.id == "check-in").unwrap().clone();
    // Another admin changes the rule after this one read it.
    let (s, _) = req(
        &base,
        &t,
        "PATCH",
        "/api/v1/rules/check-in",
        Some(json!({"description": "changed by someone else"})),
    )
    .await;
    assert_eq!(s, 200);
    let mut mine = rule.spec.clone();
    mine.enabled = !mine.enabled;
    let stale = st
        .storage
        .replace_rule(
            "check-in".into(),
            mine.clone(),
            Some(rule.spec.clone()),
            "test".into(),
            now,
        )
        .await;
    assert!(
        matches!(stale, Err(StorageError::Changed("rule"))),
        "{stale:?}"
    );
    let (_, now_stored) = req(&base, &t, "GET", "/api/v1/rules", None).await;
    let stored = now_stored
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "check-in")
        .unwrap()
        .clone();
    assert_eq!(stored["description"], "changed by someone else");
    assert_eq!(
        stored["enabled"], rule.spec.enabled,
        "the stale save changed nothing"
    );

    let w = st.storage.get_workflow("check-in".into()).await.unwrap();
    let mut changed = w.clone();
    changed.spec.description = "x".into();
    let mut stale_base = w.spec.clone();
    stale_base.description = "what it was before".into();
    let r = st
        .storage
        .replace_workflow(changed, Some(stale_base), "test".into(), now)
        .await;
    assert!(matches!(r, Err(StorageError::Changed("workflow"))), "{r:?}");
    server.stop().await.unwrap();
}
