//! The API against a seeded store through `app(state).oneshot(..)`: the OpenAPI document against
//! the route table and the answers, and the authorization sweep over every API route and console
//! page (anonymous, a TAM of another org, the org's own TAM).

use std::collections::BTreeSet;

use axum::body::Body;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION};
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

use super::{Access, CSRF_HEADER, openapi, table};
use crate::config::{ConsoleConfig, Limits};
use crate::http::auth::{AuthState, SESSION_COOKIE};
use crate::http::{AppState, app, console};
use crate::password::Hasher;
use crate::seed_cmd::{self, SeedOptions};
use crate::store::accounts::Role;
use crate::store::audit::Actor;
use crate::store::{NewChangeWindow, NewSuppression, Store};

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A caller: an API token or a browser session (cookie and CSRF token).
#[derive(Clone)]
enum Caller {
    Anonymous,
    Token(String),
    Session { cookie: String, csrf: String },
}

/// A seeded store: org `org` with a TAM (`tam_a`), another org with its own TAM (`tam_b`), an
/// admin, and ids of every kind in `org`.
struct World {
    _dir: tempfile::TempDir,
    state: AppState,
    org: String,
    admin: Caller,
    tam_a: Caller,
    tam_a_session: Caller,
    tam_b: Caller,
    tam_b_session: Caller,
    host: String,
    environment: String,
    snapshots: (String, String),
    queue_id: i64,
    suppression_id: i64,
    change_id: i64,
    /// What must never reach a caller who may not see `org`.
    secrets: Vec<String>,
}

async fn session(store: &Store, user_id: i64, now: OffsetDateTime) -> Caller {
    let s = store
        .create_session(user_id, None, None, ConsoleConfig::default(), now)
        .await
        .unwrap();
    Caller::Session {
        cookie: format!("{SESSION_COOKIE}={}", s.token.expose()),
        csrf: s.csrf,
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(dir.path());
    let now = OffsetDateTime::now_utc();
    let options = SeedOptions {
        orgs: 6,
        hosts: 60,
        days: 35,
        seed: 7,
        force: false,
    };
    seed_cmd::seed(&store, &options, now).unwrap();
    let orgs: Vec<String> = store.list_orgs().unwrap().into_iter().map(|o| o.id).collect();
    // The org under attack has an unacknowledged queue entry; the other is any other org.
    let unacknowledged = |o: &str| {
        store
            .list_queue(Some(o), false, now)
            .unwrap()
            .into_iter()
            .find(|e| e.acknowledged_at.is_none())
    };
    let org = orgs
        .iter()
        .find(|o| unacknowledged(o).is_some())
        .expect("the seed makes unacknowledged queue entries")
        .clone();
    let queue_id = unacknowledged(&org).unwrap().id;
    let other = orgs.iter().find(|o| **o != org).unwrap().clone();
    let h = Hasher::insecure_for_tests();
    let pw = h.hash("a password 123").unwrap();
    store
        .add_user("root", "Root", Role::Admin, &pw, &Actor::cli(), now)
        .unwrap();
    let a = store
        .add_user("tam_a", "Tam A", Role::Tam, &pw, &Actor::cli(), now)
        .unwrap();
    let b = store
        .add_user("tam_b", "Tam B", Role::Tam, &pw, &Actor::cli(), now)
        .unwrap();
    store.assign_tam("tam_a", &org, &Actor::cli(), now).unwrap();
    store.assign_tam("tam_b", &other, &Actor::cli(), now).unwrap();
    let token = |login: &str| {
        Caller::Token(
            store
                .issue_api_token(login, "test", &Actor::cli(), now)
                .unwrap()
                .token
                .expose()
                .to_owned(),
        )
    };
    let (admin, tam_a, tam_b) = (token("root"), token("tam_a"), token("tam_b"));
    let tam_a_session = session(&store, a.id, now).await;
    let tam_b_session = session(&store, b.id, now).await;

    let hosts = store.list_hosts(Some(&org), None).unwrap();
    let first = &hosts[0];
    let detail = store.host_detail(first.host_id, now).await.unwrap();
    let snaps: Vec<String> = detail.snapshots.iter().map(|s| s.id.clone()).collect();
    let snapshots = (snaps[snaps.len().min(2) - 1].clone(), snaps[0].clone());
    let suppression = store
        .add_suppression(
            &NewSuppression {
                org: org.clone(),
                environment: None,
                host: Some(first.host_id),
                rule: "FLEET-STALE-001".to_owned(),
                reason: "decommissioning".to_owned(),
                author: "tam_a".to_owned(),
                expires_at: now + Duration::days(5),
            },
            &Actor::cli(),
            now,
        )
        .unwrap();
    let change = store
        .add_change_window(
            &NewChangeWindow {
                org: org.clone(),
                environment: first.environment.clone(),
                starts_at: now + Duration::days(1),
                ends_at: now + Duration::days(2),
                description: "VDA 2411 upgrade".to_owned(),
                author: "tam_a".to_owned(),
            },
            &Actor::cli(),
            now,
        )
        .unwrap();
    let mut secrets = vec![org.clone()];
    for h in &hosts {
        secrets.push(h.host_id.to_string());
        secrets.push(h.hostname.clone());
    }
    let findings = store.list_findings(&org, &Default::default(), now).unwrap();
    assert!(!findings.is_empty());
    secrets.extend(findings.iter().map(|f| f.title.clone()));
    let mut state = AppState::new(store, Limits::default());
    state.auth = AuthState::for_tests(ConsoleConfig::default());
    World {
        _dir: dir,
        state,
        environment: first.environment.clone(),
        host: first.host_id.to_string(),
        org,
        admin,
        tam_a,
        tam_a_session,
        tam_b,
        tam_b_session,
        snapshots,
        queue_id,
        suppression_id: suppression.id,
        change_id: change.id,
        secrets,
    }
}

impl World {
    /// `path` with the ids of `org` in it, and the query a route needs.
    fn concrete(&self, path: &str) -> String {
        let id = if path.starts_with("/v1/suppressions/") {
            self.suppression_id
        } else if path.starts_with("/v1/changes/") {
            self.change_id
        } else {
            self.queue_id
        };
        let mut p = path
            .replace("{org}", &self.org)
            .replace("{host_id}", &self.host)
            .replace("{id}", &id.to_string());
        if path == "/v1/hosts/{host_id}/diff" {
            p.push_str(&format!("?from={}&to={}", self.snapshots.0, self.snapshots.1));
        }
        p
    }

    /// A valid body for a write route.
    fn body(&self, path: &str) -> Value {
        match path {
            "/v1/orgs/{org}/suppressions" => {
                json!({"rule": "FLEET-STALE-002", "reason": "lab hosts", "days": 7, "environment": self.environment})
            }
            "/v1/orgs/{org}/changes" => {
                let start = OffsetDateTime::now_utc() + Duration::days(3);
                let fmt = &time::format_description::well_known::Rfc3339;
                json!({
                    "environment": self.environment,
                    "starts_at": start.format(fmt).unwrap(),
                    "ends_at": (start + Duration::hours(4)).format(fmt).unwrap(),
                    "description": "controller patching",
                })
            }
            _ => json!({}),
        }
    }

    async fn call(
        &self,
        method: &Method,
        uri: &str,
        caller: &Caller,
        body: Option<(&str, String)>,
    ) -> Answer {
        let mut r = Request::builder().method(method.clone()).uri(uri);
        match caller {
            Caller::Anonymous => {}
            Caller::Token(t) => r = r.header(AUTHORIZATION, format!("Bearer {t}")),
            Caller::Session { cookie, csrf } => {
                r = r.header(COOKIE, cookie.as_str());
                if uri.starts_with("/v1/") {
                    r = r.header(CSRF_HEADER, csrf.as_str());
                }
            }
        }
        let body = match body {
            Some((content_type, text)) => {
                r = r.header(CONTENT_TYPE, content_type);
                Body::from(text)
            }
            None => Body::empty(),
        };
        let response = app(self.state.clone())
            .oneshot(r.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// An API call with the route's valid body on writes.
    async fn api(&self, method: &Method, path: &str, caller: &Caller) -> Answer {
        let body = (*method == Method::POST).then(|| ("application/json", self.body(path).to_string()));
        self.call(method, &self.concrete(path), caller, body).await
    }

    /// A console call; forms carry the caller's CSRF token, so only the org check can refuse.
    async fn page(&self, method: &Method, path: &str, caller: &Caller) -> Answer {
        let body = (*method == Method::POST).then(|| {
            let csrf = match caller {
                Caller::Session { csrf, .. } => csrf.clone(),
                _ => String::new(),
            };
            (
                "application/x-www-form-urlencoded",
                serde_urlencoded::to_string([("csrf", csrf)]).unwrap(),
            )
        });
        self.call(method, &self.concrete(path), caller, body).await
    }
}

// ---- the OpenAPI document ----

fn documented() -> BTreeSet<(String, String)> {
    let doc = openapi::document();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn the_document_lists_exactly_the_routes_served() {
    let served: BTreeSet<(String, String)> = table()
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented(), served);
    let doc = openapi::document();
    assert_eq!(doc["openapi"], "3.0.3");
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = piece.split('"').next().unwrap();
        let (kind, name) = target.split_once('/').unwrap();
        assert!(
            doc["components"][kind].get(name).is_some(),
            "dangling $ref {target}"
        );
    }
}

/// Checks `v` against the document's `schema`: types, `nullable`, `enum`, required properties, no
/// undocumented properties, array items and map values, through `$ref` and `allOf`.
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        return conforms(doc, &doc["components"]["schemas"][name], v, at);
    }
    if v.is_null() {
        let typed = schema.get("type").is_some() || schema.get("allOf").is_some();
        return if !typed || schema["nullable"] == true {
            Ok(())
        } else {
            Err(format!("{at}: null, but not nullable"))
        };
    }
    for s in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        conforms(doc, s, v, at)?;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {options:?}"));
    }
    let ok = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("array") => {
            for (i, x) in v
                .as_array()
                .ok_or(format!("{at}: not an array"))?
                .iter()
                .enumerate()
            {
                conforms(doc, &schema["items"], x, &format!("{at}[{i}]"))?;
            }
            true
        }
        Some("object") => {
            let o = v.as_object().ok_or(format!("{at}: not an object: {v}"))?;
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap();
                if !o.contains_key(r) {
                    return Err(format!("{at}: required property `{r}` missing"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, x) in o {
                match (props.and_then(|p| p.get(k)), schema.get("additionalProperties")) {
                    (Some(s), _) => conforms(doc, s, x, &format!("{at}.{k}"))?,
                    (None, Some(extra)) if extra.is_object() => {
                        conforms(doc, extra, x, &format!("{at}.{k}"))?
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) if props.is_none() => {}
                    (None, _) => return Err(format!("{at}: undocumented property `{k}`")),
                }
            }
            true
        }
        Some(other) => return Err(format!("{at}: unknown schema type {other}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{at}: {v} is not a {}", schema["type"]))
    }
}

#[tokio::test]
async fn every_documented_get_answers_as_documented() {
    let w = world().await;
    let doc = openapi::document();
    let mut checked = 0;
    for route in table().iter().filter(|r| r.method == Method::GET) {
        let caller = if route.access == Access::Tam {
            &w.tam_a
        } else {
            &Caller::Anonymous
        };
        let answer = w.api(&route.method, route.path, caller).await;
        let op = &doc["paths"][route.path]["get"];
        let listed = &op["responses"][answer.status.as_str()];
        assert!(
            listed.is_object(),
            "{}: status {} not in the document: {}",
            route.path,
            answer.status,
            answer.body
        );
        assert_eq!(answer.status, StatusCode::OK, "{}: {}", route.path, answer.body);
        assert_eq!(
            answer.headers.get(CACHE_CONTROL).unwrap(),
            "no-store",
            "{}",
            route.path
        );
        let content_type = answer.headers.get(CONTENT_TYPE).unwrap().to_str().unwrap();
        if content_type.starts_with("application/json") {
            let schema = &listed["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{}: no JSON schema for 200", route.path);
            conforms(&doc, schema, &answer.json(), route.path)
                .unwrap_or_else(|e| panic!("{e}\n{}", answer.body));
        } else {
            assert!(
                content_type.starts_with("text/csv"),
                "{}: {content_type}",
                route.path
            );
            assert!(listed["content"]["text/csv"].is_object());
            let disposition = answer
                .headers
                .get("content-disposition")
                .unwrap()
                .to_str()
                .unwrap();
            assert!(disposition.starts_with("attachment; filename="), "{disposition}");
            assert!(answer.body.lines().count() > 1, "{}: header only", route.path);
        }
        checked += 1;
    }
    assert_eq!(
        checked,
        table().iter().filter(|r| r.method == Method::GET).count()
    );
    // Error answers follow the Error schema too.
    let answer = w.api(&Method::GET, "/v1/orgs/NO-SUCH-ORG", &w.admin).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    conforms(
        &doc,
        &json!({"$ref": "#/components/schemas/Error"}),
        &answer.json(),
        "404",
    )
    .unwrap();
}

#[tokio::test]
async fn answers_carry_what_the_data_says() {
    let w = world().await;
    let orgs = w.api(&Method::GET, "/v1/orgs", &w.tam_a).await.json();
    let listed: Vec<&str> = orgs["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["org"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![w.org.as_str()], "a TAM sees their orgs only");
    assert_eq!(orgs["orgs"][0]["tams"], json!(["Tam A"]));
    let all = w.api(&Method::GET, "/v1/orgs", &w.admin).await.json();
    let all = all["orgs"].as_array().unwrap();
    assert_eq!(all.len(), 6);
    for o in all {
        if o["scored"] == false {
            assert!(
                o["score"].is_null() && o["change_7d"].is_null(),
                "unscored org with a score: {o}"
            );
        }
    }
    // Filters, and bad values named.
    let crit = w
        .call(
            &Method::GET,
            &format!("/v1/orgs/{}/findings?severity=critical&state=all", w.org),
            &w.tam_a,
            None,
        )
        .await
        .json();
    assert!(
        crit["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "critical")
    );
    for (query, param) in [
        ("findings?severity=dire", "severity"),
        ("findings?state=closed", "state"),
        ("findings?rule=NOPE-1", "rule"),
        ("findings?host=xyz", "host"),
        ("findings?colour=red", "colour"),
        ("scores?days=0", "days"),
        ("scores?days=many", "days"),
    ] {
        let a = w
            .call(
                &Method::GET,
                &format!("/v1/orgs/{}/{query}", w.org),
                &w.tam_a,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            a.json()["message"].as_str().unwrap().contains(param),
            "{query}: {}",
            a.body
        );
    }
    let a = w.call(&Method::GET, "/v1/queue?all=maybe", &w.tam_a, None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = w
        .call(
            &Method::GET,
            &format!("/v1/hosts/{}/diff?from=x", w.host),
            &w.tam_a,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("from"), "{}", a.body);
    // Writes: malformed bodies named, the caller recorded as author, wrong media type refused.
    let url = format!("/v1/orgs/{}/suppressions", w.org);
    let a = w
        .call(
            &Method::POST,
            &url,
            &w.tam_a,
            Some(("application/json", "{\"rule\":".to_owned())),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"], "malformed_json");
    let a = w
        .call(
            &Method::POST,
            &url,
            &w.tam_a,
            Some((
                "application/json",
                json!({"rule": "FLEET-STALE-002", "days": 3}).to_string(),
            )),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("reason"), "{}", a.body);
    let a = w
        .call(
            &Method::POST,
            &url,
            &w.tam_a,
            Some(("text/plain", "rule=x".to_owned())),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = w
        .api(&Method::POST, "/v1/orgs/{org}/suppressions", &w.tam_a)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.json()["author"], "tam_a");
    let a = w.api(&Method::POST, "/v1/queue/{id}/ack", &w.tam_a).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["entry"]["acknowledged_by"], "tam_a");
    // A cookie-authenticated write without the CSRF header is refused.
    if let Caller::Session { cookie, .. } = &w.tam_a_session {
        let r = Request::post(format!("/v1/changes/{}/cancel", w.change_id))
            .header(COOKIE, cookie.as_str())
            .body(Body::empty())
            .unwrap();
        let response = app(w.state.clone()).oneshot(r).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}

// ---- authorization ----

fn refused(a: &Answer) -> bool {
    let to_signin = a.status == StatusCode::SEE_OTHER
        && a.headers
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .is_some_and(|l| l.starts_with("/signin"));
    matches!(a.status.as_u16(), 401 | 403 | 404) || to_signin
}

#[tokio::test]
async fn no_route_or_page_serves_an_org_to_anyone_else() {
    let w = world().await;
    let api: Vec<(Method, &str)> = table()
        .iter()
        .filter(|r| r.access == Access::Tam)
        .map(|r| (r.method.clone(), r.path))
        .collect();
    let pages: Vec<(Method, &str)> = console::PAGES
        .iter()
        .filter(|(_, _, signed_in)| *signed_in)
        .map(|(m, p, _)| (m.clone(), *p))
        .collect();
    assert!(api.len() >= 19 && pages.len() >= 3);
    // A route that names an org or an object of one must refuse; one that lists the caller's own
    // (`/v1/orgs`, `/v1/queue`, `/v1/me`, the queue page) answers, with nothing of `org` in it.
    let check = |what: String, path: &str, anonymous: bool, a: Answer| {
        if anonymous || path.contains('{') {
            assert!(refused(&a), "{what}: {} {}", a.status, a.body);
        } else {
            assert!(a.status.is_success(), "{what}: {} {}", a.status, a.body);
        }
        for secret in &w.secrets {
            assert!(
                !a.body.contains(secret.as_str()),
                "{what}: leaks {secret}: {}",
                a.body
            );
        }
    };
    for (method, path) in &api {
        for (who, caller) in [
            ("anonymous", &Caller::Anonymous),
            ("tam_b token", &w.tam_b),
            ("tam_b session", &w.tam_b_session),
        ] {
            let anonymous = matches!(caller, Caller::Anonymous);
            check(
                format!("{who} {method} {path}"),
                path,
                anonymous,
                w.api(method, path, caller).await,
            );
        }
    }
    for (method, path) in &pages {
        check(
            format!("anonymous {method} {path}"),
            path,
            true,
            w.page(method, path, &Caller::Anonymous).await,
        );
        // Signing out acts on one's own session only; it holds no org.
        if *path != console::SIGNOUT_PATH {
            check(
                format!("tam_b {method} {path}"),
                path,
                false,
                w.page(method, path, &w.tam_b_session).await,
            );
        }
    }
    // The public routes hold nothing of any org.
    for route in table().iter().filter(|r| r.access == Access::Public) {
        let a = w.api(&route.method, route.path, &Caller::Anonymous).await;
        assert_eq!(a.status, StatusCode::OK, "{}", route.path);
        assert!(
            !w.secrets.iter().any(|s| a.body.contains(s.as_str())),
            "{}",
            route.path
        );
    }
    // The org's own TAM gets every API route (reads first, then writes) and every page it may read.
    let mut ordered = api.clone();
    ordered.sort_by_key(|(m, _)| *m == Method::POST);
    for (method, path) in &ordered {
        for caller in [&w.tam_a, &w.tam_a_session] {
            let a = w.api(method, path, caller).await;
            assert!(
                a.status.is_success(),
                "tam_a {method} {path}: {} {}",
                a.status,
                a.body
            );
        }
    }
    for (method, path) in pages.iter().filter(|(m, _)| *m == Method::GET) {
        let a = w.page(method, path, &w.tam_a_session).await;
        assert!(a.status.is_success(), "tam_a {method} {path}: {}", a.status);
    }
    // The secrets looked for are real: the right TAM's answers hold them.
    let hosts = w.api(&Method::GET, "/v1/orgs/{org}/hosts", &w.tam_a).await;
    assert!(
        w.secrets[1..]
            .iter()
            .filter(|s| hosts.body.contains(s.as_str()))
            .count()
            > 2
    );
    let a = w.page(&Method::POST, "/queue/{id}/ack", &w.tam_a_session).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers.get(LOCATION).unwrap(), "/queue");
}

#[tokio::test]
async fn the_audit_log_records_api_actions_and_shows_a_tam_only_their_orgs() {
    let w = world().await;
    let Caller::Token(tam_a_token) = &w.tam_a else {
        unreachable!()
    };
    // An acknowledgement from a known address: recorded with who, what, which org and where from.
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/queue/{}/ack", w.queue_id))
        .header(AUTHORIZATION, format!("Bearer {tam_a_token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [192, 0, 2, 44],
            50_000,
        ))));
    let response = app(w.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let a = w
        .call(&Method::GET, "/v1/audit?actor=tam_a", &w.tam_a, None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let entries = a.json()["entries"].as_array().unwrap().clone();
    let ack = entries
        .iter()
        .find(|e| e["action"] == "queue_ack")
        .unwrap_or_else(|| panic!("no queue_ack in {}", a.body));
    assert_eq!(ack["actor"], "tam_a");
    assert_eq!(ack["actor_kind"], "tam");
    assert_eq!(ack["target"], w.queue_id.to_string());
    assert_eq!(ack["org"], w.org.as_str());
    assert_eq!(ack["address"], "192.0.2.44");
    assert!(!a.body.contains(tam_a_token.as_str()));

    // The admin sees the org's rows, the CLI's among them; the other org's TAM sees none of them.
    let org_query = format!("/v1/audit?org={}&limit=1000", w.org);
    let admin = w.call(&Method::GET, &org_query, &w.admin, None).await;
    let actions: Vec<String> = admin.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for action in ["queue_ack", "suppression_add", "change_add", "tam_assign"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    for caller in [&w.tam_b, &w.tam_b_session] {
        let b = w.call(&Method::GET, &org_query, caller, None).await;
        assert_eq!(b.status, StatusCode::OK, "{}", b.body);
        assert_eq!(b.json()["entries"], json!([]), "{}", b.body);
        let b = w.call(&Method::GET, "/v1/audit", caller, None).await;
        assert!(!b.body.contains(w.org.as_str()), "{}", b.body);
    }
    let anonymous = w.call(&Method::GET, "/v1/audit", &Caller::Anonymous, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    for bad in ["limit=0", "limit=many", "since=yesterday", "who=me"] {
        let a = w
            .call(&Method::GET, &format!("/v1/audit?{bad}"), &w.admin, None)
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.body);
    }
}
