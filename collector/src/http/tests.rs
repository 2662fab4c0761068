//! The API through `app(state).oneshot(request)`: no socket, real store in a temp dir.

use axum::body::Body;
use axum::response::Response;
use callhome_shared::HostRole;
use callhome_shared::api::{ENROLL_PATH, EnrollRequest, SNAPSHOTS_PATH};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use time::{Duration as TimeDuration, OffsetDateTime};
use tower::ServiceExt;
use uuid::Uuid;

use super::*;
use crate::config::Limits;
use crate::entitlement::Tier;
use crate::store::audit::Actor;

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    credential: String,
    host_id: Uuid,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with_limits(Limits::default()).await
    }

    /// An org with an active contract, one environment and one enrolled host.
    async fn with_limits(limits: Limits) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(dir.path());
        let now = OffsetDateTime::now_utc();
        let today = now.date();
        store.add_org("ORG-1", "Example", &Actor::cli(), now).unwrap();
        store
            .add_contract(
                "ORG-1",
                "cvad",
                Tier::PriorityPlus,
                today - TimeDuration::days(10),
                today + TimeDuration::days(700),
                &Actor::cli(),
                now,
            )
            .unwrap();
        store.add_environment("ORG-1", "prod", now).unwrap();
        let token = store
            .issue_token("ORG-1", "prod", TimeDuration::days(30), &Actor::cli(), now)
            .unwrap();
        let host_id = Uuid::new_v4();
        let enrolled = store
            .enroll(enroll_request(token.token.expose(), host_id), now)
            .await
            .unwrap();
        Fixture {
            _dir: dir,
            state: AppState::new(store, limits),
            credential: enrolled.credential.expose().to_owned(),
            host_id,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
        let response: Response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, headers, body)
    }

    async fn post(
        &self,
        body: impl Into<Body>,
        extra: &[(&str, &str)],
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut builder = Request::post(SNAPSHOTS_PATH)
            .header("authorization", format!("Bearer {}", self.credential))
            .header("content-type", "application/json");
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        self.send(builder.body(body.into()).unwrap()).await
    }

    fn snapshot(&self) -> Value {
        snapshot_for(self.host_id)
    }

    fn rows(&self) -> i64 {
        self.state.store.count_snapshots().unwrap()
    }
}

fn enroll_request(token: &str, host_id: Uuid) -> EnrollRequest {
    EnrollRequest {
        token: token.to_owned(),
        host_id,
        hostname: "vda01".to_owned(),
        role: HostRole::Vda,
        agent_version: "0.1.0".to_owned(),
    }
}

fn snapshot_for(host_id: Uuid) -> Value {
    json!({
        "id": Uuid::now_v7(),
        "schema_version": 1,
        "agent": {"version": "0.1.0"},
        "host": {"host_id": host_id, "hostname": "vda01", "role": "vda",
                 "os": "Debian GNU/Linux 12", "kernel": "6.1.0"},
        "collected_at": "2026-11-29T04:00:00Z",
        "collection_ms": 12,
        "sections": {},
        "probes": {}
    })
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, data).unwrap();
    gz.finish().unwrap()
}

#[tokio::test]
async fn stored_then_duplicate_with_one_row() {
    let f = Fixture::new().await;
    let snap = f.snapshot();
    let (status, _, body) = f.post(bytes(&snap), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({"id": snap["id"], "status": "stored"}));
    let (status, _, body) = f.post(bytes(&snap), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "duplicate");
    assert_eq!(f.rows(), 1);
    // Stored exactly as received.
    let id: Uuid = serde_json::from_value(snap["id"].clone()).unwrap();
    assert_eq!(f.state.store.snapshot_body(id).unwrap().unwrap(), bytes(&snap));
    let hosts = f.state.store.list_hosts(None, None).unwrap();
    assert_eq!(hosts[0].snapshots, 1);
    assert!(hosts[0].last_seen.is_some());
}

#[tokio::test]
async fn wrong_credential_is_401_before_the_body_is_read() {
    let f = Fixture::new().await;
    let garbage = vec![0xffu8; 10 * 1024 * 1024];
    let request = Request::post(SNAPSHOTS_PATH)
        .header("authorization", format!("Bearer chac_{}", "0".repeat(64)))
        .header("content-encoding", "zstd")
        .body(Body::from(garbage))
        .unwrap();
    let (status, headers, body) = f.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unknown_credential");
    assert_eq!(headers["www-authenticate"], "Bearer");

    let request = Request::post(SNAPSHOTS_PATH).body(Body::from("garbage")).unwrap();
    let (status, _, body) = f.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("Authorization"),
        "{body}"
    );
}

#[tokio::test]
async fn revoked_credential_is_401() {
    let f = Fixture::new().await;
    let token = f
        .state
        .store
        .issue_token(
            "ORG-1",
            "prod",
            TimeDuration::days(1),
            &Actor::cli(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    f.state
        .store
        .enroll(
            enroll_request(token.token.expose(), f.host_id),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let (status, _, body) = f.post(bytes(&f.snapshot()), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["message"].as_str().unwrap().contains("revoked"), "{body}");
}

#[tokio::test]
async fn garbage_is_400_with_a_message() {
    let f = Fixture::new().await;
    let (status, _, body) = f.post("this is not json", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "malformed_json");
    assert!(body["message"].as_str().unwrap().contains("line 1"), "{body}");
    assert_eq!(f.rows(), 0);
}

#[tokio::test]
async fn wrong_typed_field_is_400_naming_the_path() {
    let f = Fixture::new().await;
    let mut snap = f.snapshot();
    snap["host"]["role"] = json!(42);
    let (status, _, body) = f.post(bytes(&snap), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "malformed_json");
    assert!(
        body["message"].as_str().unwrap().starts_with("host.role"),
        "{body}"
    );
}

#[tokio::test]
async fn invalid_snapshot_is_400() {
    let f = Fixture::new().await;
    let mut snap = f.snapshot();
    snap["id"] = json!(Uuid::new_v4());
    let (status, _, body) = f.post(bytes(&snap), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_snapshot");
}

#[tokio::test]
async fn newer_schema_version_is_422() {
    let f = Fixture::new().await;
    let mut snap = f.snapshot();
    snap["schema_version"] = json!(2);
    let (status, _, body) = f.post(bytes(&snap), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "unsupported_schema_version");
}

#[tokio::test]
async fn unknown_encoding_and_media_type_are_415() {
    let f = Fixture::new().await;
    let (status, _, body) = f.post(bytes(&f.snapshot()), &[("content-encoding", "br")]).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"], "unsupported_encoding");
    assert!(body["message"].as_str().unwrap().contains("`br`"), "{body}");

    let request = Request::post(SNAPSHOTS_PATH)
        .header("authorization", format!("Bearer {}", f.credential))
        .header("content-type", "text/plain")
        .body(Body::from(bytes(&f.snapshot())))
        .unwrap();
    let (status, _, body) = f.send(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"], "unsupported_media_type");

    // No Content-Type at all is accepted.
    let request = Request::post(SNAPSHOTS_PATH)
        .header("authorization", format!("Bearer {}", f.credential))
        .body(Body::from(bytes(&f.snapshot())))
        .unwrap();
    assert_eq!(f.send(request).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let f = Fixture::with_limits(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let mut snap = f.snapshot();
    snap["sections"]["padding"] = json!("x".repeat(4096));
    let (status, _, body) = f.post(bytes(&snap), &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "body_too_large");
    assert_eq!(f.rows(), 0);
}

#[tokio::test]
async fn zstd_bomb_is_413_at_the_decompressed_limit() {
    let f = Fixture::with_limits(Limits {
        max_body_bytes: 64 * 1024,
        max_decompressed_bytes: 1024 * 1024,
        ..Limits::default()
    })
    .await;
    // 64 MiB of zeros in a few KiB of zstd.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let chunk = vec![0u8; 1024 * 1024];
    for _ in 0..64 {
        std::io::Write::write_all(&mut encoder, &chunk).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let (status, _, body) = f.post(bomb, &[("content-encoding", "zstd")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "decompressed_too_large");
}

#[tokio::test]
async fn gzip_bomb_is_413_and_corrupt_data_400() {
    let f = Fixture::with_limits(Limits {
        max_decompressed_bytes: 1024 * 1024,
        ..Limits::default()
    })
    .await;
    let bomb = gzip(&vec![b' '; 8 * 1024 * 1024]);
    let (status, _, body) = f.post(bomb, &[("content-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "decompressed_too_large");

    let (status, _, body) = f
        .post("definitely not zstd", &[("content-encoding", "zstd")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "corrupt_encoding");
}

#[tokio::test]
async fn gzip_and_zstd_are_accepted() {
    let f = Fixture::new().await;
    let (status, _, body) = f
        .post(gzip(&bytes(&f.snapshot())), &[("content-encoding", "gzip")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let snapshot = f.snapshot();
    let json = bytes(&snapshot);
    let z = zstd::encode_all(json.as_slice(), 3).unwrap();
    let (status, _, body) = f.post(z, &[("content-encoding", "zstd")]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(f.rows(), 2);
    // A zstd body is stored as it came, and reads back as the JSON that was sent.
    let id: Uuid = snapshot["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(f.state.store.snapshot_body(id).unwrap(), Some(json));
}

#[tokio::test]
async fn snapshot_for_another_host_is_403() {
    let f = Fixture::new().await;
    let (status, _, body) = f.post(bytes(&snapshot_for(Uuid::new_v4())), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "host_mismatch");
    assert_eq!(f.rows(), 0);
}

#[tokio::test]
async fn lapsed_org_is_403() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(dir.path());
    let now = OffsetDateTime::now_utc();
    let then = now - TimeDuration::days(100);
    store.add_org("ORG-OLD", "Old", &Actor::cli(), then).unwrap();
    store
        .add_contract(
            "ORG-OLD",
            "cvad",
            Tier::Priority,
            now.date() - TimeDuration::days(800),
            now.date() - TimeDuration::days(35),
            &Actor::cli(),
            then,
        )
        .unwrap();
    store.add_environment("ORG-OLD", "prod", then).unwrap();
    let token = store
        .issue_token("ORG-OLD", "prod", TimeDuration::days(30), &Actor::cli(), then)
        .unwrap();
    let host_id = Uuid::new_v4();
    // Enrolled while the contract was active...
    let enrolled = store
        .enroll(enroll_request(token.token.expose(), host_id), then)
        .await
        .unwrap();
    let f = Fixture {
        _dir: dir,
        state: AppState::new(store, Limits::default()),
        credential: enrolled.credential.expose().to_owned(),
        host_id,
    };
    // ...and posting after it ended: refused before the body is read.
    let (status, _, body) = f.post("garbage", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "contract_lapsed");
    assert!(body["message"].as_str().unwrap().contains("ORG-OLD"), "{body}");
}

#[tokio::test]
async fn enroll_answers_201_then_the_credential_works() {
    let f = Fixture::new().await;
    let token = f
        .state
        .store
        .issue_token(
            "ORG-1",
            "prod",
            TimeDuration::days(1),
            &Actor::cli(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let host_id = Uuid::new_v4();
    let request = Request::post(ENROLL_PATH)
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::to_vec(&enroll_request(token.token.expose(), host_id)).unwrap(),
        ))
        .unwrap();
    let (status, _, body) = f.send(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["org"], "ORG-1");
    assert_eq!(body["environment"], "prod");
    assert_eq!(body["host_id"], json!(host_id));
    let credential = body["credential"].as_str().unwrap();
    assert!(credential.starts_with("chac_"));

    let request = Request::post(SNAPSHOTS_PATH)
        .header("authorization", format!("Bearer {credential}"))
        .body(Body::from(bytes(&snapshot_for(host_id))))
        .unwrap();
    assert_eq!(f.send(request).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn enroll_refusals() {
    let f = Fixture::new().await;
    let enroll = |token: String, host_id: Uuid| {
        Request::post(ENROLL_PATH)
            .body(Body::from(
                serde_json::to_vec(&enroll_request(&token, host_id)).unwrap(),
            ))
            .unwrap()
    };
    let (status, _, body) = f
        .send(enroll(format!("chet_{}", "0".repeat(64)), Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unknown_token");

    let now = OffsetDateTime::now_utc();
    let token = f
        .state
        .store
        .issue_token("ORG-1", "prod", TimeDuration::days(1), &Actor::cli(), now)
        .unwrap();
    f.state.store.revoke_token(&token.id, &Actor::cli(), now).unwrap();
    let (status, _, body) = f
        .send(enroll(token.token.expose().to_owned(), Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "token_revoked");

    let old = f
        .state
        .store
        .issue_token(
            "ORG-1",
            "prod",
            TimeDuration::days(1),
            &Actor::cli(),
            now - TimeDuration::days(2),
        )
        .unwrap();
    let (status, _, body) = f
        .send(enroll(old.token.expose().to_owned(), Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "token_expired");

    // The fixture's host is in ORG-1/prod; a token of another environment cannot take it over.
    f.state.store.add_environment("ORG-1", "test", now).unwrap();
    let other = f
        .state
        .store
        .issue_token("ORG-1", "test", TimeDuration::days(1), &Actor::cli(), now)
        .unwrap();
    let (status, _, body) = f.send(enroll(other.token.expose().to_owned(), f.host_id)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "host_enrolled_elsewhere");

    let request = Request::post(ENROLL_PATH)
        .body(Body::from("{\"token\": 1}"))
        .unwrap();
    let (status, _, body) = f.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "malformed_json");

    let request = Request::post(ENROLL_PATH)
        .body(Body::from(vec![b' '; 64 * 1024]))
        .unwrap();
    let (status, _, body) = f.send(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "body_too_large");
}

#[tokio::test]
async fn health_routes_and_json_404_405() {
    let f = Fixture::new().await;
    let (status, _, body) = f
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, _, _) = f.send(Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = f
        .send(Request::get("/v1/nope").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, _, body) = f
        .send(Request::get(SNAPSHOTS_PATH).body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method_not_allowed");
}

#[test]
fn unavailable_carries_retry_after_and_hides_detail() {
    let response = AppError::Unavailable("disk I/O error at /secret/path".into()).into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(response.extensions().get::<error::InternalDetail>().is_some());
    let response = AppError::Internal("bug".into()).into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// A body that never sends a byte: the request timeout, not the client, ends the request.
struct StalledBody;

impl axum::body::HttpBody for StalledBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn a_stalled_body_times_out_with_408() {
    let f = Fixture::with_limits(Limits {
        request_timeout_secs: 1,
        ..Limits::default()
    })
    .await;
    let (status, _, body) = f.post(Body::new(StalledBody), &[]).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["error"], "request_timeout");
}

/// A body that sends nothing until the test opens the gate, then `data` in one frame: a request held
/// in flight between admission and commit for as long as the test wants.
struct GatedBody {
    gate: Option<tokio::sync::oneshot::Receiver<()>>,
    data: Option<Vec<u8>>,
}

impl axum::body::HttpBody for GatedBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        if let Some(gate) = self.gate.as_mut() {
            if std::pin::Pin::new(gate).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.gate = None;
        }
        Poll::Ready(
            self.data
                .take()
                .map(|d| Ok(hyper::body::Frame::data(axum::body::Bytes::from(d)))),
        )
    }
}

/// Starts a post whose body waits for the returned sender, and waits until it holds its permit.
async fn post_held(
    f: &Fixture,
    snapshot: &Value,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<(StatusCode, Value)>,
) {
    let (open, gate) = tokio::sync::oneshot::channel();
    let before = f.state.admission.in_flight();
    let request = Request::post(SNAPSHOTS_PATH)
        .header("authorization", format!("Bearer {}", f.credential))
        .header("content-type", "application/json")
        .body(Body::new(GatedBody {
            gate: Some(gate),
            data: Some(bytes(snapshot)),
        }))
        .unwrap();
    let router = app(f.state.clone());
    let task = tokio::spawn(async move {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while f.state.admission.in_flight() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the held post never took a permit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (open, task)
}

fn retry_after(headers: &http::HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_full_ingest_queue_answers_429_with_retry_after_before_reading_the_body() {
    let f = Fixture::with_limits(Limits {
        max_inflight_snapshots: 1,
        retry_after_secs: 4,
        ..Limits::default()
    })
    .await;
    let held = f.snapshot();
    let (open, task) = post_held(&f, &held).await;
    assert_eq!(f.state.admission.in_flight(), 1);

    let refused = f.snapshot();
    let (status, headers, body) = f.post(bytes(&refused), &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "too_many_requests");
    assert!(body["message"].as_str().unwrap().contains("retry in"), "{body}");
    assert!((4..=6).contains(&retry_after(&headers)), "{headers:?}");
    // The body of a refused post is never read: a body that would fail to decode is refused alike.
    let (status, _, _) = f.post("not json at all", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Authentication comes first: a stranger learns nothing about the queue.
    let (status, _, body) = f
        .send(
            Request::post(SNAPSHOTS_PATH)
                .header("authorization", "Bearer chac_nobody")
                .header("content-type", "application/json")
                .body(Body::from(bytes(&refused)))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(f.state.admission.refused_total(), 2);
    // Enrollment and health do not queue behind snapshots.
    let (status, _, _) = f.send(Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    open.send(()).unwrap();
    let (status, body) = task.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(f.state.admission.in_flight(), 0);
    // The refused snapshot, sent again once there is room, is stored; nothing else was.
    let (status, _, body) = f.post(bytes(&refused), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(f.rows(), 2);
}

#[tokio::test]
async fn a_post_cut_by_the_request_timeout_still_commits_before_freeing_its_place() {
    let f = Fixture::with_limits(Limits {
        max_inflight_snapshots: 1,
        request_timeout_secs: 1,
        ..Limits::default()
    })
    .await;
    let snap = f.snapshot();
    let (open, task) = post_held(&f, &snap).await;
    // Holding the store's only connection keeps the commit waiting after the body is read, past the
    // request timeout.
    let blocker = f.state.store.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (unlock_tx, unlock_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        blocker.with_connection_held(|| {
            locked_tx.send(()).unwrap();
            unlock_rx.recv().unwrap();
        })
    });
    locked_rx.recv().unwrap();
    open.send(()).unwrap();
    let (status, body) = task.await.unwrap();
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert_eq!(
        f.state.admission.in_flight(),
        1,
        "the commit still holds its place"
    );
    unlock_tx.send(()).unwrap();
    holder.join().unwrap();
    assert!(
        f.state
            .admission
            .wait_idle(std::time::Duration::from_secs(10))
            .await
    );
    // Stored although the client got no 2xx: its retry is answered 200 duplicate.
    assert_eq!(f.rows(), 1);
    let (status, _, body) = f.post(bytes(&snap), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "duplicate");
}

#[tokio::test]
async fn while_draining_requests_get_503_shutting_down_and_in_flight_ones_finish() {
    let f = Fixture::with_limits(Limits {
        retry_after_secs: 6,
        ..Limits::default()
    })
    .await;
    let in_flight = f.snapshot();
    let (open, task) = post_held(&f, &in_flight).await;

    f.state.admission.start_draining();
    let (status, headers, body) = f.post(bytes(&f.snapshot()), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "shutting_down");
    assert!((6..=9).contains(&retry_after(&headers)), "{headers:?}");
    assert_eq!(headers["connection"], "close");
    let (status, headers, body) = f.send(Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "shutting_down");
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = f
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "the process is alive while it drains");

    open.send(()).unwrap();
    let (status, body) = task.await.unwrap();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "admitted before the drain, answered after: {body}"
    );
    assert!(
        f.state
            .admission
            .wait_idle(std::time::Duration::from_secs(1))
            .await
    );
    assert_eq!(f.rows(), 1);
}

#[test]
fn too_many_requests_and_shutting_down_carry_their_retry_after() {
    let response = AppError::TooManyRequests { retry_after: 7 }.into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    assert!(!response.headers().contains_key("connection"));
    let response = AppError::ShuttingDown { retry_after: 3 }.into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(response.headers()["connection"], "close");
}
