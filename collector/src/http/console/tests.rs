//! Sign-in, sessions, CSRF and authorization through `app(state).oneshot(request)`.

use axum::body::Body;
use axum::routing::get;
use http::header::{COOKIE, LOCATION};
use http::{Method, Request};
use time::OffsetDateTime;
use tower::ServiceExt;

use super::*;
use crate::config::{ConsoleConfig, Limits};
use crate::entitlement::Tier;
use crate::http::app;
use crate::http::auth::{AuthState, Principal};
use crate::password::Hasher;
use crate::store::accounts::Role;
use crate::store::audit::Actor;
use crate::store::{Authentication, Judged, NewSnapshot};
use callhome_shared::HostRole;
use callhome_shared::api::EnrollRequest;
use callhome_shared::rules::{Finding, HOST_RULES, Hit, Severity, TrendPoint};
use uuid::Uuid;

const ADMIN_PW: &str = "admin password 1";
const TAM_PW: &str = "tam password 12";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The value of the hidden field `name` in a page.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {body}"))
        + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(ConsoleConfig::default())
    }

    /// Orgs ORG-1 and ORG-2; admin `root`; TAM `tam1` (`<b>Tam</b>`) assigned to ORG-1.
    fn with_config(config: ConsoleConfig) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(dir.path());
        let now = OffsetDateTime::now_utc();
        let h = Hasher::insecure_for_tests();
        store.add_org("ORG-1", "One", &Actor::cli(), now).unwrap();
        store.add_org("ORG-2", "Two", &Actor::cli(), now).unwrap();
        store
            .add_user(
                "root",
                "Ada Admin",
                Role::Admin,
                &h.hash(ADMIN_PW).unwrap(),
                &Actor::cli(),
                now,
            )
            .unwrap();
        store
            .add_user(
                "tam1",
                "<b>Tam</b>",
                Role::Tam,
                &h.hash(TAM_PW).unwrap(),
                &Actor::cli(),
                now,
            )
            .unwrap();
        store.assign_tam("tam1", "ORG-1", &Actor::cli(), now).unwrap();
        let mut state = AppState::new(store, Limits::default());
        state.auth = AuthState::for_tests(config);
        Fixture { _dir: dir, state }
    }

    async fn send_to(&self, router: axum::Router, request: Request<Body>) -> Answer {
        let response = router.oneshot(request).await.unwrap();
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

    async fn send(&self, request: Request<Body>) -> Answer {
        self.send_to(app(self.state.clone()), request).await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut r = Request::get(path);
        if let Some(c) = cookie {
            r = r.header(COOKIE, c);
        }
        self.send(r.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, path: &str, cookie: Option<&str>, body: String) -> Answer {
        let mut r = Request::post(path).header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            r = r.header(COOKIE, c);
        }
        self.send(r.body(Body::from(body)).unwrap()).await
    }

    /// Opens the sign-in form: the form's cookie (`name=value`) and token.
    async fn signin_form(&self) -> (String, String) {
        let page = self.get("/signin", None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let cookie = page.set_cookie("callhome_signin").expect("sign-in cookie");
        let csrf = hidden(&page.body, "csrf");
        assert_eq!(cookie_value(&cookie), csrf);
        (format!("callhome_signin={csrf}"), csrf)
    }

    async fn try_sign_in(&self, login: &str, password: &str, next: &str) -> Answer {
        let (cookie, csrf) = self.signin_form().await;
        let body = form(&[
            ("login", login),
            ("password", password),
            ("next", next),
            ("csrf", &csrf),
        ]);
        self.post_form("/signin", Some(&cookie), body).await
    }

    /// Signs in; returns the `Cookie` header value for the session.
    async fn sign_in(&self, login: &str, password: &str) -> String {
        let a = self.try_sign_in(login, password, "/").await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let set = a.set_cookie(SESSION_COOKIE).expect("session cookie");
        format!("{SESSION_COOKIE}={}", cookie_value(&set))
    }

    async fn api(&self, path: &str, bearer: Option<&str>, cookie: Option<&str>) -> Answer {
        let mut r = Request::get(path);
        if let Some(t) = bearer {
            r = r.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(c) = cookie {
            r = r.header(COOKIE, c);
        }
        self.send(r.body(Body::empty()).unwrap()).await
    }
}

fn assert_security_headers(a: &Answer) {
    for (name, value) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(
            a.headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name}"
        );
    }
}

#[tokio::test]
async fn anonymous_home_redirects_to_signin_and_the_form_is_served_safely() {
    let f = Fixture::new();
    let a = f.get("/", None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/signin");
    assert_security_headers(&a);

    let a = f.get("/orgs/ORG-1?tab=hosts", None).await;
    assert_eq!(
        a.status,
        StatusCode::SEE_OTHER,
        "pages ask anonymous browsers to sign in"
    );
    assert_eq!(a.location(), "/signin?next=%2Forgs%2FORG-1%3Ftab%3Dhosts");

    let a = f.get("/signin", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert_security_headers(&a);
    assert_eq!(a.headers[CACHE_CONTROL], "no-store");
    assert!(
        a.body.contains("<form method=\"post\" action=\"/signin\">"),
        "{}",
        a.body
    );
    assert!(!a.body.contains("<script"), "no inline script");
    let cookie = a.set_cookie("callhome_signin").unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/signin"] {
        assert!(cookie.split("; ").any(|x| x == attr), "{attr}: {cookie}");
    }
    let css = f.get(STYLESHEET_PATH, None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

#[tokio::test]
async fn sign_in_sets_a_strict_session_cookie_and_shows_who_is_signed_in() {
    let f = Fixture::new();
    let a = f.try_sign_in("TAM1", TAM_PW, "/").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/");
    let set = a.set_cookie(SESSION_COOKIE).unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.split("; ").any(|x| x == attr), "{attr}: {set}");
    }
    // The sign-in form's cookie is cleared.
    assert!(a.set_cookie("callhome_signin").unwrap().contains("Max-Age=0"));
    let cookie = format!("{SESSION_COOKIE}={}", cookie_value(&set));

    // Home is the queue, in the signed-in frame: sections, who, sign-out, data as of.
    let home = f.get("/", Some(&cookie)).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert_security_headers(&home);
    assert!(home.body.contains("<h1>Critical queue</h1>"), "{}", home.body);
    assert!(home.body.contains("No open critical findings"), "{}", home.body);
    assert!(
        home.body
            .contains("<a href=\"/queue\" aria-current=\"page\">Queue</a>")
    );
    assert!(home.body.contains("<a href=\"/customers\">Customers</a>"));
    assert!(home.body.contains("(tam1, tam)"), "{}", home.body);
    assert!(home.body.contains("<form method=\"post\" action=\"/signout\""));
    assert!(
        home.body.contains("Data as of no data received yet"),
        "{}",
        home.body
    );
    // The display name is escaped, never markup.
    assert!(
        home.body.contains("&#60;b&#62;Tam&#60;/b&#62;") || home.body.contains("&lt;b&gt;Tam"),
        "{}",
        home.body
    );
    assert!(!home.body.contains("<b>Tam</b>"));

    // Signed in, the form sends the browser on.
    let again = f.get("/signin?next=%2Fqueue", Some(&cookie)).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.location(), "/queue");

    let admin = f.sign_in("root", ADMIN_PW).await;
    let home = f.get("/", Some(&admin)).await;
    assert!(home.body.contains("Ada Admin"), "{}", home.body);
    assert!(home.body.contains("(root, admin)"), "{}", home.body);
}

#[tokio::test]
async fn next_is_followed_only_to_local_paths() {
    let f = Fixture::new();
    for (next, expected) in [
        ("/orgs/ORG-1?x=1", "/orgs/ORG-1?x=1"),
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ] {
        let a = f.try_sign_in("tam1", TAM_PW, next).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(a.location(), expected, "{next}");
    }
    // The form keeps a safe next and drops an unsafe one.
    let page = f.get("/signin?next=%2F%2Fevil.example", None).await;
    assert_eq!(hidden(&page.body, "next"), "/");
    let page = f.get("/signin?next=%2Fqueue", None).await;
    assert_eq!(hidden(&page.body, "next"), "/queue");
}

#[tokio::test]
async fn wrong_passwords_get_one_message_and_lock_the_login() {
    let f = Fixture::new();
    let unknown = f.try_sign_in("nobody", TAM_PW, "/").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.body.contains("Sign-in failed"), "{}", unknown.body);
    assert!(unknown.set_cookie(SESSION_COOKIE).is_none());
    for _ in 0..5 {
        let a = f.try_sign_in("tam1", "wrong password!", "/").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert!(a.set_cookie(SESSION_COOKIE).is_none());
        // The login typed is kept, escaped.
        assert_eq!(hidden(&a.body, "csrf").len(), 64);
    }
    let locked = f.try_sign_in("tam1", TAM_PW, "/").await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED);
    assert!(locked.set_cookie(SESSION_COOKIE).is_none());
    // Same words as a wrong password: the page does not say the login is locked.
    let strip = |s: &str| s.replace("value=\"tam1\"", "").replace("value=\"nobody\"", "");
    assert_eq!(
        strip(&locked.body),
        strip(&unknown.body).replace(&hidden(&unknown.body, "csrf"), &hidden(&locked.body, "csrf"))
    );
    // Other logins are not affected.
    f.sign_in("root", ADMIN_PW).await;
}

#[tokio::test]
async fn sign_in_without_the_form_token_is_refused() {
    let f = Fixture::new();
    let (cookie, csrf) = f.signin_form().await;
    for (cookie, token) in [
        (None, Some(csrf.as_str())),
        (Some(cookie.as_str()), None),
        (Some(cookie.as_str()), Some("0")),
    ] {
        let mut pairs = vec![("login", "tam1"), ("password", TAM_PW)];
        if let Some(t) = token {
            pairs.push(("csrf", t));
        }
        let a = f.post_form("/signin", cookie, form(&pairs)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{cookie:?} {token:?}");
        assert!(a.set_cookie(SESSION_COOKIE).is_none());
        assert!(a.body.contains("expired"));
    }
    // A JSON post is not a form.
    let r = Request::post("/signin")
        .header(CONTENT_TYPE, "application/json")
        .header(COOKIE, &cookie)
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(f.send(r).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn sign_out_needs_the_csrf_token_and_ends_the_session() {
    let f = Fixture::new();
    let cookie = f.sign_in("tam1", TAM_PW).await;
    let home = f.get("/", Some(&cookie)).await;
    let csrf = hidden(&home.body, "csrf");
    assert_eq!(csrf.len(), 64);

    let missing = f.post_form("/signout", Some(&cookie), String::new()).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert_eq!(missing.json()["error"], "csrf_failed");
    let wrong = f
        .post_form("/signout", Some(&cookie), form(&[("csrf", &"0".repeat(64))]))
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.get("/", Some(&cookie)).await.status,
        StatusCode::OK,
        "still signed in"
    );

    // Another session's token does not work either.
    let other = f.sign_in("tam1", TAM_PW).await;
    let other_csrf = hidden(&f.get("/", Some(&other)).await.body, "csrf");
    assert_ne!(other_csrf, csrf);
    let crossed = f
        .post_form("/signout", Some(&cookie), form(&[("csrf", &other_csrf)]))
        .await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);

    let out = f
        .post_form("/signout", Some(&cookie), form(&[("csrf", &csrf)]))
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/signin");
    assert!(out.set_cookie(SESSION_COOKIE).unwrap().contains("Max-Age=0"));
    let after = f.get("/", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/signin");
    assert_eq!(
        f.get("/", Some(&other)).await.status,
        StatusCode::OK,
        "other sessions live on"
    );

    // Anonymous sign-out: sent to sign in, nothing else happens.
    let anon = f.post_form("/signout", None, form(&[("csrf", &csrf)])).await;
    assert_eq!(anon.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sessions_end_when_idle() {
    let f = Fixture::with_config(ConsoleConfig {
        session_idle_minutes: 30,
        ..ConsoleConfig::default()
    });
    let cookie = f.sign_in("tam1", TAM_PW).await;
    assert_eq!(f.get("/", Some(&cookie)).await.status, StatusCode::OK);
    // Age the session in the store: its last use 31 minutes ago.
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let later = OffsetDateTime::now_utc() + time::Duration::minutes(31);
    let found = f
        .state
        .store
        .authenticate_session(token, f.state.auth.config, later)
        .await
        .unwrap();
    assert!(found.is_none());
    let a = f.get("/", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "the expired session was deleted");
}

#[tokio::test]
async fn api_tokens_authenticate_scripts_until_revoked() {
    let f = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let a = f.api("/v1/me", None, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["error"], "unauthenticated");
    assert_eq!(a.headers["www-authenticate"], "Bearer");

    let issued = f
        .state
        .store
        .issue_api_token("tam1", "script", &Actor::cli(), now)
        .unwrap();
    let token = issued.token.expose();
    let me = f.api("/v1/me", Some(token), None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["login"], "tam1");
    assert_eq!(me.json()["role"], "tam");
    assert_eq!(me.json()["orgs"], serde_json::json!(["ORG-1"]));

    // Scripts skip CSRF: no cookie, nothing a browser could be tricked into sending.
    let r = Request::post("/signout")
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    assert_eq!(f.send(r).await.status, StatusCode::SEE_OTHER);

    f.state
        .store
        .revoke_api_token(&issued.id, &Actor::cli(), now)
        .unwrap();
    let revoked = f.api("/v1/me", Some(token), None).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(revoked.json()["error"], "invalid_token");
    // A bad token is refused even with a good session beside it, and on pages too.
    let cookie = f.sign_in("tam1", TAM_PW).await;
    assert_eq!(
        f.api("/v1/me", Some("chtt_nope"), Some(&cookie)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        f.api("/", Some(token), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A session works for the API as well.
    let me = f.api("/v1/me", None, Some(&cookie)).await;
    assert_eq!(me.status, StatusCode::OK);
    let admin = f.sign_in("root", ADMIN_PW).await;
    assert_eq!(
        f.api("/v1/me", None, Some(&admin)).await.json()["orgs"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn orgs_a_principal_may_not_see_are_not_found() {
    async fn org_page(
        principal: Principal,
        axum::extract::Path(org): axum::extract::Path<String>,
    ) -> Response {
        match principal.require_org(&org) {
            Ok(()) => format!("org {org}").into_response(),
            Err(e) => e.into_response(),
        }
    }
    let f = Fixture::new();
    let router = || {
        axum::Router::new()
            .route("/v1/orgs/{org}", get(org_page))
            .with_state(f.state.clone())
    };
    let tam = f.sign_in("tam1", TAM_PW).await;
    let admin = f.sign_in("root", ADMIN_PW).await;
    let get_org = |org: &str, cookie: &str| {
        Request::builder()
            .method(Method::GET)
            .uri(format!("/v1/orgs/{org}"))
            .header(COOKIE, cookie)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        f.send_to(router(), get_org("ORG-1", &tam)).await.status,
        StatusCode::OK
    );
    let hidden_org = f.send_to(router(), get_org("ORG-2", &tam)).await;
    let missing_org = f.send_to(router(), get_org("NO-SUCH", &tam)).await;
    assert_eq!(hidden_org.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden_org.body, missing_org.body, "another org looks like no org");
    assert_eq!(
        f.send_to(router(), get_org("ORG-2", &admin)).await.status,
        StatusCode::OK
    );
    let anon = Request::get("/v1/orgs/ORG-1").body(Body::empty()).unwrap();
    assert_eq!(f.send_to(router(), anon).await.status, StatusCode::UNAUTHORIZED);
}

// ---- the critical queue ----

/// A critical host rule of the catalog, whatever its content.
fn critical_finding(subject: &str) -> Finding {
    let info = HOST_RULES
        .iter()
        .map(|r| &r.info)
        .find(|r| r.severity == Severity::Critical)
        .expect("the catalog has a critical host rule");
    let mut hit = Hit::about(subject);
    for key in info.evidence {
        hit = hit.with(key, 1);
    }
    Finding::new(info, hit)
}

impl Fixture {
    /// Gives `org` a Priority Plus contract and an environment `prod`, enrolls `hostname` there, and
    /// stores a snapshot with one critical finding received at `received`: a queue entry detected
    /// then, due 10 minutes later. Returns the finding's title.
    async fn queue_critical(&self, org: &str, hostname: &str, received: OffsetDateTime) -> String {
        let store = &self.state.store;
        let now = OffsetDateTime::now_utc();
        let today = now.date();
        if store.org_tier(org, today).unwrap().is_none() {
            store
                .add_contract(
                    org,
                    "support",
                    Tier::PriorityPlus,
                    today - time::Duration::days(100),
                    today + time::Duration::days(600),
                    &Actor::cli(),
                    now,
                )
                .unwrap();
            store.add_environment(org, "prod", now).unwrap();
        }
        let token = store
            .issue_token(org, "prod", time::Duration::days(1), &Actor::cli(), now)
            .unwrap();
        let enrolled = store
            .enroll(
                EnrollRequest {
                    token: token.token.expose().to_owned(),
                    host_id: Uuid::now_v7(),
                    hostname: hostname.to_owned(),
                    role: HostRole::Vda,
                    agent_version: "0.1.0".to_owned(),
                },
                now,
            )
            .await
            .unwrap();
        let agent = match store
            .authenticate_agent(enrolled.credential.expose().to_owned(), today)
            .await
            .unwrap()
        {
            Authentication::Agent(a) => a,
            other => panic!("{other:?}"),
        };
        let finding = critical_finding(&format!("{hostname} <down>"));
        let title = finding.title.clone();
        let trend: TrendPoint = serde_json::from_value(serde_json::json!({
            "at": received.format(&time::format_description::well_known::Rfc3339).unwrap(),
            "mounts": [],
        }))
        .unwrap();
        let snapshot = NewSnapshot {
            id: Uuid::now_v7(),
            schema_version: 1,
            collected_at: received,
            body: b"{}".to_vec(),
            judged: Judged {
                findings: vec![finding],
                catalog_version: callhome_shared::rules::CATALOG_VERSION.to_owned(),
                trend,
                schedule_interval_secs: Some(3600),
                vda_version: None,
                controllers: None,
                clock_skew_secs: None,
            },
        };
        let inserted = store.insert_snapshot(agent, snapshot, received).await.unwrap();
        assert!(format!("{inserted:?}").contains("Stored"), "{inserted:?}");
        title
    }

    /// ORG-1: vda-late (received 2 hours ago: overdue) and vda-new (just now); ORG-2: vda-other.
    async fn seed_queue(&self) -> String {
        let now = OffsetDateTime::now_utc();
        let title = self
            .queue_critical("ORG-1", "vda-late", now - time::Duration::hours(2))
            .await;
        self.queue_critical("ORG-1", "vda-new", now).await;
        self.queue_critical("ORG-2", "vda-other", now).await;
        title
    }

    fn queue(&self) -> Vec<crate::store::risk::QueueEntry> {
        self.state
            .store
            .list_queue(None, false, OffsetDateTime::now_utc())
            .unwrap()
    }

    fn entry(&self, hostname: &str) -> crate::store::risk::QueueEntry {
        self.queue()
            .into_iter()
            .find(|e| e.hostname.as_deref() == Some(hostname))
            .unwrap_or_else(|| panic!("no entry for {hostname}"))
    }
}

/// The `<tr>` of queue entry `id` in a page.
fn row(body: &str, id: i64) -> &str {
    let start = body
        .find(&format!("<tr id=\"q{id}\""))
        .unwrap_or_else(|| panic!("no row q{id} in {body}"));
    let end = body[start..].find("</tr>").unwrap() + start;
    &body[start..end]
}

#[tokio::test]
async fn anonymous_queue_is_sent_to_sign_in() {
    let f = Fixture::new();
    f.seed_queue().await;
    let a = f.get("/queue", None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/signin?next=%2Fqueue");
    assert!(!a.body.contains("vda"));
    let id = f.entry("vda-new").id;
    let ack = f
        .post_form(&format!("/queue/{id}/ack"), None, form(&[("csrf", "x")]))
        .await;
    assert_eq!(ack.status, StatusCode::SEE_OTHER);
    assert!(ack.location().starts_with("/signin"));
    assert!(f.entry("vda-new").acknowledged_at.is_none());
}

#[tokio::test]
async fn a_tam_sees_only_their_orgs_entries_overdue_first() {
    let f = Fixture::new();
    let title = f.seed_queue().await;
    let late = f.entry("vda-late");
    let fresh = f.entry("vda-new");
    let other = f.entry("vda-other");
    assert!(late.overdue && !fresh.overdue);

    let tam = f.sign_in("tam1", TAM_PW).await;
    let page = f.get("/queue", Some(&tam)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_security_headers(&page);
    assert!(page.body.contains("ORG-1") && !page.body.contains("ORG-2"));
    assert!(!page.body.contains("vda-other") && !page.body.contains(&format!("q{}\"", other.id)));
    assert!(page.body.contains("2 open"), "{}", page.body);
    assert!(page.body.contains("1 overdue"), "{}", page.body);

    // Overdue first, marked, with how late it is; then the one still running.
    let late_at = page.body.find(&format!("<tr id=\"q{}\"", late.id)).unwrap();
    let fresh_at = page.body.find(&format!("<tr id=\"q{}\"", fresh.id)).unwrap();
    assert!(late_at < fresh_at);
    let late_row = row(&page.body, late.id);
    assert!(late_row.starts_with(&format!("<tr id=\"q{}\" class=\"overdue\">", late.id)));
    assert!(late_row.contains("Overdue</span>"), "{late_row}");
    assert!(late_row.contains(">overdue by 1 h 50 min<"), "{late_row}");
    let fresh_row = row(&page.body, fresh.id);
    assert!(!fresh_row.contains("overdue"), "{fresh_row}");
    // The deadline absolute (UTC) and live: 10 minutes after detection, "in 9 min" or so.
    assert!(
        fresh_row.contains(&format!("data-deadline=\"{}\"", fresh.response_deadline)),
        "{fresh_row}"
    );
    assert!(fresh_row.contains(" UTC</time>"), "{fresh_row}");
    assert!(
        fresh_row.contains(">in 9 min<") || fresh_row.contains(">in 10 min<"),
        "{fresh_row}"
    );
    // Org, tier, environment, host, rule and title (the subject's markup escaped, never raw).
    for part in ["ORG-1", "Priority Plus", "prod", "vda-new", &fresh.rule, &title] {
        assert!(fresh_row.contains(part), "{part}: {fresh_row}");
    }
    assert!(!page.body.contains("<down>"));
    assert!(
        fresh_row.contains("vda-new &#60;down&#62;") || fresh_row.contains("vda-new &lt;down&gt;"),
        "the subject, escaped: {fresh_row}"
    );
    assert!(fresh_row.contains(&format!("action=\"/queue/{}/ack\"", fresh.id)));
    // Data as of: the newest thing shown, here the fresh detection.
    assert!(
        page.body
            .contains(&format!("Data as of <time datetime=\"{}\">", fresh.detected_at)),
        "{}",
        page.body
    );

    // Acknowledged late: no longer overdue, but the page says it was late.
    let csrf = hidden(&page.body, "csrf");
    let a = f
        .post_form(
            &format!("/queue/{}/ack", late.id),
            Some(&tam),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let page = f.get("/queue", Some(&tam)).await;
    let late_row = row(&page.body, late.id);
    assert!(!late_row.contains("class=\"overdue\""), "{late_row}");
    assert!(late_row.contains("Acknowledged by tam1"), "{late_row}");
    assert!(late_row.contains("after the deadline"), "{late_row}");
    assert!(!row(&page.body, fresh.id).contains("after the deadline"));

    // The admin sees every org's entries.
    let admin = f.sign_in("root", ADMIN_PW).await;
    let page = f.get("/queue", Some(&admin)).await;
    assert!(page.body.contains("vda-other") && page.body.contains("vda-late"));
    assert!(page.body.contains("3 open"), "{}", page.body);

    // A TAM without orgs is told why the queue is empty.
    let now = OffsetDateTime::now_utc();
    let h = Hasher::insecure_for_tests();
    f.state
        .store
        .add_user(
            "tam2",
            "Tam Two",
            Role::Tam,
            &h.hash(TAM_PW).unwrap(),
            &Actor::cli(),
            now,
        )
        .unwrap();
    let tam2 = f.sign_in("tam2", TAM_PW).await;
    let page = f.get("/queue", Some(&tam2)).await;
    assert!(
        page.body.contains("not assigned to any customer"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("vda-"));
}

#[tokio::test]
async fn acknowledging_needs_csrf_and_records_who_and_when() {
    let f = Fixture::new();
    f.seed_queue().await;
    let id = f.entry("vda-new").id;
    let tam = f.sign_in("tam1", TAM_PW).await;
    let csrf = hidden(&f.get("/queue", Some(&tam)).await.body, "csrf");
    let path = format!("/queue/{id}/ack");

    for body in [String::new(), form(&[("csrf", &"0".repeat(64))])] {
        let a = f.post_form(&path, Some(&tam), body).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(a.json()["error"], "csrf_failed");
    }
    assert!(f.entry("vda-new").acknowledged_at.is_none(), "nothing changed");

    let before = OffsetDateTime::now_utc();
    let a = f.post_form(&path, Some(&tam), form(&[("csrf", &csrf)])).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/queue");
    let entry = f.entry("vda-new");
    assert_eq!(entry.acknowledged_by.as_deref(), Some("tam1"));
    let at = OffsetDateTime::parse(
        entry.acknowledged_at.as_deref().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(at >= before - time::Duration::seconds(1) && at <= OffsetDateTime::now_utc());

    // The page shows who and when instead of the button and the countdown.
    let page = f.get("/queue", Some(&tam)).await;
    let acked = row(&page.body, id);
    assert!(acked.contains("Acknowledged by tam1"), "{acked}");
    assert!(
        !acked.contains("<button") && !acked.contains("data-deadline"),
        "{acked}"
    );
    assert!(
        page.body.contains(&format!(
            "Data as of <time datetime=\"{}\">",
            entry.acknowledged_at.as_deref().unwrap()
        )),
        "the acknowledgement is the newest data shown"
    );

    // A second acknowledgement keeps the first.
    let admin = f.sign_in("root", ADMIN_PW).await;
    let admin_csrf = hidden(&f.get("/queue", Some(&admin)).await.body, "csrf");
    let again = f
        .post_form(&path, Some(&admin), form(&[("csrf", &admin_csrf)]))
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(f.entry("vda-new").acknowledged_by.as_deref(), Some("tam1"));
}

#[tokio::test]
async fn another_orgs_entry_cannot_be_acknowledged() {
    let f = Fixture::new();
    f.seed_queue().await;
    let other = f.entry("vda-other").id;
    let tam = f.sign_in("tam1", TAM_PW).await;
    let csrf = hidden(&f.get("/queue", Some(&tam)).await.body, "csrf");
    let hidden_entry = f
        .post_form(
            &format!("/queue/{other}/ack"),
            Some(&tam),
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(hidden_entry.status, StatusCode::NOT_FOUND);
    let missing = f
        .post_form("/queue/999999/ack", Some(&tam), form(&[("csrf", &csrf)]))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        hidden_entry.body, missing.body,
        "another org's entry looks like none"
    );
    assert!(f.entry("vda-other").acknowledged_at.is_none(), "nothing changed");
    assert!(f.queue().iter().all(|e| e.acknowledged_at.is_none()));
}

#[tokio::test]
async fn the_countdown_script_is_a_file_and_pages_have_no_inline_script() {
    let f = Fixture::new();
    f.seed_queue().await;
    let js = f.get(SCRIPT_PATH, None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.headers[CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_security_headers(&js);
    assert!(js.body.contains("data-deadline") && js.body.contains("setInterval"));

    let admin = f.sign_in("root", ADMIN_PW).await;
    let page = f.get("/queue", Some(&admin)).await;
    // Exactly one script element: the external file, empty, no inline handlers or styles.
    let scripts: Vec<&str> = page
        .body
        .match_indices("<script")
        .map(|(i, _)| &page.body[i..])
        .collect();
    assert_eq!(scripts.len(), 1, "{}", page.body);
    assert!(scripts[0].starts_with("<script src=\"/static/console.js\" defer></script>"));
    for inline in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " style=",
        "<style",
        "javascript:",
    ] {
        assert!(!page.body.contains(inline), "{inline}");
    }
    assert_eq!(
        page.headers["content-security-policy"], "default-src 'self'",
        "the CSP allows no inline script"
    );
}

// ---- customers, org, host, what changed, report, CSV ----

/// The start of `text` up to the first character HTML escaping would change.
fn plain_prefix(text: &str) -> &str {
    let end = text.find(['<', '>', '&', '"', '\'']).unwrap_or(text.len());
    &text[..end.min(60)]
}

impl Fixture {
    /// The queue fixture, plus ORG-3 on a Select contract (not scored), visible to admins only.
    async fn seed_pages(&self) -> String {
        let title = self.seed_queue().await;
        let store = &self.state.store;
        let now = OffsetDateTime::now_utc();
        store.add_org("ORG-3", "Three", &Actor::cli(), now).unwrap();
        store
            .add_contract(
                "ORG-3",
                "support",
                Tier::Select,
                now.date() - time::Duration::days(10),
                now.date() + time::Duration::days(600),
                &Actor::cli(),
                now,
            )
            .unwrap();
        title
    }
}

/// Every page of the dashboard sends an anonymous browser to sign in, coming back to it after.
#[tokio::test]
async fn dashboard_pages_send_anonymous_browsers_to_sign_in() {
    let f = Fixture::new();
    f.seed_pages().await;
    let host = f.entry("vda-late").host_id.unwrap();
    let queue_id = f.entry("vda-late").id;
    for path in [
        "/customers".to_owned(),
        "/orgs/ORG-1".to_owned(),
        "/orgs/ORG-1?env=prod".to_owned(),
        "/orgs/ORG-1/report".to_owned(),
        "/orgs/ORG-1/findings.csv".to_owned(),
        "/orgs/ORG-1/hosts.csv".to_owned(),
        format!("/hosts/{host}"),
        format!("/hosts/{host}/diff"),
        format!("/queue/{queue_id}/changes"),
    ] {
        let a = f.get(&path, None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            a.location().starts_with("/signin?next=%2F"),
            "{path}: {}",
            a.location()
        );
        assert!(
            !a.body.contains("vda-late") && !a.body.contains("One"),
            "{path}: {}",
            a.body
        );
        assert_security_headers(&a);
    }
}

#[tokio::test]
async fn customers_are_the_tams_orgs_ranked_with_a_sparkline() {
    let f = Fixture::new();
    f.seed_pages().await;
    let tam = f.sign_in("tam1", TAM_PW).await;
    let page = f.get("/customers", Some(&tam)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_security_headers(&page);
    assert!(page.body.contains("<h1>Customers</h1>"), "{}", page.body);
    assert!(
        page.body
            .contains("<a class=\"org\" href=\"/orgs/ORG-1\">One</a>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Priority Plus"), "{}", page.body);
    assert!(
        page.body.contains("TAM: &#60;b&#62;Tam") || page.body.contains("TAM: &lt;b&gt;Tam"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<svg") && page.body.contains("class=\"chart spark\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<strong class=\"bad\">2</strong>"),
        "two open criticals: {}",
        page.body
    );
    assert!(
        page.body
            .contains("<a href=\"/customers\" aria-current=\"page\">Customers</a>")
    );
    assert!(page.body.contains("Data as of <time"), "{}", page.body);
    for hidden in ["ORG-2", "Two", "ORG-3", "vda-other"] {
        assert!(!page.body.contains(hidden), "{hidden}: {}", page.body);
    }

    let admin = f.sign_in("root", ADMIN_PW).await;
    let page = f.get("/customers", Some(&admin)).await;
    assert!(page.body.contains("/orgs/ORG-2\">Two</a>"), "{}", page.body);
    let three = &page.body[page.body.find("id=\"org-ORG-3\"").expect("ORG-3's row")..];
    let three = &three[..three.find("</tr>").unwrap()];
    assert!(three.contains("not scored (Select)"), "{three}");
    // Ranked: the scored orgs first.
    assert!(page.body.find("org-ORG-3").unwrap() > page.body.find("org-ORG-1").unwrap());
}

#[tokio::test]
async fn the_org_page_groups_findings_by_rule_with_links_to_hosts() {
    let f = Fixture::new();
    let title = f.seed_pages().await;
    let late = f.entry("vda-late");
    let tam = f.sign_in("tam1", TAM_PW).await;
    let page = f.get("/orgs/ORG-1", Some(&tam)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("<h1>One"), "{body}");
    assert!(body.contains(&format!("id=\"rule-{}\"", late.rule)), "{body}");
    assert!(body.contains(plain_prefix(&title)), "{body}");
    assert!(
        body.contains(&format!(
            "<a href=\"/hosts/{}\">vda-late</a>",
            late.host_id.as_ref().unwrap()
        )),
        "{body}"
    );
    assert!(body.contains(">vda-new</a>"), "{body}");
    assert!(body.contains("class=\"chart trend\""), "{body}");
    assert!(
        body.contains("<h2>VDA versions</h2>") && body.contains("<td>unknown</td>"),
        "{body}"
    );
    for link in [
        "/orgs/ORG-1/report",
        "/orgs/ORG-1/findings.csv",
        "/orgs/ORG-1/hosts.csv",
        "/orgs/ORG-1?env=prod",
    ] {
        assert!(body.contains(&format!("href=\"{link}\"")), "{link}: {body}");
    }
    assert!(!body.contains("vda-other"));
    assert!(body.contains("href=\"/orgs/ORG-1/capacity\""), "{body}");

    // Capacity has its own page (it reads every host's history).
    let capacity = f.get("/orgs/ORG-1/capacity", Some(&tam)).await;
    assert_eq!(capacity.status, StatusCode::OK, "{}", capacity.body);
    assert!(
        capacity.body.contains("<h2>By environment</h2>"),
        "{}",
        capacity.body
    );
    assert!(capacity.body.contains("<td>prod</td>"), "{}", capacity.body);
    let other_env = f.get("/orgs/ORG-1/capacity?env=nope", Some(&tam)).await;
    assert_eq!(other_env.status, StatusCode::NOT_FOUND);

    let env = f.get("/orgs/ORG-1?env=prod", Some(&tam)).await;
    assert_eq!(env.status, StatusCode::OK);
    assert!(
        env.body.contains("<span class=\"env-name\">/ prod</span>"),
        "{}",
        env.body
    );
    assert_eq!(
        f.get("/orgs/ORG-1?env=nope", Some(&tam)).await.status,
        StatusCode::NOT_FOUND
    );

    // Another org's page, and one that does not exist, are the same 404.
    let other = f.get("/orgs/ORG-2", Some(&tam)).await;
    let missing = f.get("/orgs/NO-SUCH", Some(&tam)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.body, missing.body);
    let admin = f.sign_in("root", ADMIN_PW).await;
    assert_eq!(f.get("/orgs/ORG-2", Some(&admin)).await.status, StatusCode::OK);
    assert_eq!(
        f.get("/orgs/NO-SUCH", Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn csv_exports_are_attachments_of_the_visible_org_only() {
    let f = Fixture::new();
    f.seed_pages().await;
    let tam = f.sign_in("tam1", TAM_PW).await;
    let findings = f.get("/orgs/ORG-1/findings.csv", Some(&tam)).await;
    assert_eq!(findings.status, StatusCode::OK);
    assert_eq!(findings.headers[CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        findings.headers["content-disposition"],
        "attachment; filename=\"ORG-1-findings.csv\""
    );
    assert!(
        findings.body.starts_with("id,org,environment,host_id,hostname,"),
        "{}",
        findings.body
    );
    assert_eq!(
        findings.body.lines().count(),
        3,
        "header and two findings: {}",
        findings.body
    );
    assert!(findings.body.contains("vda-late") && !findings.body.contains("vda-other"));
    let hosts = f.get("/orgs/ORG-1/hosts.csv", Some(&tam)).await;
    assert_eq!(
        hosts.headers["content-disposition"],
        "attachment; filename=\"ORG-1-hosts.csv\""
    );
    assert!(hosts.body.contains("vda-new"), "{}", hosts.body);
    for path in ["/orgs/ORG-2/findings.csv", "/orgs/ORG-2/hosts.csv"] {
        let a = f.get(path, Some(&tam)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!a.body.contains("vda-other"));
    }
}

#[tokio::test]
async fn the_host_page_shows_evidence_remediation_and_the_snapshot() {
    let f = Fixture::new();
    let title = f.seed_pages().await;
    let late = f.entry("vda-late");
    let host = late.host_id.clone().unwrap();
    let info = callhome_shared::rules::rule_info(&late.rule).unwrap();
    let tam = f.sign_in("tam1", TAM_PW).await;
    let page = f.get(&format!("/hosts/{host}"), Some(&tam)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("<h1>vda-late</h1>"), "{body}");
    assert!(body.contains(plain_prefix(&title)), "{body}");
    assert!(body.contains(plain_prefix(info.remediation)), "{body}");
    assert!(body.contains(plain_prefix(info.rationale)), "{body}");
    assert!(body.contains(&format!("href=\"{}\"", info.reference)), "{body}");
    // Evidence as key/value pairs.
    assert!(
        body.contains(&format!("<dt>{}</dt><dd>1</dd>", info.evidence[0])),
        "{body}"
    );
    assert!(body.contains("<h2>Latest snapshot</h2>"), "{body}");
    assert!(
        body.contains("This host has 1 snapshot: nothing to compare yet."),
        "{body}"
    );
    assert!(body.contains("<a href=\"/orgs/ORG-1?env=prod\">"), "{body}");

    let diff = f.get(&format!("/hosts/{host}/diff"), Some(&tam)).await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.body);
    assert!(diff.body.contains("fewer than two snapshots"), "{}", diff.body);

    // Another org's host, an unknown one and a malformed id: the same 404.
    let other = f.entry("vda-other").host_id.unwrap();
    let answers = [
        f.get(&format!("/hosts/{other}"), Some(&tam)).await,
        f.get(&format!("/hosts/{other}/diff"), Some(&tam)).await,
        f.get(&format!("/hosts/{}", Uuid::now_v7()), Some(&tam)).await,
        f.get("/hosts/not-a-uuid", Some(&tam)).await,
    ];
    for a in &answers {
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
        assert_eq!(a.body, answers[0].body);
        assert!(!a.body.contains("vda-other"));
    }
    let admin = f.sign_in("root", ADMIN_PW).await;
    assert_eq!(
        f.get(&format!("/hosts/{other}"), Some(&admin)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn queue_rows_link_to_what_changed_which_says_when_there_is_no_earlier_snapshot() {
    let f = Fixture::new();
    f.seed_pages().await;
    let late = f.entry("vda-late");
    let tam = f.sign_in("tam1", TAM_PW).await;
    let queue = f.get("/queue", Some(&tam)).await;
    assert!(row(&queue.body, late.id).contains(&format!("href=\"/queue/{}/changes\"", late.id)));
    assert!(
        row(&queue.body, late.id).contains(&format!("href=\"/hosts/{}\"", late.host_id.clone().unwrap()))
    );

    let page = f.get(&format!("/queue/{}/changes", late.id), Some(&tam)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&late.rule), "{}", page.body);
    // The fixture's snapshots are `{}`: not a snapshot this collector can compare, and it says so
    // (the browser test sees the "no earlier snapshot" case with a real one).
    assert!(
        page.body.contains("cannot be read by this collector"),
        "{}",
        page.body
    );
    assert!(page.body.contains(">vda-late</a>"), "{}", page.body);

    let other = f.entry("vda-other").id;
    assert_eq!(
        f.get(&format!("/queue/{other}/changes"), Some(&tam)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.get("/queue/999999/changes", Some(&tam)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_report_is_printable_and_lists_what_changed_since_30_days() {
    let f = Fixture::new();
    let title = f.seed_pages().await;
    let tam = f.sign_in("tam1", TAM_PW).await;
    let page = f.get("/orgs/ORG-1/report", Some(&tam)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    for heading in [
        "<h1>Health-check report: One</h1>",
        "<h2>Executive summary</h2>",
        "<h2>Risk score trend, last 90 days</h2>",
        "<h2>Top risks and remediation</h2>",
        "<h2>Host inventory</h2>",
        "<h2>Planned changes</h2>",
        "<h2>What changed since the previous report</h2>",
        "<h3>Opened (2)</h3>",
        "<h3>Resolved (0)</h3>",
    ] {
        assert!(body.contains(heading), "{heading}: {body}");
    }
    assert!(body.contains("Critical: 2"), "{body}");
    assert!(body.contains("First report: since"), "{body}");
    assert!(body.contains(plain_prefix(&title)), "{body}");
    assert!(
        body.contains("<td>vda-late") && body.contains("<td>vda-new"),
        "{body}"
    );
    assert!(
        body.contains("overdue, not acknowledged") && body.contains("awaiting response"),
        "{body}"
    );
    assert!(!body.contains("vda-other"));
    // The stylesheet has the print rules the report relies on.
    let css = f.get(STYLESHEET_PATH, None).await;
    for rule in [
        "@media print",
        ".report-section { break-before: page; }",
        "tr { break-inside: avoid; }",
    ] {
        assert!(css.body.contains(rule), "{rule}");
    }
    assert_eq!(
        f.get("/orgs/ORG-2/report", Some(&tam)).await.status,
        StatusCode::NOT_FOUND
    );
}
