//! [`Conn`] on PostgreSQL: the shared SQL's `?N` placeholders become `$N`, values map
//! onto the column types PostgreSQL infers, and prepared statements are cached per
//! connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Statement};

use super::sql::{Conn, Engine, Result, Row, SqlError, Value};
use super::{DbError, Pooled};

/// The advisory lock every write batch takes first: writes from all replicas are
/// applied one batch at a time, as SQLite's single writer applies them.
pub(crate) const WRITE_LOCK: i64 = 0x4c61_6e79_6172_6401;

/// How a write batch begins on PostgreSQL.
pub(crate) fn begin_write() -> String {
    format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
}
/// Most prepared statements kept per connection.
const STATEMENT_CACHE: usize = 512;

type BoxError = Box<dyn StdError + Sync + Send>;

pub use super::pg_target::{PgTarget, config};

/// Opens one connection. Runs its own small runtime, so it must be called off the
/// async threads (the writer thread, a blocking task or a plain thread).
pub(crate) fn connect(target: &PgTarget) -> Result<Box<dyn Pooled>, DbError> {
    let client = target
        .connect()
        .map_err(|e| DbError::Connect(super::pg_target::describe(&e)))?;
    Ok(Box::new(PgConn {
        client: RefCell::new(Some(client)),
        statements: RefCell::new(HashMap::new()),
    }))
}

/// One PostgreSQL connection.
pub(crate) struct PgConn {
    client: RefCell<Option<Client>>,
    statements: RefCell<HashMap<String, Statement>>,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // A client owns a runtime, which must not be dropped on an async thread (a pool
        // dropped at shutdown): hand it to a plain thread then.
        if let Some(client) = self.client.get_mut().take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("lanyard-pg-close".into())
                    .spawn(move || drop(client));
            } else {
                drop(client);
            }
        }
    }
}

impl Pooled for PgConn {
    fn conn(&self) -> &dyn Conn {
        self
    }

    fn is_broken(&self) -> bool {
        self.client.borrow().as_ref().is_none_or(Client::is_closed)
    }
}

fn map_err(e: &postgres::Error) -> SqlError {
    // Closed, refused, or ended by the server (a restart, a failover, an operator):
    // connection exceptions (class 08) and operator intervention's shutdowns (57P0x).
    let gone = e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("08") || c.starts_with("57P0")
    });
    if e.is_closed() || gone {
        return SqlError::Unreachable(e.to_string());
    }
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => SqlError::Unique(e.to_string()),
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            SqlError::Retry(e.to_string())
        }
        _ => SqlError::Engine(match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        }),
    }
}

impl PgConn {
    /// Prepares (once per statement and parameter types) and runs. Parameters are
    /// declared with the types of the values bound, so PostgreSQL never has to guess a
    /// parameter's type from context (a NULL is left for it to infer).
    fn with_statement<T>(
        &self,
        sql: &str,
        params: &[Value],
        run: impl FnOnce(&mut Client, &Statement) -> Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut client = self.client.borrow_mut();
        let client = client
            .as_mut()
            .ok_or_else(|| SqlError::Engine("connection closed".into()))?;
        let mut key = String::with_capacity(sql.len() + params.len() + 1);
        key.push_str(sql);
        key.push('\0');
        key.extend(params.iter().map(|p| match p {
            Value::Null => 'N',
            Value::Int(_) => 'I',
            Value::Real(_) => 'R',
            Value::Text(_) => 'T',
            Value::Blob(_) => 'B',
        }));
        let mut cache = self.statements.borrow_mut();
        if !cache.contains_key(&key) {
            let types: Vec<Type> = params.iter().map(declared_type).collect();
            let stmt = client
                .prepare_typed(&placeholders(sql), &types)
                .map_err(|e| map_err(&e))?;
            if cache.len() >= STATEMENT_CACHE {
                cache.clear();
            }
            cache.insert(key.clone(), stmt);
        }
        let stmt = cache
            .get(&key)
            .ok_or_else(|| SqlError::Engine("statement cache".into()))?;
        run(client, stmt).map_err(|e| map_err(&e))
    }
}

/// The type a parameter is declared with: the value's own, or left to inference.
fn declared_type(v: &Value) -> Type {
    match v {
        Value::Null => Type::UNKNOWN,
        Value::Int(_) => Type::INT8,
        Value::Real(_) => Type::FLOAT8,
        Value::Text(_) => Type::TEXT,
        Value::Blob(_) => Type::BYTEA,
    }
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Conn for PgConn {
    fn query_rows(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let rows = self.with_statement(sql, params, |c, s| c.query(s, &refs(params)))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<_, Value>(i).map_err(|e| SqlError::Conversion {
                            column: i,
                            message: e.to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }

    fn execute_values(&self, sql: &str, params: &[Value]) -> Result<usize> {
        let n = self.with_statement(sql, params, |c, s| c.execute(s, &refs(params)))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn execute_batch(&self, sql: &str) -> Result<()> {
        let mut client = self.client.borrow_mut();
        client
            .as_mut()
            .ok_or_else(|| SqlError::Engine("connection closed".into()))?
            .batch_execute(sql)
            .map_err(|e| map_err(&e))
    }

    fn engine(&self) -> Engine {
        Engine::Postgres
    }
}

/// Rewrites SQLite-style placeholders (`?1`, or bare `?` numbered in order) as
/// PostgreSQL's `$1`, leaving quoted text and identifiers alone.
pub(crate) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next = 0u32;
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    next += 1;
                    out.push_str(&next.to_string());
                } else {
                    out.push_str(&digits);
                }
            }
            None => out.push(c),
        }
    }
    out
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                // Exact for every integer a real column is given here.
                #[allow(clippy::cast_precision_loss)]
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound as {ty}").into()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                _ => Err(format!("a real cannot be bound as {ty}").into()),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::OID => Value::Int(i64::from(u32::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::BYTEA => Value::Blob(<Vec<u8>>::from_sql(ty, raw)?),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Value::Text(<&str>::from_sql(ty, raw)?.to_owned())
            }
            _ => return Err(format!("column type {ty} is not one the server reads").into()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = $12"
        );
        assert_eq!(placeholders("VALUES (?, ?)"), "VALUES ($1, $2)");
        assert_eq!(
            placeholders("SELECT '?1' , \"a?\" FROM t WHERE x = ?2"),
            "SELECT '?1' , \"a?\" FROM t WHERE x = $2"
        );
    }
}
