//! The TAM JSON API under `/v1` (and the agent and health routes beside it), described by the
//! OpenAPI document at `/v1/openapi.json` ([`openapi`]).
//!
//! [`table`] is the one list of JSON routes: it builds the router and is what the document is
//! compared to (`tests.rs`). Every TAM route takes a [`Principal`] (401 JSON without one) and checks
//! the org before loading anything else: for `{org}` paths with [`Principal::require_org`], for ids
//! (`{host_id}`, `{id}`) with a cheap owner lookup ([`Store::owner_of`]) first. Another org's id gets
//! the very 404 an unknown id gets. Every answer carries `Cache-Control: no-store`.
//!
//! Writes: a JSON body ([`Write`]); callers with a session cookie must also send the session's CSRF
//! token in `X-CSRF-Token` (API tokens are exempt: no cookie, no CSRF).
//!
//! [`Store::owner_of`]: crate::store::Store::owner_of

pub mod audit;
pub mod hosts;
pub mod openapi;
pub mod orgs;
pub mod plans;
pub mod queue;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::handler::Handler;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use callhome_shared::api::{CERTIFICATE_PATH, ENROLL_PATH, SNAPSHOTS_PATH};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method};
use serde::de::DeserializeOwned;

use super::auth::{AuthRejection, Principal};
use super::{AppError, AppState, agent_cert, auth, enroll, health, snapshots};
use crate::store::StoreError;

/// The header a cookie-authenticated write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// JSON bodies of the TAM API: a few short fields.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials: health probes and the OpenAPI document (they hold no customer data).
    Public,
    /// An agent: an enrollment token in the body, or its credential.
    Agent,
    /// A signed-in TAM or admin.
    Tam,
}

/// One JSON route.
#[derive(Debug)]
pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> ApiRoute
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    ApiRoute {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// Every JSON route the collector serves.
pub fn table() -> Vec<ApiRoute> {
    use Access::{Agent, Public, Tam};
    use Method as M;
    vec![
        route(M::GET, "/healthz", Public, health::healthz),
        route(M::GET, "/readyz", Public, health::readyz),
        route(M::GET, openapi::PATH, Public, openapi::serve),
        route(M::POST, ENROLL_PATH, Agent, enroll::enroll),
        route(M::POST, SNAPSHOTS_PATH, Agent, snapshots::post_snapshot),
        route(M::POST, CERTIFICATE_PATH, Agent, agent_cert::renew),
        route(M::GET, "/v1/me", Tam, auth::me),
        route(M::GET, "/v1/orgs", Tam, orgs::list),
        route(M::GET, "/v1/orgs/{org}", Tam, orgs::detail),
        route(M::GET, "/v1/orgs/{org}/hosts", Tam, orgs::hosts),
        route(M::GET, "/v1/orgs/{org}/hosts.csv", Tam, orgs::hosts_csv),
        route(M::GET, "/v1/orgs/{org}/findings", Tam, orgs::findings),
        route(M::GET, "/v1/orgs/{org}/findings.csv", Tam, orgs::findings_csv),
        route(M::GET, "/v1/orgs/{org}/scores", Tam, orgs::scores),
        route(
            M::GET,
            "/v1/orgs/{org}/suppressions",
            Tam,
            plans::list_suppressions,
        ),
        route(
            M::POST,
            "/v1/orgs/{org}/suppressions",
            Tam,
            plans::add_suppression,
        ),
        route(M::POST, "/v1/suppressions/{id}/end", Tam, plans::end_suppression),
        route(M::GET, "/v1/orgs/{org}/changes", Tam, plans::list_changes),
        route(M::POST, "/v1/orgs/{org}/changes", Tam, plans::add_change),
        route(M::POST, "/v1/changes/{id}/cancel", Tam, plans::cancel_change),
        route(M::GET, "/v1/hosts/{host_id}", Tam, hosts::detail),
        route(M::GET, "/v1/hosts/{host_id}/diff", Tam, hosts::diff),
        route(M::GET, "/v1/queue", Tam, queue::list),
        route(M::POST, "/v1/queue/{id}/ack", Tam, queue::acknowledge),
        route(M::GET, "/v1/queue/{id}/diff", Tam, queue::diff),
        route(M::GET, "/v1/audit", Tam, audit::list),
    ]
}

/// The router of [`table`], every answer `no-store`.
pub fn routes() -> Router<AppState> {
    table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .layer(middleware::from_fn(no_store))
}

/// API answers are per-caller customer data: no cache may keep them.
async fn no_store(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A store error of a read: unknown things are the plain 404 (no detail that could tell another
/// org's ids from unknown ones), bad values the caller's 400.
pub fn read_error(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound(_) => AppError::NotFound,
        StoreError::Invalid(m) => AppError::InvalidRequest(m),
        StoreError::Conflict(m) => AppError::Conflict(m),
        other => other.into(),
    }
}

/// A store error of a write whose body names things (an environment, a host): the org is already
/// known to be visible, so saying which name is unknown tells nothing new; it is a 400.
pub fn write_error(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound(m) | StoreError::Invalid(m) => AppError::InvalidRequest(m),
        other => read_error(other),
    }
}

/// The query string's parameters, refusing any not in `allowed` and any given twice (400 naming it).
pub fn query_params(raw: Option<&str>, allowed: &[&str]) -> Result<BTreeMap<String, String>, AppError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| AppError::InvalidRequest(format!("malformed query string: {e}")))?;
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(AppError::InvalidRequest(format!(
                "unknown query parameter `{k}` (this route takes: {})",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(AppError::InvalidRequest(format!(
                "query parameter `{k}` given twice"
            )));
        }
    }
    Ok(out)
}

/// A numeric id of a path; anything else names nothing: the 404 of an unknown id.
pub fn parse_id(id: &str) -> Result<i64, AppError> {
    id.parse().map_err(|_| AppError::NotFound)
}

/// A bad value of query parameter `name`.
pub fn bad_param(name: &str, why: impl std::fmt::Display) -> AppError {
    AppError::InvalidRequest(format!("query parameter `{name}`: {why}"))
}

/// A state-changing API request: its principal (CSRF-checked when it came with a cookie) and its
/// body, parsed by the handler once it has checked the org ([`JsonBody::parse`]), so that a caller
/// who may not see the org gets its 404 whatever the body.
#[derive(Debug)]
pub struct Write(pub Principal, pub JsonBody);

/// A request body that should be JSON (an empty one reads as `{}`).
#[derive(Debug)]
pub struct JsonBody {
    is_json: bool,
    bytes: axum::body::Bytes,
}

impl JsonBody {
    /// The body as `T`: 415 unless JSON, 400 naming what is wrong (unknown fields are refused
    /// where `T` says `deny_unknown_fields`).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        let bytes: &[u8] = if self.bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else if self.is_json {
            &self.bytes
        } else {
            return Err(AppError::UnsupportedMediaType(
                "send the body as application/json".to_owned(),
            ));
        };
        serde_json::from_slice(bytes).map_err(|e| AppError::MalformedJson(format!("invalid JSON body: {e}")))
    }
}

impl FromRequest<AppState> for Write {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = request.into_parts();
        let principal = Principal::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let csrf = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        principal
            .check_csrf(csrf)
            .map_err(|_: AuthRejection| AuthRejection::CsrfFailed.into_response())?;
        let bytes = axum::body::to_bytes(body, MAX_JSON_BYTES).await.map_err(|_| {
            AppError::BodyTooLarge(format!("the JSON body is larger than {MAX_JSON_BYTES} bytes"))
                .into_response()
        })?;
        let is_json = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        Ok(Write(principal, JsonBody { is_json, bytes }))
    }
}

#[cfg(test)]
mod tests;
