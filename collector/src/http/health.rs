//! Liveness and readiness probes for load balancers and orchestrators.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Value, json};

use super::{AppError, AppState};

/// 200 whenever the process serves HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when the database answers a trivial query, 503 (`unavailable`) otherwise.
pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, Json<Value>), AppError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| AppError::Unavailable(format!("database not ready: {e}")))?;
    Ok((StatusCode::OK, Json(json!({"status": "ready"}))))
}
