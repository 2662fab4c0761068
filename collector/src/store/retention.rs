//! Retention: raw snapshots are kept `snapshot_days` (their trend points go with them), except each
//! host's latest, which is kept whatever its age (the console and the fleet rules read it); the
//! daily score history is kept `score_history_days`. Deletes run in small batches, each its own
//! short transaction, so ingest's writer gets the database between them.

use std::time::Duration;

use time::OffsetDateTime;

use super::db::{Connection, params};
use super::{Store, StoreError, ts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    pub snapshot_days: u32,
    pub score_history_days: u32,
    /// Rows per delete transaction.
    pub batch: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            snapshot_days: 30,
            score_history_days: 730,
            batch: 500,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    pub snapshots: u64,
    pub score_history: u64,
    pub batches: u64,
}

/// Pause between batches: lets queued ingest groups commit before the next delete.
const BETWEEN_BATCHES: Duration = Duration::from_millis(5);

fn prune_snapshots(conn: &Connection, before: &str, batch: u32) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(super::db::TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "DELETE FROM snapshots WHERE id IN (
             SELECT s.id FROM snapshots s
             WHERE s.received_at < ?1
               AND NOT EXISTS (SELECT 1 FROM hosts h WHERE h.host_id = s.host_id AND h.latest_snapshot_id = s.id)
             ORDER BY s.received_at LIMIT ?2)",
        params![before, batch],
    )?;
    tx.commit()?;
    Ok(n)
}

fn prune_score_history(conn: &Connection, before_day: &str, batch: u32) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(super::db::TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "DELETE FROM score_history WHERE (scope, scope_id, day) IN (
             SELECT scope, scope_id, day FROM score_history WHERE day < ?1 LIMIT ?2)",
        params![before_day, batch],
    )?;
    tx.commit()?;
    Ok(n)
}

impl Store {
    /// Deletes what is past retention, batch by batch, releasing the database between batches.
    pub async fn prune(
        &self,
        now: OffsetDateTime,
        settings: RetentionSettings,
    ) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport::default();
        let batch = settings.batch.max(1);
        let before = ts(now - time::Duration::days(i64::from(settings.snapshot_days)));
        report.snapshots = self
            .in_batches(batch, &mut report.batches, move |conn| {
                prune_snapshots(conn, &before, batch)
            })
            .await?;
        let before_day = (now - time::Duration::days(i64::from(settings.score_history_days)))
            .date()
            .to_string();
        report.score_history = self
            .in_batches(batch, &mut report.batches, move |conn| {
                prune_score_history(conn, &before_day, batch)
            })
            .await?;
        Ok(report)
    }

    /// Runs `delete` (one batch, its own transaction) until a batch comes back short; returns the
    /// rows deleted.
    async fn in_batches(
        &self,
        batch: u32,
        batches: &mut u64,
        delete: impl Fn(&Connection) -> Result<usize, StoreError> + Clone + Send + 'static,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let delete = delete.clone();
            let n = self.blocking(move |conn| delete(conn)).await?;
            total += n as u64;
            *batches += 1;
            if n < batch as usize {
                return Ok(total);
            }
            tokio::time::sleep(BETWEEN_BATCHES).await;
        }
    }
}
