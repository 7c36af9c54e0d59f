//! The SQL both backends share: one connection trait ([`Conn`]) with the statements the
//! storage layer runs, values and rows that mean the same on SQLite and PostgreSQL,
//! and the errors either driver maps onto.
//!
//! Storage code is written once against `&dyn Conn` in the SQL both engines accept
//! (`?N` placeholders, `ON CONFLICT`, `RETURNING`, integer flags); each driver
//! translates only what it must (PostgreSQL's `$N`), so no query — and no rule — is
//! written twice.

use std::fmt;

/// What a driver reports. The variants name what happened, never which engine.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// `query_row` found no row.
    #[error("query returned no rows")]
    NoRows,
    /// A unique or primary key constraint refused the write.
    #[error("unique constraint violated: {0}")]
    Unique(String),
    /// A stored value is not of the type asked for.
    #[error("column {column}: {message}")]
    Conversion {
        /// Zero-based column index.
        column: usize,
        /// What did not fit.
        message: String,
    },
    /// PostgreSQL could not serialise this transaction with a concurrent one (or found a
    /// deadlock): the whole transaction may be retried.
    #[error("transaction conflict, retry: {0}")]
    Retry(String),
    /// The database server cannot be reached (the connection closed or was refused):
    /// the request may succeed once it is back.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// Anything else the engine reported (busy, I/O, constraint, syntax).
    #[error("{0}")]
    Engine(String),
}

/// Shorthand for results of this module.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// A value as both engines store it. Booleans are integers (0/1), times are
/// milliseconds, JSON is text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (also booleans).
    Int(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// Something that can be bound as a statement parameter.
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_to_value!(i64, i32, u32, u16, u8);
impl ToValue for u64 {
    fn to_value(&self) -> Value {
        // Counters and sequence numbers: saturate rather than wrap into negatives.
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

/// A statement's parameters.
pub trait Params {
    /// The values, in placeholder order (`?1` first).
    fn values(&self) -> Vec<Value>;
}
impl Params for () {
    fn values(&self) -> Vec<Value> {
        Vec::new()
    }
}
impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl<T: ToValue, const N: usize> Params for [T; N] {
    fn values(&self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}
impl Params for Vec<Value> {
    fn values(&self) -> Vec<Value> {
        self.clone()
    }
}

/// Parameters of mixed types, as `params![a, b, c]`.
#[macro_export]
macro_rules! sql_params {
    () => { () };
    ($($x:expr),+ $(,)?) => {
        &[$(&$x as &dyn $crate::db::sql::ToValue),+] as &[&dyn $crate::db::sql::ToValue]
    };
}
pub use crate::sql_params as params;

/// A value read from a row, converted to a Rust type.
pub trait FromValue: Sized {
    /// Converts; `Err` says what did not fit.
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, found {}", kind(other))),
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        let i = i64::from_value(v)?;
        u32::try_from(i).map_err(|_| format!("{i} is out of range"))
    }
}
impl FromValue for u64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        let i = i64::from_value(v)?;
        u64::try_from(i).map_err(|_| format!("{i} is out of range"))
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Real(f) => Ok(*f),
            // Exact for the integers a real column can hold.
            #[allow(clippy::cast_precision_loss)]
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {}", kind(other))),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {}", kind(other))),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            other => Err(format!("expected bytes, found {}", kind(other))),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    }
}

/// Which column of a row.
pub trait RowIndex {
    /// Zero-based.
    fn index(self) -> usize;
}
impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i`, converted.
    pub fn get<I: RowIndex, T: FromValue>(&self, i: I) -> Result<T> {
        let column = i.index();
        let v = self.0.get(column).ok_or_else(|| SqlError::Conversion {
            column,
            message: "no such column".into(),
        })?;
        T::from_value(v).map_err(|message| SqlError::Conversion { column, message })
    }
}

/// Which engine a connection talks to, for the few statements that differ (maintenance,
/// locks) — never for a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The embedded default.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        })
    }
}

/// A connection (or the transaction open on it) either driver provides.
pub trait Conn {
    /// Runs a statement that returns rows.
    fn query_rows(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Runs a statement; returns how many rows it changed.
    fn execute_values(&self, sql: &str, params: &[Value]) -> Result<usize>;
    /// Runs statements without parameters, separated by `;`.
    fn execute_batch(&self, sql: &str) -> Result<()>;
    /// The engine behind it.
    fn engine(&self) -> Engine;
}

/// A statement ready to run (the driver caches what it prepares).
pub struct Stmt<'c> {
    conn: &'c dyn Conn,
    sql: String,
}

impl<'a> dyn Conn + 'a {
    /// A statement to run, once or repeatedly.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(Stmt {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    /// Same as [`Self::prepare_cached`].
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        self.prepare_cached(sql)
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.execute_values(sql, &params.values())
    }

    /// The first row, mapped; [`SqlError::NoRows`] when there is none.
    pub fn query_row<T, P: Params, F: FnOnce(&Row) -> Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> Result<T> {
        let rows = self.query_rows(sql, &params.values())?;
        f(rows.first().ok_or(SqlError::NoRows)?)
    }
}

impl Stmt<'_> {
    /// Runs it; returns how many rows it changed.
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        self.conn.execute_values(&self.sql, &params.values())
    }

    /// The first row, mapped; [`SqlError::NoRows`] when there is none.
    pub fn query_row<T, P: Params, F: FnOnce(&Row) -> Result<T>>(
        &mut self,
        params: P,
        f: F,
    ) -> Result<T> {
        let rows = self.conn.query_rows(&self.sql, &params.values())?;
        f(rows.first().ok_or(SqlError::NoRows)?)
    }

    /// Every row, mapped.
    pub fn query_map<T, P: Params, F: FnMut(&Row) -> Result<T>>(
        &mut self,
        params: P,
        mut f: F,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let rows = self.conn.query_rows(&self.sql, &params.values())?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }
}

/// `query_row(..).optional()`: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    /// `Ok(None)` for [`SqlError::NoRows`].
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(SqlError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A stored state name this server does not know, as a conversion error of `column`.
pub fn unknown_state(column: usize, value: &str) -> SqlError {
    SqlError::Conversion {
        column,
        message: format!("unknown stored state {value:?}"),
    }
}
