//! Background jobs run once per period across all replicas on one database: a replica runs a job
//! only after claiming the job's lease for the current period in the database. The claim is one
//! conditional upsert, atomic on SQLite (one writer) and on PostgreSQL (the second of two racing
//! upserts waits for the first to commit, then finds the period taken). A replica that dies while
//! running leaves a lease that expires; another replica then takes the period over.

use time::OffsetDateTime;

use super::db::{Connection, OptionalExtension, params};
use super::{Store, StoreError, ts};

/// A claimed run of a job; [`Store::finish_job`] records its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    pub period: i64,
    pub run_id: i64,
}

/// One recorded run (for `jobs runs` and the replica test).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobRun {
    pub name: String,
    pub period: i64,
    pub holder: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Option<String>,
}

/// The period `now` falls in for a job run every `every_secs`.
pub fn period_of(now: OffsetDateTime, every_secs: u64) -> i64 {
    now.unix_timestamp() / i64::try_from(every_secs.max(1)).unwrap_or(i64::MAX)
}

pub fn claim(
    conn: &Connection,
    name: &str,
    period: i64,
    holder: &str,
    lease: time::Duration,
    now: OffsetDateTime,
) -> Result<Option<Claim>, StoreError> {
    let tx = conn.transaction_with_behavior(super::db::TransactionBehavior::Immediate)?;
    let now_ts = ts(now);
    // Taken when the stored period is older, or it is this period's and its holder's lease ran
    // out before it finished.
    let won: Option<String> = tx
        .query_row(
            "INSERT INTO job_leases (name, period, holder, started_at, lease_until, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL)
             ON CONFLICT(name) DO UPDATE SET period = excluded.period, holder = excluded.holder,
                 started_at = excluded.started_at, lease_until = excluded.lease_until, finished_at = NULL
             WHERE job_leases.period < excluded.period
                OR (job_leases.period = excluded.period AND job_leases.finished_at IS NULL
                    AND job_leases.lease_until < excluded.started_at)
             RETURNING holder",
            params![name, period, holder, now_ts, ts(now + lease)],
            |r| r.get(0),
        )
        .optional()?;
    if won.is_none() {
        return Ok(None);
    }
    let run_id: i64 = tx.query_row(
        "INSERT INTO job_runs (name, period, holder, started_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        params![name, period, holder, now_ts],
        |r| r.get(0),
    )?;
    tx.commit()?;
    Ok(Some(Claim {
        name: name.to_owned(),
        period,
        run_id,
    }))
}

pub fn finish(
    conn: &Connection,
    claim: &Claim,
    holder: &str,
    outcome: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute(
        "UPDATE job_leases SET finished_at = ?3 WHERE name = ?1 AND holder = ?2 AND period = ?4",
        params![claim.name, holder, ts(now), claim.period],
    )?;
    tx.execute(
        "UPDATE job_runs SET finished_at = ?2, outcome = ?3 WHERE id = ?1",
        params![claim.run_id, ts(now), outcome],
    )?;
    tx.commit()?;
    Ok(())
}

pub fn runs(conn: &Connection, name: Option<&str>, limit: u32) -> Result<Vec<JobRun>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT name, period, holder, started_at, finished_at, outcome FROM job_runs
             WHERE CAST(?1 AS TEXT) IS NULL OR name = ?1 ORDER BY id DESC LIMIT ?2",
        )?
        .query_map(params![name, limit], |r| {
            Ok(JobRun {
                name: r.get(0)?,
                period: r.get(1)?,
                holder: r.get(2)?,
                started_at: r.get(3)?,
                finished_at: r.get(4)?,
                outcome: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

impl Store {
    /// Claims job `name` for the period of `now` (a period lasts `every_secs`); `None` when another
    /// replica has it or ran it already.
    pub async fn claim_job(
        &self,
        name: &'static str,
        every_secs: u64,
        holder: String,
        lease: time::Duration,
        now: OffsetDateTime,
    ) -> Result<Option<Claim>, StoreError> {
        self.blocking(move |conn| claim(conn, name, period_of(now, every_secs), &holder, lease, now))
            .await
    }

    pub async fn finish_job(
        &self,
        claim: Claim,
        holder: String,
        outcome: String,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.blocking(move |conn| finish(conn, &claim, &holder, &outcome, now))
            .await
    }

    pub fn job_runs(&self, name: Option<&str>, limit: u32) -> Result<Vec<JobRun>, StoreError> {
        runs(&self.lock(), name, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn one_claim_per_period_and_takeover_after_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(dir.path());
        let other = Store::open_location(store.location()).unwrap();
        let t0 = datetime!(2026-11-29 12:00:00 UTC);
        let lease = time::Duration::minutes(5);
        let period = period_of(t0, 300);
        let a = claim(&store.lock(), "judgements", period, "a", lease, t0)
            .unwrap()
            .unwrap();
        // The other replica, same period: taken.
        assert!(
            claim(&other.lock(), "judgements", period, "b", lease, t0)
                .unwrap()
                .is_none()
        );
        finish(&store.lock(), &a, "a", "ok", t0 + time::Duration::seconds(3)).unwrap();
        // Finished: not run again in this period, even after the lease.
        let later = t0 + time::Duration::minutes(6);
        assert!(
            claim(&other.lock(), "judgements", period, "b", lease, later)
                .unwrap()
                .is_none()
        );
        // Next period: whoever asks first.
        let b = claim(&other.lock(), "judgements", period + 1, "b", lease, later)
            .unwrap()
            .unwrap();
        assert_eq!(b.period, period + 1);
        // b dies without finishing: a takes the period over once the lease has run out, not before.
        assert!(
            claim(&store.lock(), "judgements", period + 1, "a", lease, later)
                .unwrap()
                .is_none()
        );
        let after_lease = later + lease + time::Duration::seconds(1);
        assert!(
            claim(&store.lock(), "judgements", period + 1, "a", lease, after_lease)
                .unwrap()
                .is_some()
        );
        // Other jobs are independent.
        assert!(
            claim(&store.lock(), "retention", period, "a", lease, t0)
                .unwrap()
                .is_some()
        );
        let runs = runs(&store.lock(), Some("judgements"), 10).unwrap();
        let holders: Vec<(&str, i64)> = runs.iter().map(|r| (r.holder.as_str(), r.period)).collect();
        assert_eq!(holders, vec![("a", period + 1), ("b", period + 1), ("a", period)]);
        assert_eq!(runs[2].outcome.as_deref(), Some("ok"));
    }
}
