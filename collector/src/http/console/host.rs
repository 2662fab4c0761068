//! The host page (`/hosts/{id}`): every open finding with its evidence, rationale, remediation and
//! reference; resolved findings (history); the latest snapshot's sections, readable; and "what
//! changed" between two of its snapshots (`/hosts/{id}/diff?from=&to=`). Also what changed when a
//! queued critical appeared (`/queue/{id}/changes`), the start of a root-cause analysis.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::charts::{daily_points, trend_chart};
use super::html;
use super::layout::{Layout, Stamp};
use super::view::{
    Block, ChangeRow, SectionView, change_rows, evidence_fields, score_text, section_view, severity_label,
    store_error,
};
use crate::http::auth::Principal;
use crate::http::{AppError, AppState};
use crate::store::StoreError;
use crate::store::console::{HostDetail, HostFinding, QueueDiff, SnapshotRef, TREND_DAYS};

struct FindingView {
    id: i64,
    rule: String,
    severity: &'static str,
    severity_class: &'static str,
    title: String,
    subject: String,
    evidence: Vec<(String, String)>,
    rationale: Option<&'static str>,
    remediation: Option<&'static str>,
    reference: Option<&'static str>,
    first_seen: Stamp,
    last_seen: Stamp,
    resolved: Option<Stamp>,
    suppressed: bool,
    change_related: bool,
}

impl FindingView {
    fn new(f: HostFinding) -> FindingView {
        let r = f.finding;
        FindingView {
            id: r.id,
            severity: severity_label(r.severity),
            severity_class: r.severity.as_str(),
            evidence: evidence_fields(&r.evidence),
            first_seen: Stamp::new(&r.first_seen),
            last_seen: Stamp::new(&r.last_seen),
            resolved: r.resolved_at.as_deref().map(Stamp::new),
            suppressed: r.suppressed,
            change_related: r.change_window.is_some(),
            rule: r.rule,
            title: r.title,
            subject: r.subject,
            rationale: f.rationale,
            remediation: f.remediation,
            reference: f.reference,
        }
    }
}

struct SnapshotOption {
    id: String,
    collected: Stamp,
}

impl SnapshotOption {
    fn new(s: &SnapshotRef) -> SnapshotOption {
        SnapshotOption {
            id: s.id.clone(),
            collected: Stamp::new(&s.collected_at),
        }
    }
}

/// Header facts shared by the host and diff pages.
struct HostHead {
    id: String,
    org: String,
    environment: String,
    hostname: String,
    role: String,
    agent_version: String,
    vda_version: String,
    controllers: String,
    score: String,
    last_seen: Option<Stamp>,
    enrolled: Stamp,
    clock_skew: Option<String>,
}

impl HostHead {
    fn new(d: &HostDetail) -> HostHead {
        HostHead {
            id: d.host_id.clone(),
            org: d.org.clone(),
            environment: d.environment.clone(),
            hostname: d.hostname.clone(),
            role: d.role.clone(),
            agent_version: d.agent_version.clone(),
            vda_version: d.vda_version.clone().unwrap_or_else(|| "–".to_owned()),
            controllers: d
                .controllers
                .as_ref()
                .map_or_else(|| "–".to_owned(), |c| c.join(", ")),
            score: score_text(d.score),
            last_seen: d.last_seen.as_deref().map(Stamp::new),
            enrolled: Stamp::new(&d.enrolled_at),
            clock_skew: d.clock_skew_secs.map(|s| format!("{s:+.1} s")),
        }
    }
}

#[derive(Template)]
#[template(path = "host.html")]
struct HostPage {
    layout: Layout,
    host: HostHead,
    trend: String,
    findings: Vec<FindingView>,
    history: Vec<FindingView>,
    snapshot: Option<SnapshotSummary>,
    sections: Vec<SectionView>,
    snapshots: Vec<SnapshotOption>,
}

struct SnapshotSummary {
    id: String,
    collected: Stamp,
    received: Stamp,
    errors: Vec<String>,
}

/// Loads a host the principal may see: an unknown host, a malformed id and another org's host are
/// the same 404.
async fn visible_host(state: &AppState, principal: &Principal, id: &str) -> Result<HostDetail, AppError> {
    let host = Uuid::parse_str(id).map_err(|_| AppError::NotFound)?;
    let detail = state
        .store
        .host_detail(host, OffsetDateTime::now_utc())
        .await
        .map_err(store_error)?;
    principal.require_org(&detail.org)?;
    Ok(detail)
}

/// `GET /hosts/{id}`.
pub async fn host_page(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let d = visible_host(&state, &principal, &id).await?;
    let now = OffsetDateTime::now_utc();
    let rows: Vec<(String, f64)> = d.trend.iter().map(|t| (t.day.clone(), t.score)).collect();
    let trend = trend_chart(
        &daily_points(&rows),
        now.date() - time::Duration::days(TREND_DAYS - 1),
        now.date(),
        &format!("Risk score of {}", d.hostname),
    );
    let (snapshot, sections) = match &d.latest_snapshot {
        Some(s) => {
            let mut sections = Vec::new();
            if !s.host.is_null() {
                sections.push(section_view("host", &s.host));
            }
            if !s.agent.is_null() {
                sections.push(section_view("agent", &s.agent));
            }
            sections.extend(s.sections.iter().map(|(name, v)| section_view(name, v)));
            (
                Some(SnapshotSummary {
                    id: s.meta.id.clone(),
                    collected: Stamp::new(&s.meta.collected_at),
                    received: Stamp::new(&s.meta.received_at),
                    errors: s.errors.iter().map(super::view::value_text).collect(),
                }),
                sections,
            )
        }
        None => (None, Vec::new()),
    };
    let page = HostPage {
        layout: Layout::new(&principal, "customers", d.last_seen.as_deref()),
        host: HostHead::new(&d),
        trend,
        snapshots: d.snapshots.iter().map(SnapshotOption::new).collect(),
        findings: d.findings.into_iter().map(FindingView::new).collect(),
        history: d.history.into_iter().map(FindingView::new).collect(),
        snapshot,
        sections,
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage {
    layout: Layout,
    host: HostHead,
    snapshots: Vec<SnapshotOption>,
    /// What is compared, as picked.
    from: String,
    to: String,
    from_stamp: Option<Stamp>,
    to_stamp: Option<Stamp>,
    changes: Vec<ChangeRow>,
    /// Why there is nothing to show, when there is not.
    note: Option<String>,
}

/// `GET /hosts/{id}/diff?from=&to=`: without both, the two latest snapshots.
pub async fn host_diff(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(query): Query<DiffQuery>,
) -> Result<Response, AppError> {
    let d = visible_host(&state, &principal, &id).await?;
    let pick = |given: Option<String>, index: usize| {
        given
            .filter(|s| !s.is_empty())
            .or_else(|| d.snapshots.get(index).map(|s| s.id.clone()))
    };
    let (from, to) = (pick(query.from, 1), pick(query.to, 0));
    let mut page = DiffPage {
        layout: Layout::new(&principal, "customers", d.last_seen.as_deref()),
        host: HostHead::new(&d),
        snapshots: d.snapshots.iter().map(SnapshotOption::new).collect(),
        from: from.clone().unwrap_or_default(),
        to: to.clone().unwrap_or_default(),
        from_stamp: None,
        to_stamp: None,
        changes: Vec::new(),
        note: None,
    };
    let (Some(from), Some(to)) = (from, to) else {
        page.note = Some("This host has fewer than two snapshots: nothing to compare yet.".to_owned());
        return Ok(html(StatusCode::OK, &page));
    };
    let (Ok(from_id), Ok(to_id)) = (Uuid::parse_str(&from), Uuid::parse_str(&to)) else {
        return Err(AppError::NotFound);
    };
    let host = Uuid::parse_str(&d.host_id).map_err(|_| AppError::NotFound)?;
    match state.store.snapshot_diff(host, from_id, to_id).await {
        Ok(diff) => {
            page.from_stamp = Some(Stamp::new(&diff.from.collected_at));
            page.to_stamp = Some(Stamp::new(&diff.to.collected_at));
            page.changes = change_rows(&diff.changes);
        }
        // A snapshot an older or newer agent wrote that this collector cannot type: say so.
        Err(StoreError::Invalid(why)) => page.note = Some(why),
        Err(e) => return Err(store_error(e)),
    }
    Ok(html(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "changes.html")]
struct QueueChangesPage {
    layout: Layout,
    queue_id: i64,
    org: String,
    rule: String,
    subject: String,
    host: Option<(String, String)>,
    from: Option<Stamp>,
    to: Option<Stamp>,
    changes: Vec<ChangeRow>,
    note: Option<String>,
}

/// `GET /queue/{id}/changes`: what changed on the host between its last snapshot without the
/// entry's finding and its first with it.
pub async fn queue_changes(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let entry = state.store.queue_entry_ref(id).await?.ok_or(AppError::NotFound)?;
    principal.require_org(&entry.org)?;
    let diff = match state.store.queue_entry_diff(id).await {
        Ok(diff) => diff,
        // A snapshot this collector cannot type (another agent version): say so rather than fail.
        Err(StoreError::Invalid(why)) => QueueDiff {
            queue_id: id,
            finding_id: 0,
            org: entry.org,
            host_id: entry.host_id,
            rule: entry.rule,
            subject: entry.subject,
            from: None,
            to: None,
            changes: Vec::new(),
            note: Some(why),
        },
        Err(e) => return Err(store_error(e)),
    };
    let (host, data_as_of) = match diff.host_id.as_deref().map(Uuid::parse_str) {
        Some(Ok(h)) => match state.store.host_detail(h, OffsetDateTime::now_utc()).await {
            Ok(d) => (Some((d.host_id, d.hostname)), d.last_seen),
            Err(StoreError::NotFound(_)) => (None, None),
            Err(e) => return Err(e.into()),
        },
        _ => (None, None),
    };
    let page = QueueChangesPage {
        layout: Layout::new(&principal, "queue", data_as_of.as_deref()),
        queue_id: diff.queue_id,
        org: diff.org,
        rule: diff.rule,
        subject: diff.subject,
        host,
        from: diff.from.as_ref().map(|s| Stamp::new(&s.collected_at)),
        to: diff.to.as_ref().map(|s| Stamp::new(&s.collected_at)),
        changes: change_rows(&diff.changes),
        note: diff.note,
    };
    Ok(html(StatusCode::OK, &page))
}
