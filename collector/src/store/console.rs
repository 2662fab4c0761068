//! Read models of the TAM console: customers ranked by risk, an org's page, a host's page, filtered
//! findings, what changed between snapshots, and CSV exports.
//!
//! Every query here answers from indexes (migration 4) and per-org aggregates, so that a page costs
//! milliseconds on 1,000 orgs and 50,000 hosts (`benches/console.rs`). Tenancy is the caller's: each
//! view names the org it belongs to, and the caller checks it before showing anything.

use std::collections::{BTreeMap, HashMap};

use super::db::{Connection, OptionalExtension, params, params_from_iter};
use callhome_shared::decode_snapshot;
use callhome_shared::rules::{self, Rating, Severity};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::risk::{self, FindingFilter, FindingRow, FindingState};
use super::{Store, StoreError, conversion_error, require_org, ts};
use crate::csv_export::{Csv, Field};
use crate::diff::{self, Change};
use crate::entitlement::{self, ContractTerm, Tier};

/// Days of score trend on the org and host pages.
pub const TREND_DAYS: i64 = 90;
/// Snapshots offered by the host page's diff picker.
const RECENT_SNAPSHOTS: u32 = 50;
/// How far back `queue_entry_diff` looks for a snapshot without the finding.
const BASELINE_SEARCH: u32 = 20;
/// The fleet rules that mean a host went silent.
const STALE_RULES: [&str; 2] = ["FLEET-STALE-001", "FLEET-STALE-002"];

const SEVERITY_RANK_SQL: &str = "CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 \
     WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END";

fn severity_of_rank(rank: i64) -> Option<Severity> {
    match rank {
        4 => Some(Severity::Critical),
        3 => Some(Severity::High),
        2 => Some(Severity::Medium),
        1 => Some(Severity::Low),
        0 => Some(Severity::Info),
        _ => None,
    }
}

/// One day's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayScore {
    pub day: String,
    pub score: f64,
}

/// A row of the customers page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgRank {
    pub org: String,
    pub name: String,
    /// Effective tier today; `None`: lapsed.
    pub tier: Option<String>,
    /// Priority and Priority Plus are scored (SPEC §3).
    pub scored: bool,
    pub score: Option<f64>,
    pub score_computed_at: Option<String>,
    /// Score now minus the score on or before 7 (30) days ago; `None` when either is unknown.
    pub change_7d: Option<f64>,
    pub change_30d: Option<f64>,
    /// Open, unsuppressed critical findings.
    pub open_criticals: i64,
    /// Hosts with an open staleness finding.
    pub stale_hosts: i64,
    pub hosts: i64,
    /// When the collector last heard from any of its hosts.
    pub last_seen: Option<String>,
}

/// An environment on the org page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvironmentSummary {
    pub name: String,
    pub score: Option<f64>,
    pub score_computed_at: Option<String>,
    pub hosts: i64,
    pub stale_hosts: i64,
    pub open_criticals: i64,
    /// VDA version -> hosts on it (`unknown`: no VDA seen).
    pub vda_versions: BTreeMap<String, i64>,
    pub trend: Vec<DayScore>,
}

/// Open findings of one rule across an org.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleGroup {
    pub rule: String,
    pub worst_severity: Severity,
    /// Hosts it is open on.
    pub hosts: i64,
    /// Open findings (a rule can fire on several subjects of one host, and on environments).
    pub findings: i64,
    /// The title of one of them, for the list.
    pub example_title: String,
    /// Of the rule's catalog entry; `None` for a rule this collector no longer knows.
    pub rationale: Option<&'static str>,
    pub remediation: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaleHost {
    pub host_id: String,
    pub hostname: String,
    pub environment: String,
    pub last_seen: Option<String>,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgDetail {
    pub org: String,
    pub name: String,
    pub tier: Option<String>,
    pub scored: bool,
    pub score: Option<f64>,
    pub score_computed_at: Option<String>,
    pub hosts: i64,
    pub open_criticals: i64,
    pub last_seen: Option<String>,
    pub environments: Vec<EnvironmentSummary>,
    /// Worst first, then most hosts.
    pub findings_by_rule: Vec<RuleGroup>,
    pub stale_hosts: Vec<StaleHost>,
    pub trend: Vec<DayScore>,
}

/// A host's finding with its catalog entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFinding {
    #[serde(flatten)]
    pub finding: FindingRow,
    pub rationale: Option<&'static str>,
    pub remediation: Option<&'static str>,
    pub reference: Option<&'static str>,
    pub likelihood: Option<Rating>,
    pub impact: Option<Rating>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotRef {
    pub id: String,
    pub collected_at: String,
    pub received_at: String,
}

/// A stored snapshot split into what the host page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotView {
    #[serde(flatten)]
    pub meta: SnapshotRef,
    pub agent: serde_json::Value,
    pub host: serde_json::Value,
    /// Section name -> its content, also sections this collector has no type for.
    pub sections: BTreeMap<String, serde_json::Value>,
    pub probes: BTreeMap<String, serde_json::Value>,
    pub errors: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostDetail {
    pub host_id: String,
    pub org: String,
    pub environment: String,
    pub hostname: String,
    pub role: String,
    pub agent_version: String,
    pub enrolled_at: String,
    pub last_seen: Option<String>,
    pub vda_version: Option<String>,
    pub controllers: Option<Vec<String>>,
    pub clock_skew_secs: Option<f64>,
    pub score: Option<f64>,
    /// Open findings, worst first.
    pub findings: Vec<HostFinding>,
    /// Resolved findings, newest first.
    pub history: Vec<HostFinding>,
    pub latest_snapshot: Option<SnapshotView>,
    /// Newest first, at most 50: the diff picker.
    pub snapshots: Vec<SnapshotRef>,
    pub trend: Vec<DayScore>,
}

/// Which findings of an org to list.
#[derive(Debug, Clone, Default)]
pub struct FindingQuery {
    /// Exactly this severity.
    pub severity: Option<Severity>,
    pub rule: Option<String>,
    pub state: FindingState,
    pub environment: Option<String>,
    pub host: Option<Uuid>,
}

/// A host row of the org's host list and CSV.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRow {
    pub host_id: String,
    pub hostname: String,
    pub environment: String,
    pub role: String,
    pub vda_version: Option<String>,
    pub agent_version: String,
    pub last_seen: Option<String>,
    pub score: Option<f64>,
    pub open_findings: i64,
    pub open_criticals: i64,
    pub worst_severity: Option<Severity>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotDiff {
    pub org: String,
    pub host_id: String,
    pub from: SnapshotRef,
    pub to: SnapshotRef,
    pub changes: Vec<Change>,
}

/// What changed on a host when a queued finding appeared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueDiff {
    pub queue_id: i64,
    pub finding_id: i64,
    pub org: String,
    pub host_id: Option<String>,
    pub rule: String,
    pub subject: String,
    /// The host's last snapshot without the finding.
    pub from: Option<SnapshotRef>,
    /// Its first snapshot with it.
    pub to: Option<SnapshotRef>,
    pub changes: Vec<Change>,
    /// Why there is nothing to compare, when there is not.
    pub note: Option<String>,
}

impl Store {
    /// Every org (or only `visible`), ranked by risk: scored orgs by score, highest first, then
    /// unscored ones; ties by open criticals.
    pub async fn orgs_ranked(
        &self,
        visible: Option<&[String]>,
        now: OffsetDateTime,
    ) -> Result<Vec<OrgRank>, StoreError> {
        let visible = visible.map(<[String]>::to_vec);
        self.blocking(move |conn| orgs_ranked(conn, visible.as_deref(), now))
            .await
    }

    /// Daily scores of these orgs over the last `days` days (the customers page's small charts).
    pub async fn org_trends(
        &self,
        orgs: Vec<String>,
        days: i64,
        now: OffsetDateTime,
    ) -> Result<BTreeMap<String, Vec<DayScore>>, StoreError> {
        self.blocking(move |conn| {
            orgs.into_iter()
                .map(|o| trend(conn, "org", &o, days, now).map(|t| (o, t)))
                .collect()
        })
        .await
    }

    pub async fn org_detail(&self, org: &str, now: OffsetDateTime) -> Result<OrgDetail, StoreError> {
        let org = org.to_owned();
        self.blocking(move |conn| org_detail(conn, &org, now)).await
    }

    pub async fn host_detail(&self, host: Uuid, now: OffsetDateTime) -> Result<HostDetail, StoreError> {
        self.blocking(move |conn| host_detail(conn, host, now)).await
    }

    /// The org's hosts, riskiest first, optionally of one environment.
    pub async fn org_hosts(&self, org: &str, environment: Option<&str>) -> Result<Vec<HostRow>, StoreError> {
        let (org, environment) = (org.to_owned(), environment.map(str::to_owned));
        self.blocking(move |conn| org_hosts(conn, &org, environment.as_deref()))
            .await
    }

    pub async fn findings_filtered(
        &self,
        org: &str,
        query: FindingQuery,
        now: OffsetDateTime,
    ) -> Result<Vec<FindingRow>, StoreError> {
        let org = org.to_owned();
        self.blocking(move |conn| findings_filtered(conn, &org, &query, now))
            .await
    }

    /// What changed on `host` from snapshot `from` to snapshot `to` (both must be the host's).
    pub async fn snapshot_diff(&self, host: Uuid, from: Uuid, to: Uuid) -> Result<SnapshotDiff, StoreError> {
        self.blocking(move |conn| snapshot_diff(conn, host, from, to))
            .await
    }

    /// What changed on the host of queue entry `queue_id` between its last snapshot without the
    /// entry's finding and its first with it.
    pub async fn queue_entry_diff(&self, queue_id: i64) -> Result<QueueDiff, StoreError> {
        self.blocking(move |conn| queue_entry_diff(conn, queue_id)).await
    }

    /// The org's findings as CSV.
    pub async fn findings_csv(
        &self,
        org: &str,
        query: FindingQuery,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        Ok(findings_to_csv(&self.findings_filtered(org, query, now).await?))
    }

    /// The org's hosts as CSV.
    pub async fn hosts_csv(&self, org: &str) -> Result<String, StoreError> {
        Ok(hosts_to_csv(&self.org_hosts(org, None).await?))
    }
}

/// `IN (?n, ?n+1, ...)` for `count` parameters starting at `first`.
fn placeholders(first: usize, count: usize) -> String {
    let list: Vec<String> = (first..first + count).map(|i| format!("?{i}")).collect();
    list.join(", ")
}

/// Effective tiers of the given orgs (all when `None`) on `now`'s date.
fn tiers(
    conn: &Connection,
    orgs: Option<&[String]>,
    now: OffsetDateTime,
) -> Result<HashMap<String, Option<Tier>>, StoreError> {
    let sql = match orgs {
        Some(list) => format!(
            "SELECT id, org_id, product, tier, start_date, end_date, created_at FROM contracts
             WHERE org_id IN ({})",
            placeholders(1, list.len())
        ),
        None => {
            "SELECT id, org_id, product, tier, start_date, end_date, created_at FROM contracts".to_owned()
        }
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(orgs.unwrap_or_default()), super::contract_row)?;
    let mut terms: HashMap<String, Vec<ContractTerm>> = HashMap::new();
    for c in rows {
        let c = c?;
        terms.entry(c.org.clone()).or_default().push(c.term());
    }
    Ok(terms
        .into_iter()
        .map(|(org, t)| {
            let tier = entitlement::effective_tier(&t, now.date());
            (org, tier)
        })
        .collect())
}

fn orgs_ranked(
    conn: &Connection,
    visible: Option<&[String]>,
    now: OffsetDateTime,
) -> Result<Vec<OrgRank>, StoreError> {
    if visible.is_some_and(<[String]>::is_empty) {
        return Ok(Vec::new());
    }
    let today = now.date();
    let day7 = (today - time::Duration::days(7)).to_string();
    let day30 = (today - time::Duration::days(30)).to_string();
    let filter = match visible {
        Some(list) => format!("WHERE o.id IN ({})", placeholders(4, list.len())),
        None => String::new(),
    };
    // One pass over the orgs; every aggregate is an index seek per org (migration 4). Stale hosts
    // are counted as findings: a host has at most one of the two staleness findings open (the
    // second replaces the first in the same judgement), so no DISTINCT (a temporary B-tree per org).
    let sql = format!(
        "SELECT o.id, o.name, s.score, s.computed_at,
            (SELECT score FROM score_history WHERE scope = 'org' AND scope_id = o.id AND day <= ?1
             ORDER BY day DESC LIMIT 1),
            (SELECT score FROM score_history WHERE scope = 'org' AND scope_id = o.id AND day <= ?2
             ORDER BY day DESC LIMIT 1),
            (SELECT COUNT(*) FROM findings f
             WHERE f.org_id = o.id AND f.severity = 'critical' AND f.resolved_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM suppressions x
                   WHERE x.org_id = f.org_id AND x.rule_id = f.rule_id AND x.ended_at IS NULL
                     AND x.expires_at > ?3 AND (x.env_id IS NULL OR x.env_id = f.env_id)
                     AND (x.host_id IS NULL OR x.host_id = f.host_id))),
            (SELECT COUNT(*) FROM findings f
             WHERE f.org_id = o.id AND f.rule_id IN ('{s1}', '{s2}') AND f.resolved_at IS NULL),
            (SELECT COUNT(*) FROM hosts h WHERE h.org_id = o.id),
            (SELECT MAX(h.last_seen) FROM hosts h WHERE h.org_id = o.id)
         FROM orgs o LEFT JOIN scores s ON s.scope = 'org' AND s.scope_id = o.id
         {filter}",
        s1 = STALE_RULES[0],
        s2 = STALE_RULES[1],
    );
    let tiers = tiers(conn, visible, now)?;
    let mut args: Vec<String> = vec![day7, day30, ts(now)];
    args.extend(visible.unwrap_or_default().iter().cloned());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(&args), |r| {
        let org: String = r.get(0)?;
        let score: Option<f64> = r.get(2)?;
        let then7: Option<f64> = r.get(4)?;
        let then30: Option<f64> = r.get(5)?;
        let tier = tiers.get(&org).copied().flatten();
        let change = |then: Option<f64>| score.zip(then).map(|(a, b)| ((a - b) * 10.0).round() / 10.0);
        Ok(OrgRank {
            name: r.get(1)?,
            tier: tier.map(|t| t.as_str().to_owned()),
            scored: risk::is_scored(tier),
            score,
            score_computed_at: r.get(3)?,
            change_7d: change(then7),
            change_30d: change(then30),
            open_criticals: r.get(6)?,
            stale_hosts: r.get(7)?,
            hosts: r.get(8)?,
            last_seen: r.get(9)?,
            org,
        })
    })?;
    let mut out: Vec<OrgRank> = rows.collect::<Result<_, _>>()?;
    out.sort_by(|a, b| {
        // Scored before unscored, higher score first, then more criticals, then id.
        b.score
            .is_some()
            .cmp(&a.score.is_some())
            .then(b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)))
            .then(b.open_criticals.cmp(&a.open_criticals))
            .then(a.org.cmp(&b.org))
    });
    Ok(out)
}

fn trend(
    conn: &Connection,
    scope: &str,
    id: &str,
    days: i64,
    now: OffsetDateTime,
) -> Result<Vec<DayScore>, StoreError> {
    let since = (now.date() - time::Duration::days(days - 1)).to_string();
    let mut stmt = conn.prepare_cached(
        "SELECT day, score FROM score_history WHERE scope = ?1 AND scope_id = ?2 AND day >= ?3 ORDER BY day",
    )?;
    let rows = stmt.query_map(params![scope, id, since], |r| {
        Ok(DayScore {
            day: r.get(0)?,
            score: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn stored_score(
    conn: &Connection,
    scope: &str,
    id: &str,
) -> Result<(Option<f64>, Option<String>), StoreError> {
    Ok(conn
        .prepare_cached("SELECT score, computed_at FROM scores WHERE scope = ?1 AND scope_id = ?2")?
        .query_row([scope, id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .map_or((None, None), |(s, c)| (Some(s), Some(c))))
}

fn org_detail(conn: &Connection, org: &str, now: OffsetDateTime) -> Result<OrgDetail, StoreError> {
    require_org(conn, org)?;
    let name: String = conn.query_row("SELECT name FROM orgs WHERE id = ?1", [org], |r| r.get(0))?;
    let tier = tiers(conn, Some(&[org.to_owned()]), now)?.remove(org).flatten();
    let (score, score_computed_at) = stored_score(conn, "org", org)?;
    let now_ts = ts(now);

    // Environments with their host counts and VDA versions (one index range, migration 4).
    let envs: Vec<(i64, String)> = conn
        .prepare_cached("SELECT id, name FROM environments WHERE org_id = ?1 ORDER BY name")?
        .query_map([org], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut versions: HashMap<i64, BTreeMap<String, i64>> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT env_id, vda_version, COUNT(*) FROM hosts WHERE org_id = ?1 GROUP BY env_id, vda_version",
        )?;
        let rows = stmt.query_map([org], |r| {
            Ok((r.get::<i64>(0)?, r.get::<Option<String>>(1)?, r.get::<i64>(2)?))
        })?;
        for row in rows {
            let (env, version, n) = row?;
            versions
                .entry(env)
                .or_default()
                .insert(version.unwrap_or_else(|| "unknown".to_owned()), n);
        }
    }
    let mut criticals: HashMap<i64, i64> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT f.env_id, COUNT(*) FROM findings f
             WHERE f.org_id = ?1 AND f.severity = 'critical' AND f.resolved_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM suppressions x
                   WHERE x.org_id = f.org_id AND x.rule_id = f.rule_id AND x.ended_at IS NULL
                     AND x.expires_at > ?2 AND (x.env_id IS NULL OR x.env_id = f.env_id)
                     AND (x.host_id IS NULL OR x.host_id = f.host_id))
             GROUP BY f.env_id",
        )?;
        for row in stmt.query_map(params![org, now_ts], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (env, n) = row?;
            criticals.insert(env, n);
        }
    }
    let stale_sql = format!(
        "SELECT f.host_id, h.hostname, e.name, h.last_seen, f.rule_id, f.env_id
         FROM findings f JOIN hosts h ON h.host_id = f.host_id JOIN environments e ON e.id = f.env_id
         WHERE f.org_id = ?1 AND f.rule_id IN ('{}', '{}') AND f.resolved_at IS NULL
         ORDER BY h.last_seen, h.hostname",
        STALE_RULES[0], STALE_RULES[1]
    );
    let mut stale_per_env: HashMap<i64, i64> = HashMap::new();
    let mut stale_hosts: Vec<StaleHost> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(&stale_sql)?;
        let rows = stmt.query_map([org], |r| {
            Ok((
                StaleHost {
                    host_id: r.get(0)?,
                    hostname: r.get(1)?,
                    environment: r.get(2)?,
                    last_seen: r.get(3)?,
                    rule: r.get(4)?,
                },
                r.get::<i64>(5)?,
            ))
        })?;
        for row in rows {
            let (host, env) = row?;
            *stale_per_env.entry(env).or_default() += 1;
            stale_hosts.push(host);
        }
    }
    let mut environments = Vec::with_capacity(envs.len());
    for (id, env_name) in envs {
        let (score, score_computed_at) = stored_score(conn, "env", &id.to_string())?;
        let vda_versions = versions.remove(&id).unwrap_or_default();
        environments.push(EnvironmentSummary {
            name: env_name,
            score,
            score_computed_at,
            hosts: vda_versions.values().sum(),
            stale_hosts: stale_per_env.get(&id).copied().unwrap_or(0),
            open_criticals: criticals.get(&id).copied().unwrap_or(0),
            vda_versions,
            trend: trend(conn, "env", &id.to_string(), TREND_DAYS, now)?,
        });
    }

    let group_sql = format!(
        "SELECT rule_id, MAX({SEVERITY_RANK_SQL}), COUNT(DISTINCT host_id), COUNT(*), MIN(title)
         FROM findings WHERE org_id = ?1 AND resolved_at IS NULL GROUP BY rule_id"
    );
    let mut findings_by_rule: Vec<RuleGroup> = conn
        .prepare_cached(&group_sql)?
        .query_map([org], |r| {
            let rule: String = r.get(0)?;
            let rank: i64 = r.get(1)?;
            let info = rules::rule_info(&rule);
            Ok(RuleGroup {
                worst_severity: severity_of_rank(rank)
                    .ok_or_else(|| conversion_error(1, format!("bad severity rank {rank}")))?,
                hosts: r.get(2)?,
                findings: r.get(3)?,
                example_title: r.get(4)?,
                rationale: info.map(|i| i.rationale),
                remediation: info.map(|i| i.remediation),
                rule,
            })
        })?
        .collect::<Result<_, _>>()?;
    findings_by_rule.sort_by(|a, b| {
        b.worst_severity
            .cmp(&a.worst_severity)
            .then(b.hosts.cmp(&a.hosts))
            .then(a.rule.cmp(&b.rule))
    });
    let last_seen: Option<String> = conn
        .prepare_cached("SELECT MAX(last_seen) FROM hosts WHERE org_id = ?1")?
        .query_row([org], |r| r.get(0))?;
    Ok(OrgDetail {
        org: org.to_owned(),
        name,
        tier: tier.map(|t| t.as_str().to_owned()),
        scored: risk::is_scored(tier),
        score,
        score_computed_at,
        hosts: environments.iter().map(|e| e.hosts).sum(),
        open_criticals: criticals.values().sum(),
        last_seen,
        environments,
        findings_by_rule,
        stale_hosts,
        trend: trend(conn, "org", org, TREND_DAYS, now)?,
    })
}

fn with_catalog(finding: FindingRow) -> HostFinding {
    let info = rules::rule_info(&finding.rule);
    HostFinding {
        rationale: info.map(|i| i.rationale),
        remediation: info.map(|i| i.remediation),
        reference: info.map(|i| i.reference),
        likelihood: info.map(|i| i.likelihood),
        impact: info.map(|i| i.impact),
        finding,
    }
}

fn host_detail(conn: &Connection, host: Uuid, now: OffsetDateTime) -> Result<HostDetail, StoreError> {
    let host_s = host.to_string();
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<f64>,
        Option<f64>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT h.org_id, e.name, h.hostname, h.role, h.agent_version, h.enrolled_at, h.last_seen,
                    h.vda_version, h.controllers, h.clock_skew_secs, h.score, h.latest_snapshot_id
             FROM hosts h JOIN environments e ON e.id = h.env_id WHERE h.host_id = ?1",
        )?
        .query_row([&host_s], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
            ))
        })
        .optional()?;
    let Some((
        org,
        environment,
        hostname,
        role,
        agent_version,
        enrolled_at,
        last_seen,
        vda_version,
        controllers,
        skew,
        score,
        latest,
    )) = row
    else {
        return Err(StoreError::NotFound(format!("no host {host}")));
    };
    let filter = FindingFilter {
        host: Some(host),
        state: FindingState::All,
        ..FindingFilter::default()
    };
    let (open, mut resolved): (Vec<FindingRow>, Vec<FindingRow>) =
        risk::list_findings(conn, &org, &filter, now)?
            .into_iter()
            .partition(|f| f.resolved_at.is_none());
    resolved.sort_by(|a, b| b.resolved_at.cmp(&a.resolved_at).then(b.id.cmp(&a.id)));
    let latest_snapshot = latest.map(|id| snapshot_view(conn, &id)).transpose()?.flatten();
    let snapshots: Vec<SnapshotRef> = conn
        .prepare_cached(
            "SELECT id, collected_at, received_at FROM snapshots WHERE host_id = ?1
             ORDER BY collected_at DESC LIMIT ?2",
        )?
        .query_map(params![host_s, RECENT_SNAPSHOTS], snapshot_ref)?
        .collect::<Result<_, _>>()?;
    Ok(HostDetail {
        host_id: host_s.clone(),
        controllers: controllers
            .map(|c| {
                serde_json::from_str(&c)
                    .map_err(|e| StoreError::Task(format!("bad controllers of {host}: {e}")))
            })
            .transpose()?,
        org,
        environment,
        hostname,
        role,
        agent_version,
        enrolled_at,
        last_seen,
        vda_version,
        clock_skew_secs: skew,
        score,
        findings: open.into_iter().map(with_catalog).collect(),
        history: resolved.into_iter().map(with_catalog).collect(),
        latest_snapshot,
        snapshots,
        trend: trend(conn, "host", &host_s, TREND_DAYS, now)?,
    })
}

fn snapshot_ref(r: &super::db::Row<'_>) -> super::db::Result<SnapshotRef> {
    Ok(SnapshotRef {
        id: r.get(0)?,
        collected_at: r.get(1)?,
        received_at: r.get(2)?,
    })
}

/// A snapshot's metadata and its JSON as received; `None` when it is not stored.
fn snapshot_json(conn: &Connection, id: &str) -> Result<Option<(SnapshotRef, Vec<u8>)>, StoreError> {
    let row: Option<(SnapshotRef, Vec<u8>)> = conn
        .prepare_cached("SELECT id, collected_at, received_at, body FROM snapshots WHERE id = ?1")?
        .query_row([id], |r| Ok((snapshot_ref(r)?, r.get(3)?)))
        .optional()?;
    row.map(|(meta, body)| {
        zstd::decode_all(body.as_slice())
            .map(|json| (meta, json))
            .map_err(StoreError::Compress)
    })
    .transpose()
}

fn snapshot_view(conn: &Connection, id: &str) -> Result<Option<SnapshotView>, StoreError> {
    let Some((meta, json)) = snapshot_json(conn, id)? else {
        return Ok(None);
    };
    // Read as plain JSON rather than the typed schema: the page shows every section, also those
    // of a newer agent this collector has no type for.
    let mut v: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| StoreError::Task(format!("stored snapshot {id} is not JSON: {e}")))?;
    let mut take = |key: &str| v.get_mut(key).map(serde_json::Value::take).unwrap_or_default();
    let object = |v: serde_json::Value| -> BTreeMap<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    };
    Ok(Some(SnapshotView {
        meta,
        agent: take("agent"),
        host: take("host"),
        sections: object(take("sections")),
        probes: object(take("probes")),
        errors: match take("errors") {
            serde_json::Value::Array(a) => a,
            _ => Vec::new(),
        },
    }))
}

fn org_hosts(conn: &Connection, org: &str, environment: Option<&str>) -> Result<Vec<HostRow>, StoreError> {
    require_org(conn, org)?;
    let sql = format!(
        "SELECT h.host_id, h.hostname, e.name, h.role, h.vda_version, h.agent_version, h.last_seen, h.score,
                COALESCE(f.open, 0), COALESCE(f.criticals, 0), f.worst
         FROM hosts h JOIN environments e ON e.id = h.env_id
         LEFT JOIN (SELECT host_id, COUNT(*) AS open, SUM(CASE WHEN severity = 'critical' THEN 1 ELSE 0 END) AS criticals,
                           MAX({SEVERITY_RANK_SQL}) AS worst
                    FROM findings WHERE org_id = ?1 AND resolved_at IS NULL AND host_id IS NOT NULL
                    GROUP BY host_id) f ON f.host_id = h.host_id
         WHERE h.org_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR e.name = ?2)
         ORDER BY h.score IS NULL, h.score DESC, f.worst DESC, h.hostname, h.host_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![org, environment], |r| {
        let worst: Option<i64> = r.get(10)?;
        Ok(HostRow {
            host_id: r.get(0)?,
            hostname: r.get(1)?,
            environment: r.get(2)?,
            role: r.get(3)?,
            vda_version: r.get(4)?,
            agent_version: r.get(5)?,
            last_seen: r.get(6)?,
            score: r.get(7)?,
            open_findings: r.get(8)?,
            open_criticals: r.get(9)?,
            worst_severity: worst.and_then(severity_of_rank),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn findings_filtered(
    conn: &Connection,
    org: &str,
    query: &FindingQuery,
    now: OffsetDateTime,
) -> Result<Vec<FindingRow>, StoreError> {
    require_org(conn, org)?;
    let filter = FindingFilter {
        environment: query.environment.clone(),
        host: query.host,
        min_severity: query.severity,
        rule: query.rule.clone(),
        state: query.state,
    };
    let mut rows = risk::list_findings(conn, org, &filter, now)?;
    if let Some(s) = query.severity {
        rows.retain(|f| f.severity == s);
    }
    Ok(rows)
}

fn decoded(
    conn: &Connection,
    id: &str,
) -> Result<Option<(SnapshotRef, callhome_shared::Snapshot)>, StoreError> {
    let Some((meta, json)) = snapshot_json(conn, id)? else {
        return Ok(None);
    };
    let snapshot = decode_snapshot(&json)
        .map_err(|e| StoreError::Invalid(format!("snapshot {id} cannot be read by this collector: {e}")))?;
    Ok(Some((meta, snapshot)))
}

fn snapshot_diff(conn: &Connection, host: Uuid, from: Uuid, to: Uuid) -> Result<SnapshotDiff, StoreError> {
    let host_s = host.to_string();
    let org: Option<String> = conn
        .prepare_cached("SELECT org_id FROM hosts WHERE host_id = ?1")?
        .query_row([&host_s], |r| r.get(0))
        .optional()?;
    let Some(org) = org else {
        return Err(StoreError::NotFound(format!("no host {host}")));
    };
    let load = |id: Uuid| -> Result<(SnapshotRef, callhome_shared::Snapshot), StoreError> {
        let owner: Option<String> = conn
            .prepare_cached("SELECT host_id FROM snapshots WHERE id = ?1")?
            .query_row([id.to_string()], |r| r.get(0))
            .optional()?;
        if owner.as_deref() != Some(host_s.as_str()) {
            return Err(StoreError::NotFound(format!("no snapshot {id} of host {host}")));
        }
        decoded(conn, &id.to_string())?.ok_or_else(|| StoreError::NotFound(format!("no snapshot {id}")))
    };
    let (from_ref, before) = load(from)?;
    let (to_ref, after) = load(to)?;
    Ok(SnapshotDiff {
        org,
        host_id: host_s,
        from: from_ref,
        to: to_ref,
        changes: diff::diff(&before, &after),
    })
}

fn queue_entry_diff(conn: &Connection, queue_id: i64) -> Result<QueueDiff, StoreError> {
    type Row = (
        i64,
        String,
        Option<String>,
        String,
        String,
        String,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT f.id, q.org_id, f.host_id, f.source, f.rule_id, f.subject, f.first_snapshot
             FROM queue q JOIN findings f ON f.id = q.finding_id WHERE q.id = ?1",
        )?
        .query_row([queue_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .optional()?;
    let Some((finding_id, org, host, source, rule, subject, first)) = row else {
        return Err(StoreError::NotFound(format!("no queue entry {queue_id}")));
    };
    let mut out = QueueDiff {
        queue_id,
        finding_id,
        org,
        host_id: host.clone(),
        rule,
        subject,
        from: None,
        to: None,
        changes: Vec::new(),
        note: None,
    };
    let (Some(host), Some(first)) = (host, first) else {
        out.note = Some(
            "this finding comes from a periodic judgement of the environment, not from a snapshot: \
             there is no snapshot to compare"
                .to_owned(),
        );
        return Ok(out);
    };
    let Some((to_ref, after)) = decoded(conn, &first)? else {
        out.note = Some(format!(
            "the snapshot {first} that first showed the finding is no longer stored"
        ));
        return Ok(out);
    };
    out.to = Some(to_ref.clone());
    let earlier: Vec<SnapshotRef> = conn
        .prepare_cached(
            "SELECT id, collected_at, received_at FROM snapshots
             WHERE host_id = ?1 AND collected_at < ?2 ORDER BY collected_at DESC LIMIT ?3",
        )?
        .query_map(params![host, to_ref.collected_at, BASELINE_SEARCH], snapshot_ref)?
        .collect::<Result<_, _>>()?;
    if earlier.is_empty() {
        out.note = Some(
            "no earlier snapshot of this host: the finding was there from its first snapshot".to_owned(),
        );
        return Ok(out);
    }
    // The snapshot just before normally lacks the finding (else it would have opened earlier); a
    // spool replay can break that, so check with the rules and walk back if needed.
    for candidate in &earlier {
        let Some((from_ref, before)) = decoded(conn, &candidate.id)? else {
            continue;
        };
        let shows_it = source == "host"
            && rules::evaluate_host(&before)
                .findings
                .iter()
                .any(|f| f.rule == out.rule && f.subject == out.subject);
        if !shows_it {
            out.changes = diff::diff(&before, &after);
            out.from = Some(from_ref);
            return Ok(out);
        }
    }
    out.note = Some(format!(
        "the {} snapshots before the first one with this finding show it too",
        earlier.len()
    ));
    Ok(out)
}

pub fn findings_to_csv(rows: &[FindingRow]) -> String {
    let mut csv = Csv::with_header(&[
        "id",
        "org",
        "environment",
        "host_id",
        "hostname",
        "source",
        "rule",
        "severity",
        "subject",
        "title",
        "evidence",
        "first_seen",
        "detected_at",
        "last_seen",
        "resolved_at",
        "suppressed",
        "remediation",
    ]);
    for f in rows {
        let remediation = rules::rule_info(&f.rule).map(|i| i.remediation.to_owned());
        csv.row([
            Field::from(f.id),
            Field::from(f.org.as_str()),
            Field::from(f.environment.as_str()),
            Field::from(f.host_id.clone()),
            Field::from(f.hostname.clone()),
            Field::from(f.source.as_str()),
            Field::from(f.rule.as_str()),
            Field::from(f.severity.as_str()),
            Field::from(f.subject.as_str()),
            Field::from(f.title.as_str()),
            Field::from(f.evidence.to_string()),
            Field::from(f.first_seen.as_str()),
            Field::from(f.detected_at.as_str()),
            Field::from(f.last_seen.as_str()),
            Field::from(f.resolved_at.clone()),
            Field::from(if f.suppressed { "yes" } else { "no" }),
            Field::from(remediation),
        ]);
    }
    csv.finish()
}

pub fn hosts_to_csv(rows: &[HostRow]) -> String {
    let mut csv = Csv::with_header(&[
        "host_id",
        "hostname",
        "environment",
        "role",
        "vda_version",
        "agent_version",
        "last_seen",
        "score",
        "open_findings",
        "open_criticals",
        "worst_severity",
    ]);
    for h in rows {
        csv.row([
            Field::from(h.host_id.as_str()),
            Field::from(h.hostname.as_str()),
            Field::from(h.environment.as_str()),
            Field::from(h.role.as_str()),
            Field::from(h.vda_version.clone()),
            Field::from(h.agent_version.as_str()),
            Field::from(h.last_seen.clone()),
            Field::from(h.score),
            Field::from(h.open_findings),
            Field::from(h.open_criticals),
            Field::from(h.worst_severity.map(|s| s.as_str().to_owned())),
        ]);
    }
    csv.finish()
}

#[cfg(test)]
#[path = "console_tests.rs"]
mod tests;
