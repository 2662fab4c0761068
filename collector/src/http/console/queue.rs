//! The critical queue page: open criticals of the orgs the user may see, by deadline, overdue first,
//! each with a countdown (absolute UTC time and the minutes left as rendered; `console.js` keeps it
//! live) and an Acknowledge button.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::layout::{Layout, Stamp, minutes_text};
use super::{NoFields, html};
use crate::http::auth::{AuthRejection, CsrfForm, Principal};
use crate::http::{AppError, AppState};
use crate::store::accounts::Visibility;
use crate::store::risk::{Acknowledged, QueueEntry};

pub const QUEUE_PATH: &str = "/queue";

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    layout: Layout,
    rows: Vec<Row>,
    overdue: usize,
    /// A TAM assigned to no org yet (they would see an empty queue and not know why).
    unassigned: bool,
}

/// One entry as shown.
struct Row {
    id: i64,
    org: String,
    tier: &'static str,
    environment: String,
    /// The hostname, else the host id; `None` for an environment-wide finding.
    host: Option<String>,
    /// For the link to the host's page.
    host_id: Option<String>,
    rule: String,
    /// What the finding is about on the host (a service, a mount), when the rule names one.
    subject: String,
    title: String,
    detected: Stamp,
    deadline: Stamp,
    /// Server-computed, for browsers without script: `in 45 min`, `overdue by 3 h 05 min`.
    remaining: String,
    overdue: bool,
    acknowledged: Option<(String, Stamp)>,
    /// Acknowledged after the response deadline: answered, but late (no longer "overdue").
    acknowledged_late: bool,
}

fn tier_label(tier: &str) -> &'static str {
    match tier {
        "priority-plus" => "Priority Plus",
        "priority" => "Priority",
        "select" => "Select",
        _ => "Other",
    }
}

impl Row {
    fn new(e: QueueEntry, now: OffsetDateTime) -> Row {
        let remaining = match OffsetDateTime::parse(&e.response_deadline, &Rfc3339) {
            Ok(deadline) if deadline >= now => format!("in {}", minutes_text(deadline - now)),
            Ok(deadline) => format!("overdue by {}", minutes_text(now - deadline)),
            Err(_) => String::new(),
        };
        // Stored times are fixed-width UTC text: text order is time order.
        let acknowledged_late = e
            .acknowledged_at
            .as_ref()
            .is_some_and(|at| *at > e.response_deadline);
        let acknowledged = match (e.acknowledged_by, e.acknowledged_at) {
            (Some(by), Some(at)) => Some((by, Stamp::new(&at))),
            _ => None,
        };
        Row {
            id: e.id,
            tier: tier_label(&e.tier),
            org: e.org,
            environment: e.environment,
            host: e.hostname.or_else(|| e.host_id.clone()),
            host_id: e.host_id,
            rule: e.rule,
            // Titles often name the subject already ("The VDA service ctxvda.service is failed").
            subject: if e.title.contains(&e.subject) {
                String::new()
            } else {
                e.subject
            },
            title: e.title,
            detected: Stamp::new(&e.detected_at),
            deadline: Stamp::new(&e.response_deadline),
            remaining,
            overdue: e.overdue,
            acknowledged,
            acknowledged_late,
        }
    }
}

/// `GET /queue` (and `/`): the page.
pub async fn queue_page(State(state): State<AppState>, principal: Principal) -> Result<Response, AppError> {
    let now = OffsetDateTime::now_utc();
    let view = state
        .store
        .visible_queue(principal.visibility().clone(), now)
        .await?;
    let mut rows: Vec<Row> = view.entries.into_iter().map(|e| Row::new(e, now)).collect();
    // The store orders by deadline; overdue entries go first (a stable sort keeps that order within).
    rows.sort_by_key(|r| !r.overdue);
    let overdue = rows.iter().filter(|r| r.overdue).count();
    let unassigned = matches!(principal.visibility(), Visibility::Orgs(orgs) if orgs.is_empty());
    let layout = Layout::new(&principal, "queue", view.data_as_of.as_deref());
    Ok(html(
        StatusCode::OK,
        &QueuePage {
            layout,
            rows,
            overdue,
            unassigned,
        },
    ))
}

/// `POST /queue/{id}/ack`: records who acknowledged the entry and when, then back to the queue. An
/// entry of an org the user may not see is a 404, like one that does not exist.
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(principal, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, AuthRejection> {
    let outcome = state
        .store
        .acknowledge_visible(
            id,
            principal.visibility().clone(),
            principal.actor(),
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| AuthRejection::Store(e.into()))?;
    match outcome {
        Acknowledged::Recorded => {
            tracing::info!(login = %principal.login, queue_id = id, "queue entry acknowledged");
            Ok(Redirect::to(QUEUE_PATH).into_response())
        }
        Acknowledged::Already => Ok(Redirect::to(QUEUE_PATH).into_response()),
        Acknowledged::NotFound => Err(AuthRejection::Store(AppError::NotFound)),
    }
}
