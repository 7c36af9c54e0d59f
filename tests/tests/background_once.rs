//! Background work is done once, whichever server runs it: the job leases and email
//! claims every replica goes through, checked on the suite's engine (SQLite in the main
//! pass, PostgreSQL in the second), and — on PostgreSQL — two replicas' mailers on one
//! outbox sending each email once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use lanyard_e2e::TestServer;
use lanyard_e2e::harness::SmtpSink;
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
