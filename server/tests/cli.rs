//! The binary as an operator uses it: `demo`, `import`, and `serve` behind a proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lanyard-server"))
}

/// Kills the child even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test]
async fn demo_seeds_carts_users_and_docked_devices_that_answer_a_cart_tap() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child(
        bin()
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("d"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let done = line.contains("demo devices docked");
            lines.push(line.trim().to_owned());
            if done {
                return lines;
            }
        }
    })
    .await
    .unwrap();
    let url = lines[0].rsplit(' ').next().unwrap().to_owned();
    let token = lines
        .iter()
        .find_map(|l| l.strip_prefix("admin API token (shown once): "))
        .unwrap();
    let cart = lines
        .iter()
        .find_map(|l| l.strip_prefix("cart 4west-cart-1: reader credential "))
        .unwrap();
    let http = client();
    let devices: serde_json::Value = http
        .get(format!("{url}/api/v1/devices?status=checked_in"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(devices["items"].as_array().unwrap().len(), 12);
    let tap: serde_json::Value = http
        .post(format!("{url}/launchpad/v1/tap"))
        .bearer_auth(cart)
        .json(&serde_json::json!({"badge": "1001"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tap["beep"], 1, "{tap}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("enrollment link for real phones: lanyard://enroll?"))
    );
}

#[test]
fn import_is_all_or_nothing_and_names_every_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "username,display_name,email,groups,device_limit,badge,password\n\
         alice,Alice Moreau,alice@stmary.example,Nursing;ICU,1,0012345,correct-horse\n\
         bob!,Bob,,,,,\n\
         carol,Carol,not-an-email,,,,\n\
         alice,Alice again,,,,,\n\
         dan,Dan,,,eleven,,\n",
    )
    .unwrap();
    let out = bin()
        .args(["import", "users"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for row in ["row 3", "row 4", "row 5", "row 6"] {
        assert!(err.contains(row), "{row} missing from: {err}");
    }
    assert!(!err.contains("row 2:"), "row 2 is fine: {err}");

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "username,display_name,email,groups,device_limit,badge,password\n\
         alice,Alice Moreau,alice@stmary.example,Nursing;ICU,1,0012345,correct-horse\n\
         bob,Bob Okafor,,,2,,\n",
    )
    .unwrap();
    let out = bin()
        .args(["import", "users"])
        .arg(&good)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 2 users: 2 created, 0 updated",
        "the failed run imported nothing"
    );
    // The directory changes: the same users again, Bob renamed and a new one added. The
    // file brings the existing ones in line and creates the new one.
    std::fs::write(
        &good,
        "username,display_name,email,groups,device_limit,badge,password
         alice,Alice Moreau,alice@stmary.example,Nursing;ICU,1,0012345,
         bob,Robert Okafor,bob@stmary.example,,,,
         carol,Carol Diaz,,,,,
",
    )
    .unwrap();
    let out = bin()
        .args(["import", "users"])
        .arg(&good)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 3 users: 1 created, 2 updated"
    );
    // A row with several bad fields names every one of them.
    std::fs::write(
        &bad,
        "username,display_name,email,groups,device_limit,badge,password
         dan!,,not-an-email,,11,,short
",
    )
    .unwrap();
    let out = bin()
        .args(["import", "users"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "username",
        "display_name",
        "email",
        "device_limit",
        "password",
    ] {
        assert!(
            err.contains(&format!("{field}:")),
            "{field} not named: {err}"
        );
    }

    let carts = dir.path().join("carts.csv");
    std::fs::write(
        &carts,
        "id,name,ports,department,facility,manager,timezone\n\
         cart-a,Cart A,10,4 West,St Mary,mgr@stmary.example,America/Chicago\n\
         cart-b,Cart B,8,ED,St Mary,,Europe/Paris\n",
    )
    .unwrap();
    let out = bin()
        .args(["import", "launchpads"])
        .arg(&carts)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("id,reader_credential\ncart-a,"));
    assert_eq!(stdout.lines().count(), 3);
    // Again, with cart-b moved to another department and a new cart: cart-b is updated
    // (its reader keeps its credential), cart-d created.
    std::fs::write(
        &carts,
        "id,name,ports,department,facility,manager,timezone\n\
         cart-b,Cart B,8,5 East,St Mary,,Europe/Paris\n\
         cart-d,Cart D,4,ICU,St Mary,,\n",
    )
    .unwrap();
    let out = bin()
        .args(["import", "launchpads"])
        .arg(&carts)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        2,
        "only cart-d's credential: {stdout}"
    );
    assert!(stdout.contains("cart-d,"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 created"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 updated"));
    std::fs::write(
        &carts,
        "id,name,ports,department,facility,manager,timezone\ncart-c,Cart C,8,,,,Mars/Olympus\n",
    )
    .unwrap();
    let out = bin()
        .args(["import", "launchpads"])
        .arg(&carts)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timezone"));
}

/// `serve` with `trusted_proxies`: behind a trusted load balancer the log names the
/// client its X-Forwarded-For gives; from any other peer the header is ignored.
#[tokio::test]
async fn the_log_names_the_client_behind_a_trusted_proxy_and_ignores_anyone_elses_header() {
    // The test connects from loopback: trusted in the first run, not in the second.
    for (trusted, expected) in [
        ("127.0.0.1", "client=192.0.2.7"),
        ("10.0.0.0/8", "client=127.0.0.1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Child(
            bin()
                .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path().join("d"))
                .args(["--trusted-proxy", trusted])
                .env("RUST_LOG", "info,tower_http=debug")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let url = tokio::task::spawn_blocking(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| {
                    l.strip_prefix("lanyard-server listening on ")
                        .map(str::to_owned)
                })
        })
        .await
        .unwrap()
        .unwrap();
        let r = client()
            .get(format!("{url}/healthz"))
            .header("x-forwarded-for", "203.0.113.50, 192.0.2.7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let stderr = child.0.stderr.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .find(|l| l.contains("path=/healthz") && l.contains("finished processing"))
        });
        // (On a timeout the child is killed as the test fails, which ends the reader.)
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), line)
            .await
            .expect("the request was logged")
            .unwrap()
            .unwrap();
        assert!(line.contains(expected), "trusting {trusted}: {line}");
    }
}

#[test]
fn a_trusted_proxy_that_is_not_an_address_stops_the_server_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("d"))
        .args(["--trusted-proxy", "lb.stmary.example"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lb.stmary.example"), "{err}");
}

#[test]
fn the_policy_is_shown_and_changed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = bin()
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.stdin.take();
        child.wait_with_output().unwrap()
    };
    let out = run(&["policy", "show"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v0 = shown["version"].as_u64().unwrap();
    assert_eq!(shown["checkout"]["undock_window_secs"], 60);

    let out = run(
        &["policy", "set", "-"],
        Some(r#"{"checkout": {"lending_period_secs": 46800, "undock_window_secs": 120}}"#),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(after["version"], v0 + 1);
    assert_eq!(after["checkout"]["undock_window_secs"], 120);

    // A bad patch names its field and changes nothing.
    let out = run(
        &["policy", "set", "-"],
        Some(r#"{"checkout": {"undock_window_secs": 0}}"#),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checkout.undock_window_secs"), "{err}");
    let out = run(&["policy", "show"], None);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["version"], v0 + 1);
}

#[test]
fn serve_help_names_every_config_file_key() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for key in lanyard_server::config::KEYS {
        assert!(
            help.contains(key),
            "{key} missing from serve --help:\n{help}"
        );
    }
}
