//! Delivery: from a collected snapshot to the collector's store, through the spool. `send` uses it
//! once; `run`, the daemon, loops over it on the schedule.
//!
//! Per cycle: collect → redact ([`prepare_snapshot`], the single place where redaction plugs in)
//! → spool (durable before the first send) → deliver the spool oldest first → one log line.
//! Between cycles the daemon retries what waits, gated by [`Gate`]: the backoff, the collector's
//! `Retry-After`, or "wait for the next run" (401, a give-up after `retry.max_elapsed_secs`).
//!
//! The daemon runs on one current-thread tokio runtime (each probe gets a thread of its own that
//! ends with it, so an idle daemon has one thread); SIGTERM and SIGINT end it at its next await
//! point. Nothing in the spool depends on how it stops: a file is deleted only after its 2xx, so a
//! stop mid-request leaves the file to be sent again, and the collector's answer to the replay is 200 `duplicate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use callhome_shared::Snapshot;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client_cert::{ClientIdentity, PendingKey};
use crate::config::Config;
use crate::deliver::{Backoff, Collector, DeliverError, Delivered, Disposition, encode_body};
use crate::probes::{AgentHealth, PROBES};
use crate::schedule::LastRunFile;
use crate::source::HostSource;
use crate::spool::{HealthBook, HealthRecord, LoadError, OsFs, Spool, SpoolError};
use crate::state::StateDir;
use crate::{exit, snapshot};

/// How long a 403 (lapsed contract, wrong org) keeps the agent from trying again, at least: the
/// contract will not be renewed in minutes, and a fleet of refused agents should cost the collector
/// little.
pub const FORBIDDEN_BACKOFF: Duration = Duration::from_secs(3600);

/// After a failed client certificate renewal, the next try waits at least this long (it is tried
/// before deliveries, which may follow each other closely while a spool drains).
const RENEWAL_RETRY: Duration = Duration::from_secs(900);

/// Longest single sleep of the daemon: it wakes at least this often to compare the schedule with
/// the wall clock, which a suspend or a clock step may have moved.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Collects a snapshot with `health` as the agent's own state, and redacts it. Every command that
/// shows or sends a snapshot builds it here.
pub async fn prepare_snapshot(
    config: &Arc<Config>,
    source: &Arc<dyn HostSource>,
    health: AgentHealth,
    host_id: Uuid,
) -> Result<Snapshot, crate::redact::RedactError> {
    let snapshot = snapshot::collect(config, source, health, host_id, PROBES).await;
    // Before anything is printed, spooled or sent (SPEC §6): nothing unredacted leaves this function.
    crate::redact::apply(&config.redaction, snapshot)
}

/// The agent's delivery health as the `agent` probe reports it, read without changing anything (for
/// `collect`): the spool as it is on disk and the saved counts.
pub fn agent_health_readonly(config: &Config) -> AgentHealth {
    let fs: Arc<dyn crate::spool::SpoolFs> = Arc::new(OsFs::default());
    let record = HealthBook::open(Arc::clone(&fs), &config.state_dir)
        .record()
        .clone();
    let spool_dir = config.state_dir.join(crate::spool::SPOOL_DIR);
    let entries = if spool_dir.is_dir() {
        Spool::open(&config.state_dir, config.spool_limits(), fs)
            .and_then(|s| s.entries())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    health_of(&record, &entries)
}

fn health_of(record: &HealthRecord, entries: &[crate::spool::Entry]) -> AgentHealth {
    AgentHealth {
        spool_depth: entries.len() as u64,
        spool_bytes: entries.iter().map(|e| e.bytes).sum(),
        dropped_since_last_delivery: record.dropped_unreported(),
        quarantined: record.quarantined_total,
        last_delivery: record.last_delivery,
        last_error: record.last_error.clone(),
    }
}

/// Why a delivery pass stopped before the spool was empty.
#[derive(Debug)]
pub enum Stopped {
    /// The collector (or the way to it) failed; the disposition says what next.
    Failed {
        error: DeliverError,
        disposition: Disposition,
    },
    /// Not enrolled, or the client cannot be set up: nothing to try until an operator acts.
    NotReady(String),
    /// The spool itself cannot be read.
    Local(SpoolError),
}

/// What one pass over the spool did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub delivered: Vec<(Uuid, Delivered)>,
    pub quarantined: Vec<(Uuid, String)>,
    pub stopped: Option<Stopped>,
    /// A file that should have gone to quarantine but could not be moved: the pass went on with
    /// the others, and ends as if stopped by it, so that the daemon does not loop on it.
    stuck: Option<SpoolError>,
}

impl PassReport {
    fn delivered(&self, id: Uuid) -> Option<Delivered> {
        self.delivered.iter().find(|(d, _)| *d == id).map(|(_, how)| *how)
    }
}

/// Result of spooling one snapshot.
#[derive(Debug)]
pub enum StoreOutcome {
    Spooled,
    /// Could not be written (a full disk): the caller may still send it from memory.
    NotSpooled(SpoolError),
}

/// The spool, the health record and the client, together.
#[derive(Debug)]
pub struct Courier {
    config: Arc<Config>,
    state: StateDir,
    spool: Spool,
    health: HealthBook,
    client: Option<(ClientKey, Collector)>,
    /// No client certificate renewal before this, after a failed one.
    renewal_not_before: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientKey {
    url: String,
    ca: Option<PathBuf>,
    pins: Vec<crate::pin::Pin>,
    /// The client certificate presented (DER); a renewed one makes a new client.
    certificate: Option<Vec<u8>>,
}

impl Courier {
    pub fn open(config: &Arc<Config>) -> Result<Courier, SpoolError> {
        let fs: Arc<dyn crate::spool::SpoolFs> = Arc::new(OsFs {
            write_pause: config.spool_write_pause(),
        });
        let spool = Spool::open(&config.state_dir, config.spool_limits(), Arc::clone(&fs))?;
        let health = HealthBook::open(fs, &config.state_dir);
        Ok(Courier {
            config: Arc::clone(config),
            state: StateDir::new(&config.state_dir),
            spool,
            health,
            client: None,
            renewal_not_before: None,
        })
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    pub fn spool_depth(&self) -> usize {
        self.spool.entries().map(|e| e.len()).unwrap_or(0)
    }

    /// The health a snapshot taken now reports, and the dropped mark it carries in the spool.
    pub fn health_now(&self) -> (AgentHealth, u64) {
        let entries = self.spool.entries().unwrap_or_default();
        let record = self.health.record();
        (health_of(record, &entries), record.dropped_total)
    }

    /// Spools one snapshot (invariant 1 of the spool); drops over the bounds are counted.
    pub fn store(&mut self, id: Uuid, dropped_mark: u64, body: &[u8]) -> StoreOutcome {
        match self.spool.store(id, dropped_mark, body) {
            Ok(stored) => {
                self.health.dropped(stored.dropped.len() as u64);
                tracing::debug!(snapshot = %id, bytes = body.len(), dropped = stored.dropped.len(), "spooled");
                StoreOutcome::Spooled
            }
            Err(error) => {
                if error.is_disk_full() {
                    tracing::error!(
                        snapshot = %id, %error,
                        "cannot spool the snapshot: the disk is full; it is sent from memory if the collector answers, and lost otherwise"
                    );
                } else {
                    tracing::error!(snapshot = %id, %error, "cannot spool the snapshot");
                }
                StoreOutcome::NotSpooled(error)
            }
        }
    }

    /// A snapshot that could be neither spooled nor sent: counted as dropped, so the next snapshot
    /// says so.
    pub fn lost(&mut self, id: Uuid) {
        tracing::error!(snapshot = %id, "snapshot lost: it could be neither spooled nor delivered");
        self.health.dropped(1);
    }

    fn client(&mut self) -> Result<(Collector, String), String> {
        let enrollment = self.state.load_enrollment().map_err(|e| e.to_string())?;
        let url = self
            .config
            .collector_url()
            .unwrap_or(&enrollment.collector_url)
            .to_string();
        let ca = self
            .config
            .collector_ca_file()
            .map(Path::to_path_buf)
            .or_else(|| self.state.collector_ca());
        // As for the CA: the config's pins win over those saved at enrollment.
        let mut pins = self.config.collector_pins().map_err(|e| e.to_string())?;
        if pins.is_empty() {
            pins = self.state.collector_pins().map_err(|e| e.to_string())?;
        }
        let identity = self.client_identity()?;
        let key = ClientKey {
            url,
            ca,
            pins,
            certificate: identity
                .as_ref()
                .and_then(|i| i.chain.first())
                .map(|c| c.to_vec()),
        };
        let client = match &self.client {
            Some((k, c)) if *k == key => c.clone(),
            _ => {
                let client = Collector::with_identity(
                    &key.url,
                    key.ca.as_deref(),
                    &key.pins,
                    identity.as_ref(),
                    self.config.collector_timeout(),
                    self.config.collector_proxy(),
                )
                .map_err(|e| e.to_string())?;
                self.client = Some((key, client.clone()));
                client
            }
        };
        Ok((client, enrollment.credential))
    }

    /// The client certificate to present: none when there is none, or when it expired (the
    /// handshake would fail; without one the collector says what is missing). A file others can read
    /// or that cannot be read stops delivery, as the enrollment's does.
    fn client_identity(&self) -> Result<Option<ClientIdentity>, String> {
        match self.state.client_identity().map_err(|e| e.to_string())? {
            Some(identity) if identity.is_expired(OffsetDateTime::now_utc()) => {
                tracing::warn!(not_after = %identity.not_after,
                    "the client certificate expired and is not presented: enroll this agent again");
                Ok(None)
            }
            other => Ok(other),
        }
    }

    /// Before a delivery: a new client certificate when less than a third of the current one's
    /// lifetime is left. An agent without one (enrolled by a collector that issued none) asks for
    /// none: it enrolls again to get one. A failure is logged and tried again after
    /// [`RENEWAL_RETRY`]; it never stops the delivery, which goes on with the current certificate.
    async fn renew_certificate_if_due(&mut self) {
        let now = OffsetDateTime::now_utc();
        // None, or unreadable or exposed (the delivery's `client()` reports that).
        let Ok(Some(current)) = self.state.client_identity() else {
            return;
        };
        if !current.renewal_due(now) || self.renewal_not_before.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let Ok(host_id) = self.state.load_enrollment().map(|e| e.host_id) else {
            return;
        };
        let Ok((client, credential)) = self.client() else {
            return;
        };
        let renewed = async {
            let pending = PendingKey::generate(host_id).map_err(|e| e.to_string())?;
            let cert = client
                .renew_certificate(pending.csr_pem(), &credential)
                .await
                .map_err(|e| e.to_string())?;
            let (identity, file) = pending.complete(&cert.certificate).map_err(|e| e.to_string())?;
            self.state
                .save_client_identity(Some(&file))
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(identity)
        }
        .await;
        match renewed {
            Ok(identity) => {
                tracing::info!(not_after = %identity.not_after, "client certificate renewed");
                self.renewal_not_before = None;
            }
            Err(error) => {
                tracing::warn!(%error, valid_until = %current.not_after,
                    "cannot renew the client certificate: delivery goes on with the current one; tried again later");
                self.renewal_not_before = Some(Instant::now() + RENEWAL_RETRY);
            }
        }
    }

    /// Sends one snapshot that is not in the spool (spooling failed).
    pub async fn send_unspooled(
        &mut self,
        id: Uuid,
        dropped_mark: u64,
        body: Vec<u8>,
    ) -> Result<Delivered, String> {
        let (client, credential) = self.client()?;
        match client.send_body(id, body, &credential).await {
            Ok(delivered) => {
                self.health.delivered(dropped_mark, OffsetDateTime::now_utc());
                Ok(delivered)
            }
            Err(error) => {
                let text = error.to_string();
                self.health.failed(&text, OffsetDateTime::now_utc());
                Err(text)
            }
        }
    }

    /// Delivers the spool oldest first, until it is empty or an attempt fails in a way that the next
    /// file would fail the same (anything but a refusal of that one snapshot).
    pub async fn deliver_pending(&mut self) -> PassReport {
        let mut report = PassReport::default();
        let entries = match self.spool.entries() {
            Ok(entries) => entries,
            Err(error) => {
                report.stopped = Some(Stopped::Local(error));
                return report;
            }
        };
        if entries.is_empty() {
            return report;
        }
        self.renew_certificate_if_due().await;
        let (client, credential) = match self.client() {
            Ok(c) => c,
            Err(message) => {
                self.health.failed(&message, OffsetDateTime::now_utc());
                report.stopped = Some(Stopped::NotReady(message));
                return report;
            }
        };
        for entry in entries {
            let record = match self.spool.load(&entry) {
                Ok(record) => record,
                Err(LoadError::Gone) => continue,
                Err(LoadError::Corrupt(reason)) => {
                    self.quarantine(entry.id, &reason, &mut report);
                    continue;
                }
                Err(LoadError::Io(error)) => {
                    report.stopped = Some(Stopped::Local(error));
                    break;
                }
            };
            let id = record.id;
            match client.send_body(id, record.body, &credential).await {
                Ok(delivered) => {
                    // The 2xx means committed: only now may the file go (spool invariant 3).
                    if let Err(error) = self.spool.remove(id) {
                        tracing::error!(snapshot = %id, %error, "delivered, but cannot remove it from the spool: it will be sent again (harmlessly)");
                    }
                    self.health
                        .delivered(record.dropped_mark, OffsetDateTime::now_utc());
                    let status = match delivered {
                        Delivered::Stored(_) => "stored",
                        Delivered::Duplicate(_) => "duplicate",
                    };
                    tracing::debug!(snapshot = %id, %status, "delivered");
                    report.delivered.push((id, delivered));
                }
                Err(error) => {
                    let disposition = error.disposition();
                    if disposition == Disposition::Quarantine {
                        let reason = format!("the collector refused it: {error}");
                        self.quarantine(id, &reason, &mut report);
                        continue;
                    }
                    self.health.failed(&error.to_string(), OffsetDateTime::now_utc());
                    report.stopped = Some(Stopped::Failed { error, disposition });
                    break;
                }
            }
        }
        if report.stopped.is_none()
            && let Some(error) = report.stuck.take()
        {
            report.stopped = Some(Stopped::Local(error));
        }
        report
    }

    fn quarantine(&mut self, id: Uuid, reason: &str, report: &mut PassReport) {
        match self.spool.quarantine(id, reason) {
            Ok(true) => {
                self.health.quarantined(1);
                report.quarantined.push((id, reason.to_string()));
            }
            Ok(false) => {}
            Err(error) => {
                // Cannot move it: leave it, deliver the others, and try again at the next run.
                tracing::error!(snapshot = %id, %error, "cannot move a spool file to quarantine");
                report.stuck = Some(error);
            }
        }
    }
}

/// Why `send` did not end with "stored": the exit code follows what happened to the snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Not delivered now; it waits in the spool (exit 75).
    #[error("snapshot {id} not delivered; it waits in the spool ({}): {cause}", dir.display())]
    Spooled { id: Uuid, dir: PathBuf, cause: String },
    /// The collector refused this snapshot for good; it is in quarantine (exit 65).
    #[error("snapshot {id} refused: {reason}")]
    Refused { id: Uuid, reason: String },
    /// Neither spooled nor delivered (exit 74).
    #[error("snapshot {id} lost: cannot spool it ({spool}) and cannot deliver it ({cause})")]
    Lost { id: Uuid, spool: String, cause: String },
}

impl SendError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SendError::Spooled { .. } => exit::TEMPFAIL,
            SendError::Refused { .. } => exit::DATAERR,
            SendError::Lost { .. } => exit::IOERR,
        }
    }
}

/// `send`: collect, spool, deliver the spool oldest first (one attempt each, no waiting), and say
/// what became of this snapshot. Returns the line for stdout.
pub async fn send_once(config: &Arc<Config>, source: &Arc<dyn HostSource>) -> anyhow::Result<String> {
    let state = StateDir::new(&config.state_dir);
    let enrollment = state.load_enrollment()?;
    let mut courier = Courier::open(config).context("cannot open the spool")?;
    let (health, mark) = courier.health_now();
    let dropped = health.dropped_since_last_delivery;
    let snapshot = prepare_snapshot(config, source, health, enrollment.host_id)
        .await
        .context("cannot redact the snapshot")?;
    snapshot
        .validate()
        .context("the snapshot breaks the schema (a bug in the agent)")?;
    let id = snapshot.id;
    tracing::debug!(snapshot = %id, probes_ms = snapshot.collection_ms, dropped, "taken");
    let body = encode_body(&snapshot)?;
    drop(snapshot);
    let stored = courier.store(id, mark, &body);
    let report = courier.deliver_pending().await;
    for (other, _) in report.delivered.iter().filter(|(d, _)| *d != id) {
        tracing::info!(snapshot = %other, "delivered a snapshot that waited in the spool");
    }
    if let Some(how) = report.delivered(id) {
        return Ok(result_line(id, how));
    }
    if let Some((_, reason)) = report.quarantined.iter().find(|(q, _)| *q == id) {
        return Err(SendError::Refused {
            id,
            reason: reason.clone(),
        }
        .into());
    }
    let cause = match &report.stopped {
        Some(Stopped::Failed { error, disposition }) => match disposition {
            Disposition::Reenroll => format!("{error}: re-enroll this agent with `callhome-agent enroll`"),
            _ => error.to_string(),
        },
        Some(Stopped::NotReady(message)) => message.clone(),
        Some(Stopped::Local(error)) => error.to_string(),
        None => "not attempted".to_string(),
    };
    match stored {
        StoreOutcome::Spooled => Err(SendError::Spooled {
            id,
            dir: courier.spool().dir().to_path_buf(),
            cause,
        }
        .into()),
        StoreOutcome::NotSpooled(spool_error) => {
            // Only if the spool was delivered up to this one does sending it now keep the order.
            if report.stopped.is_none() {
                match courier.send_unspooled(id, mark, body).await {
                    Ok(how) => return Ok(result_line(id, how)),
                    Err(cause) => {
                        courier.lost(id);
                        return Err(SendError::Lost {
                            id,
                            spool: spool_error.to_string(),
                            cause,
                        }
                        .into());
                    }
                }
            }
            courier.lost(id);
            Err(SendError::Lost {
                id,
                spool: spool_error.to_string(),
                cause,
            }
            .into())
        }
    }
}

fn result_line(id: Uuid, how: Delivered) -> String {
    match how {
        Delivered::Stored(_) => format!("stored {id}"),
        Delivered::Duplicate(_) => format!("already stored {id}"),
    }
}

/// When the daemon may try the collector again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Whenever there is something to send.
    Open,
    /// Not before this instant (backoff, `Retry-After`, 403).
    At(Instant),
    /// At the next scheduled run (401, not enrolled, gave up after `max_elapsed`).
    NextRun,
}

/// Waits for SIGTERM or SIGINT.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// `run`: the daemon. Returns when a signal asks it to stop.
pub async fn run(config: &Arc<Config>, source: &Arc<dyn HostSource>) -> anyhow::Result<()> {
    let schedule = config.schedule()?;
    let state = StateDir::new(&config.state_dir);
    let host_id = state.load_enrollment()?.host_id;
    let mut signals = Signals::install()?;
    let mut courier = Courier::open(config).context("cannot open the spool")?;
    let last_run = LastRunFile::new(&config.state_dir);
    let mut backoff = Backoff::new(config.retry_policy());
    let mut gate = Gate::Open;

    let now = OffsetDateTime::now_utc();
    let mut next_run = schedule
        .next_run(now, last_run.load())
        .context("the schedule never fires again")?;
    tracing::info!(
        cron = schedule.line(),
        splay_secs = schedule.splay().as_secs(),
        next_run = %next_run,
        spool_depth = courier.spool_depth(),
        "agent started"
    );

    // Whatever waits from before goes first, before the first slot.
    let mut stop: Option<&'static str> = None;
    tokio::select! {
        report = courier.deliver_pending() => {
            gate = after_pass(&report, &mut backoff, config);
        }
        signal = signals.recv() => stop = Some(signal),
    }

    while stop.is_none() {
        let wake = {
            let until_run = duration_until(next_run);
            let until_gate = match gate {
                Gate::At(at) if courier.spool_depth() > 0 => {
                    Some(at.saturating_duration_since(Instant::now()))
                }
                Gate::Open if courier.spool_depth() > 0 => Some(Duration::ZERO),
                _ => None,
            };
            until_gate.map_or(until_run, |g| g.min(until_run)).min(MAX_SLEEP)
        };
        tokio::select! {
            _ = tokio::time::sleep(wake) => {}
            signal = signals.recv() => { stop = Some(signal); break; }
        }

        let now = OffsetDateTime::now_utc();
        if now >= next_run {
            if gate == Gate::NextRun {
                gate = Gate::Open;
            }
            tokio::select! {
                g = cycle(config, source, host_id, &mut courier, &mut backoff, gate) => gate = g,
                signal = signals.recv() => { stop = Some(signal); break; }
            }
            let ran = OffsetDateTime::now_utc();
            last_run.save(ran);
            next_run = match schedule.next_run(ran, Some(ran)) {
                Some(t) => t,
                None => {
                    tracing::warn!(cron = schedule.line(), "the schedule never fires again: stopping");
                    break;
                }
            };
        } else if gate_open(gate) && courier.spool_depth() > 0 {
            tokio::select! {
                report = courier.deliver_pending() => gate = after_pass(&report, &mut backoff, config),
                signal = signals.recv() => { stop = Some(signal); break; }
            }
        }
    }
    tracing::info!(
        signal = stop.unwrap_or("none"),
        spool_depth = courier.spool_depth(),
        "agent stopping; the spool is kept"
    );
    Ok(())
}

fn gate_open(gate: Gate) -> bool {
    match gate {
        Gate::Open => true,
        Gate::At(at) => Instant::now() >= at,
        Gate::NextRun => false,
    }
}

fn duration_until(t: OffsetDateTime) -> Duration {
    Duration::try_from(t - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO)
}

/// One scheduled run: collect, redact, spool, deliver (if the gate allows), one log line.
async fn cycle(
    config: &Arc<Config>,
    source: &Arc<dyn HostSource>,
    host_id: Uuid,
    courier: &mut Courier,
    backoff: &mut Backoff,
    gate: Gate,
) -> Gate {
    let (health, mark) = courier.health_now();
    let dropped_reported = health.dropped_since_last_delivery;
    let snapshot = match prepare_snapshot(config, source, health, host_id).await {
        Ok(snapshot) => snapshot,
        Err(error) => {
            tracing::error!(%error, "cannot redact the snapshot: not spooled, not sent");
            return gate;
        }
    };
    if let Err(error) = snapshot.validate() {
        tracing::error!(snapshot = %snapshot.id, %error, "the snapshot breaks the schema (a bug in the agent): not sent");
        return gate;
    }
    let id = snapshot.id;
    let probes_ms = snapshot.collection_ms;
    let body = match encode_body(&snapshot) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(snapshot = %id, %error, "cannot encode the snapshot");
            return gate;
        }
    };
    drop(snapshot);
    let stored = courier.store(id, mark, &body);

    let mut gate = gate;
    let mut outcome = "spooled";
    if gate_open(gate) {
        let report = courier.deliver_pending().await;
        gate = after_pass(&report, backoff, config);
        if report.delivered(id).is_some() {
            outcome = "delivered";
        } else if report.quarantined.iter().any(|(q, _)| *q == id) {
            outcome = "quarantined";
        }
        if let StoreOutcome::NotSpooled(_) = &stored {
            outcome = "lost";
            if report.stopped.is_none() && courier.send_unspooled(id, mark, body).await.is_ok() {
                outcome = "delivered";
            }
        }
    } else if let StoreOutcome::NotSpooled(_) = &stored {
        outcome = "lost";
    }
    if outcome == "lost" {
        courier.lost(id);
    }
    tracing::info!(
        snapshot = %id,
        probes_ms,
        %outcome,
        spool_depth = courier.spool_depth(),
        dropped = dropped_reported,
        "cycle"
    );
    gate
}

/// The gate after a delivery pass, with the log line a failure deserves.
fn after_pass(report: &PassReport, backoff: &mut Backoff, config: &Config) -> Gate {
    if !report.delivered.is_empty() || report.stopped.is_none() {
        backoff.reset();
    }
    match &report.stopped {
        None => Gate::Open,
        Some(Stopped::Failed { error, disposition }) => match disposition {
            Disposition::Retry { after } => match backoff.next_delay(Instant::now(), *after) {
                Some(delay) => {
                    tracing::warn!(
                        %error,
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        retry_after_secs = after.map(|a| a.as_secs()),
                        "delivery failed; the snapshots stay in the spool"
                    );
                    Gate::At(Instant::now() + delay)
                }
                None => {
                    tracing::warn!(
                        %error,
                        max_elapsed_secs = backoff.policy().max_elapsed.as_secs(),
                        "delivery keeps failing: trying again at the next scheduled run"
                    );
                    Gate::NextRun
                }
            },
            Disposition::Reenroll => {
                tracing::error!(
                    %error,
                    "the collector does not accept this agent's credential: re-enroll with `callhome-agent enroll`; the snapshots stay in the spool"
                );
                Gate::NextRun
            }
            Disposition::Forbidden => {
                let wait = FORBIDDEN_BACKOFF.max(config.retry_policy().cap);
                tracing::error!(
                    %error,
                    retry_in_secs = wait.as_secs(),
                    "the collector refuses this agent (lapsed contract or wrong org?); the snapshots stay in the spool"
                );
                Gate::At(Instant::now() + wait)
            }
            // Handled inside the pass; never a reason to stop.
            Disposition::Quarantine => Gate::Open,
        },
        Some(Stopped::NotReady(message)) => {
            tracing::error!(error = %message, "cannot deliver: trying again at the next scheduled run");
            Gate::NextRun
        }
        Some(Stopped::Local(error)) => {
            tracing::error!(%error, "cannot read the spool: trying again at the next scheduled run");
            Gate::NextRun
        }
    }
}

/// What `spool` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SpoolReport {
    pub dir: PathBuf,
    pub max_files: u64,
    pub max_bytes: u64,
    pub depth: u64,
    pub bytes: u64,
    pub waiting: Vec<Waiting>,
    pub dropped_unreported: u64,
    pub dropped_total: u64,
    pub quarantined_total: u64,
    pub quarantine: Vec<QuarantineEntry>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_delivery: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339::option")]
    pub taken_at: Option<OffsetDateTime>,
    pub age_secs: Option<u64>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantineEntry {
    pub file: String,
    pub reason: String,
}

/// The state of the spool, for `spool`.
pub fn spool_report(config: &Config) -> Result<SpoolReport, SpoolError> {
    let fs: Arc<dyn crate::spool::SpoolFs> = Arc::new(OsFs::default());
    let spool = Spool::open(&config.state_dir, config.spool_limits(), Arc::clone(&fs))?;
    let record = HealthBook::open(fs, &config.state_dir).record().clone();
    let now = OffsetDateTime::now_utc();
    let entries = spool.entries()?;
    let waiting: Vec<Waiting> = entries
        .iter()
        .map(|e| {
            let taken_at = e.taken_at();
            Waiting {
                id: e.id,
                taken_at,
                age_secs: taken_at.map(|t| u64::try_from((now - t).whole_seconds()).unwrap_or(0)),
                bytes: e.bytes,
            }
        })
        .collect();
    let quarantine = spool
        .quarantined()?
        .into_iter()
        .map(|q| QuarantineEntry {
            file: q.file,
            reason: q.reason,
        })
        .collect();
    Ok(SpoolReport {
        dir: spool.dir().to_path_buf(),
        max_files: spool.limits().max_files,
        max_bytes: spool.limits().max_bytes,
        depth: waiting.len() as u64,
        bytes: waiting.iter().map(|w| w.bytes).sum(),
        waiting,
        dropped_unreported: record.dropped_unreported(),
        dropped_total: record.dropped_total,
        quarantined_total: record.quarantined_total,
        quarantine,
        last_delivery: record.last_delivery,
        last_error: record.last_error,
        last_error_at: record.last_error_at,
    })
}

/// `1h02m`, `3m05s`, `42s`: an age for people.
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(human_age(42), "42s");
        assert_eq!(human_age(185), "3m05s");
        assert_eq!(human_age(3720), "1h02m");
        assert_eq!(human_age(90_000), "1d01h");
    }

    #[test]
    fn send_errors_exit_as_the_issue_says() {
        let id = Uuid::now_v7();
        let spooled = SendError::Spooled {
            id,
            dir: "/x".into(),
            cause: "down".into(),
        };
        assert_eq!(spooled.exit_code(), 75);
        assert_eq!(
            SendError::Refused {
                id,
                reason: "422".into()
            }
            .exit_code(),
            65
        );
        assert_eq!(
            SendError::Lost {
                id,
                spool: "ENOSPC".into(),
                cause: "down".into()
            }
            .exit_code(),
            74
        );
    }
}
