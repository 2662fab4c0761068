//! `GET /v1/audit`: the audit log. Admins see every entry; a TAM only the entries of their orgs
//! (filtered in SQL by `Store::list_audit_async`).

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{bad_param, query_params};
use crate::http::auth::Principal;
use crate::http::{AppError, AppState};
use crate::store::audit::{AuditEntry, AuditFilter, MAX_LIMIT};

#[derive(Debug, Serialize)]
pub struct AuditList {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// `GET /v1/audit?org=&actor=&since=&limit=`.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditList>, AppError> {
    let mut p = query_params(raw.as_deref(), &["org", "actor", "since", "limit"])?;
    let since = p
        .get("since")
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339)
                .map_err(|e| bad_param("since", format!("`{s}` is not an RFC 3339 time: {e}")))
        })
        .transpose()?;
    let limit = p
        .get("limit")
        .map(|s| match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad_param(
                "limit",
                format!("`{s}` is not a number from 1 to {MAX_LIMIT}"),
            )),
        })
        .transpose()?;
    let filter = AuditFilter {
        org: p.remove("org"),
        actor: p.remove("actor"),
        since,
        limit,
    };
    let entries = state
        .store
        .list_audit_async(filter, principal.visibility().clone())
        .await?;
    Ok(Json(AuditList { entries }))
}
