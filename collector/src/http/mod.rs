//! The HTTP API: one [`AppState`], thin handlers, one error mapping (`error.rs`), and the cross-cutting
//! parts (request log, request timeout) as middleware. [`app`] builds the whole router so tests can
//! drive it with `oneshot`, without a socket.

pub mod admission;
pub mod agent_cert;
pub mod api;
pub mod auth;
pub mod console;
pub mod enroll;
pub mod error;
pub mod health;
pub mod metrics;
pub mod ratelimit;
pub mod snapshots;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::config::Limits;
use crate::store::Store;
use admission::Admission;
pub use error::AppError;
use error::InternalDetail;

/// What every handler may use.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub limits: Limits,
    /// The ingest queue and the draining flag (back-pressure), shared by all clones.
    pub admission: Arc<Admission>,
    /// Console sign-in: sessions, lock-out, password hashing (`[console]`, see `with_console`).
    pub auth: auth::AuthState,
    /// Snapshot posts per agent (host id).
    pub agent_limiter: Arc<ratelimit::RateLimiter<uuid::Uuid>>,
    /// Requests per client address.
    pub ip_limiter: Arc<ratelimit::RateLimiter<std::net::IpAddr>>,
    /// `/metrics`: the counters and who may read them (`[metrics]`, see `with_metrics`).
    pub metrics: Arc<metrics::MetricsState>,
    /// Client certificates: the agent CA, and whether agent routes require them (`with_agent_ca`).
    pub agent_certs: agent_cert::AgentCertificates,
}

impl AppState {
    pub fn new(store: Store, limits: Limits) -> AppState {
        AppState {
            store,
            admission: Arc::new(Admission::new(&limits)),
            limits,
            auth: auth::AuthState::new(crate::config::ConsoleConfig::default()),
            agent_limiter: Arc::new(ratelimit::RateLimiter::new(
                limits.agent_posts_per_minute,
                limits.agent_posts_burst,
                RATE_LIMIT_KEYS,
            )),
            ip_limiter: Arc::new(ratelimit::RateLimiter::new(
                limits.requests_per_minute_per_ip,
                limits.requests_per_minute_per_ip,
                RATE_LIMIT_KEYS,
            )),
            metrics: Arc::new(metrics::MetricsState::default()),
            agent_certs: agent_cert::AgentCertificates::default(),
        }
    }

    fn max_body_bytes(&self) -> usize {
        to_usize(self.limits.max_body_bytes)
    }

    fn max_decompressed_bytes(&self) -> usize {
        to_usize(self.limits.max_decompressed_bytes)
    }

    fn max_enroll_body_bytes(&self) -> usize {
        to_usize(self.limits.max_enroll_body_bytes)
    }
}

/// Clients remembered per limiter before refilled buckets are dropped: about 10 MiB at most.
const RATE_LIMIT_KEYS: usize = 100_000;

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

pub fn app(state: AppState) -> Router {
    let timeout = state.limits.request_timeout();
    Router::new()
        .merge(api::routes())
        .merge(console::routes())
        // Outside the API table (and its OpenAPI document): for Prometheus, not for TAMs.
        .route("/metrics", axum::routing::get(metrics::scrape))
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(timeout, request_timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            admission::reject_while_draining,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), limit_per_address))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// 429 with `Retry-After` past `limits.requests_per_minute_per_ip`; health checks are exempt. The
/// address is the TCP peer's (set by the server); requests without one (in-process tests) pass.
async fn limit_per_address(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path != "/healthz"
        && path != "/readyz"
        && let Some(axum::extract::ConnectInfo(peer)) = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        && let Err(wait) = state.ip_limiter.check(&peer.ip(), Instant::now())
    {
        tracing::debug!(%peer, "request rate limit reached for this address");
        return AppError::TooManyRequests {
            retry_after: ratelimit::retry_after_secs(wait),
        }
        .into_response();
    }
    next.run(request).await
}

/// Bounds the time to read the body and answer; the header read time is bounded by hyper.
async fn request_timeout(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::RequestTimeout(timeout.as_secs()).into_response(),
    }
}

/// One line per request: method, path, status and latency, never headers (they carry credentials).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency_ms = format!("{:.3}", started.elapsed().as_secs_f64() * 1000.0);
    if let Some(InternalDetail(detail)) = response.extensions().get::<InternalDetail>() {
        tracing::error!(%method, %path, status, %latency_ms, error = %detail, "request failed");
    } else if response.status().is_server_error() {
        tracing::warn!(%method, %path, status, %latency_ms, "request");
    } else {
        tracing::info!(%method, %path, status, %latency_ms, "request");
    }
    response
}

#[cfg(test)]
mod tests;
