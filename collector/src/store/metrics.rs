//! The gauges of `/metrics` that only the database knows, read in one short transaction at scrape
//! time (`http::metrics` caches them for a few seconds). Plain, standard SQL over the domain tables
//! so that it carries over to another database unchanged.

use time::OffsetDateTime;

use super::{Store, StoreError, ts};

/// What the database holds now, for Prometheus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Open entries of the critical queue.
    pub queue_open: u64,
    /// Open entries past their response deadline and not acknowledged.
    pub queue_overdue: u64,
    /// Hosts that sent a snapshot within the stale window.
    pub hosts_active: u64,
    /// Enrolled hosts that did not (including those that never sent one).
    pub hosts_stale: u64,
    /// Open findings of severity critical, all orgs.
    pub open_criticals: u64,
    /// Webhook attempts that failed, ever: each attempt counts in `attempts`, and a delivered
    /// alert's last attempt is the one that succeeded.
    pub webhook_failed_attempts: u64,
    /// Alerts still waiting after at least one failed attempt.
    pub webhook_failing: u64,
    /// Alerts given up after `webhook.max_age_secs`.
    pub webhook_given_up: u64,
}

impl Store {
    /// Reads [`Gauges`]; a host is stale when its last snapshot is older than `stale_after`.
    pub async fn metrics_gauges(
        &self,
        now: OffsetDateTime,
        stale_after: time::Duration,
    ) -> Result<Gauges, StoreError> {
        let now_ts = ts(now);
        let cutoff = ts(now - stale_after);
        self.blocking(move |conn| {
            // No transaction: gauges a few milliseconds apart are fine, and on SQLite a transaction
            // would take the write lock on every scrape.
            let count = |sql: &str, params: &[&dyn super::db::ToSql]| -> Result<u64, StoreError> {
                let n: i64 = conn.query_row(sql, params, |row| row.get(0))?;
                Ok(u64::try_from(n).unwrap_or(0))
            };
            let gauges = Gauges {
                queue_open: count("SELECT COUNT(*) FROM queue WHERE closed_at IS NULL", &[])?,
                queue_overdue: count(
                    "SELECT COUNT(*) FROM queue WHERE closed_at IS NULL AND acknowledged_at IS NULL \
                     AND response_deadline < ?1",
                    &[&now_ts],
                )?,
                hosts_active: count("SELECT COUNT(*) FROM hosts WHERE last_seen >= ?1", &[&cutoff])?,
                hosts_stale: count(
                    "SELECT COUNT(*) FROM hosts WHERE last_seen IS NULL OR last_seen < ?1",
                    &[&cutoff],
                )?,
                open_criticals: count(
                    "SELECT COUNT(*) FROM findings WHERE resolved_at IS NULL AND severity = 'critical'",
                    &[],
                )?,
                webhook_failed_attempts: count(
                    "SELECT COALESCE(SUM(attempts), 0) - COUNT(delivered_at) FROM webhook_outbox",
                    &[],
                )?,
                webhook_failing: count(
                    "SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL \
                     AND gave_up_at IS NULL AND attempts > 0",
                    &[],
                )?,
                webhook_given_up: count(
                    "SELECT COUNT(*) FROM webhook_outbox WHERE gave_up_at IS NOT NULL",
                    &[],
                )?,
            };
            Ok(gauges)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_empty_database_has_zero_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let gauges = store
            .metrics_gauges(OffsetDateTime::now_utc(), time::Duration::hours(2))
            .await
            .unwrap();
        assert_eq!(gauges, Gauges::default());
    }
}
