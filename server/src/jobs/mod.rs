//! Background work the server does by itself. Each job is a loop over a pass that is
//! safe to run again (and, with a second replica, at the same time): what a pass
//! does is decided inside the domain's transactions, never by the job holding state.
//!
//! Jobs stop with the server: a pass under way finishes (an email is never cut off
//! between sending and recording it, so never sent twice); the next one does not start.

pub(crate) mod grant_sweeper;
pub(crate) mod retention;
pub(crate) mod transitions;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::AppError;
use crate::state::AppState;
use crate::storage::Storage;

/// How long a stopping server waits for a job to finish its pass.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a pass holds its job's lease. Each pass of the holder renews it; when the
/// holder dies, another replica takes the job over this long after its last pass.
/// Passes are short (a batch each) and safe to repeat, so a pass that outlives its
/// lease costs a repeat, never a wrong result.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(15);

/// How a job waits between passes.
pub(crate) struct Pace {
    /// The longest pause between passes.
    pub every: Duration,
    /// Woken early by this, when something is due.
    pub wake: Option<Arc<Notify>>,
}

/// The running jobs of one server.
pub(crate) struct Jobs {
    running: Vec<(&'static str, JoinHandle<()>)>,
}

/// Whether this server runs `job`'s next pass: it holds (or now takes) the job's
/// lease in the database, so among replicas on one database one runs each job.
async fn lease<S: Storage>(st: &AppState<S>, job: &'static str) -> bool {
    let now = st.now();
    let until = now.plus_millis(u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX));
    match st
        .storage
        .take_lease(job, st.instance.to_string(), now, until)
        .await
    {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(job, error = %e, "could not take the job's lease; pass skipped");
            false
        }
    }
}

impl Jobs {
    /// Starts `pass` as job `name`: once now, then after each pause.
    pub(crate) fn spawn<S, F, Fut>(
        &mut self,
        st: &AppState<S>,
        name: &'static str,
        pace: Pace,
        pass: F,
    ) where
        S: Storage,
        F: Fn(AppState<S>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<usize, AppError>> + Send + 'static,
    {
        let st = st.clone();
        let handle = tokio::spawn(async move {
            loop {
                if st.is_stopping() {
                    break;
                }
                if lease(&st, name).await {
                    match pass(st.clone()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(job = name, changed = n, "job pass"),
                        Err(e) => tracing::warn!(job = name, error = %e, "job pass failed"),
                    }
                }
                let pause = async {
                    match &pace.wake {
                        Some(wake) => {
                            let _ = tokio::time::timeout(pace.every, wake.notified()).await;
                        }
                        None => tokio::time::sleep(pace.every).await,
                    }
                };
                tokio::select! {
                    () = st.stopping() => break,
                    () = pause => {}
                }
            }
        });
        self.running.push((name, handle));
    }

    /// Waits for every job to finish its pass (the server has asked them to stop);
    /// a job still busy after [`DRAIN_TIMEOUT`] is aborted, and said so.
    pub(crate) async fn drain(self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        for (name, mut handle) in self.running {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(job = name, "job did not finish its pass in time; aborted");
                    handle.abort();
                }
            }
        }
    }
}

/// Starts every background job of a server over `st`.
pub(crate) fn start<S: Storage>(st: &AppState<S>) -> Jobs {
    let mut jobs = Jobs {
        running: Vec::new(),
    };
    jobs.spawn(
        st,
        "workflow_engine",
        Pace {
            every: Duration::from_secs(1),
            wake: Some(st.waiter(crate::notify::ENGINE)),
        },
        |st| async move { crate::workflows::engine::tick(&st).await },
    );
    jobs.spawn(
        st,
        "retention",
        Pace {
            every: retention::EVERY,
            wake: None,
        },
        |st| async move { retention::prune(&st).await },
    );
    jobs.spawn(
        st,
        "scheduler",
        Pace {
            every: crate::workflows::schedule::EVERY,
            wake: None,
        },
        |st| async move { crate::workflows::schedule::fire_due(&st).await },
    );
    if let Some(mailer) = st.smtp.clone() {
        jobs.spawn(
            st,
            "mailer",
            Pace {
                every: Duration::from_secs(5),
                wake: Some(st.waiter(crate::notify::MAILER)),
            },
            move |st| {
                let mailer = mailer.clone();
                async move { crate::email::deliver_due(&st, &mailer).await }
            },
        );
    }
    // Without an MDM no command is ever outstanding, so there is nothing to sweep.
    if st.mdm.is_some() {
        jobs.spawn(
            st,
            "mdm_deadline_sweeper",
            Pace {
                every: Duration::from_secs(60),
                wake: None,
            },
            |st| async move { crate::mdm::sweep(&st).await },
        );
    }
    jobs.spawn(
        st,
        "grant_sweeper",
        Pace {
            every: grant_sweeper::EVERY,
            wake: None,
        },
        |st| async move { grant_sweeper::sweep(&st).await },
    );
    jobs.spawn(
        st,
        "transition_outbox",
        Pace {
            every: transitions::EVERY,
            wake: None,
        },
        |st| async move { transitions::drain(&st).await },
    );
    jobs
}
