//! Findings, their lifecycle, suppressions, the critical queue, the webhook outbox and scores: the
//! transactions behind them, all on a `&Connection` so that ingest can run them inside the
//! snapshot's own transaction (a 2xx means the judgement is stored too).
//!
//! Lifecycle invariants:
//! 1. A finding is identified by `(environment, host or none, rule, subject)`; at most one is open at
//!    a time (a unique partial index). A later judgement of the same scope and source that no longer
//!    shows it resolves it; if it comes back, it is a new finding.
//! 2. Each source judges its own findings only: a host snapshot resolves host findings, never the
//!    fleet's (staleness) or the trend's (forecasts).
//! 3. Suppressions match on rule ids, which are stable across catalog versions, never on finding
//!    ids. A suppressed finding stays visible but counts in no score and opens no queue entry.
//! 4. Queue entries exist only for critical findings of orgs whose effective tier is scored
//!    (Priority, Priority Plus) when the finding was detected; a resolved or suppressed finding closes
//!    its entry. Priority Plus entries also put one webhook event in the outbox, in the same
//!    transaction, so an alert is never lost nor sent for an entry that was rolled back.

use std::collections::{BTreeMap, HashMap};

use super::db::{Connection, OptionalExtension, params};
use callhome_shared::rules::{Finding, Severity};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::accounts::Visibility;
use super::audit::{self, Action, Actor};
use super::{StoreError, conversion_error, ts};
use crate::entitlement::Tier;
use crate::score::{self, ScoreItem};

/// Which judge produced a finding (invariant 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Host,
    Fleet,
    Trend,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Host => "host",
            Source::Fleet => "fleet",
            Source::Trend => "trend",
        }
    }
}

/// Where a judgement applies: one environment, and one host of it or (fleet) all of them.
#[derive(Debug, Clone)]
pub struct Judgement<'a> {
    pub org: &'a str,
    pub env_id: i64,
    /// `Some`: the findings of this host only; `None`: every finding of the environment (fleet).
    pub host: Option<Uuid>,
    pub source: Source,
    /// When the facts were observed (the snapshot's time, or the job's).
    pub observed_at: OffsetDateTime,
    pub snapshot: Option<Uuid>,
    /// The org's effective tier now; `None`: lapsed.
    pub tier: Option<Tier>,
}

/// What applying a judgement changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub opened: u32,
    pub updated: u32,
    pub resolved: u32,
    pub queued: u32,
    /// Hosts (`None`: the environment) whose findings opened or resolved: their scores changed.
    pub touched: std::collections::BTreeSet<Option<String>>,
}

/// A finding with the host it is about (`None`: the environment).
pub type Located = (Option<Uuid>, Finding);

/// Whether a tier gets scores and the queue (SPEC §3).
pub fn is_scored(tier: Option<Tier>) -> bool {
    matches!(tier, Some(Tier::Priority | Tier::PriorityPlus))
}

/// Whether an active suppression covers finding `f`: one of its org and rule, not ended, expiring
/// after the bound timestamp `$expires`, and for its environment and host or for all of them.
macro_rules! suppressed {
    ($expires:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM suppressions s
               WHERE s.org_id = f.org_id AND s.rule_id = f.rule_id AND s.ended_at IS NULL AND s.expires_at > ",
            $expires,
            " AND (s.env_id IS NULL OR s.env_id = f.env_id)
                 AND (s.host_id IS NULL OR s.host_id = f.host_id))"
        )
    };
}

/// Opens, updates and resolves the findings of one judgement (invariants 1, 2), then queues the
/// open criticals that have no entry yet (invariant 4).
pub fn apply(
    conn: &Connection,
    j: &Judgement<'_>,
    found: &[Located],
    now: OffsetDateTime,
) -> Result<Applied, StoreError> {
    let host_filter = j.host.map(|h| h.to_string());
    // What each open finding says now: most snapshots repeat it, and then only `last_seen` moves.
    let mut open: HashMap<FindingKey, OpenFinding> = HashMap::new();
    {
        // Two statements, not `(?3 IS NULL OR host_id = ?3)`: SQLite plans that with the
        // environment's index only, and a host of a 3,000-host environment would scan them all.
        // `+env_id` keeps the planner off that index for the host's own query.
        let mut stmt = match &host_filter {
            Some(_) => conn.prepare_cached(
                "SELECT id, host_id, rule_id, subject, severity, title, evidence FROM findings
                 WHERE host_id = ?3 AND resolved_at IS NULL AND +env_id = ?1 AND source = ?2",
            )?,
            None => conn.prepare_cached(
                "SELECT id, host_id, rule_id, subject, severity, title, evidence FROM findings
                 WHERE env_id = ?1 AND source = ?2 AND resolved_at IS NULL AND CAST(?3 AS TEXT) IS NULL",
            )?,
        };
        let rows = stmt.query_map(params![j.env_id, j.source.as_str(), host_filter], |r| {
            Ok((
                (r.get(1)?, r.get(2)?, r.get(3)?),
                OpenFinding {
                    id: r.get(0)?,
                    severity: r.get(4)?,
                    title: r.get(5)?,
                    evidence: r.get(6)?,
                },
            ))
        })?;
        for row in rows {
            let (key, id) = row?;
            open.insert(key, id);
        }
    }
    let (mut applied, _, seen_again) = write_changes(conn, j, found, open, now)?;
    mark_seen_again(conn, &[seen_again])?;
    applied.queued = queue_open_criticals(conn, j.env_id, host_filter.as_deref(), j.tier, now)?;
    Ok(applied)
}

/// A host as ingest reads it before judging a snapshot of it, in one query: its newest snapshot's
/// time, its score, today's history row and every open finding of it (any source) with whether it
/// has an open queue entry and whether a suppression covers it. On PostgreSQL each statement is a
/// round trip (and the database's time per statement dominates ingest), so what were five reads
/// per snapshot are one.
#[derive(Debug)]
pub struct HostState {
    pub latest_collected_at: Option<String>,
    pub score: Option<f64>,
    /// Today's history row (score, findings), if any.
    pub recorded: Option<(f64, i64)>,
    findings: Vec<HostFinding>,
}

/// Whether open finding `f` has an open queue entry, and whether a suppression covers it: the last
/// two columns [`host_row`] reads.
macro_rules! finding_flags_sql {
    () => {
        concat!(
            "EXISTS (SELECT 1 FROM queue q WHERE q.finding_id = f.id AND q.closed_at IS NULL), ",
            suppressed!("?3")
        )
    };
}

/// Reads the [`HostState`] of each of `hosts` that exists. On PostgreSQL one statement reads them
/// all (the ingest writer reads a round of snapshots' hosts at once); SQLite, with no round trips
/// to save, reads them one by one by primary key.
pub fn read_hosts(
    conn: &Connection,
    hosts: &[Uuid],
    now: OffsetDateTime,
) -> Result<HashMap<Uuid, HostState>, StoreError> {
    let mut states: HashMap<Uuid, HostState> = HashMap::with_capacity(hosts.len());
    let (day, now_ts) = (now.date().to_string(), ts(now));
    match conn.backend() {
        super::db::Backend::Postgres => {
            let ids: Vec<String> = hosts.iter().map(Uuid::to_string).collect();
            let ids = super::to_json(&ids)?;
            // `= ANY(ARRAY(..))`: an init plan evaluated once, then primary-key lookups. Each host's
            // history row and findings in a LATERAL subquery that is not flattened (`OFFSET 0`), so
            // they are index lookups per host: joined flat, the planner hashed both tables.
            let mut stmt = conn.prepare_cached(concat!(
                "SELECT h.host_id, h.latest_collected_at, h.score, sh.score, sh.findings,
                        f.id, f.env_id, f.source, f.rule_id, f.subject, f.severity, f.title, f.evidence,
                        f.queued, f.suppressed
                 FROM hosts h
                 LEFT JOIN LATERAL (SELECT score, findings FROM score_history
                      WHERE scope = 'host' AND scope_id = h.host_id AND day = ?2 OFFSET 0) sh ON TRUE
                 LEFT JOIN LATERAL (SELECT f.id, f.env_id, f.source, f.rule_id, f.subject, f.severity,
                                           f.title, f.evidence, ",
                finding_flags_sql!(),
                " FROM findings f WHERE f.host_id = h.host_id AND f.resolved_at IS NULL OFFSET 0)
                      AS f (id, env_id, source, rule_id, subject, severity, title, evidence, queued, suppressed)
                      ON TRUE
                 WHERE h.host_id = ANY(ARRAY(SELECT json_array_elements_text(CAST(?1 AS JSON))))"
            ))?;
            let rows = stmt.query_map(params![ids, day, now_ts], host_row)?;
            for row in rows {
                add_host_row(&mut states, row?);
            }
        }
        super::db::Backend::Sqlite => {
            // SQLite has no LATERAL; by primary key, it plans the flat joins as lookups.
            let mut stmt = conn.prepare_cached(concat!(
                "SELECT h.host_id, h.latest_collected_at, h.score, sh.score, sh.findings,
                        f.id, f.env_id, f.source, f.rule_id, f.subject, f.severity, f.title, f.evidence, ",
                finding_flags_sql!(),
                " FROM hosts h
                 LEFT JOIN score_history sh ON sh.scope = 'host' AND sh.scope_id = h.host_id AND sh.day = ?2
                 LEFT JOIN findings f ON f.host_id = h.host_id AND f.resolved_at IS NULL
                 WHERE h.host_id = CAST(?1 AS TEXT)"
            ))?;
            for host in hosts {
                let rows = stmt.query_map(params![host.to_string(), day, now_ts], host_row)?;
                for row in rows {
                    add_host_row(&mut states, row?);
                }
            }
        }
    }
    Ok(states)
}

type HostRow = (
    Uuid,
    (Option<String>, Option<f64>, Option<(f64, i64)>),
    Option<HostFinding>,
);

fn host_row(r: &super::db::Row<'_>) -> super::db::Result<HostRow> {
    let host = super::parse_uuid(&r.get::<String>(0)?, 0)?;
    let head = (
        r.get::<Option<String>>(1)?,
        r.get::<Option<f64>>(2)?,
        r.get::<Option<f64>>(3)?.zip(r.get::<Option<i64>>(4)?),
    );
    let Some(id) = r.get::<Option<i64>>(5)? else {
        return Ok((host, head, None));
    };
    let severity: String = r.get(10)?;
    let finding = HostFinding {
        env_id: r.get(6)?,
        source: r.get(7)?,
        queued: r.get(13)?,
        suppressed: r.get(14)?,
        item: ScoreItem {
            host: Some(host),
            rule: r.get(8)?,
            subject: r.get(9)?,
            severity: severity.parse().map_err(|e: String| conversion_error(10, e))?,
        },
        open: OpenFinding {
            id,
            severity,
            title: r.get(11)?,
            evidence: r.get(12)?,
        },
    };
    Ok((host, head, Some(finding)))
}

fn add_host_row(states: &mut HashMap<Uuid, HostState>, (host, head, finding): HostRow) {
    let (latest_collected_at, score, recorded) = head;
    let st = states.entry(host).or_insert(HostState {
        latest_collected_at,
        score,
        recorded,
        findings: Vec::new(),
    });
    st.findings.extend(finding);
}

/// [`apply`] for one host's snapshot at ingest, from the host's open findings as [`read_hosts`] read
/// them in this transaction, with what scoring the host needs. In the common case, a snapshot that
/// repeats the last one, nothing but `last_seen` changes, and those rows are then also the host's
/// score items and queue candidates: nothing more is read. When anything opened, changed or
/// resolved, the queue and the score are read again as [`apply`] does.
///
/// The findings observed again unchanged are not written here: the caller passes
/// [`HostApplied::seen_again`] to [`mark_seen_again`] (the ingest writer, for a round of snapshots
/// in one statement).
pub fn apply_host(
    conn: &Connection,
    j: &Judgement<'_>,
    host: Uuid,
    state: HostState,
    found: &[Located],
    now: OffsetDateTime,
) -> Result<HostApplied, StoreError> {
    let host_s = host.to_string();
    let rows = state.findings;
    let open: HashMap<FindingKey, OpenFinding> = rows
        .iter()
        .filter(|f| f.env_id == j.env_id && f.source == j.source.as_str())
        .map(|f| {
            let key = (Some(host_s.clone()), f.item.rule.clone(), f.item.subject.clone());
            (key, f.open.clone())
        })
        .collect();
    let (mut applied, steady, seen_again) = write_changes(conn, j, found, open, now)?;
    if !steady {
        applied.queued = queue_open_criticals(conn, j.env_id, Some(&host_s), j.tier, now)?;
        return Ok(HostApplied {
            applied,
            items: None,
            seen_again,
        });
    }
    // Nothing but `last_seen` moved: the rows read are the host's open findings as they are now.
    let unqueued = |f: &HostFinding| {
        f.env_id == j.env_id && f.item.severity == Severity::Critical && !f.queued && !f.suppressed
    };
    if is_scored(j.tier) && rows.iter().any(unqueued) {
        applied.queued = queue_open_criticals(conn, j.env_id, Some(&host_s), j.tier, now)?;
    }
    let mut items: Vec<(i64, ScoreItem)> = rows
        .into_iter()
        .filter(|f| !f.suppressed)
        .map(|f| (f.open.id, f.item))
        .collect();
    items.sort_unstable_by_key(|(id, _)| *id);
    Ok(HostApplied {
        applied,
        items: Some(items.into_iter().map(|(_, item)| item).collect()),
        seen_again,
    })
}

/// What [`apply_host`] did, and what it leaves to its caller.
#[derive(Debug)]
pub struct HostApplied {
    pub applied: Applied,
    /// The host's open, unsuppressed findings ordered by id, when nothing but `last_seen` moved
    /// (for [`rescore_host_with`]); `None`: they changed, read them again.
    pub items: Option<Vec<ScoreItem>>,
    pub seen_again: SeenAgain,
}

/// Open findings observed again as they were: only their `last_seen` and `last_snapshot` move.
#[derive(Debug, Default)]
pub struct SeenAgain {
    pub ids: Vec<i64>,
    pub observed: String,
    pub snapshot: Option<String>,
}

/// Writes `last_seen` (and `last_snapshot`) of findings observed again. Severity, which two indexes
/// hold, is not rewritten. On PostgreSQL one statement covers every entry (a round trip each
/// otherwise).
pub fn mark_seen_again(conn: &Connection, seen: &[SeenAgain]) -> Result<(), StoreError> {
    match conn.backend() {
        super::db::Backend::Sqlite => {
            for s in seen.iter().filter(|s| !s.ids.is_empty()) {
                let ids = super::to_json(&s.ids)?;
                conn.prepare_cached(
                    "UPDATE findings SET last_seen = ?2, last_snapshot = COALESCE(?3, last_snapshot)
                     WHERE id IN (SELECT CAST(value AS INTEGER) FROM json_each(?1))",
                )?
                .execute(params![ids, s.observed, s.snapshot])?;
            }
        }
        super::db::Backend::Postgres => {
            #[derive(Serialize)]
            struct Row<'a> {
                id: i64,
                observed: &'a str,
                snapshot: Option<&'a str>,
            }
            let rows: Vec<Row<'_>> = seen
                .iter()
                .flat_map(|s| {
                    s.ids.iter().map(|&id| Row {
                        id,
                        observed: &s.observed,
                        snapshot: s.snapshot.as_deref(),
                    })
                })
                .collect();
            if rows.is_empty() {
                return Ok(());
            }
            let rows = super::to_json(&rows)?;
            // `id IN (SELECT .. json ..)` got a generic plan that scanned the whole table (two thirds
            // of the database's time under load); `= ANY(ARRAY(..))` is an init plan evaluated once
            // and an index scan whatever the plan, joined to the rows for their values.
            conn.prepare_cached(
                "UPDATE findings f SET last_seen = x.observed, last_snapshot = COALESCE(x.snapshot, f.last_snapshot)
                 FROM json_to_recordset(CAST(?1 AS JSON)) AS x(id BIGINT, observed TEXT, snapshot TEXT)
                 WHERE f.id = ANY(ARRAY(SELECT y.id FROM json_to_recordset(CAST(?1 AS JSON)) AS y(id BIGINT)))
                   AND f.id = x.id",
            )?
            .execute(params![rows])?;
        }
    }
    Ok(())
}

/// An open finding of a host as [`read_hosts`] reads it.
#[derive(Debug)]
struct HostFinding {
    env_id: i64,
    source: String,
    queued: bool,
    suppressed: bool,
    item: ScoreItem,
    open: OpenFinding,
}

/// `(host or none, rule, subject)` within one environment and source.
type FindingKey = (Option<String>, String, String);

/// Writes what changed between the open findings of a judgement's scope and what it found, but for
/// the findings observed again unchanged, which it returns for [`mark_seen_again`]. True as well
/// when nothing but `last_seen` moved (nothing opened, changed or resolved).
fn write_changes(
    conn: &Connection,
    j: &Judgement<'_>,
    found: &[Located],
    mut open: HashMap<FindingKey, OpenFinding>,
    now: OffsetDateTime,
) -> Result<(Applied, bool, SeenAgain), StoreError> {
    let mut applied = Applied::default();
    let mut rewritten = false;
    let observed = ts(j.observed_at);
    let now_ts = ts(now);
    let snapshot = j.snapshot.map(|s| s.to_string());
    // Open findings observed again as they were: only when they were seen changes.
    let mut seen_again: Vec<i64> = Vec::new();
    for (host, f) in found {
        let host = host.map(|h| h.to_string());
        let evidence = serde_json::to_string(&f.evidence).map_err(|e| StoreError::Task(e.to_string()))?;
        let key = (host.clone(), f.rule.clone(), f.subject.clone());
        if let Some(was) = open.remove(&key) {
            if was.severity == f.severity.as_str() && was.title == f.title && was.evidence == evidence {
                seen_again.push(was.id);
            } else {
                conn.prepare_cached(
                    "UPDATE findings SET severity = ?2, title = ?3, evidence = ?4, last_seen = ?5,
                            last_snapshot = COALESCE(?6, last_snapshot)
                     WHERE id = ?1",
                )?
                .execute(params![
                    was.id,
                    f.severity.as_str(),
                    f.title,
                    evidence,
                    observed,
                    snapshot
                ])?;
                rewritten = true;
            }
            applied.updated += 1;
        } else {
            conn.prepare_cached(
                "INSERT INTO findings (org_id, env_id, host_id, source, rule_id, subject, severity, title,
                                       evidence, first_seen, detected_at, last_seen, first_snapshot, last_snapshot)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?10, ?12, ?12)",
            )?
            .execute(params![
                j.org,
                j.env_id,
                host,
                j.source.as_str(),
                f.rule,
                f.subject,
                f.severity.as_str(),
                f.title,
                evidence,
                observed,
                now_ts,
                snapshot
            ])?;
            applied.opened += 1;
            applied.touched.insert(key.0);
        }
    }
    for ((host, _, _), OpenFinding { id, .. }) in open {
        applied.touched.insert(host);
        conn.prepare_cached("UPDATE findings SET resolved_at = ?2, resolved_snapshot = ?3 WHERE id = ?1")?
            .execute(params![id, observed, snapshot])?;
        close_queue_entry(conn, id, "resolved", now)?;
        applied.resolved += 1;
    }
    let steady = !rewritten && applied.opened == 0 && applied.resolved == 0;
    let seen_again = SeenAgain {
        ids: seen_again,
        observed,
        snapshot,
    };
    Ok((applied, steady, seen_again))
}

/// An open finding as stored, to compare with what was observed now.
#[derive(Debug, Clone)]
struct OpenFinding {
    id: i64,
    severity: String,
    title: String,
    evidence: String,
}

/// Gives every open, unsuppressed critical finding of the host (or, for `None`, of the whole
/// environment) without an open queue entry one, when the org's tier is scored (also one whose
/// suppression ended: a new deadline from now).
fn queue_open_criticals(
    conn: &Connection,
    env_id: i64,
    host: Option<&str>,
    tier: Option<Tier>,
    now: OffsetDateTime,
) -> Result<u32, StoreError> {
    let Some(tier) = tier.filter(|t| is_scored(Some(*t))) else {
        return Ok(0);
    };
    let now_ts = ts(now);
    let candidates: Vec<(i64, String, Option<String>, String)> = {
        let mut stmt = match host {
            Some(_) => conn.prepare_cached(
                "SELECT f.id, f.org_id, f.host_id, f.rule_id FROM findings f
                 WHERE f.host_id = ?2 AND f.resolved_at IS NULL AND +f.env_id = ?1 AND f.severity = 'critical'
                   AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.finding_id = f.id AND q.closed_at IS NULL)",
            )?,
            None => conn.prepare_cached(
                "SELECT f.id, f.org_id, f.host_id, f.rule_id FROM findings f
                 WHERE f.env_id = ?1 AND f.resolved_at IS NULL AND f.severity = 'critical' AND CAST(?2 AS TEXT) IS NULL
                   AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.finding_id = f.id AND q.closed_at IS NULL)",
            )?,
        };
        stmt.query_map(params![env_id, host], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let mut queued = 0;
    for (finding_id, org, host, rule) in candidates {
        if is_suppressed(conn, &org, env_id, host.as_deref(), &rule, &now_ts)? {
            continue;
        }
        let response = now + tier.severity1_response();
        let restoration = tier.severity1_restoration().map(|d| ts(now + d));
        let queue_id = conn.prepare_cached(
            "INSERT INTO queue (finding_id, org_id, tier, detected_at, response_deadline, restoration_deadline)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(params![finding_id, org, tier.as_str(), now_ts, ts(response), restoration], |r| {
            r.get::<i64>(0)
        })?;
        if tier == Tier::PriorityPlus {
            enqueue_webhook(conn, queue_id, now)?;
        }
        queued += 1;
    }
    Ok(queued)
}

fn close_queue_entry(
    conn: &Connection,
    finding_id: i64,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE queue SET closed_at = ?2, close_reason = ?3 WHERE finding_id = ?1 AND closed_at IS NULL",
    )?
    .execute(params![finding_id, ts(now), reason])?;
    Ok(())
}

/// Whether an active suppression covers this rule on this host (or environment-level finding).
pub fn is_suppressed(
    conn: &Connection,
    org: &str,
    env_id: i64,
    host: Option<&str>,
    rule: &str,
    now_ts: &str,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM suppressions
             WHERE org_id = ?1 AND rule_id = ?2 AND ended_at IS NULL AND expires_at > ?3
               AND (env_id IS NULL OR env_id = ?4)
               AND (host_id IS NULL OR host_id = ?5))",
        )?
        .query_row(params![org, rule, now_ts, env_id, host], |r| r.get(0))?)
}

/// The body of a Priority Plus alert: everything a receiver needs to act without calling back.
#[derive(Debug, Serialize)]
struct WebhookEvent {
    event: &'static str,
    queue_id: i64,
    org: String,
    tier: String,
    environment: String,
    host_id: Option<String>,
    hostname: Option<String>,
    rule: String,
    severity: String,
    subject: String,
    title: String,
    evidence: serde_json::Value,
    detected_at: String,
    response_deadline: String,
    restoration_deadline: Option<String>,
    /// The planned change the finding appeared in, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    change_window: Option<ChangeRef>,
}

#[derive(Debug, Serialize)]
struct ChangeRef {
    id: i64,
    description: String,
}

fn enqueue_webhook(conn: &Connection, queue_id: i64, now: OffsetDateTime) -> Result<(), StoreError> {
    let event = conn.query_row(
        "SELECT q.id, q.org_id, q.tier, e.name, f.host_id, h.hostname, f.rule_id, f.severity, f.subject,
                f.title, f.evidence, q.detected_at, q.response_deadline, q.restoration_deadline
         FROM queue q JOIN findings f ON f.id = q.finding_id
         JOIN environments e ON e.id = f.env_id
         LEFT JOIN hosts h ON h.host_id = f.host_id
         WHERE q.id = ?1",
        [queue_id],
        |r| {
            let evidence: String = r.get(10)?;
            Ok(WebhookEvent {
                event: "critical.opened",
                queue_id: r.get(0)?,
                org: r.get(1)?,
                tier: r.get(2)?,
                environment: r.get(3)?,
                host_id: r.get(4)?,
                hostname: r.get(5)?,
                rule: r.get(6)?,
                severity: r.get(7)?,
                subject: r.get(8)?,
                title: r.get(9)?,
                evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::Null),
                detected_at: r.get(11)?,
                response_deadline: r.get(12)?,
                restoration_deadline: r.get(13)?,
                change_window: None,
            })
        },
    )?;
    // A finding first seen inside a planned change is expected noise until the change is over:
    // its alert waits for the window's end, and is dropped if the entry closed by then.
    let window: Option<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT w.id, w.description, w.ends_at FROM queue q JOIN findings f ON f.id = q.finding_id
             JOIN change_windows w ON w.env_id = f.env_id AND w.cancelled_at IS NULL
                  AND f.first_seen >= w.starts_at AND f.first_seen < w.ends_at
             WHERE q.id = ?1 ORDER BY w.ends_at DESC LIMIT 1",
        )?
        .query_row([queue_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let now_ts = ts(now);
    let mut event = event;
    let due = match window {
        Some((id, description, ends_at)) => {
            event.change_window = Some(ChangeRef { id, description });
            ends_at.max(now_ts.clone())
        }
        None => now_ts.clone(),
    };
    let body = serde_json::to_string(&event).map_err(|e| StoreError::Task(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO webhook_outbox (queue_id, event, body, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![queue_id, event.event, body, now_ts, due])?;
    Ok(())
}

/// Recomputes a host's score from its open, unsuppressed findings (all sources) and records the
/// day's value; an unscored tier clears it.
pub fn rescore_host(
    conn: &Connection,
    host: Uuid,
    tier: Option<Tier>,
    now: OffsetDateTime,
) -> Result<Option<f64>, StoreError> {
    let current: Option<f64> = conn
        .prepare_cached("SELECT score FROM hosts WHERE host_id = ?1")?
        .query_row([host.to_string()], |r| r.get(0))
        .optional()?
        .flatten();
    rescore_host_from(conn, host, tier, current, now)
}

/// [`rescore_host`] when the host's stored score (`current`) is already known.
pub fn rescore_host_from(
    conn: &Connection,
    host: Uuid,
    tier: Option<Tier>,
    current: Option<f64>,
    now: OffsetDateTime,
) -> Result<Option<f64>, StoreError> {
    rescore_host_with(conn, host, tier, current, Known::default(), now)
}

/// What the caller of [`rescore_host_with`] already read in this transaction.
#[derive(Debug, Default)]
pub struct Known {
    /// The host's open, unsuppressed findings, ordered by id (from [`apply_host`]).
    pub items: Option<Vec<ScoreItem>>,
    /// Today's history row of the host (`Some(None)`: there is none yet).
    pub recorded: Option<Option<(f64, i64)>>,
}

/// [`rescore_host_from`], reading only what `known` does not hold.
pub fn rescore_host_with(
    conn: &Connection,
    host: Uuid,
    tier: Option<Tier>,
    current: Option<f64>,
    known: Known,
    now: OffsetDateTime,
) -> Result<Option<f64>, StoreError> {
    let host_s = host.to_string();
    // Most snapshots leave a host's score as it was: then nothing is written. Ingest rescores the
    // host at every snapshot, and each skipped write is a page less to log and fsync.
    if !is_scored(tier) {
        if current.is_some() {
            conn.prepare_cached("UPDATE hosts SET score = NULL WHERE host_id = ?1")?
                .execute([&host_s])?;
        }
        return Ok(None);
    }
    let items = match known.items {
        Some(items) => items,
        None => score_items(conn, "f.host_id = ?1", &host_s, now)?,
    };
    let score = score::score_host(&items);
    let findings = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let recorded = match known.recorded {
        Some(recorded) => recorded,
        None => conn
            .prepare_cached(
                "SELECT score, findings FROM score_history WHERE scope = 'host' AND scope_id = ?1 AND day = ?2",
            )?
            .query_row(params![host_s, now.date().to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?,
    };
    if current == Some(score.value) && recorded == Some((score.value, findings)) {
        return Ok(Some(score.value));
    }
    if current != Some(score.value) {
        conn.prepare_cached("UPDATE hosts SET score = ?2 WHERE host_id = ?1")?
            .execute(params![host_s, score.value])?;
    }
    record_history(conn, "host", &host_s, score.value, items.len(), now)?;
    Ok(Some(score.value))
}

/// Open, unsuppressed findings matching `filter` (an SQL condition on `f` with one parameter).
fn score_items(
    conn: &Connection,
    filter: &str,
    arg: &dyn super::db::ToSql,
    now: OffsetDateTime,
) -> Result<Vec<ScoreItem>, StoreError> {
    let sql = format!(
        "SELECT f.id, f.host_id, f.rule_id, f.subject, f.severity FROM findings f
         WHERE {filter} AND f.resolved_at IS NULL AND NOT {suppressed}",
        suppressed = suppressed!("?2"),
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![arg, ts(now)], |r| {
        let host: Option<String> = r.get(1)?;
        let severity: String = r.get(4)?;
        Ok((
            r.get::<i64>(0)?,
            ScoreItem {
                host: host.map(|h| super::parse_uuid(&h, 1)).transpose()?,
                rule: r.get(2)?,
                subject: r.get(3)?,
                severity: severity.parse().map_err(|e: String| conversion_error(4, e))?,
            },
        ))
    })?;
    let mut items: Vec<(i64, ScoreItem)> = rows.collect::<Result<_, _>>()?;
    // Sorted here, not by `ORDER BY f.id`: SQLite 3.40 plans a statement ordered that way again at
    // every run once a bare `host_id = ?1` is bound (`sqlite3Reprepare` took a fifth of the writer).
    items.sort_unstable_by_key(|(id, _)| *id);
    Ok(items.into_iter().map(|(_, item)| item).collect())
}

fn record_history(
    conn: &Connection,
    scope: &str,
    scope_id: &str,
    score: f64,
    findings: usize,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO score_history (scope, scope_id, day, score, findings, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (scope, scope_id, day) DO UPDATE SET score = excluded.score,
             findings = excluded.findings, updated_at = excluded.updated_at",
    )?
    .execute(params![
        scope,
        scope_id,
        now.date().to_string(),
        score,
        i64::try_from(findings).unwrap_or(i64::MAX),
        ts(now)
    ])?;
    Ok(())
}

/// Notes that an environment's (and so its org's) score is out of date.
pub fn mark_dirty(conn: &Connection, env_id: i64, org: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO dirty_scores (env_id, org_id, since) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?
    .execute(params![env_id, org, ts(now)])?;
    Ok(())
}

/// Scores an environment or an org over its hosts and open findings, stores it with its
/// explanation and the day's history. `scope` is `env` (id: the env id) or `org`.
pub fn rescore_fleet(
    conn: &Connection,
    scope: &str,
    scope_id: &str,
    tier: Option<Tier>,
    now: OffsetDateTime,
) -> Result<Option<score::Score>, StoreError> {
    let env_id: Option<i64> = if scope == "env" {
        Some(
            scope_id
                .parse()
                .map_err(|_| StoreError::Invalid(format!("bad environment id `{scope_id}`")))?,
        )
    } else {
        None
    };
    let (column, arg): (&str, &dyn super::db::ToSql) = match &env_id {
        Some(id) => ("env_id", id),
        None => ("org_id", &scope_id),
    };
    if !is_scored(tier) {
        conn.prepare_cached("DELETE FROM scores WHERE scope = ?1 AND scope_id = ?2")?
            .execute([scope, scope_id])?;
        return Ok(None);
    }
    let hosts: Vec<Uuid> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT host_id FROM hosts WHERE {column} = ?1 ORDER BY host_id"
        ))?;
        stmt.query_map([arg], |r| super::parse_uuid(&r.get::<String>(0)?, 0))?
            .collect::<Result<_, _>>()?
    };
    let items = score_items(conn, &format!("f.{column} = ?1"), arg, now)?;
    let score = score::score_fleet(&hosts, &items);
    let explanation =
        serde_json::to_string(&score.contributions).map_err(|e| StoreError::Task(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO scores (scope, scope_id, score, explanation, computed_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (scope, scope_id) DO UPDATE SET score = excluded.score,
             explanation = excluded.explanation, computed_at = excluded.computed_at",
    )?
    .execute(params![scope, scope_id, score.value, explanation, ts(now)])?;
    record_history(conn, scope, scope_id, score.value, items.len(), now)?;
    Ok(Some(score))
}

// ---- read side, for the admin commands (and later the console) ----

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRow {
    pub id: i64,
    pub org: String,
    pub environment: String,
    pub host_id: Option<String>,
    pub hostname: Option<String>,
    pub source: String,
    pub rule: String,
    pub severity: Severity,
    pub subject: String,
    pub title: String,
    pub evidence: serde_json::Value,
    pub first_seen: String,
    pub detected_at: String,
    pub last_seen: String,
    pub resolved_at: Option<String>,
    pub suppressed: bool,
    /// The planned change it was first seen in, if any: change-related.
    pub change_window: Option<i64>,
}

/// Which findings to list.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub environment: Option<String>,
    pub host: Option<Uuid>,
    pub min_severity: Option<Severity>,
    pub rule: Option<String>,
    /// `open` (default), `resolved` or `all`.
    pub state: FindingState,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FindingState {
    #[default]
    Open,
    Resolved,
    All,
}

pub fn list_findings(
    conn: &Connection,
    org: &str,
    filter: &FindingFilter,
    now: OffsetDateTime,
) -> Result<Vec<FindingRow>, StoreError> {
    let state = match filter.state {
        FindingState::Open => "f.resolved_at IS NULL",
        FindingState::Resolved => "f.resolved_at IS NOT NULL",
        FindingState::All => "1 = 1",
    };
    let sql = format!(
        "SELECT f.id, f.org_id, e.name, f.host_id, h.hostname, f.source, f.rule_id, f.severity, f.subject,
                f.title, f.evidence, f.first_seen, f.detected_at, f.last_seen, f.resolved_at,
                {suppressed},
                (SELECT w.id FROM change_windows w WHERE w.env_id = f.env_id AND w.cancelled_at IS NULL
                   AND f.first_seen >= w.starts_at AND f.first_seen < w.ends_at ORDER BY w.starts_at LIMIT 1)
         FROM findings f JOIN environments e ON e.id = f.env_id
         LEFT JOIN hosts h ON h.host_id = f.host_id
         WHERE f.org_id = ?1 AND {state}
           AND (CAST(?3 AS TEXT) IS NULL OR e.name = ?3) AND (CAST(?4 AS TEXT) IS NULL OR f.host_id = ?4) AND (CAST(?5 AS TEXT) IS NULL OR f.rule_id = ?5)
         ORDER BY f.id",
        suppressed = suppressed!("?2"),
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(
        params![
            org,
            ts(now),
            filter.environment,
            filter.host.map(|h| h.to_string()),
            filter.rule
        ],
        |r| {
            let severity: String = r.get(7)?;
            let evidence: String = r.get(10)?;
            Ok(FindingRow {
                id: r.get(0)?,
                org: r.get(1)?,
                environment: r.get(2)?,
                host_id: r.get(3)?,
                hostname: r.get(4)?,
                source: r.get(5)?,
                rule: r.get(6)?,
                severity: severity.parse().map_err(|e: String| conversion_error(7, e))?,
                subject: r.get(8)?,
                title: r.get(9)?,
                evidence: serde_json::from_str(&evidence).map_err(|e| conversion_error(10, e.to_string()))?,
                first_seen: r.get(11)?,
                detected_at: r.get(12)?,
                last_seen: r.get(13)?,
                resolved_at: r.get(14)?,
                suppressed: r.get(15)?,
                change_window: r.get(16)?,
            })
        },
    )?;
    let mut out: Vec<FindingRow> = rows.collect::<Result<_, _>>()?;
    if let Some(min) = filter.min_severity {
        out.retain(|f| f.severity >= min);
    }
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueEntry {
    pub id: i64,
    pub finding_id: i64,
    pub org: String,
    pub tier: String,
    pub environment: String,
    pub host_id: Option<String>,
    pub hostname: Option<String>,
    pub rule: String,
    pub subject: String,
    pub title: String,
    pub detected_at: String,
    pub response_deadline: String,
    pub restoration_deadline: Option<String>,
    /// The response deadline has passed without an acknowledgement.
    pub overdue: bool,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub closed_at: Option<String>,
    pub close_reason: Option<String>,
}

/// Queue entries, open ones first by deadline. `org`: only that org's; `orgs`: only those orgs' (a
/// console user's visibility, filtered here so another org's entries are never loaded); `all`:
/// closed ones too.
pub fn list_queue(
    conn: &Connection,
    org: Option<&str>,
    orgs: Option<&[String]>,
    all: bool,
    now: OffsetDateTime,
) -> Result<Vec<QueueEntry>, StoreError> {
    let orgs = orgs
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let sql = format!(
        "SELECT q.id, q.finding_id, q.org_id, q.tier, e.name, f.host_id, h.hostname, f.rule_id, f.subject,
                f.title, q.detected_at, q.response_deadline, q.restoration_deadline, q.acknowledged_at,
                q.acknowledged_by, q.closed_at, q.close_reason
         FROM queue q JOIN findings f ON f.id = q.finding_id
         JOIN environments e ON e.id = f.env_id
         LEFT JOIN hosts h ON h.host_id = f.host_id
         WHERE (CAST(?1 AS TEXT) IS NULL OR q.org_id = ?1) AND (?2 OR q.closed_at IS NULL)
           AND (CAST(?3 AS TEXT) IS NULL OR q.org_id IN ({}))
         ORDER BY q.closed_at IS NOT NULL, q.response_deadline, q.id",
        conn.json_array_text("?3")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let now_ts = ts(now);
    let rows = stmt.query_map(params![org, all, orgs], |r| {
        let deadline: String = r.get(11)?;
        let acknowledged_at: Option<String> = r.get(13)?;
        let closed_at: Option<String> = r.get(15)?;
        Ok(QueueEntry {
            id: r.get(0)?,
            finding_id: r.get(1)?,
            org: r.get(2)?,
            tier: r.get(3)?,
            environment: r.get(4)?,
            host_id: r.get(5)?,
            hostname: r.get(6)?,
            rule: r.get(7)?,
            subject: r.get(8)?,
            title: r.get(9)?,
            detected_at: r.get(10)?,
            overdue: acknowledged_at.is_none() && closed_at.is_none() && deadline < now_ts,
            response_deadline: deadline,
            restoration_deadline: r.get(12)?,
            acknowledged_at,
            acknowledged_by: r.get(14)?,
            closed_at,
            close_reason: r.get(16)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records who acknowledged an entry, and when. Acknowledging twice keeps the first.
/// Run it inside a transaction: the audit row commits with the acknowledgement.
pub fn acknowledge(
    conn: &Connection,
    id: i64,
    by: &str,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let org: Option<String> = conn
        .query_row("SELECT org_id FROM queue WHERE id = ?1", [id], |r| r.get(0))
        .optional()?;
    let Some(org) = org else {
        return Err(StoreError::NotFound(format!("no queue entry {id}")));
    };
    let changed = conn.execute(
        "UPDATE queue SET acknowledged_at = ?2, acknowledged_by = ?3 WHERE id = ?1 AND acknowledged_at IS NULL",
        params![id, ts(now), by],
    )?;
    if changed == 1 {
        let details = serde_json::json!({ "by": by });
        audit::record(
            conn,
            actor,
            Action::QueueAck,
            &id.to_string(),
            Some(&org),
            details,
            now,
        )?;
    }
    Ok(changed == 1)
}

/// The console's queue: the open entries of the orgs a user may see, and how fresh they are.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueView {
    pub entries: Vec<QueueEntry>,
    /// The newest of: a snapshot received from those orgs' hosts, an entry detected or acknowledged
    /// (what the page's "data as of" says); `None` when there is nothing yet.
    pub data_as_of: Option<String>,
}

/// How a console user's acknowledgement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledged {
    Recorded,
    /// Someone acknowledged it first: their name and time stay.
    Already,
    /// No such entry, or one of an org the user may not see (the same answer for both).
    NotFound,
}

/// The org filter of a visibility: `None` for every org.
fn visible_org_list(visibility: &Visibility) -> Option<Vec<String>> {
    match visibility {
        Visibility::All => None,
        Visibility::Orgs(orgs) => Some(orgs.iter().cloned().collect()),
    }
}

impl super::Store {
    /// The open queue of the orgs `visibility` allows, filtered in SQL.
    pub async fn visible_queue(
        &self,
        visibility: Visibility,
        now: OffsetDateTime,
    ) -> Result<QueueView, StoreError> {
        self.blocking(move |conn| {
            let orgs = visible_org_list(&visibility);
            let entries = list_queue(conn, None, orgs.as_deref(), false, now)?;
            let orgs_json = orgs
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let last_seen: Option<String> = conn.query_row(
                &format!(
                    "SELECT MAX(last_seen) FROM hosts WHERE CAST(?1 AS TEXT) IS NULL OR org_id IN ({})",
                    conn.json_array_text("?1")
                ),
                [orgs_json],
                |r| r.get(0),
            )?;
            let data_as_of = entries
                .iter()
                .flat_map(|e| [Some(&e.detected_at), e.acknowledged_at.as_ref()])
                .flatten()
                .chain(last_seen.as_ref())
                .max()
                .cloned();
            Ok(QueueView { entries, data_as_of })
        })
        .await
    }

    /// Acknowledges entry `id` for a console user, only if its org is one `visibility` allows.
    pub async fn acknowledge_visible(
        &self,
        id: i64,
        visibility: Visibility,
        actor: Actor,
        now: OffsetDateTime,
    ) -> Result<Acknowledged, StoreError> {
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            let org: Option<String> = tx
                .query_row("SELECT org_id FROM queue WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let outcome = match org {
                Some(org) if visibility.contains(&org) => {
                    if acknowledge(&tx, id, &actor.who, &actor, now)? {
                        Acknowledged::Recorded
                    } else {
                        Acknowledged::Already
                    }
                }
                _ => Acknowledged::NotFound,
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    pub id: i64,
    pub org: String,
    pub environment: Option<String>,
    pub host_id: Option<String>,
    pub rule: String,
    pub reason: String,
    pub author: String,
    pub created_at: String,
    pub expires_at: String,
    pub ended_at: Option<String>,
    pub ended_by: Option<String>,
    pub active: bool,
}

pub fn list_suppressions(
    conn: &Connection,
    org: &str,
    now: OffsetDateTime,
) -> Result<Vec<Suppression>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT s.id, s.org_id, e.name, s.host_id, s.rule_id, s.reason, s.author, s.created_at, s.expires_at,
                s.ended_at, s.ended_by
         FROM suppressions s LEFT JOIN environments e ON e.id = s.env_id
         WHERE s.org_id = ?1 ORDER BY s.id",
    )?;
    let now_ts = ts(now);
    let rows = stmt.query_map([org], |r| {
        let expires_at: String = r.get(8)?;
        let ended_at: Option<String> = r.get(9)?;
        Ok(Suppression {
            id: r.get(0)?,
            org: r.get(1)?,
            environment: r.get(2)?,
            host_id: r.get(3)?,
            rule: r.get(4)?,
            reason: r.get(5)?,
            author: r.get(6)?,
            created_at: r.get(7)?,
            active: ended_at.is_none() && expires_at > now_ts,
            expires_at,
            ended_at,
            ended_by: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Closes the queue entries of open findings that an active suppression now covers.
pub fn close_suppressed_entries(
    conn: &Connection,
    org: &str,
    now: OffsetDateTime,
) -> Result<u32, StoreError> {
    let now_ts = ts(now);
    let changed = conn.execute(
        "UPDATE queue SET closed_at = ?2, close_reason = 'suppressed'
         WHERE closed_at IS NULL AND org_id = ?1 AND finding_id IN (
             SELECT f.id FROM findings f JOIN suppressions s
               ON s.org_id = f.org_id AND s.rule_id = f.rule_id AND s.ended_at IS NULL AND s.expires_at > ?2
              AND (s.env_id IS NULL OR s.env_id = f.env_id) AND (s.host_id IS NULL OR s.host_id = f.host_id)
             WHERE f.org_id = ?1)",
        params![org, now_ts],
    )?;
    Ok(u32::try_from(changed).unwrap_or(u32::MAX))
}

/// A host's open findings counted by severity (for summaries).
pub fn severity_counts(conn: &Connection, org: &str) -> Result<BTreeMap<String, i64>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT severity, COUNT(*) FROM findings WHERE org_id = ?1 AND resolved_at IS NULL GROUP BY severity",
    )?;
    let rows = stmt.query_map([org], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The webhook event due next, if any: claimed by pushing its next attempt `lease` ahead, so that
/// another sender (another replica) does not take it meanwhile.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub event: String,
    pub body: String,
    pub attempts: i64,
    pub created_at: String,
}

pub fn claim_webhook(
    conn: &Connection,
    now: OffsetDateTime,
    lease: time::Duration,
) -> Result<Option<OutboxItem>, StoreError> {
    let now_ts = ts(now);
    loop {
        let item: Option<(OutboxItem, Option<String>)> = conn
            .query_row(
                "SELECT o.id, o.event, o.body, o.attempts, o.created_at, q.close_reason
                 FROM webhook_outbox o JOIN queue q ON q.id = o.queue_id
                 WHERE o.delivered_at IS NULL AND o.gave_up_at IS NULL AND o.next_attempt_at <= ?1
                 ORDER BY o.next_attempt_at, o.id LIMIT 1",
                [&now_ts],
                |r| {
                    Ok((
                        OutboxItem {
                            id: r.get(0)?,
                            event: r.get(1)?,
                            body: r.get(2)?,
                            attempts: r.get(3)?,
                            created_at: r.get(4)?,
                        },
                        r.get(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((item, closed)) = item else {
            return Ok(None);
        };
        if let Some(reason) = closed {
            // Alert for an entry that is no longer open (resolved during a planned change, say).
            conn.execute(
                "UPDATE webhook_outbox SET gave_up_at = ?2, last_error = ?3 WHERE id = ?1",
                params![
                    item.id,
                    now_ts,
                    format!("not sent: the queue entry closed ({reason}) first")
                ],
            )?;
            continue;
        }
        conn.execute(
            "UPDATE webhook_outbox SET next_attempt_at = ?2 WHERE id = ?1",
            params![item.id, ts(now + lease)],
        )?;
        return Ok(Some(item));
    }
}

/// What became of one delivery attempt.
#[derive(Debug, Clone)]
pub enum Attempt {
    Delivered,
    Retry { error: String, next: OffsetDateTime },
    GiveUp { error: String },
}

pub fn record_webhook_attempt(
    conn: &Connection,
    id: i64,
    attempt: &Attempt,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let now_ts = ts(now);
    match attempt {
        Attempt::Delivered => conn.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = ?2, last_error = NULL WHERE id = ?1",
            params![id, now_ts],
        )?,
        Attempt::Retry { error, next } => conn.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
            params![id, error, ts(*next)],
        )?,
        Attempt::GiveUp { error } => conn.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?2, gave_up_at = ?3 WHERE id = ?1",
            params![id, error, now_ts],
        )?,
    };
    Ok(())
}

// ---- planned changes ----

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeWindow {
    pub id: i64,
    pub org: String,
    pub environment: String,
    pub starts_at: String,
    pub ends_at: String,
    pub description: String,
    pub author: String,
    pub created_at: String,
    pub cancelled_at: Option<String>,
    /// Open findings first seen inside the window.
    pub findings: i64,
}

pub fn list_change_windows(conn: &Connection, org: &str) -> Result<Vec<ChangeWindow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT w.id, w.org_id, e.name, w.starts_at, w.ends_at, w.description, w.author, w.created_at,
                w.cancelled_at,
                (SELECT COUNT(*) FROM findings f WHERE f.env_id = w.env_id AND f.resolved_at IS NULL
                   AND f.first_seen >= w.starts_at AND f.first_seen < w.ends_at)
         FROM change_windows w JOIN environments e ON e.id = w.env_id
         WHERE w.org_id = ?1 ORDER BY w.starts_at DESC, w.id DESC",
    )?;
    let rows = stmt.query_map([org], |r| {
        Ok(ChangeWindow {
            id: r.get(0)?,
            org: r.get(1)?,
            environment: r.get(2)?,
            starts_at: r.get(3)?,
            ends_at: r.get(4)?,
            description: r.get(5)?,
            author: r.get(6)?,
            created_at: r.get(7)?,
            cancelled_at: r.get(8)?,
            findings: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
