//! The server process's life, against the binary: one `serve` per data directory, a
//! policy changed by the CLI reaching a syncing phone within seconds, and SIGTERM
//! answering long-polls at once and exiting cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lanyard_protocol::PROTOCOL_VERSION;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_lanyard-server");

/// The server binary, killed when dropped. Its stderr lines arrive on `log`.
struct Server {
    child: std::process::Child,
    base: String,
    log: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        // Each request's start is logged: the test waits on it instead of sleeping.
        .env(
            "RUST_LOG",
            "warn,lanyard_server::request=info,tower_http=debug",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(addr) = line.split("listening on ").nth(1) {
            break addr.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let (tx, log) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Server { child, base, log }
}

fn cli(data: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn post(http: &reqwest::Client, url: String, bearer: &str, body: Value) -> (u16, Value) {
    let r = http
        .post(url)
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// An enrolled phone: id and credential.
async fn phone(http: &reqwest::Client, base: &str, admin: &str) -> (String, String) {
    let (s, t) = post(
        http,
        format!("{base}/api/v1/enrollment-tokens"),
        admin,
        json!({"label": "lifecycle"}),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let link = t["link"].as_str().unwrap();
    let token = link
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let token = token.replace("%2D", "-").replace("%5F", "_");
    let (s, e) = post(
        http,
        format!("{base}/device/v1/enroll"),
        "",
        json!({"v": PROTOCOL_VERSION, "token": token, "device": {}}),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    (
        e["device_id"].as_str().unwrap().to_owned(),
        e["device_credential"].as_str().unwrap().to_owned(),
    )
}

async fn sync(
    http: &reqwest::Client,
    base: &str,
    (id, credential): &(String, String),
    policy_version: u64,
    wait_secs: u32,
) -> (u16, Value) {
    post(
        http,
        format!("{base}/device/v1/sync"),
        credential,
        json!({"v": PROTOCOL_VERSION, "device_id": id, "policy_version": policy_version,
               "wait_secs": wait_secs}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_per_data_dir_cli_policy_reaches_phones_and_sigterm_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data);
    let http = http();
    let base = server.base.clone();

    // A second `serve` on the same data directory is refused, saying why.
    let second = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already serving"), "{err}");
    assert!(
        !String::from_utf8_lossy(&second.stdout).contains("listening"),
        "never claims to listen"
    );

    // The CLI's one-shot commands still work beside the running server.
    let admin = cli(&data, &["token", "create", "--role", "admin"]);
    let admin = admin.trim().lines().last().unwrap().trim().to_owned();
    let device = phone(&http, &base, &admin).await;
    let (s, first) = sync(&http, &base, &device, 0, 0).await;
    assert_eq!(s, 200, "{first}");
    let v1: Value = serde_json::from_str(first["policy"]["payload"].as_str().unwrap()).unwrap();
    let v1 = v1["version"].as_u64().unwrap();

    // A policy change made by the CLI (the standard set's logout apps) reaches a
    // syncing phone within 5 s, with no restart.
    cli(
        &data,
        &[
            "workflows",
            "install-standard",
            "--dep-profile",
            "St Mary DEP",
            "--wifi-ssid",
            "StMary-Provisioning",
            "--wifi-password",
            "provision-me",
        ],
    );
    let changed = Instant::now();
    loop {
        let (s, answer) = sync(&http, &base, &device, v1, 0).await;
        assert_eq!(s, 200, "{answer}");
        if let Some(p) = answer["policy"]["payload"].as_str() {
            let p: Value = serde_json::from_str(p).unwrap();
            assert!(p["version"].as_u64().unwrap() > v1);
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "the new policy reached the phone within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let readyz = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 200);

    // A phone long-polls; SIGTERM answers it at once and the process exits 0.
    while server.log.try_recv().is_ok() {} // earlier requests' lines
    let poll = {
        let (http, base, device) = (http.clone(), base.clone(), device.clone());
        tokio::spawn(async move { sync(&http, &base, &device, u64::MAX, 30).await })
    };
    let parked = Instant::now() + Duration::from_secs(10);
    loop {
        let line = server
            .log
            .recv_timeout(parked.saturating_duration_since(Instant::now()))
            .expect("the long-poll reached the server");
        if line.contains("/device/v1/sync") && line.contains("started processing request") {
            break;
        }
    }
    let term = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (s, answer) = poll.await.unwrap();
    assert_eq!(s, 200, "{answer}");
    assert!(answer["commands"].as_array().unwrap().is_empty());
    assert!(
        term.elapsed() < Duration::from_secs(1),
        "long-poll answered in {:?}",
        term.elapsed()
    );
    let exited = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < exited, "the server exits after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");

    // The lock went with it: the next `serve` starts.
    drop(server);
    let again = start(&data);
    let r = http
        .get(format!("{}/healthz", again.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
