//! The health-check report of an org (`/orgs/{org}/report`): one printable page (the stylesheet's
//! print rules drop the navigation, break pages between sections and keep table rows whole) with an
//! executive summary, the score trend, top risks with remediation, the host inventory, planned
//! changes of the period, and what opened and resolved since the previous report. Each generated
//! report is recorded (`store::report`).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use callhome_shared::rules::Severity;
use http::StatusCode;
use time::OffsetDateTime;

use super::charts::{daily_points, trend_chart};
use super::html;
use super::layout::{Layout, Stamp, utc_text};
use super::view::{Delta, score_text, severity_counts, severity_label, store_error, tier_label};
use crate::http::auth::Principal;
use crate::http::{AppError, AppState};
use crate::store::accounts::Visibility;
use crate::store::console::{FindingQuery, TREND_DAYS};
use crate::store::risk::FindingRow;

/// Top risks listed in the report.
const TOP_RISKS: usize = 10;

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    layout: Layout,
    org: String,
    name: String,
    tier: &'static str,
    tams: String,
    generated: String,
    generated_by: String,
    scored: bool,
    score: String,
    change_30d: Delta,
    hosts: usize,
    environments: usize,
    counts: Vec<(&'static str, usize)>,
    criticals: Vec<CriticalRow>,
    trend: String,
    risks: Vec<RiskRow>,
    inventory: Vec<InventoryRow>,
    windows: Vec<WindowRow>,
    period_from: Stamp,
    since: Stamp,
    previous: Option<(Stamp, String)>,
    opened: Vec<DeltaRow>,
    resolved: Vec<DeltaRow>,
}

struct CriticalRow {
    title: String,
    host: String,
    environment: String,
    detected: Stamp,
    /// `acknowledged by X`, `overdue`, `awaiting response`, or `no response deadline`.
    state: String,
    state_class: &'static str,
}

struct RiskRow {
    rule: String,
    severity: &'static str,
    severity_class: &'static str,
    title: String,
    hosts: usize,
    findings: usize,
    remediation: Option<&'static str>,
}

struct InventoryRow {
    hostname: String,
    environment: String,
    os: String,
    vda_version: String,
    agent_version: String,
    last_seen: Option<Stamp>,
    score: String,
    open_criticals: i64,
}

struct WindowRow {
    environment: String,
    starts: Stamp,
    ends: Stamp,
    description: String,
    findings: i64,
    cancelled: bool,
}

struct DeltaRow {
    severity: &'static str,
    severity_class: &'static str,
    title: String,
    host: String,
    at: Stamp,
}

impl DeltaRow {
    fn new(f: &FindingRow, at: &str) -> DeltaRow {
        DeltaRow {
            severity: severity_label(f.severity),
            severity_class: f.severity.as_str(),
            title: f.title.clone(),
            host: f
                .hostname
                .clone()
                .unwrap_or_else(|| format!("{} (environment)", f.environment)),
            at: Stamp::new(at),
        }
    }
}

/// Open findings by rule, worst first then broadest (most hosts), then most findings.
fn top_risks(findings: &[FindingRow]) -> Vec<RiskRow> {
    let mut groups: BTreeMap<&str, Vec<&FindingRow>> = BTreeMap::new();
    for f in findings {
        groups.entry(f.rule.as_str()).or_default().push(f);
    }
    let mut rows: Vec<(Severity, RiskRow)> = groups
        .into_iter()
        .map(|(rule, fs)| {
            let worst = fs.iter().map(|f| f.severity).max().unwrap_or(Severity::Info);
            let mut hosts: Vec<&str> = fs.iter().filter_map(|f| f.host_id.as_deref()).collect();
            hosts.sort_unstable();
            hosts.dedup();
            (
                worst,
                RiskRow {
                    rule: rule.to_owned(),
                    severity: severity_label(worst),
                    severity_class: worst.as_str(),
                    title: fs.first().map(|f| f.title.clone()).unwrap_or_default(),
                    hosts: hosts.len(),
                    findings: fs.len(),
                    remediation: callhome_shared::rules::rule_info(rule).map(|i| i.remediation),
                },
            )
        })
        .collect();
    rows.sort_by(|(sa, a), (sb, b)| {
        sb.cmp(sa)
            .then(b.hosts.cmp(&a.hosts))
            .then(b.findings.cmp(&a.findings))
            .then(a.rule.cmp(&b.rule))
    });
    rows.into_iter().take(TOP_RISKS).map(|(_, r)| r).collect()
}

/// The host's OS (`os_name os_version`) from its latest snapshot's system section, when reported.
fn os_of(snapshot: Option<&crate::store::console::SnapshotView>) -> String {
    let system = snapshot.and_then(|s| s.sections.get("system"));
    let part = |key: &str| {
        system
            .and_then(|v| v.get(key))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    match (part("os_name"), part("os_version")) {
        (Some(name), Some(version)) if !name.contains(version) => format!("{name} {version}"),
        (Some(name), _) => name.to_owned(),
        (None, Some(version)) => version.to_owned(),
        (None, None) => "–".to_owned(),
    }
}

/// `GET /orgs/{org}/report`.
pub async fn report_page(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Response, AppError> {
    principal.require_org(&org)?;
    let now = OffsetDateTime::now_utc();
    let detail = state.store.org_detail(&org, now).await.map_err(store_error)?;
    let findings = state
        .store
        .findings_filtered(&org, FindingQuery::default(), now)
        .await
        .map_err(store_error)?;
    let hosts = state.store.org_hosts(&org, None).await.map_err(store_error)?;
    let windows = state.store.change_windows(&org).await.map_err(store_error)?;
    let tams = state.store.org_tams(vec![org.clone()]).await?;
    let ranked = state
        .store
        .orgs_ranked(Some(std::slice::from_ref(&org)), now)
        .await?;
    let queue = state
        .store
        .visible_queue(Visibility::Orgs([org.clone()].into()), now)
        .await?;
    let delta = state
        .store
        .record_report(&org, &principal.login, now)
        .await
        .map_err(store_error)?;

    // The OS is in each host's latest snapshot: read them only for the inventory (one org).
    let mut inventory = Vec::with_capacity(hosts.len());
    for h in hosts {
        let os = match uuid::Uuid::parse_str(&h.host_id) {
            Ok(id) => match state.store.host_detail(id, now).await {
                Ok(d) => os_of(d.latest_snapshot.as_ref()),
                Err(_) => "–".to_owned(),
            },
            Err(_) => "–".to_owned(),
        };
        inventory.push(InventoryRow {
            hostname: h.hostname,
            environment: h.environment,
            os,
            vda_version: h.vda_version.unwrap_or_else(|| "–".to_owned()),
            agent_version: h.agent_version,
            last_seen: h.last_seen.as_deref().map(Stamp::new),
            score: score_text(h.score),
            open_criticals: h.open_criticals,
        });
    }
    let period_start = now - time::Duration::days(TREND_DAYS);
    let period_start_ts = crate::store::ts(period_start);
    let criticals = queue
        .entries
        .iter()
        .filter(|e| e.org == org)
        .map(|e| {
            let (state, state_class) = match (&e.acknowledged_by, e.overdue) {
                (Some(by), _) => (format!("acknowledged by {by}"), "ok"),
                (None, true) => ("overdue, not acknowledged".to_owned(), "bad"),
                (None, false) => ("awaiting response".to_owned(), "warn"),
            };
            CriticalRow {
                title: e.title.clone(),
                host: e
                    .hostname
                    .clone()
                    .or_else(|| e.host_id.clone())
                    .unwrap_or_else(|| "whole environment".to_owned()),
                environment: e.environment.clone(),
                detected: Stamp::new(&e.detected_at),
                state,
                state_class,
            }
        })
        .collect::<Vec<_>>();
    // Open criticals of unscored orgs have no queue entry: list them too, without a deadline.
    let queued: std::collections::BTreeSet<i64> = queue.entries.iter().map(|e| e.finding_id).collect();
    let mut criticals = criticals;
    for f in findings.iter().filter(|f| f.severity == Severity::Critical) {
        if !queued.contains(&f.id) {
            criticals.push(CriticalRow {
                title: f.title.clone(),
                host: f
                    .hostname
                    .clone()
                    .unwrap_or_else(|| "whole environment".to_owned()),
                environment: f.environment.clone(),
                detected: Stamp::new(&f.detected_at),
                state: if f.suppressed {
                    "suppressed"
                } else {
                    "open, no response deadline"
                }
                .to_owned(),
                state_class: "warn",
            });
        }
    }
    let rows: Vec<(String, f64)> = detail.trend.iter().map(|d| (d.day.clone(), d.score)).collect();
    let page = ReportPage {
        layout: Layout::new(&principal, "customers", detail.last_seen.as_deref()),
        tier: tier_label(detail.tier.as_deref()),
        tams: tams.get(&org).map(|t| t.join(", ")).unwrap_or_default(),
        generated: utc_text(now),
        generated_by: principal.name.clone(),
        scored: detail.scored,
        score: score_text(detail.score),
        change_30d: Delta::new(ranked.first().and_then(|r| r.change_30d), 30),
        hosts: inventory.len(),
        environments: detail.environments.len(),
        counts: severity_counts(findings.iter().map(|f| &f.severity)),
        criticals,
        trend: trend_chart(
            &daily_points(&rows),
            now.date() - time::Duration::days(TREND_DAYS - 1),
            now.date(),
            &format!("Risk score of {}", detail.name),
        ),
        risks: top_risks(&findings),
        inventory,
        windows: windows
            .into_iter()
            .filter(|w| w.ends_at >= period_start_ts)
            .map(|w| WindowRow {
                starts: Stamp::new(&w.starts_at),
                ends: Stamp::new(&w.ends_at),
                cancelled: w.cancelled_at.is_some(),
                environment: w.environment,
                description: w.description,
                findings: w.findings,
            })
            .collect(),
        period_from: Stamp::new(&period_start_ts),
        since: Stamp::new(&delta.since),
        previous: delta
            .previous
            .as_ref()
            .map(|p| (Stamp::new(&p.generated_at), p.generated_by.clone())),
        opened: delta
            .opened
            .iter()
            .map(|f| DeltaRow::new(f, &f.first_seen))
            .collect(),
        resolved: delta
            .resolved
            .iter()
            .map(|f| DeltaRow::new(f, f.resolved_at.as_deref().unwrap_or_default()))
            .collect(),
        org: detail.org,
        name: detail.name,
    };
    Ok(html(StatusCode::OK, &page))
}
