//! `lanyard-server migrate --to postgres://…`: a site that started on SQLite moves its
//! data into PostgreSQL. Both schemas are brought to the latest version first; every
//! table is copied in one PostgreSQL transaction (parents before the rows that refer to
//! them), identity counters continue after the copied ids, and then each table is read
//! back from both engines and compared: row count and a digest of every row's values.
//! Nothing is committed unless every table matches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ring::digest::{Context, SHA256};

use super::sql::{Conn, Row, Value};
use super::{DbError, Pooled};

/// Rows read and written per statement.
const CHUNK: usize = 500;

/// One table's copy, as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: String,
    /// Rows in SQLite, and in PostgreSQL after the copy.
    pub rows: u64,
    /// Digest of every row's values, hex (the same on both sides).
    pub digest: String,
}

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Either database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The target already holds Lanyard data: a copy would mix two sites.
    #[error("the PostgreSQL database already holds data (table {0}); copy into an empty one")]
    NotEmpty(String),
    /// What was read back differs from what SQLite holds (nothing was committed).
    #[error("table {table}: {what} differs after the copy; nothing was committed")]
    Mismatch {
        /// The table.
        table: String,
        /// Count or digest.
        what: &'static str,
    },
}

impl From<super::SqlError> for CopyError {
    fn from(e: super::SqlError) -> Self {
        CopyError::Db(DbError::Sql(e))
    }
}

/// Copies the SQLite database at `sqlite` into the (empty) PostgreSQL database at
/// `url`, checked table by table. Runs on the calling thread (no async runtime).
pub fn sqlite_to_postgres(sqlite: &Path, url: &str) -> Result<Vec<TableCopy>, CopyError> {
    super::migrate(sqlite)?;
    let config = super::pg::config(url)?;
    super::pg_migrations::migrate(&config)?;
    let source =
        rusqlite::Connection::open_with_flags(sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(DbError::Sqlite)?;
    // One snapshot of the source for the whole copy.
    source.execute_batch("BEGIN").map_err(DbError::Sqlite)?;
    let target: Box<dyn Pooled> = super::pg::connect(&config)?;
    let pg = target.conn();
    pg.execute_batch("BEGIN")?;
    let outcome = copy_all(&source, pg);
    match &outcome {
        Ok(_) => pg.execute_batch("COMMIT")?,
        Err(_) => {
            let _ = pg.execute_batch("ROLLBACK");
        }
    }
    outcome
}

fn copy_all(source: &dyn Conn, pg: &dyn Conn) -> Result<Vec<TableCopy>, CopyError> {
    let tables = tables_in_order(source)?;
    for t in &tables {
        let n: i64 = pg.query_row(&format!("SELECT COUNT(*) FROM {t}"), (), |r| r.get(0))?;
        if n > 0 {
            return Err(CopyError::NotEmpty(t.clone()));
        }
    }
    let mut report = Vec::new();
    for t in &tables {
        let columns = shared_columns(source, pg, t)?;
        copy_table(source, pg, t, &columns)?;
        restart_identities(pg, t)?;
        let order = key_order(source, t)?;
        let (rows, digest) = table_digest(source, t, &columns, &order)?;
        let (pg_rows, pg_digest) = table_digest(pg, t, &columns, &order)?;
        if rows != pg_rows {
            return Err(CopyError::Mismatch {
                table: t.clone(),
                what: "the row count",
            });
        }
        if digest != pg_digest {
            return Err(CopyError::Mismatch {
                table: t.clone(),
                what: "the content digest",
            });
        }
        report.push(TableCopy {
            table: t.clone(),
            rows,
            digest,
        });
    }
    Ok(report)
}

/// The source's tables, each after every table it refers to.
fn tables_in_order(source: &dyn Conn) -> Result<Vec<String>, CopyError> {
    let names: Vec<String> = source
        .query_rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<_, _>>()?;
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in &names {
        let refs: BTreeSet<String> = source
            .query_rows(
                "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)",
                &[Value::Text(t.clone())],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect::<Result<_, _>>()?;
        parents.insert(t.clone(), refs);
    }
    let mut ordered: Vec<String> = Vec::new();
    while ordered.len() < names.len() {
        let before = ordered.len();
        for t in &names {
            if !ordered.contains(t)
                && parents[t]
                    .iter()
                    .all(|p| p == t || ordered.contains(p) || !names.contains(p))
            {
                ordered.push(t.clone());
            }
        }
        if ordered.len() == before {
            return Err(CopyError::Db(DbError::Connect(
                "the tables refer to each other in a cycle".into(),
            )));
        }
    }
    Ok(ordered)
}

/// The columns to copy: the source's, plus SQLite's implicit `rowid` where the target
/// keeps it as a column of its own.
fn shared_columns(source: &dyn Conn, pg: &dyn Conn, table: &str) -> Result<Vec<String>, CopyError> {
    let mut columns: Vec<String> = source
        .query_rows(
            "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
            &[Value::Text(table.to_owned())],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<_, _>>()?;
    let target_has_rowid: bool = pg.query_row(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = ?1 AND column_name = 'rowid')",
        [table],
        |r| r.get(0),
    )?;
    if target_has_rowid && !columns.iter().any(|c| c == "rowid") {
        columns.push("rowid".into());
    }
    Ok(columns)
}

/// The key order both sides are read in: the primary key's columns.
fn key_order(source: &dyn Conn, table: &str) -> Result<String, CopyError> {
    let mut keys: Vec<(i64, String)> = source
        .query_rows(
            "SELECT pk, name FROM pragma_table_info(?1) WHERE pk > 0",
            &[Value::Text(table.to_owned())],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<Result<_, super::SqlError>>()?;
    keys.sort();
    Ok(keys
        .into_iter()
        .map(|(_, k)| k)
        .collect::<Vec<_>>()
        .join(", "))
}

fn copy_table(
    source: &dyn Conn,
    pg: &dyn Conn,
    table: &str,
    columns: &[String],
) -> Result<(), CopyError> {
    let order = key_order(source, table)?;
    let list = columns.join(", ");
    let mut offset = 0usize;
    loop {
        let rows = source.query_rows(
            &format!("SELECT {list} FROM {table} ORDER BY {order} LIMIT ?1 OFFSET ?2"),
            &[
                Value::Int(i64::try_from(CHUNK).unwrap_or(500)),
                Value::Int(i64::try_from(offset).unwrap_or(i64::MAX)),
            ],
        )?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut sql = format!("INSERT INTO {table} ({list}) VALUES ");
        let mut params = Vec::with_capacity(rows.len() * columns.len());
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 0..columns.len() {
                if j > 0 {
                    sql.push_str(", ");
                }
                params.push(row.0.get(j).cloned().unwrap_or(Value::Null));
                sql.push_str(&format!("?{}", params.len()));
            }
            sql.push(')');
        }
        pg.execute_values(&sql, &params)?;
        offset += rows.len();
    }
}

/// Identity columns continue after the largest id copied.
fn restart_identities(pg: &dyn Conn, table: &str) -> Result<(), CopyError> {
    let identities: Vec<String> = pg
        .query_rows(
            "SELECT column_name::text FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name = ?1 AND is_identity = 'YES'",
            &[Value::Text(table.to_owned())],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<_, _>>()?;
    for column in identities {
        pg.query_rows(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                               COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
            ),
            &[],
        )?;
    }
    Ok(())
}

/// Row count and a digest of every row of `columns`, whatever order the engine reads
/// them in (text sorts by collation on PostgreSQL, by bytes on SQLite): each row's
/// SHA-256, summed lane by lane, then hashed with the count.
fn table_digest(
    conn: &dyn Conn,
    table: &str,
    columns: &[String],
    order: &str,
) -> Result<(u64, String), CopyError> {
    let list = columns.join(", ");
    let mut sum = [0u64; 4];
    let mut rows = 0u64;
    let mut offset = 0usize;
    loop {
        let chunk = conn.query_rows(
            &format!("SELECT {list} FROM {table} ORDER BY {order} LIMIT ?1 OFFSET ?2"),
            &[
                Value::Int(i64::try_from(CHUNK).unwrap_or(500)),
                Value::Int(i64::try_from(offset).unwrap_or(i64::MAX)),
            ],
        )?;
        if chunk.is_empty() {
            break;
        }
        for row in &chunk {
            let mut ctx = Context::new(&SHA256);
            feed(&mut ctx, row);
            let h = ctx.finish();
            for (lane, bytes) in sum.iter_mut().zip(h.as_ref().chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(bytes);
                *lane = lane.wrapping_add(u64::from_be_bytes(b));
            }
        }
        rows += chunk.len() as u64;
        offset += chunk.len();
    }
    let mut ctx = Context::new(&SHA256);
    ctx.update(&rows.to_be_bytes());
    for lane in sum {
        ctx.update(&lane.to_be_bytes());
    }
    Ok((rows, crate::keys::hex(ctx.finish().as_ref())))
}

/// A value's canonical bytes: a tag, then the value (lengths included, so no two rows
/// encode alike).
fn feed(ctx: &mut Context, row: &Row) {
    for v in &row.0 {
        match v {
            Value::Null => ctx.update(&[0]),
            Value::Int(i) => {
                ctx.update(&[1]);
                ctx.update(&i.to_be_bytes());
            }
            Value::Real(f) => {
                ctx.update(&[2]);
                ctx.update(&f.to_bits().to_be_bytes());
            }
            Value::Text(s) => {
                ctx.update(&[3]);
                ctx.update(&(s.len() as u64).to_be_bytes());
                ctx.update(s.as_bytes());
            }
            Value::Blob(b) => {
                ctx.update(&[4]);
                ctx.update(&(b.len() as u64).to_be_bytes());
                ctx.update(b);
            }
        }
    }
}
