//! One host: its detail and what changed between two of its snapshots.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{bad_param, query_params, read_error};
use crate::http::auth::Principal;
use crate::http::{AppError, AppState};
use crate::store::console::{HostDetail, SnapshotDiff};

/// The host of a path, once the caller is known to see its org; a malformed, unknown or invisible
/// id is the same 404.
async fn visible_host(state: &AppState, principal: &Principal, host_id: &str) -> Result<Uuid, AppError> {
    let host = Uuid::parse_str(host_id).map_err(|_| AppError::NotFound)?;
    let owner = state.store.host_owner(host).await?.ok_or(AppError::NotFound)?;
    principal.require_org(&owner)?;
    Ok(host)
}

/// `GET /v1/hosts/{host_id}`: the host, its latest snapshot's sections, its findings (with
/// remediation) and their history.
pub async fn detail(
    State(state): State<AppState>,
    principal: Principal,
    Path(host_id): Path<String>,
) -> Result<Json<HostDetail>, AppError> {
    let host = visible_host(&state, &principal, &host_id).await?;
    let detail = state
        .store
        .host_detail(host, OffsetDateTime::now_utc())
        .await
        .map_err(read_error)?;
    Ok(Json(detail))
}

/// `GET /v1/hosts/{host_id}/diff?from=ID&to=ID`: what changed from one snapshot to another.
pub async fn diff(
    State(state): State<AppState>,
    principal: Principal,
    Path(host_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SnapshotDiff>, AppError> {
    let host = visible_host(&state, &principal, &host_id).await?;
    let p = query_params(raw.as_deref(), &["from", "to"])?;
    let snapshot = |name: &str| -> Result<Uuid, AppError> {
        let v = p
            .get(name)
            .ok_or_else(|| bad_param(name, "required: a snapshot id of this host"))?;
        Uuid::parse_str(v).map_err(|_| bad_param(name, format!("`{v}` is not a snapshot id (a UUID)")))
    };
    let (from, to) = (snapshot("from")?, snapshot("to")?);
    let diff = state
        .store
        .snapshot_diff(host, from, to)
        .await
        .map_err(read_error)?;
    Ok(Json(diff))
}
