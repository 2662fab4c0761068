//! Suppressions and planned changes (change windows) of an org.

use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::queue::NoBody;
use super::{Write, parse_id, read_error, write_error};
use crate::http::auth::Principal;
use crate::http::{AppError, AppState};
use crate::store::api::Owned;
use crate::store::risk::{ChangeWindow, Suppression};
use crate::store::{NewChangeWindow, NewSuppression};

/// Longest suppression the API records; a longer one should be a fixed rule, not a silence.
pub const MAX_SUPPRESSION_DAYS: i64 = 365;

#[derive(Debug, Serialize)]
pub struct SuppressionList {
    pub org: String,
    pub suppressions: Vec<Suppression>,
}

#[derive(Debug, Serialize)]
pub struct ChangeList {
    pub org: String,
    pub changes: Vec<ChangeWindow>,
}

/// The org of object `id` when the caller may see it; else the 404 of an unknown id.
async fn visible_owner(
    state: &AppState,
    principal: &Principal,
    kind: Owned,
    id: &str,
) -> Result<(i64, String), AppError> {
    let id = parse_id(id)?;
    let owner = state
        .store
        .owner_of(kind, id.to_string())
        .await?
        .ok_or(AppError::NotFound)?;
    principal.require_org(&owner)?;
    Ok((id, owner))
}

/// `GET /v1/orgs/{org}/suppressions`: active and ended.
pub async fn list_suppressions(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<SuppressionList>, AppError> {
    principal.require_org(&org)?;
    let suppressions = state
        .store
        .suppressions_of(org.clone(), OffsetDateTime::now_utc())
        .await
        .map_err(read_error)?;
    Ok(Json(SuppressionList { org, suppressions }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionBody {
    pub rule: String,
    pub environment: Option<String>,
    pub host: Option<Uuid>,
    pub reason: String,
    pub days: i64,
}

/// `POST /v1/orgs/{org}/suppressions`: the caller is the author.
pub async fn add_suppression(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Write(principal, body): Write,
) -> Result<(StatusCode, Json<Suppression>), AppError> {
    principal.require_org(&org)?;
    let body: SuppressionBody = body.parse()?;
    if !(1..=MAX_SUPPRESSION_DAYS).contains(&body.days) {
        return Err(AppError::InvalidRequest(format!(
            "`days` must be from 1 to {MAX_SUPPRESSION_DAYS}"
        )));
    }
    let now = OffsetDateTime::now_utc();
    let new = NewSuppression {
        org,
        environment: body.environment,
        host: body.host,
        rule: body.rule,
        reason: body.reason,
        author: principal.login.clone(),
        expires_at: now + Duration::days(body.days),
    };
    let created = state
        .store
        .suppress(new, principal.actor(), now)
        .await
        .map_err(write_error)?;
    tracing::info!(login = %principal.login, suppression = created.id, rule = %created.rule, "suppression added (API)");
    Ok((StatusCode::CREATED, Json(created)))
}

/// `POST /v1/suppressions/{id}/end`: ends it now (a no-op when it had ended).
pub async fn end_suppression(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Write(principal, body): Write,
) -> Result<Json<Suppression>, AppError> {
    let (id, org) = visible_owner(&state, &principal, Owned::Suppression, &id).await?;
    let NoBody {} = body.parse()?;
    let now = OffsetDateTime::now_utc();
    state
        .store
        .end_suppression_async(id, principal.actor(), now)
        .await
        .map_err(read_error)?;
    let ended = state.store.suppression(org, id, now).await.map_err(read_error)?;
    Ok(Json(ended))
}

/// `GET /v1/orgs/{org}/changes`: planned changes, newest first.
pub async fn list_changes(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<ChangeList>, AppError> {
    principal.require_org(&org)?;
    let changes = state
        .store
        .change_windows_of(org.clone())
        .await
        .map_err(read_error)?;
    Ok(Json(ChangeList { org, changes }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    pub environment: String,
    /// RFC 3339.
    pub starts_at: String,
    pub ends_at: String,
    pub description: String,
}

fn timestamp(field: &str, value: &str) -> Result<OffsetDateTime, AppError> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|e| {
        AppError::InvalidRequest(format!(
            "`{field}`: `{value}` is not an RFC 3339 time (like 2030-01-31T22:00:00Z): {e}"
        ))
    })
}

/// `POST /v1/orgs/{org}/changes`: records a change window; the caller is the author.
pub async fn add_change(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Write(principal, body): Write,
) -> Result<(StatusCode, Json<ChangeWindow>), AppError> {
    principal.require_org(&org)?;
    let body: ChangeBody = body.parse()?;
    let new = NewChangeWindow {
        org,
        environment: body.environment,
        starts_at: timestamp("starts_at", &body.starts_at)?,
        ends_at: timestamp("ends_at", &body.ends_at)?,
        description: body.description,
        author: principal.login.clone(),
    };
    let created = state
        .store
        .plan_change(new, principal.actor(), OffsetDateTime::now_utc())
        .await
        .map_err(write_error)?;
    tracing::info!(login = %principal.login, change = created.id, "change window recorded (API)");
    Ok((StatusCode::CREATED, Json(created)))
}

/// `POST /v1/changes/{id}/cancel`: a cancelled window no longer marks findings change-related.
pub async fn cancel_change(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Write(principal, body): Write,
) -> Result<Json<ChangeWindow>, AppError> {
    let (id, org) = visible_owner(&state, &principal, Owned::ChangeWindow, &id).await?;
    let NoBody {} = body.parse()?;
    state
        .store
        .cancel_change(id, principal.actor(), OffsetDateTime::now_utc())
        .await
        .map_err(read_error)?;
    let cancelled = state.store.change_window(org, id).await.map_err(read_error)?;
    Ok(Json(cancelled))
}
