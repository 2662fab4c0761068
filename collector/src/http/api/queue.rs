//! The critical queue: entries with deadlines, acknowledgement, and the root-cause diff.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Write, bad_param, parse_id, query_params, read_error};
use crate::http::auth::Principal;
use crate::http::{AppError, AppState};
use crate::store::api::Owned;
use crate::store::console::QueueDiff;
use crate::store::risk::{Acknowledged, QueueEntry};

#[derive(Debug, Serialize)]
pub struct QueueList {
    /// Open entries first, by response deadline.
    pub entries: Vec<QueueEntry>,
    pub data_as_of: Option<String>,
}

/// `GET /v1/queue?all=true|false`: the queue of the orgs the caller may see.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Json<QueueList>, AppError> {
    let p = query_params(raw.as_deref(), &["all"])?;
    let all = match p.get("all").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(bad_param("all", format!("`{other}` is not true or false"))),
    };
    let now = OffsetDateTime::now_utc();
    let visibility = principal.visibility().clone();
    if all {
        let entries = state.store.queue_visible(visibility, true, now).await?;
        let data_as_of = entries
            .iter()
            .flat_map(|e| {
                [
                    Some(&e.detected_at),
                    e.acknowledged_at.as_ref(),
                    e.closed_at.as_ref(),
                ]
            })
            .flatten()
            .max()
            .cloned();
        Ok(Json(QueueList { entries, data_as_of }))
    } else {
        let view = state.store.visible_queue(visibility, now).await?;
        Ok(Json(QueueList {
            entries: view.entries,
            data_as_of: view.data_as_of,
        }))
    }
}

/// An action's empty body (`{}` or none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

#[derive(Debug, Serialize)]
pub struct AckResult {
    /// `false` when someone had acknowledged it already: their name and time stay.
    pub recorded: bool,
    pub entry: QueueEntry,
}

/// The org of queue entry `id` when the caller may see it; else the 404 of an unknown id.
async fn visible_entry(state: &AppState, principal: &Principal, id: &str) -> Result<(i64, String), AppError> {
    let id = parse_id(id)?;
    let owner = state
        .store
        .owner_of(Owned::QueueEntry, id.to_string())
        .await?
        .ok_or(AppError::NotFound)?;
    principal.require_org(&owner)?;
    Ok((id, owner))
}

/// `POST /v1/queue/{id}/ack`: records the caller as who acknowledged the entry, and when.
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Write(principal, body): Write,
) -> Result<Json<AckResult>, AppError> {
    let (id, org) = visible_entry(&state, &principal, &id).await?;
    let NoBody {} = body.parse()?;
    let now = OffsetDateTime::now_utc();
    let outcome = state
        .store
        .acknowledge_visible(id, principal.visibility().clone(), principal.actor(), now)
        .await?;
    let recorded = match outcome {
        Acknowledged::Recorded => {
            tracing::info!(login = %principal.login, queue_id = id, "queue entry acknowledged (API)");
            true
        }
        Acknowledged::Already => false,
        Acknowledged::NotFound => return Err(AppError::NotFound),
    };
    let entry = state.store.queue_entry(org, id, now).await.map_err(read_error)?;
    Ok(Json(AckResult { recorded, entry }))
}

/// `GET /v1/queue/{id}/diff`: the host's last snapshot without the finding against its first with it.
pub async fn diff(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<QueueDiff>, AppError> {
    let (id, _) = visible_entry(&state, &principal, &id).await?;
    let diff = state.store.queue_entry_diff(id).await.map_err(read_error)?;
    Ok(Json(diff))
}
