//! `GET /metrics`: the Prometheus text exposition (`crate::metrics`). Open to loopback scrapers
//! (a Prometheus or node-exporter textfile relay on the same host), to others only with the bearer
//! token of `metrics.bearer_token_file`; everyone else, and everyone when `metrics.enabled` is
//! false, gets the same 404 as an unknown path, so the endpoint is not advertised.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{AppError, AppState};
use crate::config::MetricsConfig;
use crate::metrics::{Metrics, render};
use crate::store::metrics::Gauges;

/// Scrapes closer together than this reuse the database's gauges: several Prometheus replicas
/// scraping every few seconds cost one read, not one each.
const GAUGE_CACHE: Duration = Duration::from_secs(5);

/// The counters, who may read them, and the gauges last read.
#[derive(Debug)]
pub struct MetricsState {
    pub counters: Metrics,
    enabled: bool,
    token: Option<String>,
    stale_after: time::Duration,
    cache: Mutex<Option<(Instant, Gauges)>>,
}

impl Default for MetricsState {
    fn default() -> Self {
        MetricsState::new(&MetricsConfig::default(), None)
    }
}

impl MetricsState {
    fn new(config: &MetricsConfig, token: Option<String>) -> MetricsState {
        MetricsState {
            counters: Metrics::default(),
            enabled: config.enabled,
            token,
            stale_after: time::Duration::seconds(i64::try_from(config.stale_after_secs).unwrap_or(i64::MAX)),
            cache: Mutex::new(None),
        }
    }

    /// Reads the token file (its content, trimmed) when one is configured.
    pub fn from_config(config: &MetricsConfig) -> Result<MetricsState, MetricsTokenError> {
        let token = match &config.bearer_token_file {
            None => None,
            Some(path) => Some(read_token(path)?),
        };
        Ok(MetricsState::new(config, token))
    }

    fn allows(&self, peer: Option<SocketAddr>, authorization: Option<&str>) -> bool {
        if !self.enabled {
            return false;
        }
        // No peer: the router driven in-process (tests); the server always sets it.
        if peer.is_none_or(|p| p.ip().is_loopback()) {
            return true;
        }
        let (Some(expected), Some(given)) = (&self.token, authorization) else {
            return false;
        };
        let Some((scheme, presented)) = given.trim().split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && bool::from(presented.trim().as_bytes().ct_eq(expected.as_bytes()))
    }

    fn cached(&self) -> Option<Gauges> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.filter(|(at, _)| at.elapsed() < GAUGE_CACHE).map(|(_, g)| g)
    }

    fn remember(&self, gauges: Gauges) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), gauges));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsTokenError {
    #[error("cannot read metrics.bearer_token_file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("metrics.bearer_token_file {path} is empty")]
    Empty { path: String },
}

fn read_token(path: &Path) -> Result<String, MetricsTokenError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MetricsTokenError::Read {
        path: shown.clone(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(MetricsTokenError::Empty { path: shown });
    }
    Ok(token.to_owned())
}

impl AppState {
    /// `[metrics]`: whether and to whom `/metrics` answers.
    pub fn with_metrics(mut self, config: &MetricsConfig) -> Result<AppState, MetricsTokenError> {
        self.metrics = Arc::new(MetricsState::from_config(config)?);
        Ok(self)
    }
}

pub async fn scrape(State(state): State<AppState>, request: Request) -> Result<Response, AppError> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(p)| *p);
    let authorization = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let m = &state.metrics;
    if !m.allows(peer, authorization) {
        return Err(AppError::NotFound);
    }
    let gauges = match m.cached() {
        Some(g) => Some(g),
        None => match state
            .store
            .metrics_gauges(OffsetDateTime::now_utc(), m.stale_after)
            .await
        {
            Ok(g) => {
                m.remember(g);
                Some(g)
            }
            Err(e) => {
                // The counters are still worth a scrape; `callhome_metrics_db_up 0` says the rest.
                tracing::warn!(error = %e, "metrics: cannot read the database gauges");
                None
            }
        },
    };
    let body = render(&m.counters, gauges.as_ref());
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(token: Option<&str>, enabled: bool) -> MetricsState {
        let config = MetricsConfig {
            enabled,
            ..MetricsConfig::default()
        };
        MetricsState::new(&config, token.map(str::to_owned))
    }

    #[test]
    fn loopback_scrapes_others_need_the_token() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let open = state(None, true);
        assert!(open.allows(Some(local), None));
        assert!(open.allows(Some(local6), None));
        assert!(!open.allows(Some(remote), None));
        assert!(!open.allows(Some(remote), Some("Bearer anything")));
        let tokened = state(Some("s3cret"), true);
        assert!(tokened.allows(Some(remote), Some("Bearer s3cret")));
        assert!(tokened.allows(Some(remote), Some("bearer  s3cret ")));
        assert!(!tokened.allows(Some(remote), Some("Bearer s3cre")));
        assert!(!tokened.allows(Some(remote), Some("Basic s3cret")));
        assert!(!tokened.allows(Some(remote), None));
        let off = state(Some("s3cret"), false);
        assert!(!off.allows(Some(local), None));
        assert!(!off.allows(Some(remote), Some("Bearer s3cret")));
    }

    #[test]
    fn token_file_is_read_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "abc");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(read_token(&path), Err(MetricsTokenError::Empty { .. })));
        assert!(matches!(
            read_token(&dir.path().join("missing")),
            Err(MetricsTokenError::Read { .. })
        ));
    }

    /// Posts a snapshot through the whole router and reads `/metrics` before and after.
    #[tokio::test]
    async fn a_stored_snapshot_and_a_refusal_move_their_counters() {
        use crate::entitlement::Tier;
        use crate::store::Store;
        use crate::store::audit::Actor;
        use axum::body::Body;
        use callhome_shared::api::{EnrollRequest, SNAPSHOTS_PATH};
        use tower::ServiceExt;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let now = OffsetDateTime::now_utc();
        let today = now.date();
        store.add_org("ORG-1", "Example", &Actor::cli(), now).unwrap();
        store
            .add_contract(
                "ORG-1",
                "cvad",
                Tier::Priority,
                today - time::Duration::days(1),
                today + time::Duration::days(700),
                &Actor::cli(),
                now,
            )
            .unwrap();
        store.add_environment("ORG-1", "prod", now).unwrap();
        let token = store
            .issue_token("ORG-1", "prod", time::Duration::days(1), &Actor::cli(), now)
            .unwrap();
        let host_id = uuid::Uuid::new_v4();
        let request = EnrollRequest {
            token: token.token.expose().to_owned(),
            host_id,
            hostname: "vda01".to_owned(),
            role: callhome_shared::HostRole::Vda,
            agent_version: "0.1.0".to_owned(),
        };
        let credential = store
            .enroll(request, now)
            .await
            .unwrap()
            .credential
            .expose()
            .to_owned();
        let state = AppState::new(store, crate::config::Limits::default());

        let scrape = |state: AppState| async move {
            let response = super::super::app(state)
                .oneshot(http::Request::get("/metrics").body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), http::StatusCode::OK);
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                "text/plain; version=0.0.4; charset=utf-8"
            );
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        let line = |text: &str, series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
                .parse()
                .unwrap()
        };
        let before = scrape(state.clone()).await;
        assert_eq!(
            line(&before, r#"callhome_snapshots_accepted_total{status="stored"}"#),
            0.0
        );
        assert_eq!(
            line(&before, r#"callhome_hosts{state="stale"}"#),
            1.0,
            "enrolled, never sent"
        );

        let snapshot = serde_json::json!({
            "id": uuid::Uuid::now_v7(), "schema_version": 1, "agent": {"version": "0.1.0"},
            "host": {"host_id": host_id, "hostname": "vda01", "role": "vda",
                     "os": "Debian GNU/Linux 12", "kernel": "6.1.0"},
            "collected_at": "2026-11-29T04:00:00Z", "collection_ms": 12,
            "sections": {}, "probes": {}
        });
        let post = |auth: String| {
            http::Request::post(SNAPSHOTS_PATH)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&snapshot).unwrap()))
                .unwrap()
        };
        let app = super::super::app(state.clone());
        let stored = app
            .clone()
            .oneshot(post(format!("Bearer {credential}")))
            .await
            .unwrap();
        assert_eq!(stored.status(), http::StatusCode::CREATED);
        let refused = app.oneshot(post("Bearer chac_nope".to_owned())).await.unwrap();
        assert_eq!(refused.status(), http::StatusCode::UNAUTHORIZED);

        // The gauges are cached for a few seconds; the counters are not.
        state.metrics.cache.lock().unwrap().take();
        let after = scrape(state).await;
        assert_eq!(
            line(&after, r#"callhome_snapshots_accepted_total{status="stored"}"#),
            1.0
        );
        assert_eq!(
            line(
                &after,
                r#"callhome_snapshots_refused_total{reason="unknown_credential",status="401"}"#
            ),
            1.0
        );
        assert_eq!(line(&after, "callhome_ingest_duration_seconds_count"), 1.0);
        assert_eq!(line(&after, r#"callhome_hosts{state="active"}"#), 1.0);
        assert_eq!(line(&after, r#"callhome_hosts{state="stale"}"#), 0.0);
        assert_eq!(line(&after, "callhome_metrics_db_up"), 1.0);
    }
}
