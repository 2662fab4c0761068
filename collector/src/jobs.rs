//! The collector's background work while it serves: the periodic judgements (`store::jobs`) on a
//! fixed interval, first right after start so a catalog upgrade re-judges at once.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::JobsConfig;
use crate::store::Store;
use crate::store::jobs::JobSettings;

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

/// Runs the judgements every `config.interval_secs`, and every few seconds rescores the
/// environments whose findings changed, until `stop` turns true.
pub async fn run(store: Store, config: JobsConfig, mut stop: watch::Receiver<bool>) {
    let settings = JobSettings::from(&config);
    let interval = Duration::from_secs(config.interval_secs);
    let mut next_full = tokio::time::Instant::now();
    while !*stop.borrow() {
        if tokio::time::Instant::now() >= next_full {
            next_full = tokio::time::Instant::now() + interval;
            let started = std::time::Instant::now();
            match store.run_jobs_async(OffsetDateTime::now_utc(), settings).await {
                Ok(r) => tracing::info!(
                    environments = r.environments,
                    hosts = r.hosts,
                    rejudged = r.rejudged,
                    opened = r.opened,
                    resolved = r.resolved,
                    queued = r.queued,
                    ms = started.elapsed().as_millis() as u64,
                    "periodic judgements done"
                ),
                Err(e) => tracing::error!(error = %e, "periodic judgements failed; retrying next interval"),
            }
        } else {
            match store.rescore_dirty_async(OffsetDateTime::now_utc()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(environments = n, "rescored environments whose findings changed"),
                Err(e) => tracing::warn!(error = %e, "rescoring changed environments failed"),
            }
        }
        let wake = next_full.min(tokio::time::Instant::now() + DIRTY_SCORES_EVERY);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.changed() => {}
        }
    }
}
