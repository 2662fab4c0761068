//! The org page (`/orgs/{org}`, one environment with `?env=NAME`): the score trend over 90 days,
//! open findings grouped by rule with the hosts they are on, stale hosts, the VDA version spread,
//! planned changes with their change-related findings, capacity, and links to the report and the
//! CSV exports (served here too).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use callhome_shared::rules::Severity;
use http::StatusCode;
use serde::Deserialize;
use time::OffsetDateTime;

use super::charts::{daily_points, trend_chart};
use super::html;
use super::layout::{Layout, Stamp};
use super::view::{score_text, severity_label, store_error, tier_label};
use crate::http::auth::Principal;
use crate::http::{AppError, AppState};
use crate::store::console::{DayScore, FindingQuery, TREND_DAYS};
use crate::store::jobs::JobSettings;
use crate::store::risk::FindingRow;

#[derive(Debug, Deserialize)]
pub struct EnvQuery {
    env: Option<String>,
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    layout: Layout,
    org: String,
    name: String,
    tier: &'static str,
    scored: bool,
    score: String,
    tams: String,
    /// The environment shown, or `None` for the whole org.
    env: Option<String>,
    environments: Vec<EnvRow>,
    hosts: i64,
    open_criticals: i64,
    /// SVG from `charts::trend_chart`.
    trend: String,
    groups: Vec<RuleGroupRow>,
    stale: Vec<StaleRow>,
    versions: Vec<(String, i64, u32)>,
    windows: Vec<WindowRow>,
}

/// `GET /orgs/{org}/capacity`: its own page, because it reads every host's recent history (about
/// 100 ms for an org of 3,000 hosts), which the org page should not wait for.
#[derive(Template)]
#[template(path = "capacity.html")]
struct CapacityPage {
    layout: Layout,
    org: String,
    name: String,
    env: Option<String>,
    capacity: Vec<CapacityRow>,
}

struct EnvRow {
    name: String,
    score: String,
    hosts: i64,
    open_criticals: i64,
    stale_hosts: i64,
}

struct HostLink {
    id: String,
    name: String,
    change_related: bool,
}

struct RuleGroupRow {
    rule: String,
    severity: &'static str,
    severity_class: &'static str,
    title: String,
    findings: usize,
    /// Hosts affected, all of them.
    host_count: usize,
    /// The first of them by name, linked; the rest are counted (the CSV lists all).
    hosts: Vec<HostLink>,
    /// Findings without a host (environment-wide judgements).
    environment_wide: usize,
    change_related: usize,
    remediation: Option<&'static str>,
}

struct StaleRow {
    host_id: String,
    hostname: String,
    environment: String,
    last_seen: Option<Stamp>,
    rule: String,
}

struct WindowRow {
    environment: String,
    starts: Stamp,
    ends: Stamp,
    description: String,
    author: String,
    cancelled: bool,
    findings: i64,
}

struct CapacityRow {
    environment: String,
    hosts: usize,
    sessions_at_peak: u32,
    spare_sessions: u32,
    hot_hosts: usize,
    hosts_unknown: u32,
}

/// Host links listed per rule on the org page.
const MAX_HOST_LINKS: usize = 25;

/// Open findings grouped by rule, worst first, then broadest; each group lists its hosts.
fn group_by_rule(findings: Vec<FindingRow>) -> Vec<RuleGroupRow> {
    let mut groups: BTreeMap<String, Vec<FindingRow>> = BTreeMap::new();
    for f in findings {
        groups.entry(f.rule.clone()).or_default().push(f);
    }
    let mut rows: Vec<(Severity, RuleGroupRow)> = groups
        .into_iter()
        .map(|(rule, fs)| {
            let worst = fs.iter().map(|f| f.severity).max().unwrap_or(Severity::Info);
            let mut hosts: BTreeMap<String, HostLink> = BTreeMap::new();
            for f in &fs {
                if let Some(id) = &f.host_id {
                    let link = hosts.entry(id.clone()).or_insert_with(|| HostLink {
                        id: id.clone(),
                        name: f.hostname.clone().unwrap_or_else(|| id.clone()),
                        change_related: false,
                    });
                    link.change_related |= f.change_window.is_some();
                }
            }
            let mut hosts: Vec<HostLink> = hosts.into_values().collect();
            hosts.sort_by(|a, b| a.name.cmp(&b.name));
            let host_count = hosts.len();
            // A rule on 3,000 hosts would make a page of links no one reads, slow to send.
            hosts.truncate(MAX_HOST_LINKS);
            let info = callhome_shared::rules::rule_info(&rule);
            let row = RuleGroupRow {
                severity: severity_label(worst),
                severity_class: worst.as_str(),
                title: fs.first().map(|f| f.title.clone()).unwrap_or_default(),
                findings: fs.len(),
                host_count,
                environment_wide: fs.iter().filter(|f| f.host_id.is_none()).count(),
                change_related: fs.iter().filter(|f| f.change_window.is_some()).count(),
                remediation: info.map(|i| i.remediation),
                hosts,
                rule,
            };
            (worst, row)
        })
        .collect();
    rows.sort_by(|(sa, a), (sb, b)| {
        sb.cmp(sa)
            .then(b.host_count.cmp(&a.host_count))
            .then(a.rule.cmp(&b.rule))
    });
    rows.into_iter().map(|(_, r)| r).collect()
}

fn points(trend: &[DayScore]) -> Vec<(time::Date, f64)> {
    let rows: Vec<(String, f64)> = trend.iter().map(|d| (d.day.clone(), d.score)).collect();
    daily_points(&rows)
}

/// `GET /orgs/{org}` (`?env=NAME`: one environment).
pub async fn org_page(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
    Query(query): Query<EnvQuery>,
) -> Result<Response, AppError> {
    principal.require_org(&org)?;
    let now = OffsetDateTime::now_utc();
    let detail = state.store.org_detail(&org, now).await.map_err(store_error)?;
    let env = query.env.filter(|e| !e.is_empty());
    let env_summary = match &env {
        Some(name) => Some(
            detail
                .environments
                .iter()
                .find(|e| &e.name == name)
                .ok_or(AppError::NotFound)?,
        ),
        None => None,
    };
    let findings = state
        .store
        .findings_filtered(
            &org,
            FindingQuery {
                environment: env.clone(),
                ..FindingQuery::default()
            },
            now,
        )
        .await
        .map_err(store_error)?;
    let windows = state.store.change_windows(&org).await.map_err(store_error)?;
    let tams = state.store.org_tams(vec![org.clone()]).await?;
    let (from, to) = (now.date() - time::Duration::days(TREND_DAYS - 1), now.date());
    let (trend, label, versions) = match env_summary {
        Some(e) => (
            points(&e.trend),
            format!("Risk score of {} / {}", detail.name, e.name),
            e.vda_versions.clone(),
        ),
        None => {
            let mut all: BTreeMap<String, i64> = BTreeMap::new();
            for e in &detail.environments {
                for (v, n) in &e.vda_versions {
                    *all.entry(v.clone()).or_default() += n;
                }
            }
            (
                points(&detail.trend),
                format!("Risk score of {}", detail.name),
                all,
            )
        }
    };
    let total: i64 = versions.values().sum();
    let mut versions: Vec<(String, i64, u32)> = versions
        .into_iter()
        .map(|(v, n)| {
            let pct = if total > 0 {
                u32::try_from(n * 100 / total).unwrap_or(100)
            } else {
                0
            };
            (v, n, pct)
        })
        .collect();
    versions.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let in_env = |name: &str| env.as_deref().is_none_or(|e| e == name);
    let page = OrgPage {
        layout: Layout::new(&principal, "customers", detail.last_seen.as_deref()),
        tier: tier_label(detail.tier.as_deref()),
        scored: detail.scored,
        score: score_text(env_summary.map_or(detail.score, |e| e.score)),
        tams: tams.get(&org).map(|t| t.join(", ")).unwrap_or_default(),
        environments: detail
            .environments
            .iter()
            .map(|e| EnvRow {
                name: e.name.clone(),
                score: score_text(e.score),
                hosts: e.hosts,
                open_criticals: e.open_criticals,
                stale_hosts: e.stale_hosts,
            })
            .collect(),
        hosts: env_summary.map_or(detail.hosts, |e| e.hosts),
        open_criticals: env_summary.map_or(detail.open_criticals, |e| e.open_criticals),
        trend: trend_chart(&trend, from, to, &label),
        groups: group_by_rule(findings),
        stale: detail
            .stale_hosts
            .iter()
            .filter(|s| in_env(&s.environment))
            .map(|s| StaleRow {
                host_id: s.host_id.clone(),
                hostname: s.hostname.clone(),
                environment: s.environment.clone(),
                last_seen: s.last_seen.as_deref().map(Stamp::new),
                rule: s.rule.clone(),
            })
            .collect(),
        versions,
        windows: windows
            .into_iter()
            .filter(|w| in_env(&w.environment))
            .map(|w| WindowRow {
                starts: Stamp::new(&w.starts_at),
                ends: Stamp::new(&w.ends_at),
                cancelled: w.cancelled_at.is_some(),
                environment: w.environment,
                description: w.description,
                author: w.author,
                findings: w.findings,
            })
            .collect(),
        org: detail.org,
        name: detail.name,
        env,
    };
    Ok(html(StatusCode::OK, &page))
}

pub async fn capacity_page(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
    Query(query): Query<EnvQuery>,
) -> Result<Response, AppError> {
    principal.require_org(&org)?;
    let now = OffsetDateTime::now_utc();
    let detail = state.store.org_detail(&org, now).await.map_err(store_error)?;
    let env = query.env.filter(|e| !e.is_empty());
    if let Some(name) = &env
        && !detail.environments.iter().any(|e| &e.name == name)
    {
        return Err(AppError::NotFound);
    }
    let capacity = {
        let (store, org, env) = (state.store.clone(), org.clone(), env.clone());
        tokio::task::spawn_blocking(move || {
            store.capacity(&org, env.as_deref(), now, &JobSettings::default())
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(store_error)?
    };
    let page = CapacityPage {
        layout: Layout::new(&principal, "customers", detail.last_seen.as_deref()),
        org: detail.org,
        name: detail.name,
        env,
        capacity: capacity
            .into_iter()
            .map(|(environment, c)| CapacityRow {
                environment,
                hosts: c.hosts.len(),
                sessions_at_peak: c.sessions_at_peak,
                spare_sessions: c.spare_sessions,
                hot_hosts: c.hot_hosts.len(),
                hosts_unknown: c.hosts_unknown,
            })
            .collect(),
    };
    Ok(html(StatusCode::OK, &page))
}
