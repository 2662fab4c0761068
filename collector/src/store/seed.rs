//! Bulk writes for `callhome-collector seed`: synthetic orgs, contracts, environments, hosts and
//! snapshots in large transactions.
//!
//! Snapshots go through the same judgement ingest runs (`ingest::store_group`: trend point, host
//! findings, queue entries, host score), and the caller then runs the periodic jobs for fleet
//! findings and scores; only enrollment is skipped (a seeded host has no credential, so it cannot
//! post), and past days of score history are made up, since no job ran on them.

use super::db::{Connection, TransactionBehavior, params};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::ingest::{Item, store_group};
use super::{AgentIdentity, Contract, NewSnapshot, Store, StoreError, check_name, contracts_of, ts};
use crate::entitlement::{self, ContractTerm, Tier};

/// One synthetic org and everything under it.
#[derive(Debug, Clone)]
pub struct SeedOrg {
    pub id: String,
    pub name: String,
    /// Product line and term of each contract.
    pub contracts: Vec<(String, ContractTerm)>,
    pub environments: Vec<SeedEnvironment>,
}

#[derive(Debug, Clone)]
pub struct SeedEnvironment {
    pub name: String,
    pub hosts: Vec<SeedHost>,
}

#[derive(Debug, Clone)]
pub struct SeedHost {
    pub host_id: Uuid,
    pub hostname: String,
    pub role: String,
    pub agent_version: String,
    pub enrolled_at: OffsetDateTime,
    /// Oldest first; each with its zstd body already made (`body` is the JSON).
    pub snapshots: Vec<(NewSnapshot, Vec<u8>)>,
    /// When the collector last heard from it.
    pub last_seen: Option<OffsetDateTime>,
}

/// What a seeding batch wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedCounts {
    pub orgs: u64,
    pub environments: u64,
    pub hosts: u64,
    pub snapshots: u64,
}

impl Store {
    /// How many orgs the database holds (seeding refuses a used data directory).
    pub fn count_orgs(&self) -> Result<i64, StoreError> {
        Ok(self
            .lock()
            .query_row("SELECT COUNT(*) FROM orgs", [], |r| r.get(0))?)
    }

    /// Writes a batch of synthetic orgs in one transaction, judging each snapshot as ingest would.
    pub fn seed_orgs(&self, orgs: &[SeedOrg], now: OffsetDateTime) -> Result<SeedCounts, StoreError> {
        let conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut counts = SeedCounts::default();
        for org in orgs {
            seed_org(&tx, org, now, &mut counts)?;
        }
        tx.commit()?;
        Ok(counts)
    }

    /// Makes up the `days - 1` days of org and environment score history before today, walking back
    /// from each stored score with steps from `step` (clamped to 0..=100); existing days are kept.
    pub fn seed_score_history(
        &self,
        days: u32,
        now: OffsetDateTime,
        mut step: impl FnMut() -> f64,
    ) -> Result<u64, StoreError> {
        let conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let scores: Vec<(String, String, f64)> = tx
            .prepare("SELECT scope, scope_id, score FROM scores ORDER BY scope, scope_id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut written = 0;
        {
            let mut insert = tx.prepare(
                "INSERT INTO score_history (scope, scope_id, day, score, findings, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5) ON CONFLICT (scope, scope_id, day) DO NOTHING",
            )?;
            let today = now.date();
            for (scope, id, score) in scores {
                let mut value = score;
                for back in 1..i64::from(days) {
                    value = (value + step()).clamp(0.0, 100.0);
                    let day: Date = today - time::Duration::days(back);
                    let at = now - time::Duration::days(back);
                    written += insert.execute(params![
                        scope,
                        id,
                        day.to_string(),
                        (value * 10.0).round() / 10.0,
                        ts(at)
                    ])? as u64;
                }
            }
        }
        tx.commit()?;
        Ok(written)
    }

    /// Marks webhook events queued after `after_id` as never to be sent: seeded alerts are not real.
    pub fn seed_silence_webhooks(&self, after_id: i64, now: OffsetDateTime) -> Result<u64, StoreError> {
        let changed = self.lock().execute(
            "UPDATE webhook_outbox SET gave_up_at = ?2, last_error = 'seeded data: never sent'
             WHERE id > ?1 AND delivered_at IS NULL AND gave_up_at IS NULL",
            params![after_id, ts(now)],
        )?;
        Ok(changed as u64)
    }

    /// The newest webhook event id (0 when none).
    pub fn last_webhook_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .lock()
            .query_row("SELECT COALESCE(MAX(id), 0) FROM webhook_outbox", [], |r| {
                r.get(0)
            })?)
    }
}

fn seed_org(
    conn: &Connection,
    org: &SeedOrg,
    now: OffsetDateTime,
    counts: &mut SeedCounts,
) -> Result<(), StoreError> {
    check_name("org id", &org.id)?;
    let now_ts = ts(now);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO orgs (id, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO NOTHING",
        )?
        .execute(params![org.id, org.name, now_ts])?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!("org `{}` already exists", org.id)));
    }
    counts.orgs += 1;
    for (product, term) in &org.contracts {
        check_name("product", product)?;
        entitlement::validate_contract(term.start, term.end)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        conn.prepare_cached(
            "INSERT INTO contracts (org_id, product, tier, start_date, end_date, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            org.id,
            product,
            term.tier.as_str(),
            term.start.to_string(),
            term.end.to_string(),
            now_ts
        ])?;
    }
    let terms: Vec<ContractTerm> = contracts_of(conn, &org.id)?.iter().map(Contract::term).collect();
    let tier: Option<Tier> = entitlement::effective_tier(&terms, now.date());
    for env in &org.environments {
        check_name("environment name", &env.name)?;
        let env_id: i64 = conn
            .prepare_cached(
                "INSERT INTO environments (org_id, name, created_at) VALUES (?1, ?2, ?3) RETURNING id",
            )?
            .query_row(params![org.id, env.name, now_ts], |r| r.get(0))?;
        counts.environments += 1;
        for host in &env.hosts {
            conn.prepare_cached(
                "INSERT INTO hosts (host_id, org_id, env_id, hostname, role, agent_version, enrolled_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                host.host_id.to_string(),
                org.id,
                env_id,
                host.hostname,
                host.role,
                host.agent_version,
                ts(host.enrolled_at)
            ])?;
            counts.hosts += 1;
            let agent = AgentIdentity {
                host_id: host.host_id,
                org: org.id.clone(),
                env_id,
                environment: env.name.clone(),
                tier,
            };
            for (snapshot, compressed) in &host.snapshots {
                let received = snapshot.collected_at + time::Duration::seconds(2);
                let item = Item {
                    agent: &agent,
                    snapshot,
                    compressed,
                    now: received.min(now),
                };
                store_group(conn, &[item])?;
                counts.snapshots += 1;
            }
            conn.prepare_cached("UPDATE hosts SET last_seen = ?2 WHERE host_id = ?1")?
                .execute(params![host.host_id.to_string(), host.last_seen.map(ts)])?;
        }
    }
    Ok(())
}
