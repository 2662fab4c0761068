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

/// Runs the judgements every `config.interval_secs` until `stop` turns true.
pub async fn run(store: Store, config: JobsConfig, mut stop: watch::Receiver<bool>) {
    let settings = JobSettings::from(&config);
    let interval = Duration::from_secs(config.interval_secs);
    while !*stop.borrow() {
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
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}
