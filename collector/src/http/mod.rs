//! The HTTP API: one [`AppState`], thin handlers, one error mapping (`error.rs`), and the cross-cutting
//! parts (request log, request timeout) as middleware. [`app`] builds the whole router so tests can
//! drive it with `oneshot`, without a socket.

pub mod admission;
pub mod api;
pub mod auth;
pub mod console;
pub mod enroll;
pub mod error;
pub mod health;
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
}

impl AppState {
    pub fn new(store: Store, limits: Limits) -> AppState {
        AppState {
            store,
            admission: Arc::new(Admission::new(&limits)),
            limits,
            auth: auth::AuthState::new(crate::config::ConsoleConfig::default()),
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

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

pub fn app(state: AppState) -> Router {
    let timeout = state.limits.request_timeout();
    Router::new()
        .merge(api::routes())
        .merge(console::routes())
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(timeout, request_timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            admission::reject_while_draining,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
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
