//! Durable state: orgs, contracts, environments, enrollment tokens, hosts, credentials and snapshots,
//! in one SQLite file (`DATA_DIR/callhome.db`).
//!
//! Architecture invariant: the rest of the collector sees domain operations (`enroll`,
//! `authenticate_agent`, `insert_snapshot`, ...), never SQL or a connection, so that a PostgreSQL
//! store can sit behind the same API later. The operations request handlers use are `async` and run
//! on tokio's blocking pool; the admin operations the CLI uses are plain functions.
//!
//! Durability: WAL with `synchronous=FULL`, so a committed transaction survives a power cut, and the
//! collector answers 2xx only after `commit` returns. One connection behind a mutex is the single
//! writer; other processes (the admin CLI while `serve` runs) wait on the busy timeout.
//!
//! Times are stored as RFC 3339 UTC text with a fixed width (microseconds), so that text order is
//! time order; dates as `YYYY-MM-DD`.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod console;
pub mod coord;
pub mod db;
mod ingest;
pub mod jobs;
pub mod metrics;
pub mod migrations;
pub mod report;
pub mod retention;
pub mod risk;
pub mod seed;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use callhome_shared::Snapshot;
use callhome_shared::api::EnrollRequest;
use callhome_shared::rules::{self, Finding, TrendPoint};
use db::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::entitlement::{self, ContractTerm, Tier};
use crate::secret::{self, Secret};
use audit::{Action, Actor};

pub const DB_FILE_NAME: &str = "callhome.db";
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// zstd level for stored snapshot bodies: JSON compresses ~10x at level 3 for little CPU.
const BODY_ZSTD_LEVEL: i32 = 3;
/// Reader connections per store for the request path's credential checks (`Store::read_blocking`).
const READERS: usize = 4;
static READER_TURN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Ingest writers per replica on PostgreSQL (see `Store::submit`). One: a writer's group is what
/// arrived during its last commit and costs a few statements whatever its size (`ingest.rs`), so
/// more writers split the load into smaller groups for more of the server's time. On 2 cores, 15 s
/// runs: 5,010 snapshots/s with one writer, 4,393 with two, 3,936 with four (2026-12-06).
const PG_WRITERS: usize = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] db::Error),
    #[error(
        "database schema version {found} is newer than this collector supports ({supported}): upgrade the collector"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// A name the caller gave does not exist (unknown org, environment, token).
    #[error("{0}")]
    NotFound(String),
    /// A value the caller gave breaks a rule (bad name, contract dates).
    #[error("{0}")]
    Invalid(String),
    /// The thing to create exists already.
    #[error("{0}")]
    Conflict(String),
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot compress snapshot body: {0}")]
    Compress(std::io::Error),
    #[error(transparent)]
    Random(#[from] secret::RandomError),
    #[error("database task failed: {0}")]
    Task(String),
    /// The database refused a whole group of writes (connection lost, disk full): retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Errors that are the caller's to fix (exit 78 on the command line), rather than the system's.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound(_) | StoreError::Invalid(_) | StoreError::Conflict(_)
        )
    }
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("unknown enrollment token")]
    UnknownToken,
    #[error("enrollment token expired at {expired_at}: ask for a new one")]
    TokenExpired { expired_at: String },
    #[error("enrollment token was revoked at {revoked_at}: ask for a new one")]
    TokenRevoked { revoked_at: String },
    #[error("org {org} has no active support contract")]
    ContractLapsed { org: String },
    #[error("host {host_id} is already enrolled in org {org}, environment {environment}")]
    HostEnrolledElsewhere {
        host_id: Uuid,
        org: String,
        environment: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<db::Error> for EnrollError {
    fn from(e: db::Error) -> Self {
        EnrollError::Store(StoreError::Database(e))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(db::Error::Sqlite(e))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    pub id: i64,
    pub org: String,
    pub product: String,
    #[serde(serialize_with = "ser_display")]
    pub tier: Tier,
    #[serde(serialize_with = "ser_display")]
    pub start: Date,
    #[serde(serialize_with = "ser_display")]
    pub end: Date,
    pub created_at: String,
}

impl Contract {
    pub fn term(&self) -> ContractTerm {
        ContractTerm {
            tier: self.tier,
            start: self.start,
            end: self.end,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub org: String,
    pub name: String,
    pub created_at: String,
    pub hosts: i64,
}

/// A token as listed: everything but the token itself, which the store never had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub org: String,
    pub environment: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub uses: i64,
}

#[derive(Debug)]
pub struct IssuedToken {
    pub id: String,
    pub token: Secret,
    pub expires_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Now,
    Already,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSummary {
    pub host_id: Uuid,
    pub org: String,
    pub environment: String,
    pub hostname: String,
    pub role: String,
    pub agent_version: String,
    pub enrolled_at: String,
    pub last_seen: Option<String>,
    pub snapshots: i64,
}

/// A successful enrollment: the new credential, shown once.
#[derive(Debug)]
pub struct Enrolled {
    pub credential: Secret,
    pub host_id: Uuid,
    pub org: String,
    pub environment: String,
    pub tier: Tier,
}

/// What a credential is allowed to do: write snapshots for this host, org and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub host_id: Uuid,
    pub org: String,
    pub env_id: i64,
    pub environment: String,
    /// The org's effective tier today; `None` when it is lapsed.
    pub tier: Option<Tier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    Unknown,
    Revoked,
    Agent(AgentIdentity),
}

/// A decoded snapshot ready to store: the metadata the store indexes, the JSON as received, and what
/// ingest judged of it.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    pub id: Uuid,
    pub schema_version: u32,
    pub collected_at: OffsetDateTime,
    pub body: Vec<u8>,
    pub judged: Judged,
}

/// What ingest derives from a snapshot before storing it, off the database lock: the host rules'
/// findings, the capacity trend point, and the facts the fleet rules compare across hosts.
#[derive(Debug, Clone)]
pub struct Judged {
    pub findings: Vec<Finding>,
    pub catalog_version: String,
    pub trend: TrendPoint,
    pub schedule_interval_secs: Option<u64>,
    pub vda_version: Option<String>,
    pub controllers: Option<Vec<String>>,
    /// The agent's clock minus the collector's at the post (`x-callhome-sent-at`), if it said.
    pub clock_skew_secs: Option<f64>,
}

impl Judged {
    pub fn of(snapshot: &Snapshot, clock_skew_secs: Option<f64>) -> Judged {
        let vda = snapshot.sections.vda.as_ref();
        Judged {
            findings: rules::evaluate_host(snapshot).findings,
            catalog_version: rules::CATALOG_VERSION.to_owned(),
            trend: TrendPoint::from_snapshot(snapshot),
            schedule_interval_secs: snapshot
                .sections
                .agent
                .as_ref()
                .and_then(|a| a.schedule_interval_secs),
            vda_version: vda.map(|v| v.version.clone()).filter(|v| !v.is_empty()),
            controllers: vda.and_then(|v| v.controllers.clone()),
            clock_skew_secs,
        }
    }
}

/// The answer to a queued snapshot, ready once its group has committed.
#[derive(Debug)]
pub struct Committed(tokio::sync::oneshot::Receiver<Result<Inserted, StoreError>>);

impl Committed {
    pub async fn wait(self) -> Result<Inserted, StoreError> {
        self.0
            .await
            .map_err(|_| StoreError::Task("the ingest writer stopped before answering".to_owned()))?
    }
}

/// zstd of a snapshot body, with this thread's compression context: making a context per body
/// allocated and zeroed about a megabyte of tables each time.
fn compress_body(json: &[u8]) -> Result<Vec<u8>, StoreError> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let compressor = match &mut *slot {
            Some(c) => c,
            none => none.insert(zstd::bulk::Compressor::new(BODY_ZSTD_LEVEL).map_err(StoreError::Compress)?),
        };
        compressor.compress(json).map_err(StoreError::Compress)
    })
}

/// A suppression to create: `rule` for the org, one environment, or one host.
#[derive(Debug, Clone)]
pub struct NewSuppression {
    pub org: String,
    pub environment: Option<String>,
    pub host: Option<Uuid>,
    pub rule: String,
    pub reason: String,
    pub author: String,
    pub expires_at: OffsetDateTime,
}

/// A planned change to record.
#[derive(Debug, Clone)]
pub struct NewChangeWindow {
    pub org: String,
    pub environment: String,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub description: String,
    pub author: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostScore {
    pub host_id: String,
    pub hostname: String,
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScopeScore {
    pub name: String,
    pub score: Option<f64>,
    pub computed_at: Option<String>,
    pub explanation: Option<serde_json::Value>,
    pub hosts: Vec<HostScore>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgScores {
    pub org: String,
    pub tier: Option<String>,
    /// Priority and Priority Plus orgs are scored; Select and lapsed ones are not (SPEC §3).
    pub scored: bool,
    pub score: Option<f64>,
    pub computed_at: Option<String>,
    pub explanation: Option<serde_json::Value>,
    pub open_findings: std::collections::BTreeMap<String, i64>,
    pub environments: Vec<ScopeScore>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Stored,
    Duplicate,
}

/// Where the store keeps its data.
#[derive(Clone)]
pub enum Location {
    /// The embedded default: one SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by every replica.
    Postgres(Box<postgres::Config>),
}

impl std::fmt::Display for Location {
    /// The path, or the PostgreSQL URL without its password (for logs and `/readyz`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(config) => {
                let host = config
                    .get_hosts()
                    .first()
                    .map(|h| match h {
                        postgres::config::Host::Tcp(name) => name.clone(),
                        postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .unwrap_or_default();
                let port = config.get_ports().first().copied().unwrap_or(5432);
                write!(
                    f,
                    "postgres://{}@{host}:{port}/{}",
                    config.get_user().unwrap_or(""),
                    config.get_dbname().unwrap_or("")
                )
            }
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({self})")
    }
}

/// The collector's database. Cheap to clone; all clones share one connection, and one ingest
/// writer (`writer`) started on the first snapshot.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    location: Location,
    ingest: Arc<Mutex<Vec<writer::Writer>>>,
    readers: Arc<Mutex<Vec<Arc<Mutex<Connection>>>>>,
    group_stats: Arc<Mutex<writer::GroupStats>>,
}

impl Store {
    fn new(conn: Connection, location: Location) -> Store {
        Store {
            conn: Arc::new(Mutex::new(conn)),
            location,
            ingest: Arc::new(Mutex::new(Vec::new())),
            readers: Arc::new(Mutex::new(Vec::new())),
            group_stats: Arc::new(Mutex::new(writer::GroupStats::default())),
        }
    }

    /// Commit groups written so far by the ingest writer.
    pub fn group_stats(&self) -> writer::GroupStats {
        *self.group_stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a snapshot for its ingest writer, starting the writers when needed.
    ///
    /// SQLite: one writer, sharing the store's connection (one writer per file; the mutex orders it
    /// with the admin writes). PostgreSQL: [`PG_WRITERS`] writers, each with a connection of its
    /// own; a host always goes to the same writer, so its snapshots are written in the order they
    /// came and two writers never touch one host's rows.
    fn submit(&self, job: writer::Job) -> Result<(), StoreError> {
        let mut ingest = self.ingest.lock().unwrap_or_else(|p| p.into_inner());
        if ingest.is_empty() {
            let count = match self.location {
                Location::Sqlite(_) => 1,
                Location::Postgres(_) => PG_WRITERS,
            };
            for _ in 0..count {
                let conn = match self.location {
                    Location::Sqlite(_) => Arc::clone(&self.conn),
                    Location::Postgres(_) => Arc::new(Mutex::new(self.new_connection()?)),
                };
                // A writer holds a handle without writers, so that dropping the last user handle
                // stops them.
                let handle = Store {
                    conn: Arc::clone(&self.conn),
                    location: self.location.clone(),
                    ingest: Arc::new(Mutex::new(Vec::new())),
                    readers: Arc::new(Mutex::new(Vec::new())),
                    group_stats: Arc::clone(&self.group_stats),
                };
                ingest.push(writer::Writer::start(
                    handle,
                    conn,
                    Arc::clone(&self.group_stats),
                )?);
            }
        }
        let n = ingest.len().max(1) as u128;
        let index = usize::try_from(job.agent.host_id.as_u128() % n).unwrap_or(0);
        match ingest.get(index) {
            Some(w) => w.submit(job),
            None => Err(StoreError::Task("no ingest writer".to_owned())),
        }
    }

    /// Opens the store the configuration names: PostgreSQL when `database_url` is set, else
    /// `DATA_DIR/callhome.db`.
    pub fn open_configured(data_dir: &Path, database_url: Option<&str>) -> Result<Store, StoreError> {
        match database_url {
            Some(url) => Store::connect(url),
            None => Store::open_in(data_dir),
        }
    }

    /// Opens (creating if needed) `DATA_DIR/callhome.db` and brings its schema up to date.
    pub fn open_in(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        Store::open(&data_dir.join(DB_FILE_NAME))
    }

    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = open_sqlite(path)?;
        let (from, to) = migrations::apply(&conn)?;
        if from != to {
            tracing::info!(from, to, "database schema migrated");
        }
        Ok(Store::new(conn, Location::Sqlite(path.to_owned())))
    }

    /// Connects to PostgreSQL (`postgres://user:password@host:port/db` or libpq's `key=value`
    /// form) and brings its schema up to date.
    pub fn connect(url: &str) -> Result<Store, StoreError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        Store::connect_with(config)
    }

    pub fn connect_with(config: postgres::Config) -> Result<Store, StoreError> {
        let conn = Connection::connect_postgres(&config)?;
        let (from, to) = migrations::apply(&conn)?;
        if from != to {
            tracing::info!(from, to, "database schema migrated");
        }
        Ok(Store::new(conn, Location::Postgres(Box::new(config))))
    }

    /// Opens another store on the same database (what a second process or replica would do).
    pub fn open_location(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(path) => Store::open(path),
            Location::Postgres(config) => Store::connect_with((**config).clone()),
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// A new connection to the same database, with the per-connection settings.
    fn new_connection(&self) -> Result<Connection, StoreError> {
        match &self.location {
            Location::Sqlite(path) => open_sqlite(path),
            Location::Postgres(config) => Ok(Connection::connect_postgres(config)?),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no transaction open (rusqlite rolls back on drop), so
        // the connection is still good.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn blocking<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.conn.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_closed() {
                // The PostgreSQL server restarted or dropped us: this request gets a new connection.
                *guard = store.new_connection().map_err(E::from)?;
            }
            f(&mut guard)
        })
        .await
        .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    /// Runs the read `f` on the blocking pool with one of the request path's reader connections,
    /// opened on first use. They are apart from the store's connection, which the SQLite ingest
    /// writer holds through each group commit: under WAL a reader sees the last commit without
    /// waiting for the next one, and on PostgreSQL the checks do not queue behind each other's round
    /// trips on one connection.
    async fn read_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let reader = store.reader()?;
            let mut guard = reader.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_closed() {
                *guard = store.new_connection()?;
            }
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// A reader connection, a free one when there is one.
    fn reader(&self) -> Result<Arc<Mutex<Connection>>, StoreError> {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.is_empty() {
            for _ in 0..READERS {
                readers.push(Arc::new(Mutex::new(self.new_connection()?)));
            }
        }
        let free = readers.iter().find(|r| Arc::strong_count(r) == 1).or_else(|| {
            let n = READER_TURN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            readers.get(n % readers.len().max(1))
        });
        free.cloned()
            .ok_or_else(|| StoreError::Task("no reader connection".to_owned()))
    }

    /// Closes the database cleanly once no operation uses it any more: when its last connection
    /// closes, SQLite checkpoints the WAL into the database file and deletes it
    /// (<https://sqlite.org/wal.html>, "The WAL File"). Waits up to `wait` for operations still on the
    /// blocking pool (a commit whose request was dropped); `Ok(false)` when some still held the
    /// connection then: the last of them closes it when it ends.
    pub async fn close(self, wait: Duration) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        // The writer first: it finishes the groups queued, and its handle goes with it.
        let writers = std::mem::take(&mut *self.ingest.lock().unwrap_or_else(|p| p.into_inner()));
        if !writers.is_empty() {
            tokio::task::spawn_blocking(move || writers.into_iter().for_each(writer::Writer::stop))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?;
        }
        // Readers before the store's own connection: SQLite checkpoints and removes the WAL when the
        // last connection closes, which should be that one.
        drop(std::mem::take(
            &mut *self.readers.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        let mut conn = self.conn;
        loop {
            match Arc::try_unwrap(conn) {
                Ok(mutex) => {
                    let conn = mutex.into_inner().unwrap_or_else(|p| p.into_inner());
                    // The final checkpoint writes and fsyncs: keep it off the async threads.
                    return tokio::task::spawn_blocking(move || conn.close())
                        .await
                        .map_err(|e| StoreError::Task(e.to_string()))?
                        .map(|()| true)
                        .map_err(StoreError::Database);
                }
                Err(shared) if tokio::time::Instant::now() < deadline => {
                    conn = shared;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return Ok(false),
            }
        }
    }

    /// Runs `f` while holding the connection: a stand-in for a long transaction of another writer.
    #[cfg(test)]
    pub(crate) fn with_connection_held<T>(&self, f: impl FnOnce() -> T) -> T {
        let guard = self.lock();
        // PostgreSQL's ingest writer has a connection of its own: hold the table it writes instead.
        let _tx = (guard.backend() == db::Backend::Postgres).then(|| {
            let tx = guard.transaction().expect("begin");
            tx.execute_batch("LOCK TABLE snapshots IN EXCLUSIVE MODE")
                .expect("lock snapshots");
            tx
        });
        f()
    }

    // ---- request-path operations (async) ----

    /// Whether the database answers a trivial query (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    /// Trades an enrollment token for a new credential bound to `req.host_id`, revoking the host's
    /// older credentials, in one transaction.
    pub async fn enroll(&self, req: EnrollRequest, now: OffsetDateTime) -> Result<Enrolled, EnrollError> {
        self.blocking(move |conn| enroll(conn, &req, now)).await
    }

    /// Who holds this credential, and the tier of their org on `today`.
    pub async fn authenticate_agent(
        &self,
        credential: String,
        today: Date,
    ) -> Result<Authentication, StoreError> {
        self.read_blocking(move |conn| authenticate_agent(conn, &credential, today))
            .await
    }

    /// Stores a snapshot once: a second insert of the same id is `Duplicate` and changes nothing but
    /// the host's `last_seen`. Returns after the commit.
    pub async fn insert_snapshot(
        &self,
        agent: AgentIdentity,
        snapshot: NewSnapshot,
        now: OffsetDateTime,
    ) -> Result<Inserted, StoreError> {
        let store = self.clone();
        let committed = tokio::task::spawn_blocking(move || {
            store.queue_snapshot(agent, snapshot, None, now, Box::new(()))
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        committed.wait().await
    }

    /// Queues a snapshot for its ingest writer and returns at once; [`Committed::wait`] gives the
    /// outcome after the group's commit. `received_zstd` is the body as the agent sent it when that
    /// was zstd: it decoded to `snapshot.body` within the limits, so it is stored as it is instead of
    /// compressing the JSON again. `hold` is dropped once the group is committed (or failed): the
    /// ingest queue's permit, so that a dropped request still counts until its commit is done.
    ///
    /// Blocking (compression, and waiting while the writer's queue is full): call it from the
    /// blocking pool.
    pub fn queue_snapshot(
        &self,
        agent: AgentIdentity,
        snapshot: NewSnapshot,
        received_zstd: Option<Vec<u8>>,
        now: OffsetDateTime,
        hold: Box<dyn Send>,
    ) -> Result<Committed, StoreError> {
        let compressed = match received_zstd {
            Some(body) => body,
            None => compress_body(&snapshot.body)?,
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(writer::Job {
            agent,
            snapshot,
            compressed,
            now,
            reply,
            hold,
        })?;
        Ok(Committed(answer))
    }

    /// Runs the periodic judgements (fleet, trend, scores, catalog change) once.
    pub async fn run_jobs_async(
        &self,
        now: OffsetDateTime,
        settings: jobs::JobSettings,
    ) -> Result<jobs::JobReport, StoreError> {
        self.blocking(move |conn| jobs::run(conn, now, &settings)).await
    }

    /// Rescores the environments (and their orgs) whose findings changed since the last pass.
    pub async fn rescore_dirty_async(&self, now: OffsetDateTime) -> Result<u32, StoreError> {
        self.blocking(move |conn| jobs::rescore_dirty(conn, now)).await
    }

    /// Takes the next due webhook event, leased for `lease`.
    pub async fn claim_webhook(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Option<risk::OutboxItem>, StoreError> {
        self.blocking(move |conn| risk::claim_webhook(conn, now, lease))
            .await
    }

    pub async fn record_webhook_attempt(
        &self,
        id: i64,
        attempt: risk::Attempt,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.blocking(move |conn| risk::record_webhook_attempt(conn, id, &attempt, now))
            .await
    }

    // ---- admin operations (synchronous; the CLI has no runtime) ----

    pub fn run_jobs(
        &self,
        now: OffsetDateTime,
        settings: &jobs::JobSettings,
    ) -> Result<jobs::JobReport, StoreError> {
        jobs::run(&mut self.lock(), now, settings)
    }

    pub fn list_findings(
        &self,
        org: &str,
        filter: &risk::FindingFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<risk::FindingRow>, StoreError> {
        let conn = self.lock();
        require_org(&conn, org)?;
        risk::list_findings(&conn, org, filter, now)
    }

    pub fn list_queue(
        &self,
        org: Option<&str>,
        all: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<risk::QueueEntry>, StoreError> {
        let conn = self.lock();
        if let Some(org) = org {
            require_org(&conn, org)?;
        }
        risk::list_queue(&conn, org, None, all, now)
    }

    /// Records who acknowledged queue entry `id`; `false` when it was acknowledged already.
    pub fn acknowledge(
        &self,
        id: i64,
        by: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if by.trim().is_empty() {
            return Err(StoreError::Invalid(
                "say who acknowledges (`--by NAME`)".to_owned(),
            ));
        }
        let conn = self.lock();
        let tx = conn.transaction()?;
        let changed = risk::acknowledge(&tx, id, by, actor, now)?;
        tx.commit()?;
        Ok(changed)
    }

    /// Suppresses `rule` for an org, one of its environments or one host, until `expires_at`; closes
    /// the queue entries it now covers and rescores what it touches.
    pub fn add_suppression(
        &self,
        new: &NewSuppression,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<risk::Suppression, StoreError> {
        if rules::rule_info(&new.rule).is_none() {
            return Err(StoreError::Invalid(format!(
                "unknown rule `{}` (see `callhome-collector rules list`)",
                new.rule
            )));
        }
        if new.reason.trim().is_empty() || new.author.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a suppression needs a reason and an author".to_owned(),
            ));
        }
        if new.expires_at <= now {
            return Err(StoreError::Invalid("the expiry must be in the future".to_owned()));
        }
        let conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        require_org(&tx, &new.org)?;
        let env_id = new
            .environment
            .as_deref()
            .map(|e| require_environment(&tx, &new.org, e))
            .transpose()?;
        if let Some(host) = new.host {
            let owner: Option<String> = tx
                .query_row(
                    "SELECT org_id FROM hosts WHERE host_id = ?1",
                    [host.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            if owner.as_deref() != Some(new.org.as_str()) {
                return Err(StoreError::NotFound(format!(
                    "no host {host} in org `{}`",
                    new.org
                )));
            }
        }
        let id: i64 = tx.query_row(
            "INSERT INTO suppressions (org_id, env_id, host_id, rule_id, reason, author, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            params![
                new.org,
                env_id,
                new.host.map(|h| h.to_string()),
                new.rule,
                new.reason,
                new.author,
                ts(now),
                ts(new.expires_at)
            ],
            |r| r.get(0),
        )?;
        audit::record(
            &tx,
            actor,
            Action::SuppressionAdd,
            &id.to_string(),
            Some(&new.org),
            serde_json::json!({
                "rule": new.rule,
                "environment": new.environment,
                "host": new.host.map(|h| h.to_string()),
                "expires_at": ts(new.expires_at),
            }),
            now,
        )?;
        risk::close_suppressed_entries(&tx, &new.org, now)?;
        rescore_org_hosts(&tx, &new.org, now)?;
        tx.commit()?;
        risk::list_suppressions(&conn, &new.org, now)?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("suppression {id} vanished")))
    }

    pub fn list_suppressions(
        &self,
        org: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<risk::Suppression>, StoreError> {
        let conn = self.lock();
        require_org(&conn, org)?;
        risk::list_suppressions(&conn, org, now)
    }

    /// Ends suppression `id` now; `false` when it had ended already.
    pub fn end_suppression(
        &self,
        id: i64,
        by: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let org: Option<String> = tx
            .query_row("SELECT org_id FROM suppressions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(org) = org else {
            return Err(StoreError::NotFound(format!("no suppression {id}")));
        };
        let changed = tx.execute(
            "UPDATE suppressions SET ended_at = ?2, ended_by = ?3 WHERE id = ?1 AND ended_at IS NULL",
            params![id, ts(now), by],
        )?;
        if changed == 1 {
            let details = serde_json::json!({});
            audit::record(
                &tx,
                actor,
                Action::SuppressionEnd,
                &id.to_string(),
                Some(&org),
                details,
                now,
            )?;
        }
        rescore_org_hosts(&tx, &org, now)?;
        tx.commit()?;
        Ok(changed == 1)
    }

    /// The org's scores now: org, environments and hosts, each with its explanation where stored.
    pub fn org_scores(&self, org: &str, now: OffsetDateTime) -> Result<OrgScores, StoreError> {
        let conn = self.lock();
        require_org(&conn, org)?;
        let terms: Vec<ContractTerm> = contracts_of(&conn, org)?.iter().map(Contract::term).collect();
        let tier = entitlement::effective_tier(&terms, now.date());
        let stored =
            |scope: &str, id: &str| -> Result<Option<(f64, serde_json::Value, String)>, StoreError> {
                let row: Option<(f64, String, String)> = conn
                .query_row(
                    "SELECT score, explanation, computed_at FROM scores WHERE scope = ?1 AND scope_id = ?2",
                    [scope, id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
                row.map(|(score, e, at)| {
                    serde_json::from_str(&e)
                        .map(|e| (score, e, at))
                        .map_err(|e| StoreError::Task(e.to_string()))
                })
                .transpose()
            };
        let envs: Vec<(i64, String)> = conn
            .prepare("SELECT id, name FROM environments WHERE org_id = ?1 ORDER BY name")?
            .query_map([org], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut environments = Vec::new();
        for (id, name) in envs {
            let hosts: Vec<HostScore> = conn
                .prepare("SELECT host_id, hostname, score FROM hosts WHERE env_id = ?1 ORDER BY score DESC, hostname")?
                .query_map([id], |r| {
                    Ok(HostScore {
                        host_id: r.get(0)?,
                        hostname: r.get(1)?,
                        score: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let s = stored("env", &id.to_string())?;
            environments.push(ScopeScore {
                name,
                score: s.as_ref().map(|x| x.0),
                computed_at: s.as_ref().map(|x| x.2.clone()),
                explanation: s.map(|x| x.1),
                hosts,
            });
        }
        let s = stored("org", org)?;
        Ok(OrgScores {
            org: org.to_owned(),
            tier: tier.map(|t| t.as_str().to_owned()),
            scored: risk::is_scored(tier),
            score: s.as_ref().map(|x| x.0),
            computed_at: s.as_ref().map(|x| x.2.clone()),
            explanation: s.map(|x| x.1),
            open_findings: risk::severity_counts(&conn, org)?,
            environments,
        })
    }

    /// Records a planned change (a change window) for an environment.
    pub fn add_change_window(
        &self,
        new: &NewChangeWindow,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<risk::ChangeWindow, StoreError> {
        if new.description.trim().is_empty() || new.author.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a change window needs a description and an author".to_owned(),
            ));
        }
        if new.ends_at <= new.starts_at {
            return Err(StoreError::Invalid(
                "a change window must end after it starts".to_owned(),
            ));
        }
        if new.ends_at - new.starts_at > time::Duration::days(14) {
            return Err(StoreError::Invalid(
                "a change window is at most 14 days: record a long project as several windows".to_owned(),
            ));
        }
        let conn = self.lock();
        let tx = conn.transaction()?;
        let env_id = require_environment(&tx, &new.org, &new.environment)?;
        let id: i64 = tx.query_row(
            "INSERT INTO change_windows (org_id, env_id, starts_at, ends_at, description, author, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            params![
                new.org,
                env_id,
                ts(new.starts_at),
                ts(new.ends_at),
                new.description,
                new.author,
                ts(now)
            ],
            |r| r.get(0),
        )?;
        audit::record(
            &tx,
            actor,
            Action::ChangeAdd,
            &id.to_string(),
            Some(&new.org),
            serde_json::json!({
                "environment": new.environment,
                "starts_at": ts(new.starts_at),
                "ends_at": ts(new.ends_at),
            }),
            now,
        )?;
        tx.commit()?;
        risk::list_change_windows(&conn, &new.org)?
            .into_iter()
            .find(|w| w.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("change window {id} vanished")))
    }

    pub fn list_change_windows(&self, org: &str) -> Result<Vec<risk::ChangeWindow>, StoreError> {
        let conn = self.lock();
        require_org(&conn, org)?;
        risk::list_change_windows(&conn, org)
    }

    /// Cancels a change window: its findings are no longer change-related, and alerts it held go
    /// out at their next attempt.
    pub fn cancel_change_window(
        &self,
        id: i64,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let org: Option<String> = tx
            .query_row("SELECT org_id FROM change_windows WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(org) = org else {
            return Err(StoreError::NotFound(format!("no change window {id}")));
        };
        let changed = tx.execute(
            "UPDATE change_windows SET cancelled_at = ?2 WHERE id = ?1 AND cancelled_at IS NULL",
            params![id, ts(now)],
        )?;
        if changed == 1 {
            let details = serde_json::json!({});
            audit::record(
                &tx,
                actor,
                Action::ChangeCancel,
                &id.to_string(),
                Some(&org),
                details,
                now,
            )?;
        }
        let sql = format!(
            "UPDATE webhook_outbox SET next_attempt_at = ?2
             WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at > ?2
               AND {} = CAST(?1 AS TEXT)",
            tx.json_field_text("body", "change_window", "id")
        );
        tx.execute(&sql, params![id.to_string(), ts(now)])?;
        tx.commit()?;
        Ok(changed == 1)
    }

    /// The capacity assessment of each environment of an org (or of one).
    pub fn capacity(
        &self,
        org: &str,
        environment: Option<&str>,
        now: OffsetDateTime,
        settings: &jobs::JobSettings,
    ) -> Result<Vec<(String, crate::capacity::EnvironmentCapacity)>, StoreError> {
        let conn = self.lock();
        require_org(&conn, org)?;
        if let Some(e) = environment {
            require_environment(&conn, org, e)?;
        }
        Ok(jobs::environment_trends(&conn, org, environment, now, settings)?
            .into_iter()
            .map(|(name, trends)| (name, crate::capacity::assess_environment(&trends)))
            .collect())
    }

    /// Daily score history of an org, an environment (`env`, its name) or a host.
    pub fn score_history(
        &self,
        org: &str,
        environment: Option<&str>,
        days: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, f64)>, StoreError> {
        let conn = self.lock();
        require_org(&conn, org)?;
        let (scope, id) = match environment {
            Some(e) => ("env", require_environment(&conn, org, e)?.to_string()),
            None => ("org", org.to_owned()),
        };
        let since = (now - time::Duration::days(days)).date().to_string();
        let rows = conn
            .prepare("SELECT day, score FROM score_history WHERE scope = ?1 AND scope_id = ?2 AND day >= ?3 ORDER BY day")?
            .query_map(params![scope, id, since], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    // ---- org, contract and token admin ----

    pub fn add_org(
        &self,
        id: &str,
        name: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Org, StoreError> {
        check_name("org id", id)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(StoreError::Invalid(
                "org name must be 1 to 200 characters".to_owned(),
            ));
        }
        let conn = self.lock();
        let tx = conn.transaction()?;
        let created_at = ts(now);
        let inserted = tx.execute(
            "INSERT INTO orgs (id, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO NOTHING",
            params![id, name, created_at],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("org `{id}` already exists")));
        }
        let details = serde_json::json!({ "name": name });
        audit::record(&tx, actor, Action::OrgAdd, id, Some(id), details, now)?;
        tx.commit()?;
        Ok(Org {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at,
        })
    }

    pub fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT id, name, created_at FROM orgs ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(Org {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // The contract's fields, who and when: a struct for one caller would hide nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn add_contract(
        &self,
        org: &str,
        product: &str,
        tier: Tier,
        start: Date,
        end: Date,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Contract, StoreError> {
        check_name("product", product)?;
        entitlement::validate_contract(start, end).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let conn = self.lock();
        let tx = conn.transaction()?;
        require_org(&tx, org)?;
        let created_at = ts(now);
        let id: i64 = tx.query_row(
            "INSERT INTO contracts (org_id, product, tier, start_date, end_date, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            params![
                org,
                product,
                tier.as_str(),
                start.to_string(),
                end.to_string(),
                created_at
            ],
            |r| r.get(0),
        )?;
        audit::record(
            &tx,
            actor,
            Action::ContractAdd,
            &id.to_string(),
            Some(org),
            serde_json::json!({
                "product": product,
                "tier": tier.as_str(),
                "start": start.to_string(),
                "end": end.to_string(),
            }),
            now,
        )?;
        tx.commit()?;
        Ok(Contract {
            id,
            org: org.to_owned(),
            product: product.to_owned(),
            tier,
            start,
            end,
            created_at,
        })
    }

    pub fn list_contracts(&self, org: &str) -> Result<Vec<Contract>, StoreError> {
        let conn = self.lock();
        require_org(&conn, org)?;
        contracts_of(&conn, org)
    }

    /// The org's effective tier on `today`; `None` when lapsed.
    pub fn org_tier(&self, org: &str, today: Date) -> Result<Option<Tier>, StoreError> {
        let terms: Vec<ContractTerm> = self.list_contracts(org)?.iter().map(Contract::term).collect();
        Ok(entitlement::effective_tier(&terms, today))
    }

    pub fn add_environment(&self, org: &str, name: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        check_name("environment name", name)?;
        let conn = self.lock();
        require_org(&conn, org)?;
        let inserted = conn.execute(
            "INSERT INTO environments (org_id, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(org_id, name) DO NOTHING",
            params![org, name, ts(now)],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "environment `{name}` already exists in org `{org}`"
            )));
        }
        Ok(())
    }

    pub fn list_environments(&self, org: &str) -> Result<Vec<Environment>, StoreError> {
        let conn = self.lock();
        require_org(&conn, org)?;
        let mut stmt = conn.prepare(
            "SELECT e.org_id, e.name, e.created_at,
                    (SELECT COUNT(*) FROM hosts h WHERE h.env_id = e.id)
             FROM environments e WHERE e.org_id = ?1 ORDER BY e.name",
        )?;
        let rows = stmt.query_map([org], |r| {
            Ok(Environment {
                org: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                hosts: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes a new enrollment token for one org and environment, valid for `ttl`.
    pub fn issue_token(
        &self,
        org: &str,
        environment: &str,
        ttl: time::Duration,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, StoreError> {
        let token = secret::new_enrollment_token()?;
        let id = format!("tok_{}", secret::random_hex(8)?);
        let expires_at = ts(now + ttl);
        let conn = self.lock();
        let tx = conn.transaction()?;
        let env_id = require_environment(&tx, org, environment)?;
        tx.execute(
            "INSERT INTO enrollment_tokens (id, token_hash, org_id, env_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, token.hash(), org, env_id, ts(now), expires_at],
        )?;
        let details = serde_json::json!({ "environment": environment, "expires_at": expires_at });
        audit::record(
            &tx,
            actor,
            Action::EnrollmentTokenIssue,
            &id,
            Some(org),
            details,
            now,
        )?;
        tx.commit()?;
        Ok(IssuedToken {
            id,
            token,
            expires_at,
        })
    }

    pub fn list_tokens(&self, org: &str) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.lock();
        require_org(&conn, org)?;
        let mut stmt = conn.prepare(
            "SELECT t.id, t.org_id, e.name, t.created_at, t.expires_at, t.revoked_at, t.uses
             FROM enrollment_tokens t JOIN environments e ON e.id = t.env_id
             WHERE t.org_id = ?1 ORDER BY t.created_at, t.id",
        )?;
        let rows = stmt.query_map([org], |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                org: r.get(1)?,
                environment: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
                revoked_at: r.get(5)?,
                uses: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a token by its id (`tok_…`) or by the token itself (`chet_…`).
    pub fn revoke_token(
        &self,
        id_or_token: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Revoked, StoreError> {
        let conn = self.lock();
        let tx = conn.transaction()?;
        let found: Option<(String, String, Option<String>)> = tx
            .query_row(
                "SELECT id, org_id, revoked_at FROM enrollment_tokens WHERE id = ?1 OR token_hash = ?2",
                params![id_or_token, secret::hash_secret(id_or_token)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        // The target is the token's id, never what was typed (which may be the token itself).
        let Some((id, org, revoked_at)) = found else {
            return Err(StoreError::NotFound(format!(
                "unknown token id `{id_or_token}` (see `token list ORG`)"
            )));
        };
        if revoked_at.is_some() {
            return Ok(Revoked::Already);
        }
        tx.execute(
            "UPDATE enrollment_tokens SET revoked_at = ?1 WHERE id = ?2",
            params![ts(now), id],
        )?;
        let details = serde_json::json!({});
        audit::record(
            &tx,
            actor,
            Action::EnrollmentTokenRevoke,
            &id,
            Some(&org),
            details,
            now,
        )?;
        tx.commit()?;
        Ok(Revoked::Now)
    }

    /// Enrolled hosts with their snapshot count, optionally of one org (and environment).
    pub fn list_hosts(
        &self,
        org: Option<&str>,
        environment: Option<&str>,
    ) -> Result<Vec<HostSummary>, StoreError> {
        let conn = self.lock();
        if let Some(org) = org {
            require_org(&conn, org)?;
        }
        let mut stmt = conn.prepare(
            "SELECT h.host_id, h.org_id, e.name, h.hostname, h.role, h.agent_version, h.enrolled_at,
                    h.last_seen, (SELECT COUNT(*) FROM snapshots s WHERE s.host_id = h.host_id)
             FROM hosts h JOIN environments e ON e.id = h.env_id
             WHERE (CAST(?1 AS TEXT) IS NULL OR h.org_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR e.name = ?2)
             ORDER BY h.org_id, e.name, h.hostname, h.host_id",
        )?;
        let rows = stmt.query_map(params![org, environment], |r| {
            Ok(HostSummary {
                host_id: parse_uuid(&r.get::<String>(0)?, 0)?,
                org: r.get(1)?,
                environment: r.get(2)?,
                hostname: r.get(3)?,
                role: r.get(4)?,
                agent_version: r.get(5)?,
                enrolled_at: r.get(6)?,
                last_seen: r.get(7)?,
                snapshots: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn count_snapshots(&self) -> Result<i64, StoreError> {
        Ok(self
            .lock()
            .query_row("SELECT COUNT(*) FROM snapshots", [], |r| r.get(0))?)
    }

    /// A stored snapshot's JSON, exactly as it was received.
    pub fn snapshot_body(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let blob: Option<Vec<u8>> = self
            .lock()
            .query_row(
                "SELECT body FROM snapshots WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        blob.map(|b| zstd::decode_all(b.as_slice()).map_err(StoreError::Compress))
            .transpose()
    }
}

// ---- the transactions behind the async operations ----

fn enroll(conn: &mut Connection, req: &EnrollRequest, now: OffsetDateTime) -> Result<Enrolled, EnrollError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let token: Option<(String, String, i64, String, Option<String>, String)> = tx
        .query_row(
            "SELECT t.id, t.org_id, t.env_id, t.expires_at, t.revoked_at, e.name
             FROM enrollment_tokens t JOIN environments e ON e.id = t.env_id
             WHERE t.token_hash = ?1",
            [secret::hash_secret(&req.token)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let Some((token_id, org, env_id, expires_at, revoked_at, environment)) = token else {
        return Err(EnrollError::UnknownToken);
    };
    if let Some(revoked_at) = revoked_at {
        return Err(EnrollError::TokenRevoked { revoked_at });
    }
    if expires_at <= ts(now) {
        return Err(EnrollError::TokenExpired {
            expired_at: expires_at,
        });
    }
    let terms: Vec<ContractTerm> = contracts_of(&tx, &org)?.iter().map(Contract::term).collect();
    let Some(tier) = entitlement::effective_tier(&terms, now.date()) else {
        return Err(EnrollError::ContractLapsed { org });
    };

    let host_id = req.host_id.to_string();
    let existing: Option<(String, i64, String)> = tx
        .query_row(
            "SELECT h.org_id, h.env_id, e.name FROM hosts h JOIN environments e ON e.id = h.env_id
             WHERE h.host_id = ?1",
            [&host_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let now_ts = ts(now);
    match existing {
        Some((other_org, other_env, other_env_name)) if other_org != org || other_env != env_id => {
            return Err(EnrollError::HostEnrolledElsewhere {
                host_id: req.host_id,
                org: other_org,
                environment: other_env_name,
            });
        }
        Some(_) => {
            tx.execute(
                "UPDATE hosts SET hostname = ?2, role = ?3, agent_version = ?4 WHERE host_id = ?1",
                params![host_id, req.hostname, req.role.as_str(), req.agent_version],
            )?;
        }
        None => {
            tx.execute(
                "INSERT INTO hosts (host_id, org_id, env_id, hostname, role, agent_version, enrolled_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    host_id,
                    org,
                    env_id,
                    req.hostname,
                    req.role.as_str(),
                    req.agent_version,
                    now_ts
                ],
            )?;
        }
    }
    // One live credential per host: a re-enrolled host's old credential stops working at once.
    tx.execute(
        "UPDATE credentials SET revoked_at = ?2 WHERE host_id = ?1 AND revoked_at IS NULL",
        params![host_id, now_ts],
    )?;
    let credential = secret::new_agent_credential().map_err(StoreError::from)?;
    tx.execute(
        "INSERT INTO credentials (credential_hash, host_id, created_at) VALUES (?1, ?2, ?3)",
        params![credential.hash(), host_id, now_ts],
    )?;
    tx.execute(
        "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?1",
        [&token_id],
    )?;
    tx.commit()?;
    Ok(Enrolled {
        credential,
        host_id: req.host_id,
        org,
        environment,
        tier,
    })
}

/// Runs on every agent post: one query for the credential, its host and the org's contracts (one
/// row per contract), a round trip less than two on PostgreSQL. It binds `CAST(?1 AS TEXT)`, not
/// `?1`: SQLite 3.40 plans a join again at every run once a bare `col = ?1` is bound (its
/// statement's reprepare count grows by one per run), which was a sixth of the request path.
fn authenticate_agent(
    conn: &mut Connection,
    credential: &str,
    today: Date,
) -> Result<Authentication, StoreError> {
    type Row = (String, Option<String>, String, i64, String, Option<ContractTerm>);
    let rows: Vec<Row> = conn
        .prepare_cached(
            "SELECT c.host_id, c.revoked_at, h.org_id, h.env_id, e.name, k.tier, k.start_date, k.end_date
             FROM credentials c
             JOIN hosts h ON h.host_id = c.host_id
             JOIN environments e ON e.id = h.env_id
             LEFT JOIN contracts k ON k.org_id = h.org_id
             WHERE c.credential_hash = CAST(?1 AS TEXT)",
        )?
        .query_map([secret::hash_secret(credential)], |r| {
            let tier: Option<String> = r.get(5)?;
            let term = match tier {
                None => None,
                Some(tier) => {
                    let start: String = r.get(6)?;
                    let end: String = r.get(7)?;
                    Some(ContractTerm {
                        tier: tier.parse().map_err(|e: String| conversion_error(5, e))?,
                        start: entitlement::parse_date(&start).map_err(|e| conversion_error(6, e))?,
                        end: entitlement::parse_date(&end).map_err(|e| conversion_error(7, e))?,
                    })
                }
            };
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, term))
        })?
        .collect::<Result<_, _>>()?;
    let terms: Vec<ContractTerm> = rows.iter().filter_map(|row| row.5).collect();
    let Some((host_id, revoked_at, org, env_id, environment, _)) = rows.into_iter().next() else {
        return Ok(Authentication::Unknown);
    };
    if revoked_at.is_some() {
        return Ok(Authentication::Revoked);
    }
    let host_id = Uuid::parse_str(&host_id)
        .map_err(|e| StoreError::Task(format!("corrupt host_id `{host_id}` in credentials: {e}")))?;
    Ok(Authentication::Agent(AgentIdentity {
        host_id,
        tier: entitlement::effective_tier(&terms, today),
        org,
        env_id,
        environment,
    }))
}

// ---- helpers ----

fn contracts_of(conn: &Connection, org: &str) -> Result<Vec<Contract>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, org_id, product, tier, start_date, end_date, created_at
         FROM contracts WHERE org_id = CAST(?1 AS TEXT) ORDER BY start_date, id",
    )?;
    let rows = stmt.query_map([org], contract_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A `contracts` row selected as `id, org_id, product, tier, start_date, end_date, created_at`.
pub(super) fn contract_row(r: &db::Row<'_>) -> db::Result<Contract> {
    let tier: String = r.get(3)?;
    let start: String = r.get(4)?;
    let end: String = r.get(5)?;
    Ok(Contract {
        id: r.get(0)?,
        org: r.get(1)?,
        product: r.get(2)?,
        tier: tier.parse().map_err(|e: String| conversion_error(3, e))?,
        start: entitlement::parse_date(&start).map_err(|e| conversion_error(4, e))?,
        end: entitlement::parse_date(&end).map_err(|e| conversion_error(5, e))?,
        created_at: r.get(6)?,
    })
}

fn require_org(conn: &Connection, org: &str) -> Result<(), StoreError> {
    let exists: bool = conn.query_row("SELECT EXISTS(SELECT 1 FROM orgs WHERE id = ?1)", [org], |r| {
        r.get(0)
    })?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!(
            "unknown org `{org}` (add it with `org add {org} --name NAME`)"
        )))
    }
}

fn require_environment(conn: &Connection, org: &str, environment: &str) -> Result<i64, StoreError> {
    require_org(conn, org)?;
    conn.query_row(
        "SELECT id FROM environments WHERE org_id = ?1 AND name = ?2",
        [org, environment],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| {
        StoreError::NotFound(format!(
            "unknown environment `{environment}` in org `{org}` (add it with `env add {org} {environment}`)"
        ))
    })
}

/// Ids and names that appear on command lines and in URLs: letters, digits, `.`, `_`, `-`.
fn check_name(what: &str, s: &str) -> Result<(), StoreError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid {what} `{s}`: use 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        )))
    }
}

/// Rescores every host of an org (after a suppression changed what counts).
fn rescore_org_hosts(conn: &Connection, org: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    let terms: Vec<ContractTerm> = contracts_of(conn, org)?.iter().map(Contract::term).collect();
    let tier = entitlement::effective_tier(&terms, now.date());
    let hosts: Vec<String> = conn
        .prepare("SELECT host_id FROM hosts WHERE org_id = ?1")?
        .query_map([org], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for h in hosts {
        risk::rescore_host(conn, parse_uuid(&h, 0)?, tier, now)?;
    }
    Ok(())
}

/// Fixed-width RFC 3339 UTC, so that text order is time order.
pub fn ts(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn parse_uuid(s: &str, column: usize) -> db::Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| conversion_error(column, e.to_string()))
}

fn conversion_error(column: usize, message: String) -> db::Error {
    db::Error::conversion(column, message)
}

/// JSON text of a value the store binds (an id list, rows for `json_to_recordset`).
fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Task(e.to_string()))
}

fn ser_display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[cfg(test)]
mod risk_tests;
#[cfg(test)]
mod tests;

/// Opens a SQLite connection with the store's settings; refuses a newer schema before writing.
pub(super) fn open_sqlite(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_sqlite(path)?;
    if let Some(sqlite) = conn.sqlite() {
        sqlite.busy_timeout(BUSY_TIMEOUT)?;
        sqlite.pragma_update(None, "foreign_keys", "ON")?;
        // FULL: the WAL is fsynced at every commit, so a 2xx means the snapshot survives a power cut.
        sqlite.pragma_update(None, "synchronous", "FULL")?;
        // 64 MiB of page cache (default 2 MiB): the console's per-org rollups walk index ranges
        // larger than the default, which would otherwise be re-read from the OS on every page view.
        sqlite.pragma_update(None, "cache_size", -65_536)?;
        // Savepoint journals (the ingest writer's fallback, one per snapshot) in memory, not in a
        // temporary file written page by page.
        sqlite.pragma_update(None, "temp_store", "MEMORY")?;
        migrations::check_not_newer(&conn)?;
        let mode: String = sqlite.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "SQLite did not switch to WAL mode");
        }
    }
    Ok(conn)
}

/// Stores for tests: SQLite in the test's directory, or, when `CALLHOME_TEST_DATABASE_URL` names a
/// PostgreSQL database, a fresh schema of it per store, so that the same tests run on both.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub const DATABASE_URL_VAR: &str = "CALLHOME_TEST_DATABASE_URL";

    pub fn postgres_url() -> Option<String> {
        std::env::var(DATABASE_URL_VAR).ok().filter(|u| !u.is_empty())
    }

    pub fn open(dir: &Path) -> Store {
        match postgres_url() {
            Some(url) => Store::connect_with(fresh_schema(&url)).expect("open the PostgreSQL test store"),
            None => Store::open_in(dir).expect("open the SQLite test store"),
        }
    }

    /// A new empty schema in the database `url` names, and a config whose connections use it.
    pub fn fresh_schema(url: &str) -> postgres::Config {
        let mut config: postgres::Config = url.parse().expect("test database URL");
        let schema = format!("t_{}", Uuid::new_v4().simple());
        // Through the store's connection type: the plain client refuses to run inside tokio.
        Connection::connect_postgres(&config)
            .and_then(|admin| admin.execute_batch(&format!("CREATE SCHEMA {schema}")))
            .expect("create a test schema");
        config.options(&format!("-c search_path={schema}"));
        config
    }
}
