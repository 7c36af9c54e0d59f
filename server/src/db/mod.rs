//! Database access for both engines: one writer thread that commits queued writes in
//! batches, and a pool of read connections used in parallel.
//!
//! A write is a closure run inside the writer's transaction, under its own savepoint,
//! so one failing write rolls back alone and never takes the batch with it. Callers get
//! their result only after the batch has committed: an answer always means durable.
//!
//! The engine is chosen at open: SQLite (a file; its one writer is the database's own
//! rule) or PostgreSQL (a server shared by replicas; each batch first takes one
//! transaction-scoped advisory lock, so writes from every replica are applied one batch
//! at a time, exactly as on SQLite, and every check-then-act of the domain holds across
//! replicas without a second set of rules).

pub mod copy;
pub mod migrations;
pub mod pg;
pub mod pg_keys;
pub mod pg_migrations;
pub mod pg_notify;
pub mod pg_target;
pub mod sql;
mod sqlite_conn;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

pub use sql::{Conn, Engine, SqlError};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 256;
/// Most read connections open (and reads running) at once; further reads queue.
pub const MAX_READERS: usize = 16;

/// What can go wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite reported an error (opening, migrating).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A statement failed.
    #[error("database: {0}")]
    Sql(#[from] SqlError),
    /// The PostgreSQL server could not be reached or refused the connection.
    #[error("database connection: {0}")]
    Connect(String),
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
type Job = Box<dyn FnOnce(&dyn Conn) -> Reply + Send>;

/// An open connection of either engine, owned by the pool or the writer.
pub(crate) trait Pooled: Send {
    /// The statements it runs.
    fn conn(&self) -> &dyn Conn;
    /// The server closed it: drop it instead of pooling it.
    fn is_broken(&self) -> bool {
        false
    }
}

impl Pooled for Connection {
    fn conn(&self) -> &dyn Conn {
        self
    }
}

/// Opens a new connection.
type Opener = Arc<dyn Fn() -> Result<Box<dyn Pooled>, DbError> + Send + Sync>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    engine: Engine,
    /// The SQLite file (`None` on PostgreSQL).
    path: Option<Arc<PathBuf>>,
    open: Opener,
    writer: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Box<dyn Pooled>>>>,
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

/// Brings the PostgreSQL database at `url` to the latest schema version.
pub fn migrate_postgres(url: &str) -> Result<i64, DbError> {
    pg_migrations::migrate(&pg::config(url)?)
}

impl Db {
    /// Opens (creating and migrating) the SQLite database and starts the writer thread.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        owner_only(path).map_err(DbError::Permissions)?;
        migrate(path)?;
        let file = Arc::new(path.to_owned());
        let opener_path = file.clone();
        let open: Opener = Arc::new(move || {
            let c = Connection::open(opener_path.as_path())?;
            configure(&c)?;
            Ok(Box::new(c) as Box<dyn Pooled>)
        });
        Db::start(Engine::Sqlite, Some(file), open, "BEGIN IMMEDIATE".into())
    }

    /// Connects to PostgreSQL at `url`, brings its schema to the latest version and
    /// starts the writer thread.
    pub fn open_postgres(url: &str) -> Result<Db, DbError> {
        let config = pg::config(url)?;
        pg_migrations::migrate(&config)?;
        let open: Opener = Arc::new(move || pg::connect(&config));
        Db::start(Engine::Postgres, None, open, pg::begin_write())
    }

    fn start(
        engine: Engine,
        path: Option<Arc<PathBuf>>,
        open: Opener,
        begin: String,
    ) -> Result<Db, DbError> {
        let (tx, rx) = mpsc::channel::<Job>();
        // The writer opens its connection on its own thread (a PostgreSQL client runs a
        // runtime of its own, which must not start on an async thread).
        let mut writer = Writer {
            conn: None,
            open: open.clone(),
            begin,
        };
        thread::Builder::new()
            .name("lanyard-db-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| DbError::Join(e.to_string()))?;
        Ok(Db {
            engine,
            path,
            open,
            writer: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            read_permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        })
    }

    /// The engine behind this handle.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Runs `f` in the writer's next batch and returns its result once that batch has
    /// committed. An `Err` from `f` rolls back only `f`'s own changes.
    pub async fn write<T, E, F>(&self, f: F) -> Result<Result<T, E>, DbError>
    where
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
        F: FnOnce(&dyn Conn) -> Result<T, E> + Send + 'static,
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

    /// Rewrites the stored data so content just replaced or deleted (a secret sealed
    /// in place) keeps no copy in a free page or an old frame: SQLite's VACUUM and a
    /// truncated WAL, PostgreSQL's VACUUM FULL. Exclusive for as long as it lasts.
    pub async fn vacuum(&self) -> Result<(), DbError> {
        let path = self.path.clone();
        let open = self.open.clone();
        tokio::task::spawn_blocking(move || match path {
            Some(path) => {
                let conn = Connection::open(path.as_path())?;
                configure(&conn)?;
                conn.execute_batch("VACUUM")?;
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                Ok(())
            }
            None => {
                let conn = open()?;
                conn.conn().execute_batch("VACUUM FULL")?;
                Ok(())
            }
        })
        .await
        .map_err(|e| DbError::Join(e.to_string()))?
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Conn) -> Result<T, DbError> + Send + 'static,
    {
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| DbError::Join(e.to_string()))?;
        let readers = self.readers.clone();
        let open = self.open.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = readers.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open()?,
            };
            let out = f(conn.conn());
            if !conn.is_broken()
                && let Ok(mut p) = readers.lock()
            {
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

fn run_in_savepoint<T, E, F>(tx: &dyn Conn, f: F) -> Result<T, E>
where
    E: From<SqlError>,
    F: FnOnce(&dyn Conn) -> Result<T, E>,
{
    tx.execute_batch("SAVEPOINT job")?;
    // A bug in one write must cost that write, not the writer thread every other
    // request depends on.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(tx)));
    match outcome {
        Ok(Ok(v)) => {
            tx.execute_batch("RELEASE SAVEPOINT job")?;
            Ok(v)
        }
        Ok(Err(e)) => {
            tx.execute_batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")?;
            Err(e)
        }
        Err(panic) => {
            tx.execute_batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")?;
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(panic = %what, "a database write panicked; rolled back");
            Err(E::from(SqlError::Engine(WritePanicked(what).to_string())))
        }
    }
}

/// The writer thread's connection: reopened when the server closed it (a PostgreSQL
/// restart or failover), so one outage does not stop writes for good.
struct Writer {
    conn: Option<Box<dyn Pooled>>,
    open: Opener,
    begin: String,
}

impl Writer {
    /// Takes jobs as they come, runs up to [`MAX_BATCH`] in one transaction, commits,
    /// and only then replies to each job: an answer always means durable.
    fn run(&mut self, rx: &mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn connection(&mut self) -> Result<&dyn Pooled, DbError> {
        if self.conn.as_ref().is_none_or(|c| c.is_broken()) {
            self.conn = None;
            self.conn = Some((self.open)()?);
        }
        match &self.conn {
            Some(c) => Ok(c.as_ref()),
            None => Err(DbError::WriterGone),
        }
    }

    fn commit_batch(&mut self, batch: Vec<Job>) {
        let begin = self.begin.clone();
        let conn = match self.connection() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no database connection for a write batch");
                // Dropping the jobs drops their reply channels: callers see WriterGone.
                return;
            }
        };
        let tx = conn.conn();
        if let Err(e) = tx.execute_batch(&begin) {
            tracing::error!(error = %e, "could not begin a write transaction");
            let _ = tx.execute_batch("ROLLBACK");
            return;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(tx)).collect();
        let committed = tx.execute_batch("COMMIT").map_err(|e| {
            tracing::error!(error = %e, "could not commit a write batch");
            let _ = tx.execute_batch("ROLLBACK");
            e.to_string()
        });
        for reply in replies {
            reply(committed.clone());
        }
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
            .write(|tx| -> Result<(), SqlError> {
                tx.execute(
                    "INSERT INTO policy (id, version, body, updated_at) VALUES (1, 7, '{}', 0)",
                    (),
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
            .write(|tx| -> Result<Option<i64>, SqlError> {
                use sql::OptionalExtension;
                tx.query_row("SELECT version FROM policy", (), |r| r.get(0))
                    .optional()
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(version, None);
    }
}
