//! Orgs: ranked list, one org, its hosts, findings, score history and CSV exports.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use callhome_shared::rules::{self, Severity};
use http::HeaderValue;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{bad_param, query_params, read_error};
use crate::http::auth::Principal;
use crate::http::{AppError, AppState};
use crate::store::accounts::Visibility;
use crate::store::console::{DayScore, FindingQuery, HostRow, OrgDetail, OrgRank};
use crate::store::risk::{FindingRow, FindingState};

/// Longest score history one request may ask for.
pub const MAX_DAYS: i64 = 730;

#[derive(Debug, Serialize)]
pub struct OrgList {
    pub orgs: Vec<OrgItem>,
    /// When the collector last heard from any host of these orgs.
    pub data_as_of: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OrgItem {
    #[serde(flatten)]
    pub rank: OrgRank,
    /// Display names of the TAMs assigned to the org (empty when none is).
    pub tams: Vec<String>,
}

/// `GET /v1/orgs`: the orgs the caller may see, riskiest first.
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<OrgList>, AppError> {
    let visible: Option<Vec<String>> = match principal.visibility() {
        Visibility::All => None,
        Visibility::Orgs(orgs) => Some(orgs.iter().cloned().collect()),
    };
    let now = OffsetDateTime::now_utc();
    let ranked = state.store.orgs_ranked(visible.as_deref(), now).await?;
    let mut tams = state
        .store
        .org_tams(ranked.iter().map(|r| r.org.clone()).collect())
        .await?;
    let data_as_of = ranked.iter().filter_map(|r| r.last_seen.clone()).max();
    let orgs = ranked
        .into_iter()
        .map(|mut rank| {
            if !rank.scored {
                // Select and lapsed orgs get no TAM scoring (SPEC §3): absent, never a zero.
                rank.score = None;
                rank.score_computed_at = None;
                rank.change_7d = None;
                rank.change_30d = None;
            }
            OrgItem {
                tams: tams.remove(&rank.org).unwrap_or_default(),
                rank,
            }
        })
        .collect();
    Ok(Json(OrgList { orgs, data_as_of }))
}

/// `GET /v1/orgs/{org}`: environments, findings grouped by rule, stale hosts, trends.
pub async fn detail(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<OrgDetail>, AppError> {
    principal.require_org(&org)?;
    let mut detail = state
        .store
        .org_detail(&org, OffsetDateTime::now_utc())
        .await
        .map_err(read_error)?;
    if !detail.scored {
        detail.score = None;
        detail.score_computed_at = None;
        detail.trend.clear();
        for env in &mut detail.environments {
            env.score = None;
            env.score_computed_at = None;
            env.trend.clear();
        }
    }
    Ok(Json(detail))
}

#[derive(Debug, Serialize)]
pub struct HostList {
    pub org: String,
    pub environment: Option<String>,
    pub hosts: Vec<HostRow>,
}

/// `GET /v1/orgs/{org}/hosts?environment=E`: the org's hosts, riskiest first.
pub async fn hosts(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<HostList>, AppError> {
    principal.require_org(&org)?;
    let mut params = query_params(raw.as_deref(), &["environment"])?;
    let environment = params.remove("environment");
    let hosts = state
        .store
        .org_hosts(&org, environment.as_deref())
        .await
        .map_err(read_error)?;
    Ok(Json(HostList {
        org,
        environment,
        hosts,
    }))
}

const FINDING_PARAMS: [&str; 5] = ["severity", "rule", "state", "environment", "host"];

/// The findings filter of a query string; each bad value is a 400 naming its parameter.
fn finding_query(raw: Option<&str>) -> Result<FindingQuery, AppError> {
    let mut p = query_params(raw, &FINDING_PARAMS)?;
    let severity = p
        .remove("severity")
        .map(|s| {
            s.parse::<Severity>().map_err(|_| {
                bad_param(
                    "severity",
                    format!("`{s}` is not one of critical, high, medium, low, info"),
                )
            })
        })
        .transpose()?;
    let rule = p
        .remove("rule")
        .map(|r| match rules::rule_info(&r) {
            Some(_) => Ok(r),
            None => Err(bad_param("rule", format!("unknown rule `{r}`"))),
        })
        .transpose()?;
    let state = match p.remove("state").as_deref() {
        None | Some("open") => FindingState::Open,
        Some("resolved") => FindingState::Resolved,
        Some("all") => FindingState::All,
        Some(other) => {
            return Err(bad_param(
                "state",
                format!("`{other}` is not one of open, resolved, all"),
            ));
        }
    };
    let host = p
        .remove("host")
        .map(|h| {
            Uuid::parse_str(&h).map_err(|_| bad_param("host", format!("`{h}` is not a host id (a UUID)")))
        })
        .transpose()?;
    Ok(FindingQuery {
        severity,
        rule,
        state,
        environment: p.remove("environment"),
        host,
    })
}

#[derive(Debug, Serialize)]
pub struct FindingList {
    pub org: String,
    pub findings: Vec<FindingRow>,
}

/// `GET /v1/orgs/{org}/findings?severity=&rule=&state=&environment=&host=`.
pub async fn findings(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<FindingList>, AppError> {
    principal.require_org(&org)?;
    let query = finding_query(raw.as_deref())?;
    let findings = state
        .store
        .findings_filtered(&org, query, OffsetDateTime::now_utc())
        .await
        .map_err(read_error)?;
    Ok(Json(FindingList { org, findings }))
}

#[derive(Debug, Serialize)]
pub struct ScoreHistory {
    pub org: String,
    pub environment: Option<String>,
    /// Whether the org's tier is scored; when not, `history` is empty (no score, not a zero).
    pub scored: bool,
    pub days: i64,
    pub history: Vec<DayScore>,
}

/// `GET /v1/orgs/{org}/scores?days=N&environment=E`: daily scores, oldest first.
pub async fn scores(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ScoreHistory>, AppError> {
    principal.require_org(&org)?;
    let mut p = query_params(raw.as_deref(), &["days", "environment"])?;
    let days = match p.remove("days") {
        None => 90,
        Some(d) => match d.parse::<i64>() {
            Ok(n) if (1..=MAX_DAYS).contains(&n) => n,
            _ => {
                return Err(bad_param(
                    "days",
                    format!("`{d}` is not a whole number from 1 to {MAX_DAYS}"),
                ));
            }
        },
    };
    let environment = p.remove("environment");
    let now = OffsetDateTime::now_utc();
    let scored = state
        .store
        .org_scored(org.clone(), now)
        .await
        .map_err(read_error)?;
    let history = if scored {
        state
            .store
            .score_history_async(org.clone(), environment.clone(), days, now)
            .await
            .map_err(read_error)?
            .into_iter()
            .map(|(day, score)| DayScore { day, score })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(ScoreHistory {
        org,
        environment,
        scored,
        days,
        history,
    }))
}

/// A CSV download named after the org.
fn csv(org: &str, what: &str, body: String) -> Response {
    let safe: String = org
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{safe}-{what}.csv\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// `GET /v1/orgs/{org}/findings.csv`: the same filters as `findings`.
pub async fn findings_csv(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    principal.require_org(&org)?;
    let query = finding_query(raw.as_deref())?;
    let body = state
        .store
        .findings_csv(&org, query, OffsetDateTime::now_utc())
        .await
        .map_err(read_error)?;
    Ok(csv(&org, "findings", body))
}

/// `GET /v1/orgs/{org}/hosts.csv`.
pub async fn hosts_csv(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Response, AppError> {
    principal.require_org(&org)?;
    let body = state.store.hosts_csv(&org).await.map_err(read_error)?;
    Ok(csv(&org, "hosts", body))
}
