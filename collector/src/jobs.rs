//! The collector's background work while it serves: the periodic judgements (`store::jobs`),
//! rescoring of changed environments and retention, each once per period across all replicas
//! (`store::coord`). A replica that starts in a period nobody has run yet runs it at once, so a
//! catalog upgrade re-judges within one `jobs.interval_secs` at most.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::JobsConfig;
use crate::store::Store;
use crate::store::jobs::JobSettings;
use crate::store::retention::RetentionSettings;

impl From<&JobsConfig> for JobSettings {
    fn from(c: &JobsConfig) -> Self {
        JobSettings {
            default_interval_secs: c.default_schedule_interval_secs,
            trend_window_days: i64::from(c.trend_window_days),
            ..JobSettings::default()
        }
    }
}

/// How soon a changed host score reaches its environment's and org's scores.
const DIRTY_SCORES_EVERY: Duration = Duration::from_secs(10);
/// Retention runs this often; each run deletes in small batches.
const RETENTION_EVERY_SECS: u64 = 3600;

/// This replica's name in job leases: host, process and a random part (a restarted process is a
/// new holder).
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "collector".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

/// Runs `work` if this replica wins job `name`'s lease for the current period, and records the end.
async fn once_per_period<T, F, Fut>(
    store: &Store,
    holder: &str,
    name: &'static str,
    every_secs: u64,
    work: F,
) -> Option<T>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
    T: std::fmt::Debug,
{
    // A run that dies is taken over after this; runs are seconds long, intervals minutes.
    let lease = time::Duration::seconds(i64::try_from(every_secs.max(60)).unwrap_or(i64::MAX));
    let claim = match store
        .claim_job(
            name,
            every_secs,
            holder.to_owned(),
            lease,
            OffsetDateTime::now_utc(),
        )
        .await
    {
        Ok(Some(claim)) => claim,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(job = name, error = %e, "cannot claim the job's lease");
            return None;
        }
    };
    let result = work().await;
    let outcome = match &result {
        Ok(r) => format!("ok: {r:?}"),
        Err(e) => format!("failed: {e}"),
    };
    if let Err(e) = store
        .finish_job(claim, holder.to_owned(), outcome, OffsetDateTime::now_utc())
        .await
    {
        tracing::warn!(job = name, error = %e, "cannot record the job's end");
    }
    match result {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(job = name, error = %e, "job failed; retrying next period");
            None
        }
    }
}

/// Runs the judgements every `config.interval_secs`, retention hourly and, every few seconds,
/// rescores the environments whose findings changed, until `stop` turns true. Each runs on one
/// replica per period (`store::coord`).
pub async fn run(store: Store, config: JobsConfig, mut stop: watch::Receiver<bool>) {
    let settings = JobSettings::from(&config);
    let retention = RetentionSettings {
        snapshot_days: config.snapshot_retention_days,
        score_history_days: config.score_history_days,
        ..RetentionSettings::default()
    };
    let holder = replica_id();
    tracing::info!(replica = %holder, "background jobs start");
    let tick = Duration::from_secs(config.interval_secs.clamp(1, DIRTY_SCORES_EVERY.as_secs()));
    while !*stop.borrow() {
        let started = std::time::Instant::now();
        let full = once_per_period(&store, &holder, "judgements", config.interval_secs, || {
            store.run_jobs_async(OffsetDateTime::now_utc(), settings)
        })
        .await;
        if let Some(r) = full {
            tracing::info!(
                environments = r.environments,
                hosts = r.hosts,
                rejudged = r.rejudged,
                opened = r.opened,
                resolved = r.resolved,
                queued = r.queued,
                ms = started.elapsed().as_millis() as u64,
                "periodic judgements done"
            );
        }
        if let Some(n) = once_per_period(&store, &holder, "rescore", DIRTY_SCORES_EVERY.as_secs(), || {
            store.rescore_dirty_async(OffsetDateTime::now_utc())
        })
        .await
            && n > 0
        {
            tracing::debug!(environments = n, "rescored environments whose findings changed");
        }
        if let Some(r) = once_per_period(&store, &holder, "retention", RETENTION_EVERY_SECS, || {
            store.prune(OffsetDateTime::now_utc(), retention)
        })
        .await
            && r.snapshots + r.score_history > 0
        {
            tracing::info!(
                snapshots = r.snapshots,
                score_history = r.score_history,
                "retention pruned"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => {}
        }
    }
}
