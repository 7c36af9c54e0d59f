//! The server skeleton over real HTTP: in-process on port 0, and as a real process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use lanyard_server::{EmbeddedServer, ServerConfig};

/// GET `url` as JSON-capable response. Installs the ring TLS provider first: in a
/// workspace build reqwest is compiled with rustls (for the agent) and needs one.
async fn get(url: String) -> reqwest::Response {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new().get(url).send().await.unwrap()
}

async fn start() -> (EmbeddedServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
    (EmbeddedServer::start(config).await.unwrap(), dir)
}

#[tokio::test]
async fn healthz_answers_json() {
    let (server, dir) = start().await;
    let resp = get(format!("{}/healthz", server.base_url())).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["protocol_version"], lanyard_protocol::PROTOCOL_VERSION);
    assert!(
        dir.path().join("data").is_dir(),
        "data dir created on first run"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_get_a_json_error_with_a_stable_code() {
    let (server, _dir) = start().await;
    let resp = get(format!("{}/api/v1/nope", server.base_url())).await;
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("/api/v1/nope"));
    server.stop().await.unwrap();
}

/// Kills the child even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_on_the_address_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_lanyard-server"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("d"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "unexpected line {line:?}"
    );
    let body: serde_json::Value = get(format!("{url}/healthz")).await.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[test]
fn env_vars_configure_serve() {
    let out = Command::new(env!("CARGO_BIN_EXE_lanyard-server"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("LANYARD_LISTEN") && help.contains("LANYARD_DATA_DIR"));
}

#[tokio::test]
async fn a_toml_config_file_configures_serve_and_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lanyard.toml");
    let data = dir.path().join("state");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nlog_format = \"json\"\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_lanyard-server"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("LANYARD_LISTEN")
            .env_remove("LANYARD_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(get(format!("{url}/healthz")).await.status(), 200);
    assert!(data.join("lanyard.db").exists(), "data_dir from the file");
    let log_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let log: serde_json::Value = serde_json::from_str(log_line.trim()).expect("a JSON log line");
    assert!(log["level"].is_string(), "{log}");

    std::fs::write(&config, "listne = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lanyard-server"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listne"),
        "the typo is named"
    );
}
