//! One SQL interface over the two databases the collector runs on: embedded SQLite (rusqlite, the
//! default) and PostgreSQL (the `postgres` client, for several replicas on one database).
//!
//! The store's queries are written once, in the subset both dialects share, with `?N` placeholders;
//! this layer rewrites them to `$N` for PostgreSQL, keeps prepared statements per connection, binds
//! parameters by the type the server inferred (an integer binds to `int4` or `int8`, text to `json`)
//! and reads any column back as a [`Value`]. The API follows rusqlite's (`execute`, `query_row`,
//! `prepare_cached`, `query_map`, `params!`, `optional()`), so the store reads the same on both.
//! The few places where the dialects differ ask the connection for a fragment ([`Connection::backend`]).

use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::mpsc;

use bytes::{BufMut, BytesMut};
use postgres::types::{FromSql as PgFromSql, IsNull, ToSql as PgToSql, Type, to_sql_checked};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("query returned no rows")]
    NoRows,
    #[error("the PostgreSQL connection is closed")]
    Closed,
    #[error("cannot start the PostgreSQL connection thread: {0}")]
    Thread(std::io::Error),
    #[error("column {column}: {message}")]
    Conversion { column: usize, message: String },
}

/// The server's message with its SQLSTATE and detail: `postgres::Error`'s own Display says only
/// "db error".
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({}): {detail}", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => e.to_string(),
    }
}

impl Error {
    pub fn conversion(column: usize, message: impl Into<String>) -> Error {
        Error::Conversion {
            column,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A value bound to or read from a statement: SQLite's five storage classes, which PostgreSQL's
/// column types the store uses (`bigint`, `double precision`, `text`, `bytea`, `bool`) map onto.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
        }
    }
}

// ---- binding parameters ----

pub trait ToSql {
    fn to_value(&self) -> Value;
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToSql::to_value)
    }
}

impl ToSql for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! to_sql_integer {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
to_sql_integer!(i64, i32, u32, i16, u16, i8, u8, bool);

impl ToSql for usize {
    fn to_value(&self) -> Value {
        // Counts and limits: far below i64::MAX; saturate rather than wrap if ever not.
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToSql for u64 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToSql for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToSql for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToSql for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToSql for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToSql for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

/// What a statement takes as parameters: `params![...]`, an array, or `params_from_iter(...)`.
pub trait Params {
    fn into_values(self) -> Vec<Value>;
}

impl Params for &[&dyn ToSql] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl Params for [&dyn ToSql; 0] {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}

macro_rules! params_for_arrays {
    ($($n:literal),*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn into_values(self) -> Vec<Value> {
                self.iter().map(ToSql::to_value).collect()
            }
        }
        impl<T: ToSql> Params for &[T; $n] {
            fn into_values(self) -> Vec<Value> {
                self.iter().map(ToSql::to_value).collect()
            }
        }
    )*};
}
params_for_arrays!(1, 2, 3, 4, 5, 6, 7, 8);

#[derive(Debug)]
pub struct ParamsFromIter<I>(I);

/// Parameters from an iterator, for statements whose placeholder count is known only at run time.
pub fn params_from_iter<I>(iter: I) -> ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    ParamsFromIter(iter)
}

impl<I> Params for ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    fn into_values(self) -> Vec<Value> {
        self.0.into_iter().map(|p| p.to_value()).collect()
    }
}

/// `params![a, b, c]`: parameters of mixed types, as in rusqlite.
#[macro_export]
macro_rules! db_params {
    () => {
        &[] as &[&dyn $crate::store::db::ToSql]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::db::ToSql),+] as &[&dyn $crate::store::db::ToSql]
    };
}
pub use crate::db_params as params;

// ---- reading columns ----

pub trait FromSql: Sized {
    fn from_value(value: Value, column: usize) -> Result<Self>;
}

fn mismatch<T>(column: usize, wanted: &str, got: &Value) -> Result<T> {
    Err(Error::conversion(
        column,
        format!("expected {wanted}, found {}", got.kind()),
    ))
}

impl FromSql for i64 {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        match value {
            Value::Integer(i) => Ok(i),
            other => mismatch(column, "an integer", &other),
        }
    }
}

macro_rules! from_sql_narrow_integer {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_value(value: Value, column: usize) -> Result<Self> {
                let wide = i64::from_value(value, column)?;
                <$t>::try_from(wide).map_err(|_| {
                    Error::conversion(column, format!("{wide} is out of range for {}", stringify!($t)))
                })
            }
        }
    )*};
}
from_sql_narrow_integer!(i32, u32, u64, usize, u16, u8);

impl FromSql for bool {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        Ok(i64::from_value(value, column)? != 0)
    }
}

impl FromSql for f64 {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        match value {
            Value::Real(f) => Ok(f),
            #[allow(clippy::cast_precision_loss)] // SQLite's own integer-to-real conversion
            Value::Integer(i) => Ok(i as f64),
            other => mismatch(column, "a number", &other),
        }
    }
}

impl FromSql for String {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        match value {
            Value::Text(s) => Ok(s),
            other => mismatch(column, "text", &other),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        match value {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => mismatch(column, "a blob", &other),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_value(value: Value, column: usize) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other, column).map(Some),
        }
    }
}

/// One result row, whichever database it came from.
pub struct Row<'a>(RowInner<'a>);

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Row")
    }
}

enum RowInner<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    pub fn get<T: FromSql>(&self, column: usize) -> Result<T> {
        T::from_value(self.value(column)?, column)
    }

    fn value(&self, column: usize) -> Result<Value> {
        match &self.0 {
            RowInner::Sqlite(row) => {
                use rusqlite::types::ValueRef;
                Ok(match row.get_ref(column)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Integer(i),
                    ValueRef::Real(f) => Value::Real(f),
                    ValueRef::Text(t) => Value::Text(
                        std::str::from_utf8(t)
                            .map_err(|e| Error::conversion(column, format!("text is not UTF-8: {e}")))?
                            .to_owned(),
                    ),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                })
            }
            RowInner::Postgres(row) => Ok(row.try_get::<_, PgValue>(column)?.0),
        }
    }
}

// ---- PostgreSQL type mapping ----

/// A [`Value`] as PostgreSQL sees it: binds to whatever type the server inferred for the
/// placeholder, and reads any column type the store's schema uses.
#[derive(Debug)]
struct PgValue(Value);

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl PgToSql for PgValue {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (&self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Integer(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Integer(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Integer(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (Value::Integer(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Integer(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Integer(i), t) if is_text(t) => i.to_string().as_str().to_sql(&Type::TEXT, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (Value::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Real(f), t) if is_text(t) => f.to_string().as_str().to_sql(&Type::TEXT, out),
            (Value::Text(s), t) if is_text(t) => s.as_str().to_sql(&Type::TEXT, out),
            (Value::Text(s), &Type::JSON) => {
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(s), &Type::JSONB) => {
                out.put_u8(1);
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(s), &Type::BYTEA) => s.as_bytes().to_sql(ty, out),
            (Value::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            (v, t) => Err(format!("cannot bind {} to a parameter of type {t}", v.kind()).into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(t: &Type) -> bool {
    matches!(
        *t,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

impl<'a> PgFromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let value = match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::JSON => Value::Text(std::str::from_utf8(raw)?.to_owned()),
            Type::JSONB => Value::Text(std::str::from_utf8(raw.get(1..).unwrap_or_default())?.to_owned()),
            ref t if is_text(t) => Value::Text(String::from_sql(t, raw)?),
            ref t => return Err(format!("the store does not read columns of type {t}").into()),
        };
        Ok(PgValue(value))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(PgValue(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Decodes PostgreSQL's binary `numeric` (what `SUM` and `AVG` of integers return): an integer
/// when it has no fractional digits and fits, a real otherwise.
/// Format: i16 digit count, i16 weight, u16 sign, u16 display scale, then base-10000 digits.
fn numeric(raw: &[u8]) -> Result<Value, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".into())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok(Value::Real(f64::NAN)),
        _ => return Err(format!("numeric sign {sign:#x} (infinity?) is not supported").into()),
    }
    let mut real = 0.0f64;
    let mut integer: Option<i64> = Some(0);
    for i in 0..ndigits {
        let digit = word(4 + i)?;
        let power = weight - i32::try_from(i)?;
        real += f64::from(digit) * 10_000f64.powi(power);
        integer = if power >= 0 {
            integer.and_then(|acc| {
                10_000i64
                    .checked_pow(u32::try_from(power).ok()?)
                    .and_then(|p| p.checked_mul(i64::from(digit)))
                    .and_then(|d| acc.checked_add(d))
            })
        } else if digit == 0 {
            integer
        } else {
            None
        };
    }
    let negative = sign == 0x4000;
    Ok(match integer {
        Some(i) => Value::Integer(if negative { -i } else { i }),
        None => Value::Real(if negative { -real } else { real }),
    })
}

// ---- connections ----

pub struct Connection {
    inner: Inner,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(PgConnection),
}

/// A PostgreSQL connection owned by a thread of its own. The synchronous `postgres` client drives
/// its socket with a private runtime, which refuses to start on a thread already inside tokio (the
/// blocking pool, a `#[tokio::test]`); its own thread never is. Each call is a closure sent there
/// and an answer sent back: a few microseconds next to a round trip to the server.
struct PgConnection {
    /// The client, also used in place by a thread outside tokio (the ingest writers): a round trip
    /// through the connection's thread costs two thread switches per statement. Declared before
    /// `jobs` so that it is dropped first: the client's last holder is then always the connection's
    /// thread, since dropping the client inside tokio would panic.
    state: std::sync::Arc<std::sync::Mutex<PgState>>,
    jobs: mpsc::Sender<PgJob>,
    /// Set by the connection's thread after each call, so that asking costs no call of its own.
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

type PgJob = Box<dyn FnOnce(&mut PgState) + Send>;

struct PgState {
    client: postgres::Client,
    /// Prepared statements by the store's SQL text: each is parsed and planned once per connection.
    statements: HashMap<String, postgres::Statement>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("backend", &self.backend())
            .finish()
    }
}

/// How a transaction takes its locks. Kept for rusqlite's signature: on SQLite both take the write
/// lock at `BEGIN` (see `transaction_with_behavior`); PostgreSQL locks rows as it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionBehavior {
    Deferred,
    Immediate,
}

/// Prepared statements kept per SQLite connection: more than the store has distinct statements.
const STATEMENT_CACHE: usize = 512;

impl Connection {
    pub fn open_sqlite(path: &Path) -> Result<Connection> {
        let conn = rusqlite::Connection::open(path)?;
        // Every statement goes through the cache; at rusqlite's default of 16, ingest alone cycles
        // through more than that per snapshot and each one was parsed and planned again.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Connection {
            inner: Inner::Sqlite(conn),
        })
    }

    /// Connects to PostgreSQL. No TLS: reach the
    /// database over loopback, a Unix socket or a network you trust.
    pub fn connect_postgres(config: &postgres::Config) -> Result<Connection> {
        Ok(Connection {
            inner: Inner::Postgres(PgConnection::connect(config)?),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, WAL checkpoints).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// Closes the connection, reporting what SQLite's final checkpoint or PostgreSQL's goodbye says.
    pub fn close(self) -> Result<()> {
        match self.inner {
            Inner::Sqlite(c) => c.close().map_err(|(_, e)| Error::Sqlite(e)),
            // Dropping the sender ends the connection's thread, whose client says goodbye.
            Inner::Postgres(_) => Ok(()),
        }
    }

    /// Whether the PostgreSQL connection has closed (the server restarted): the store opens a new one.
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(_) => false,
            Inner::Postgres(pg) => pg.closed.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Runs several statements with no parameters (migrations).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(pg) => {
                let sql = sql.to_owned();
                pg.call(move |state| Ok(state.client.batch_execute(&sql)?))
            }
        }
    }

    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute(sqlite_params(params))?),
            Inner::Postgres(pg) => pg.execute(sql, params.into_values()),
        }
    }

    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(sqlite_params(params))?;
                match rows.next()? {
                    Some(row) => f(&Row(RowInner::Sqlite(row))),
                    None => Err(Error::NoRows),
                }
            }
            Inner::Postgres(pg) => {
                let rows = pg.query(sql, params.into_values())?;
                match rows.first() {
                    Some(row) => f(&Row(RowInner::Postgres(row))),
                    None => Err(Error::NoRows),
                }
            }
        }
    }

    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare_cached(sql)
    }

    pub fn transaction(&self) -> Result<Transaction<'_>> {
        self.transaction_with_behavior(TransactionBehavior::Deferred)
    }

    pub fn transaction_with_behavior(&self, behavior: TransactionBehavior) -> Result<Transaction<'_>> {
        // SQLite: every transaction that may write takes the write lock at BEGIN. A deferred one
        // that reads, then writes after another process committed, fails at once with
        // SQLITE_BUSY_SNAPSHOT (the busy timeout cannot help it); an immediate one waits its turn.
        let begin = match (self.backend(), behavior) {
            (Backend::Sqlite, _) => "BEGIN IMMEDIATE",
            (Backend::Postgres, _) => "BEGIN",
        };
        self.execute_batch(begin)?;
        Ok(Transaction {
            conn: self,
            open: true,
        })
    }

    // ---- dialect fragments ----

    /// A subquery of the text elements of the JSON array bound to `param` (e.g. `?3`).
    pub fn json_array_text(&self, param: &str) -> String {
        match self.backend() {
            Backend::Sqlite => format!("SELECT value FROM json_each({param})"),
            Backend::Postgres => format!("SELECT json_array_elements_text(CAST({param} AS JSON))"),
        }
    }

    /// The text at `a.b` of a JSON text column.
    pub fn json_field_text(&self, column: &str, object: &str, field: &str) -> String {
        match self.backend() {
            Backend::Sqlite => format!("json_extract({column}, '$.{object}.{field}')"),
            Backend::Postgres => format!("(CAST({column} AS JSON) -> '{object}' ->> '{field}')"),
        }
    }
}

fn sqlite_params<P: Params>(params: P) -> rusqlite::ParamsFromIter<Vec<SqliteValue>> {
    rusqlite::params_from_iter(
        params
            .into_values()
            .into_iter()
            .map(SqliteValue)
            .collect::<Vec<_>>(),
    )
}

struct SqliteValue(Value);

impl rusqlite::ToSql for SqliteValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match &self.0 {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl PgConnection {
    fn connect(config: &postgres::Config) -> Result<PgConnection> {
        let config = config.clone();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs, jobs_rx) = mpsc::channel::<PgJob>();
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let closed_flag = std::sync::Arc::clone(&closed);
        std::thread::Builder::new()
            .name("postgres-conn".into())
            .spawn(move || {
                let client = match config.connect(postgres::NoTls) {
                    Ok(client) => client,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let state = std::sync::Arc::new(std::sync::Mutex::new(PgState {
                    client,
                    statements: HashMap::new(),
                }));
                let _ = ready_tx.send(Ok(std::sync::Arc::clone(&state)));
                // Ends when the `Connection` is dropped (its sender with it); the client closes
                // when the last holder of `state` goes.
                while let Ok(job) = jobs_rx.recv() {
                    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                    job(&mut state);
                    closed_flag.store(state.client.is_closed(), std::sync::atomic::Ordering::Relaxed);
                }
                closed_flag.store(true, std::sync::atomic::Ordering::Relaxed);
            })
            .map_err(Error::Thread)?;
        let state = ready_rx.recv().map_err(|_| Error::Closed)??;
        Ok(PgConnection { jobs, state, closed })
    }

    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut PgState) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        // The blocking client runs a runtime of its own, which cannot start inside tokio's: on a
        // tokio thread (the blocking pool included) the call goes to the connection's thread.
        if tokio::runtime::Handle::try_current().is_err() {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let result = f(&mut state);
            self.closed
                .store(state.client.is_closed(), std::sync::atomic::Ordering::Relaxed);
            return result;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |state| {
                let _ = tx.send(f(state));
            }))
            .map_err(|_| Error::Closed)?;
        rx.recv().map_err(|_| Error::Closed)?
    }

    fn execute(&self, sql: &str, values: Vec<Value>) -> Result<usize> {
        let sql = sql.to_owned();
        self.call(move |state| {
            let stmt = state.statement(&sql)?;
            let values: Vec<PgValue> = values.into_iter().map(PgValue).collect();
            let n = state.client.execute(&stmt, &pg_refs(&values))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<postgres::Row>> {
        let sql = sql.to_owned();
        self.call(move |state| {
            let stmt = state.statement(&sql)?;
            let values: Vec<PgValue> = values.into_iter().map(PgValue).collect();
            Ok(state.client.query(&stmt, &pg_refs(&values))?)
        })
    }
}

fn pg_refs(values: &[PgValue]) -> Vec<&(dyn PgToSql + Sync)> {
    values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect()
}

impl PgState {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.client.prepare(&to_postgres_placeholders(sql))?;
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

/// `?N` becomes `$N` and a bare `?` the next number, outside string literals and quoted names.
pub fn to_postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 1u32;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
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
                out.push('$');
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    out.push_str(&digits);
                }
            }
            None => out.push(c),
        }
    }
    out
}

/// A statement of one connection. SQLite keeps it in rusqlite's statement cache, PostgreSQL in the
/// connection's prepared statements.
#[derive(Debug)]
pub struct Statement<'c> {
    conn: &'c Connection,
    sql: String,
}

/// Rows mapped by a closure, collected: the store reads bounded result sets.
pub type MappedRows<T> = std::vec::IntoIter<Result<T>>;

impl Statement<'_> {
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        self.conn.execute(&self.sql, params)
    }

    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.conn.query_row(&self.sql, params, f)
    }

    pub fn query_map<T, P, F>(&mut self, params: P, mut f: F) -> Result<MappedRows<T>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        let mapped: Vec<Result<T>> = match &self.conn.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(&self.sql)?;
                let mut rows = stmt.query(sqlite_params(params))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(f(&Row(RowInner::Sqlite(row))));
                }
                out
            }
            Inner::Postgres(pg) => {
                let rows = pg.query(&self.sql, params.into_values())?;
                rows.iter().map(|row| f(&Row(RowInner::Postgres(row)))).collect()
            }
        };
        Ok(mapped.into_iter())
    }
}

/// An open transaction: commits with [`Transaction::commit`], rolls back when dropped without.
/// Derefs to its connection, so functions taking `&Connection` run inside it.
#[derive(Debug)]
pub struct Transaction<'c> {
    conn: &'c Connection,
    open: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.conn.execute_batch("COMMIT")
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to do on failure: the connection is closed, which ends the transaction too.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

pub trait OptionalExtension<T> {
    /// `Ok(None)` instead of [`Error::NoRows`].
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_literals() {
        assert_eq!(
            to_postgres_placeholders("SELECT a FROM t WHERE b = ?2 AND c = '?' AND d = ?1 AND e = ?"),
            "SELECT a FROM t WHERE b = $2 AND c = '?' AND d = $1 AND e = $1"
        );
        assert_eq!(
            to_postgres_placeholders("VALUES (?, ?, \"q?\")"),
            "VALUES ($1, $2, \"q?\")"
        );
    }

    #[test]
    fn numeric_decodes_integers_and_fractions() {
        // 12345678 = [1234, 5678] weight 1; -1.5 = [1, 5000] weight 0 negative.
        let enc = |digits: &[u16], weight: i16, sign: u16| {
            let mut v = Vec::new();
            for w in [digits.len() as u16, weight as u16, sign, 0] {
                v.extend_from_slice(&w.to_be_bytes());
            }
            for d in digits {
                v.extend_from_slice(&d.to_be_bytes());
            }
            v
        };
        assert_eq!(
            numeric(&enc(&[1234, 5678], 1, 0)).unwrap(),
            Value::Integer(12_345_678)
        );
        assert_eq!(numeric(&enc(&[1, 5000], 0, 0x4000)).unwrap(), Value::Real(-1.5));
        assert_eq!(numeric(&enc(&[], 0, 0)).unwrap(), Value::Integer(0));
        assert!(numeric(&[0, 1]).is_err());
    }

    #[test]
    fn sqlite_round_trips_values_and_rolls_back_on_drop() {
        let conn = Connection::open_sqlite(Path::new(":memory:")).unwrap();
        conn.execute_batch("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB)")
            .unwrap();
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            params![7i64, 1.5, "x", vec![1u8, 2]],
        )
        .unwrap();
        {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .unwrap();
            tx.execute("DELETE FROM t", []).unwrap();
        }
        let row: (i64, f64, String, Vec<u8>, Option<String>) = conn
            .query_row("SELECT i, r, s, b, NULL FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        assert_eq!(row, (7, 1.5, "x".to_owned(), vec![1, 2], None));
        let missing = conn.query_row("SELECT i FROM t WHERE i = ?1", [8i64], |r| r.get::<i64>(0));
        assert!(matches!(missing.optional(), Ok(None)));
        let err = conn
            .query_row("SELECT s FROM t", [], |r| r.get::<i64>(0))
            .unwrap_err();
        assert!(
            err.to_string().contains("expected an integer, found text"),
            "{err}"
        );
    }
}
