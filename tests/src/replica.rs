//! A replica as a process of its own (the `lanyard-server` binary cargo built beside the
//! tests), so a test can kill it with SIGKILL — no stop, no lease released, connections
//! cut — and start it again on the same data directory, as a crash and a restart do.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The `lanyard-server` binary built beside the running test.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|deps| deps.join("lanyard-server"))
        .unwrap_or_default();
    assert!(
        bin.exists(),
        "{} is built by `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// A running (or killed) replica process on one PostgreSQL database.
pub struct ReplicaProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>` of its current run (a new port after each restart).
    pub base_url: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl ReplicaProcess {
    /// Starts a replica on `database_url` (with the test key-encryption key) and `env`
    /// added to its environment; returns once it listens.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> ReplicaProcess {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push(("LANYARD_DATABASE_URL".into(), database_url.into()));
        env.push((
            "LANYARD_KEY_ENCRYPTION_KEY".into(),
            crate::postgres_db::TEST_KEK.into(),
        ));
        let mut replica = ReplicaProcess {
            child: None,
            base_url: String::new(),
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}")),
            env,
        };
        replica.run().await;
        replica
    }

    async fn run(&mut self) {
        let mut child = Command::new(server_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting lanyard-server: {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("no stdout");
        };
        let listening = tokio::task::spawn_blocking(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| {
                    l.strip_prefix("lanyard-server listening on ")
                        .map(str::to_owned)
                })
        });
        match listening.await {
            Ok(Some(base)) => self.base_url = base,
            _ => panic!("the replica process did not start serving"),
        }
        self.child = Some(child);
    }

    /// Kills it with SIGKILL (if it runs) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same data directory and database (a new port).
    pub async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP load balancer on loopback in front of replicas: each connection goes to the
/// next backend in turn, or to the one after it when that one does not answer — what a
/// load balancer with health checks does for a replica that just died.
pub struct LoadBalancer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    backends: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LoadBalancer {
    /// Starts one with no backends yet.
    pub async fn start() -> LoadBalancer {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local addr: {e}"));
        let backends = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let shared = backends.clone();
        let next = std::sync::Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let list = shared.lock().map(|b| b.clone()).unwrap_or_default();
                let first = next.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    for i in 0..list.len() {
                        let backend = &list[(first + i) % list.len()];
                        let Ok(mut server) = tokio::net::TcpStream::connect(backend).await else {
                            continue;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        return;
                    }
                });
            }
        });
        LoadBalancer {
            base_url: format!("http://{addr}"),
            backends,
            task,
        }
    }

    /// Sends new connections to these replicas (`http://host:port` each).
    pub fn set_backends(&self, base_urls: &[&str]) {
        let list = base_urls
            .iter()
            .map(|u| {
                u.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned()
            })
            .collect();
        if let Ok(mut backends) = self.backends.lock() {
            *backends = list;
        }
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
