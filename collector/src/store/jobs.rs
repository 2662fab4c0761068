//! The periodic judgements that no single snapshot triggers: fleet rules (staleness, drift across
//! hosts), trend rules (capacity forecasts), environment and org scores with their daily history,
//! and the re-judgement of every host's latest snapshot when the rule catalog changes.
//!
//! Each environment's fleet rules are judged in one short transaction, its hosts' trends and scores
//! in small batches of hosts, so ingest never waits long for a job.

use super::db::{Connection, OptionalExtension, TransactionBehavior, params};
use callhome_shared::decode_snapshot;
use callhome_shared::rules::{self, FleetHost, FleetInput, HostTrend, TrendPoint};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::risk::{self, Judgement, Source};
use super::{Contract, StoreError, conversion_error, parse_uuid, ts};
use crate::entitlement::{self, ContractTerm, Tier};

/// What the jobs need to know that the data does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// Schedule interval assumed for agents that do not report theirs.
    pub default_interval_secs: u64,
    /// How far back capacity forecasts look.
    pub trend_window_days: i64,
    /// At most this many recent points per host feed a forecast.
    pub trend_max_points: u32,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            // The agent's default: hourly, with up to 15 minutes of splay.
            default_interval_secs: 3600 + 900,
            trend_window_days: 30,
            trend_max_points: 1000,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobReport {
    pub environments: u32,
    pub hosts: u32,
    /// Hosts whose latest snapshot was judged again under a new catalog version.
    pub rejudged: u32,
    pub opened: u32,
    pub resolved: u32,
    pub queued: u32,
}

impl JobReport {
    fn add(&mut self, a: &risk::Applied) {
        self.opened += a.opened;
        self.resolved += a.resolved;
        self.queued += a.queued;
    }
}

const CATALOG_KEY: &str = "catalog_version";

/// Runs every periodic judgement once.
pub fn run(
    conn: &mut Connection,
    now: OffsetDateTime,
    settings: &JobSettings,
) -> Result<JobReport, StoreError> {
    let mut report = JobReport::default();
    rejudge_if_catalog_changed(conn, now, &mut report)?;
    // This run rescores every environment and org.
    conn.execute("DELETE FROM dirty_scores WHERE since <= ?1", [ts(now)])?;
    let envs: Vec<(i64, String)> = conn
        .prepare("SELECT id, org_id FROM environments ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut orgs: Vec<(String, Option<Tier>)> = Vec::new();
    for (env_id, org) in envs {
        let tier = tier_of(conn, &org, now)?;
        if !orgs.iter().any(|(o, _)| *o == org) {
            orgs.push((org.clone(), tier));
        }
        // A lapsed org sends nothing; judging its silence would only make noise.
        if tier.is_some() {
            judge_environment(conn, env_id, &org, tier, now, settings, &mut report)?;
        }
        report.environments += 1;
    }
    for (org, tier) in orgs {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        risk::rescore_fleet(&tx, "org", &org, tier, now)?;
        tx.commit()?;
    }
    Ok(report)
}

/// Rescores the environments marked dirty at ingest, and their orgs; returns how many.
pub fn rescore_dirty(conn: &mut Connection, now: OffsetDateTime) -> Result<u32, StoreError> {
    let dirty: Vec<(i64, String)> = conn
        .prepare("SELECT env_id, org_id FROM dirty_scores ORDER BY since LIMIT 1000")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut orgs: Vec<String> = Vec::new();
    for (env_id, org) in &dirty {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let tier = tier_of(&tx, org, now)?;
        tx.execute("DELETE FROM dirty_scores WHERE env_id = ?1", [env_id])?;
        risk::rescore_fleet(&tx, "env", &env_id.to_string(), tier, now)?;
        tx.commit()?;
        if !orgs.contains(org) {
            orgs.push(org.clone());
        }
    }
    for org in orgs {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let tier = tier_of(&tx, &org, now)?;
        risk::rescore_fleet(&tx, "org", &org, tier, now)?;
        tx.commit()?;
    }
    Ok(u32::try_from(dirty.len()).unwrap_or(u32::MAX))
}

fn tier_of(conn: &Connection, org: &str, now: OffsetDateTime) -> Result<Option<Tier>, StoreError> {
    let terms: Vec<ContractTerm> = super::contracts_of(conn, org)?
        .iter()
        .map(Contract::term)
        .collect();
    Ok(entitlement::effective_tier(&terms, now.date()))
}

/// Hosts whose trend and score one transaction of [`judge_environment`] judges. All of an
/// environment's in one transaction held their rows (PostgreSQL) or the write lock (SQLite) for the
/// whole run, and every snapshot of them waited that long (seen as 0.5 s stalls at 1,500 posts/s).
const HOSTS_PER_TRANSACTION: usize = 32;

/// The fleet rules over one environment in one transaction, then each host's trend and score in
/// transactions of [`HOSTS_PER_TRANSACTION`] hosts, then the environment's score.
fn judge_environment(
    conn: &Connection,
    env_id: i64,
    org: &str,
    tier: Option<Tier>,
    now: OffsetDateTime,
    settings: &JobSettings,
    report: &mut JobReport,
) -> Result<(), StoreError> {
    let fleet = Judgement {
        org,
        env_id,
        host: None,
        source: Source::Fleet,
        observed_at: now,
        snapshot: None,
        tier,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (input, fleet_applied, states) = judge_fleet(&tx, &fleet, settings, report)?;
    tx.commit()?;
    // Only what changed is judged again: a host's trend when it sent a snapshot since the last
    // run, its score when its findings changed or today has no score yet. At 50,000 hosts a run
    // otherwise rewrites every host each time and holds the writer for long.
    let since = ts(now - time::Duration::days(settings.trend_window_days));
    let today = now.date().to_string();
    for hosts in input.hosts.chunks(HOSTS_PER_TRANSACTION) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for h in hosts {
            let id = h.host_id.to_string();
            let state = states.get(&id).cloned().unwrap_or_default();
            let mut touched = fleet_applied.touched.contains(&Some(id.clone()));
            let new_points = state.latest_collected_at.as_ref().is_some_and(|latest| {
                state
                    .trend_judged_at
                    .as_ref()
                    .is_none_or(|judged| latest > judged)
            });
            if new_points {
                let trend = HostTrend {
                    host_id: h.host_id,
                    hostname: h.hostname.clone(),
                    points: trend_points(&tx, h.host_id, &since, settings.trend_max_points)?,
                };
                let found: Vec<risk::Located> = rules::evaluate_trend(&trend)
                    .into_iter()
                    .map(|f| (Some(h.host_id), f))
                    .collect();
                let judgement = Judgement {
                    host: Some(h.host_id),
                    source: Source::Trend,
                    ..fleet.clone()
                };
                let applied = risk::apply(&tx, &judgement, &found, now)?;
                touched |= !applied.touched.is_empty();
                report.add(&applied);
                tx.prepare_cached(
                    "UPDATE hosts SET trend_judged_at = latest_collected_at WHERE host_id = ?1",
                )?
                .execute([&id])?;
            }
            let stale_score = if risk::is_scored(tier) {
                state.history_day.as_deref() != Some(today.as_str())
            } else {
                state.scored
            };
            if touched || stale_score {
                risk::rescore_host(&tx, h.host_id, tier, now)?;
            }
            report.hosts += 1;
        }
        tx.commit()?;
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    risk::rescore_fleet(&tx, "env", &env_id.to_string(), tier, now)?;
    tx.commit()?;
    Ok(())
}

type FleetJudged = (
    FleetInput,
    risk::Applied,
    std::collections::HashMap<String, HostState>,
);

/// The fleet rules over one environment; what its hosts' judgement then needs.
fn judge_fleet(
    conn: &Connection,
    fleet: &Judgement,
    settings: &JobSettings,
    report: &mut JobReport,
) -> Result<FleetJudged, StoreError> {
    let (env_id, now) = (fleet.env_id, fleet.observed_at);
    let hosts = fleet_hosts(conn, env_id)?;
    let input = FleetInput {
        now,
        default_interval_secs: settings.default_interval_secs,
        hosts,
    };
    let found = rules::evaluate_fleet(&input);
    let fleet_applied = risk::apply(conn, fleet, &found, now)?;
    report.add(&fleet_applied);
    let states = host_states(conn, env_id)?;
    Ok((input, fleet_applied, states))
}

/// What the jobs need to know to skip a host that has not changed.
#[derive(Debug, Clone, Default)]
struct HostState {
    latest_collected_at: Option<String>,
    trend_judged_at: Option<String>,
    /// Whether it has a score now.
    scored: bool,
    /// The last day with a score in its history.
    history_day: Option<String>,
}

fn host_states(
    conn: &Connection,
    env_id: i64,
) -> Result<std::collections::HashMap<String, HostState>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.host_id, h.latest_collected_at, h.trend_judged_at, h.score IS NOT NULL,
                (SELECT MAX(day) FROM score_history s WHERE s.scope = 'host' AND s.scope_id = h.host_id)
         FROM hosts h WHERE h.env_id = ?1",
    )?;
    let rows = stmt.query_map([env_id], |r| {
        Ok((
            r.get::<String>(0)?,
            HostState {
                latest_collected_at: r.get(1)?,
                trend_judged_at: r.get(2)?,
                scored: r.get(3)?,
                history_day: r.get(4)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn fleet_hosts(conn: &Connection, env_id: i64) -> Result<Vec<FleetHost>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT host_id, hostname, last_seen, enrolled_at, schedule_interval_secs, vda_version, controllers,
                clock_skew_secs
         FROM hosts WHERE env_id = ?1 ORDER BY host_id",
    )?;
    let rows = stmt.query_map([env_id], |r| {
        let last_seen: Option<String> = r.get(2)?;
        let enrolled_at: String = r.get(3)?;
        let interval: Option<i64> = r.get(4)?;
        let controllers: Option<String> = r.get(6)?;
        Ok(FleetHost {
            host_id: parse_uuid(&r.get::<String>(0)?, 0)?,
            hostname: r.get(1)?,
            last_received_at: last_seen.map(|t| parse_ts(&t, 2)).transpose()?,
            enrolled_at: parse_ts(&enrolled_at, 3)?,
            schedule_interval_secs: interval.and_then(|v| u64::try_from(v).ok()),
            vda_version: r.get(5)?,
            controllers: controllers
                .map(|c| serde_json::from_str(&c).map_err(|e| conversion_error(6, e.to_string())))
                .transpose()?,
            clock_skew_secs: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn trend_points(conn: &Connection, host: Uuid, since: &str, max: u32) -> Result<Vec<TrendPoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT point FROM (SELECT point, collected_at FROM trend_points
                            WHERE host_id = ?1 AND collected_at >= ?2
                            ORDER BY collected_at DESC LIMIT ?3) AS recent
         ORDER BY collected_at",
    )?;
    let rows = stmt.query_map(params![host.to_string(), since, max], |r| {
        let point: String = r.get(0)?;
        serde_json::from_str(&point).map_err(|e| conversion_error(0, e.to_string()))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Each environment of an org (or just `environment`) with its hosts' recent history, for the
/// capacity assessment.
pub fn environment_trends(
    conn: &Connection,
    org: &str,
    environment: Option<&str>,
    now: OffsetDateTime,
    settings: &JobSettings,
) -> Result<Vec<(String, Vec<HostTrend>)>, StoreError> {
    let envs: Vec<(i64, String)> = conn
        .prepare(
            "SELECT id, name FROM environments WHERE org_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR name = ?2) ORDER BY name",
        )?
        .query_map(params![org, environment], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let since = ts(now - time::Duration::days(settings.trend_window_days));
    let mut out = Vec::new();
    for (env_id, name) in envs {
        let mut trends = Vec::new();
        for h in fleet_hosts(conn, env_id)? {
            trends.push(HostTrend {
                host_id: h.host_id,
                hostname: h.hostname,
                points: trend_points(conn, h.host_id, &since, settings.trend_max_points)?,
            });
        }
        out.push((name, trends));
    }
    Ok(out)
}

fn parse_ts(s: &str, column: usize) -> super::db::Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| conversion_error(column, e.to_string()))
}

/// When the catalog changed since the last run: judges the latest snapshot of every host again, so
/// new rules apply (and retired ones resolve) without waiting for the next snapshot.
fn rejudge_if_catalog_changed(
    conn: &mut Connection,
    now: OffsetDateTime,
    report: &mut JobReport,
) -> Result<(), StoreError> {
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [CATALOG_KEY], |r| {
            r.get(0)
        })
        .optional()?;
    if stored.as_deref() == Some(rules::CATALOG_VERSION) {
        return Ok(());
    }
    let hosts: Vec<(String, String, String, i64, String)> = conn
        .prepare(
            "SELECT h.host_id, h.latest_snapshot_id, h.org_id, h.env_id, h.latest_collected_at FROM hosts h
             WHERE h.latest_snapshot_id IS NOT NULL
               AND (h.catalog_version IS NULL OR h.catalog_version <> ?1)",
        )?
        .query_map([rules::CATALOG_VERSION], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    for (host, snapshot_id, org, env_id, collected_at) in hosts {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let body: Vec<u8> =
            tx.query_row("SELECT body FROM snapshots WHERE id = ?1", [&snapshot_id], |r| {
                r.get(0)
            })?;
        let json = zstd::decode_all(body.as_slice()).map_err(StoreError::Compress)?;
        let snapshot = match decode_snapshot(&json) {
            Ok(s) => s,
            Err(e) => {
                // Stored under an older schema this binary no longer reads: leave its findings be.
                tracing::warn!(%host, %snapshot_id, error = %e, "cannot re-judge a stored snapshot");
                continue;
            }
        };
        let host_id = parse_uuid(&host, 0)?;
        let tier = tier_of(&tx, &org, now)?;
        let found: Vec<risk::Located> = rules::evaluate_host(&snapshot)
            .findings
            .into_iter()
            .map(|f| (Some(host_id), f))
            .collect();
        let judgement = Judgement {
            org: &org,
            env_id,
            host: Some(host_id),
            source: Source::Host,
            observed_at: parse_ts(&collected_at, 4)?,
            snapshot: Some(snapshot.id),
            tier,
        };
        report.add(&risk::apply(&tx, &judgement, &found, now)?);
        risk::rescore_host(&tx, host_id, tier, now)?;
        tx.execute(
            "UPDATE hosts SET catalog_version = ?2 WHERE host_id = ?1",
            params![host, rules::CATALOG_VERSION],
        )?;
        tx.commit()?;
        report.rejudged += 1;
    }
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![CATALOG_KEY, rules::CATALOG_VERSION],
    )?;
    if report.rejudged > 0 {
        tracing::info!(
            catalog_version = rules::CATALOG_VERSION,
            hosts = report.rejudged,
            "rule catalog changed: latest snapshots judged again"
        );
    }
    Ok(())
}
