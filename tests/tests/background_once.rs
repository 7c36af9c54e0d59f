//! Background work is done once, whichever server runs it: the job leases and email
//! claims every replica goes through, checked on the suite's engine (SQLite in the main
//! pass, PostgreSQL in the second), and — on PostgreSQL — two replicas' mailers on one
//! outbox sending each email once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_e2e::TestServer;
use lanyard_e2e::harness::SmtpSink;
use lanyard_e2e::replica::ReplicaProcess;
use lanyard_protocol::Timestamp;
use lanyard_server::storage::{NewEmail, Storage, WorkflowStore};
use lanyard_server::{EmbeddedServer, open_state, state::system_clock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_lease_has_one_holder_until_it_lapses_or_is_released() {
    let server = TestServer::start().await.unwrap();
    let st = open_state(&server.config(), system_clock()).unwrap();
    let s = &st.storage;
    let t = |ms: i64| Timestamp(1_000_000 + ms);
    let take = |who: &str, now: i64, until: i64| {
        s.take_lease("test_job", who.to_owned(), t(now), t(until))
    };
    assert!(take("a", 0, 15_000).await.unwrap(), "free: a takes it");
    assert!(!take("b", 1_000, 16_000).await.unwrap(), "a's lease runs");
    assert!(take("a", 10_000, 25_000).await.unwrap(), "a renews its own");
    assert!(
        !take("b", 20_000, 35_000).await.unwrap(),
        "renewed: still a's"
    );
    assert!(
        take("b", 25_001, 40_000).await.unwrap(),
        "lapsed: b takes over"
    );
    assert!(!take("a", 26_000, 41_000).await.unwrap(), "a lost it");
    // Another job's lease is its own.
    assert!(
        s.take_lease("other_job", "a".into(), t(26_000), t(41_000))
            .await
            .unwrap()
    );
    s.release_leases(Some("b".into())).await.unwrap();
    assert!(
        take("a", 27_000, 42_000).await.unwrap(),
        "released: a takes it at once"
    );
    s.release_leases(None).await.unwrap();
    assert!(take("c", 28_000, 43_000).await.unwrap(), "all released");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_occurrence_fires_once_however_many_schedulers_see_it_due() {
    let server = TestServer::start().await.unwrap();
    let st = open_state(&server.config(), system_clock()).unwrap();
    let fire = |occurrence: i64| {
        st.storage.fire_schedule(
            "nightly".into(),
            "cart-4w".into(),
            occurrence,
            Vec::new(),
            Timestamp(occurrence),
        )
    };
    // Eight schedulers (a lease that lapsed under a slow pass, a replica with a stale
    // view) record the same occurrence at once: one of them fires it.
    let at_six = 1_000_000;
    let mut schedulers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let st = st.clone();
        schedulers.spawn(async move {
            st.storage
                .fire_schedule(
                    "nightly".into(),
                    "cart-4w".into(),
                    at_six,
                    Vec::new(),
                    Timestamp(at_six),
                )
                .await
        });
    }
    let fired = schedulers.join_all().await;
    let fired = fired
        .into_iter()
        .map(Result::unwrap)
        .filter(Option::is_some);
    assert_eq!(fired.count(), 1, "one scheduler fires 06:00");
    assert_eq!(
        st.storage
            .schedule_fired("nightly".into(), "cart-4w".into())
            .await
            .unwrap(),
        Some(at_six)
    );
    assert!(
        fire(at_six - 1).await.unwrap().is_none(),
        "nor an earlier one"
    );
    assert!(
        fire(at_six + 86_400_000).await.unwrap().is_some(),
        "the next day's fires"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_email_is_not_due_for_anyone_else_until_the_claim_lapses() {
    let server = TestServer::start().await.unwrap();
    let st = open_state(&server.config(), system_clock()).unwrap();
    let s = &st.storage;
    let now = Timestamp(2_000_000_000_000);
    for i in 0..3 {
        s.enqueue_email(
            NewEmail {
                run_id: None,
                to: vec![format!("m{i}@stmary.example")],
                subject: format!("s{i}"),
                body: "b".into(),
            },
            now,
        )
        .await
        .unwrap();
    }
    let claim = now.plus_secs(300);
    let first = s.due_emails(now.plus_secs(1), 2, claim).await.unwrap();
    assert_eq!(first.len(), 2, "the two oldest");
    assert!(first[0].id < first[1].id);
    let second = s.due_emails(now.plus_secs(2), 10, claim).await.unwrap();
    assert_eq!(second.len(), 1, "only the one nobody claimed");
    assert!(second[0].id > first[1].id);
    assert!(
        s.due_emails(now.plus_secs(3), 10, claim)
            .await
            .unwrap()
            .is_empty()
    );
    // The claimer died: past its claim, all three are due again.
    let again = s
        .due_emails(claim.plus_secs(1), 10, claim.plus_secs(301))
        .await
        .unwrap();
    assert_eq!(again.len(), 3);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_send_each_email_once() {
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("not applicable on SQLite: one file takes one server");
        return;
    }
    let sink = SmtpSink::start().await;
    let a = TestServer::start_with(|c| c.smtp_url = Some(sink.url.clone()))
        .await
        .unwrap();
    let mut config = a.config();
    config.listen = ([127, 0, 0, 1], 0).into();
    config.smtp_url = Some(sink.url.clone());
    let b = EmbeddedServer::start(config).await.unwrap();
    let st = open_state(&a.config(), system_clock()).unwrap();
    const EMAILS: usize = 30;
    for i in 0..EMAILS {
        st.storage
            .enqueue_email(
                NewEmail {
                    run_id: None,
                    to: vec![format!("manager{i}@stmary.example")],
                    subject: format!("Overdue phone {i}"),
                    body: "Please look for it.".into(),
                },
                st.now(),
            )
            .await
            .unwrap();
        // Both mailers hear of every email (through the database's wake-up channel).
        st.wake(lanyard_server::notify::MAILER);
    }
    let mail = sink.messages(EMAILS).await;
    // Both servers stop (each finishes its pass), then nothing more can arrive.
    b.stop().await.unwrap();
    a.stop().await.unwrap();
    let mail = if mail.len() < EMAILS {
        mail
    } else {
        sink.messages(EMAILS).await
    };
    let mut subjects: Vec<String> = mail
        .iter()
        .filter_map(|m| m.lines().find(|l| l.starts_with("Subject: ")))
        .map(str::to_owned)
        .collect();
    subjects.sort();
    let before = subjects.len();
    subjects.dedup();
    assert_eq!(before, EMAILS, "every email sent once: {subjects:#?}");
    assert_eq!(subjects.len(), EMAILS, "no email twice");
}

/// Waits until someone holds `job`'s lease on database `url`.
async fn leased_until_seen(url: &str, job: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let held = lanyard_e2e::postgres_db::query_ints(
            url,
            "SELECT COUNT(*) FROM job_lease WHERE job = ?1",
            job,
        )
        .unwrap();
        if held == [1] {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{job} never leased");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_shift_hands_its_jobs_to_the_other() {
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("not applicable on SQLite: one file takes one server");
        return;
    }
    let sink = SmtpSink::start().await;
    let admin = std::env::var("LANYARD_TEST_PG_URL").unwrap();
    let url = lanyard_e2e::postgres_db::create_database(admin)
        .await
        .unwrap();
    // Replica A: its own process, started first, so it takes every job's lease.
    let mut a = ReplicaProcess::start(&url, &[("LANYARD_SMTP_URL", &sink.url)]).await;
    leased_until_seen(&url, "mailer").await;
    // Replica B beside it, with an empty data directory of its own.
    let b_dir = tempfile::tempdir().unwrap();
    let mut config =
        lanyard_server::ServerConfig::new(([127, 0, 0, 1], 0).into(), b_dir.path().join("data"));
    config.database_url = Some(url.clone());
    config.key_encryption_key = Some(lanyard_e2e::postgres_db::TEST_KEK.into());
    config.smtp_url = Some(sink.url.clone());
    config.offline_iterations = 1_000;
    let b = EmbeddedServer::start(config.clone()).await.unwrap();

    // A dies without a word (no stop, no lease released); the work keeps coming.
    a.kill();
    let st = open_state(&config, system_clock()).unwrap();
    for i in 0..3 {
        st.storage
            .enqueue_email(
                NewEmail {
                    run_id: None,
                    to: vec![format!("manager{i}@stmary.example")],
                    subject: format!("After the crash {i}"),
                    body: "b".into(),
                },
                st.now(),
            )
            .await
            .unwrap();
        st.wake(lanyard_server::notify::MAILER);
    }
    // B takes the mailer over once A's lease runs out (15 s after A's last pass; B's
    // mailer tries at least every 5 s).
    sink.messages_within(3, std::time::Duration::from_secs(45))
        .await;
    b.stop().await.unwrap();
    let mail = sink.messages(3).await;
    let mut subjects: Vec<&str> = mail
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.starts_with("Subject: After the crash"))
        })
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    assert_eq!(subjects.len(), 3, "every email, once, by B: {mail:#?}");
    assert_eq!(mail.len(), 3, "none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_in_the_middle_of_a_run_hands_the_run_to_the_other() {
    use lanyard_e2e::harness::{Phone, fake_nanomdm, mdm_enrolled, mdm_report};
    use serde_json::json;
    use std::time::{Duration, Instant};
    if !lanyard_e2e::postgres_db::on_postgres() {
        eprintln!("not applicable on SQLite: one file takes one server");
        return;
    }
    let (mdm_url, fake) = fake_nanomdm().await;
    let admin_url = std::env::var("LANYARD_TEST_PG_URL").unwrap();
    let url = lanyard_e2e::postgres_db::create_database(admin_url)
        .await
        .unwrap();
    let mdm = [
        ("LANYARD_NANOMDM_URL", mdm_url.as_str()),
        ("LANYARD_NANOMDM_API_KEY", "mdm-key"),
        ("LANYARD_NANOMDM_WEBHOOK_KEY", "hook-key"),
    ];
    // A holds the workflow engine; B serves the admin, the phone and the MDM's webhook.
    let mut a = ReplicaProcess::start(&url, &mdm).await;
    leased_until_seen(&url, "workflow_engine").await;
    let b_dir = tempfile::tempdir().unwrap();
    let mut config =
        lanyard_server::ServerConfig::new(([127, 0, 0, 1], 0).into(), b_dir.path().join("data"));
    config.database_url = Some(url.clone());
    config.key_encryption_key = Some(lanyard_e2e::postgres_db::TEST_KEK.into());
    config.nanomdm_url = Some(mdm_url.parse().unwrap());
    config.nanomdm_api_key = Some("mdm-key".into());
    config.nanomdm_webhook_key = Some("hook-key".into());
    config.offline_iterations = 1_000;
    let b = TestServer {
        server: EmbeddedServer::start(config).await.unwrap(),
        data_dir: b_dir,
        database_url: Some(url.clone()),
    };
    let admin = b.admin().await;
    admin
        .ok(
            "/api/v1/launchpads",
            json!({"id": "cart-4w", "name": "4 West Cart 1", "ports": 10, "department": "4 West"}),
        )
        .await;
    let token = admin
        .ok(
            "/api/v1/enrollment-tokens",
            json!({"label": "4W", "launchpad_id": "cart-4w", "department": "4 West"}),
        )
        .await;
    let mut phone = Phone::enroll(token["link"].as_str().unwrap()).await;
    let (_, device) = admin.get(&format!("/api/v1/devices/{}", phone.id)).await;
    let udid = device["udid"].as_str().unwrap().to_owned();
    let serial = device["serial"].as_str().unwrap();
    assert_eq!(mdm_enrolled(&admin.base, &udid, serial).await, 200);
    admin
        .ok(
            "/api/v1/workflows",
            json!({"name": "Restart Me", "model": "device_enrollment_program", "actions": [
                {"type": "reboot"},
                {"type": "set_attribute", "attribute": "Device Home", "value": "[Department]"}]}),
        )
        .await;
    let deployed = admin
        .ok(
            "/api/v1/workflows/restart-me/deploy",
            json!({"devices": [phone.id]}),
        )
        .await;
    let run_id = deployed["runs"][0].as_i64().unwrap();
    // A's engine starts the run: the RestartDevice reaches the MDM and the step, waiting
    // on its answer, is stored.
    let deadline = Instant::now() + Duration::from_secs(20);
    let uuid = loop {
        let (_, run) = admin.get(&format!("/api/v1/runs/{run_id}")).await;
        if let Some(handle) = run["steps"][0]["handle"].as_str() {
            break handle.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "A never started the run: {run:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let restarts = || {
        fake.commands()
            .into_iter()
            .filter(|(_, kind)| kind == "RestartDevice")
            .count()
    };
    assert_eq!(restarts(), 1);
    // A dies mid-run without a word; the phone answers through B.
    a.kill();
    assert_eq!(
        mdm_report(&admin.base, &udid, &uuid, "Acknowledged").await,
        200
    );
    // B takes the engine over once A's lease lapses, and carries the run on from its
    // second step.
    let deadline = Instant::now() + Duration::from_secs(45);
    let run = loop {
        phone.sync_step().await;
        let (_, run) = admin.get(&format!("/api/v1/runs/{run_id}")).await;
        if run["state"] != "queued" && run["state"] != "running" {
            break run;
        }
        assert!(Instant::now() < deadline, "B never finished it: {run:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["steps"][0]["handle"], uuid.as_str(), "the same command");
    assert_eq!(run["steps"][1]["detail"], "Device Home = 4 West");
    assert_eq!(restarts(), 1, "the phone was restarted once");
    b.stop().await.unwrap();
}
