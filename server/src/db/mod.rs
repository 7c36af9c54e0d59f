//! SQLite access: one writer thread that commits queued writes in batches, and a pool
//! of read connections used in parallel.
//!
//! A write is a closure run inside the writer's transaction, under its own savepoint,
//! so one failing write rolls back alone and never takes the batch with it. Callers get
//! their result only after the batch has committed: an answer always means durable.

pub mod migrations;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 256;
/// Most read connections open (and reads running) at once; further reads queue.
pub const MAX_READERS: usize = 16;

/// What can go wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite reported an error.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The batch this write was part of did not commit.
    #[error("database commit failed: {0}")]
    Commit(String),
    /// The writer thread is gone (the server is shutting down).
    #[error("database writer stopped")]
    WriterGone,
    /// A blocking read task panicked or was cancelled.
    #[error("database read task failed: {0}")]
    Join(String),
    /// The database file's permissions could not be set.
    #[error("securing the database file: {0}")]
    Permissions(#[source] std::io::Error),
    /// The database was written by a newer server.
    #[error(
        "database schema v{found} is newer than this server (v{supported}); upgrade the server"
    )]
    TooNew {
        /// On disk.
        found: i64,
        /// Known here.
        supported: i64,
    },
}

/// A deferred reply: called once the batch's fate is known (`Ok` = committed).
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write: runs inside the batch transaction and returns its deferred reply.
type Job = Box<dyn FnOnce(&Transaction<'_>) -> Reply + Send>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    path: Arc<PathBuf>,
    writer: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// One permit per read connection: the pool never grows past [`MAX_READERS`].
    read_permits: Arc<tokio::sync::Semaphore>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // First, so every statement below (journal_mode too) waits for a busy writer
    // instead of failing with "database is locked".
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Brings the schema at `path` to the latest version. Safe against a concurrent opener:
/// the version is read under the write lock, so only one of them migrates.
pub fn migrate(path: &Path) -> Result<i64, DbError> {
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    let latest = migrations::latest();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = migrations::current(&tx)?;
    if found > latest {
        return Err(DbError::TooNew {
            found,
            supported: latest,
        });
    }
    if found < latest {
        migrations::apply(&tx, found, latest)?;
    }
    tx.commit()?;
    if migrations::VACUUM_AFTER
        .iter()
        .any(|v| found > 0 && found < *v && *v <= latest)
    {
        conn.execute_batch("VACUUM")?;
    }
    Ok(latest)
}

impl Db {
    /// Opens (creating and migrating) the database and starts the writer thread.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        owner_only(path).map_err(DbError::Permissions)?;
        migrate(path)?;
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("lanyard-db-writer".into())
            .spawn(move || writer_loop(&mut conn, &rx))
            .map_err(|e| DbError::Join(e.to_string()))?;
        Ok(Db {
            path: Arc::new(path.to_owned()),
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            read_permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        })
    }

    /// Runs `f` in the writer's next batch and returns its result once that batch has
    /// committed. An `Err` from `f` rolls back only `f`'s own changes.
    pub async fn write<T, E, F>(&self, f: F) -> Result<Result<T, E>, DbError>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<Result<T, E>, DbError>>();
        let job: Job = Box::new(move |tx| {
            let outcome = run_in_savepoint(tx, f);
            Box::new(move |committed: Result<(), String>| {
                let reply = match committed {
                    Ok(()) => Ok(outcome),
                    Err(e) => Err(DbError::Commit(e)),
                };
                let _ = done_tx.send(reply);
            })
        });
        self.writer.send(job).map_err(|_| DbError::WriterGone)?;
        done_rx.await.map_err(|_| DbError::WriterGone)?
    }

    /// Rewrites the database file and empties the WAL, so content just replaced or
    /// deleted (a secret sealed in place) keeps no copy in a free page or an old frame.
    /// Takes the database's exclusive lock for as long as the rewrite lasts.
    pub async fn vacuum(&self) -> Result<(), DbError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open(path.as_path())?;
            configure(&conn)?;
            conn.execute_batch("VACUUM")?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .map_err(|e| DbError::Join(e.to_string()))?
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| DbError::Join(e.to_string()))?;
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = readers.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open(path.as_path())?;
                    configure(&c)?;
                    c
                }
            };
            let out = f(&conn);
            if let Ok(mut p) = readers.lock() {
                p.push(conn);
            }
            out
        })
        .await
        .map_err(|e| DbError::Join(e.to_string()))?
    }
}

/// A write job panicked: its changes were rolled back, the writer goes on.
#[derive(Debug, thiserror::Error)]
#[error("a database write panicked: {0}")]
pub struct WritePanicked(pub String);

fn run_in_savepoint<T, E, F>(tx: &Transaction<'_>, f: F) -> Result<T, E>
where
    E: From<rusqlite::Error>,
    F: FnOnce(&Transaction<'_>) -> Result<T, E>,
{
    tx.execute_batch("SAVEPOINT job")?;
    // A bug in one write must cost that write, not the writer thread every other
    // request depends on.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(tx)));
    match outcome {
        Ok(Ok(v)) => {
            tx.execute_batch("RELEASE job")?;
            Ok(v)
        }
        Ok(Err(e)) => {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
        Err(panic) => {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(panic = %what, "a database write panicked; rolled back");
            Err(E::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some(WritePanicked(what).to_string()),
            )))
        }
    }
}

/// Takes jobs as they come, runs up to [`MAX_BATCH`] in one transaction, commits, and
/// only then replies to each job: an answer always means durable.
fn writer_loop(conn: &mut Connection, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(conn, batch);
    }
}

fn commit_batch(conn: &mut Connection, batch: Vec<Job>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "could not begin a write transaction");
            // Dropping the jobs drops their reply channels: callers see WriterGone.
            return;
        }
    };
    let replies: Vec<Reply> = batch.into_iter().map(|job| job(&tx)).collect();
    let committed = tx.commit().map_err(|e| {
        tracing::error!(error = %e, "could not commit a write batch");
        e.to_string()
    });
    for reply in replies {
        reply(committed.clone());
    }
}

/// Makes the database readable by its owner only (it holds badge hashes, sealed tokens
/// and the audit log): created 0600 when new (SQLite gives its WAL and shared-memory
/// files the database's mode), and tightened when an older install left it open.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_write_rolls_back_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let panicked = db
            .write(|tx| -> Result<(), rusqlite::Error> {
                tx.execute(
                    "INSERT INTO policy (id, version, body, updated_at) VALUES (1, 7, '{}', 0)",
                    [],
                )?;
                panic!("a bug in one write");
            })
            .await
            .unwrap();
        assert!(
            panicked
                .unwrap_err()
                .to_string()
                .contains("a bug in one write")
        );
        // Its insert is gone; the writer still takes writes.
        let version: Option<i64> = db
            .write(|tx| -> Result<Option<i64>, rusqlite::Error> {
                use rusqlite::OptionalExtension;
                tx.query_row("SELECT version FROM policy", [], |r| r.get(0))
                    .optional()
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(version, None);
    }
}
