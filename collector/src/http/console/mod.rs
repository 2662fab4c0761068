//! The TAM console's pages: server-rendered HTML (askama templates in `collector/templates/`, checked at
//! compile time and HTML-escaped by default). Signed-in pages extend `layout.html` (navigation, who is
//! signed in, sign-out, "data as of": [`layout`]); charts are SVG drawn by the server ([`charts`]).
//! Pages: sign-in, sign-out, the critical queue ([`queue`], also the home page), customers
//! ([`customers`]), an org ([`org`], with its CSV exports), a host and what changed ([`host`]), and an
//! org's health-check report ([`report`]).
//!
//! Every response from these routes carries the security headers of [`security_headers`]: a CSP
//! that allows nothing but this origin (no inline script or style: the stylesheet and the one script
//! are files), no framing, no MIME sniffing, no referrer to other sites, and `Cache-Control:
//! no-store` (pages show customers' data; a shared machine's cache must not keep them). Pages work
//! without the script: it only makes the queue's countdowns live.

use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, SET_COOKIE, USER_AGENT,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use time::OffsetDateTime;

use super::auth::{self, AuthRejection, CsrfForm, SESSION_COOKIE, SIGNIN_PATH, Via, cookie, set_cookie};
use super::{AppError, AppState};
use crate::store::accounts::SignIn;

pub mod charts;
pub mod customers;
pub mod host;
pub mod layout;
pub mod org;
pub mod queue;
pub mod report;
pub mod view;

pub const HOME_PATH: &str = "/";
pub const SIGNOUT_PATH: &str = "/signout";
pub const STYLESHEET_PATH: &str = "/static/console.css";
pub const SCRIPT_PATH: &str = "/static/console.js";
/// Double-submit cookie of the sign-in form (login CSRF), scoped to the form's path.
const SIGNIN_COOKIE: &str = "callhome_signin";
const SIGNIN_COOKIE_SECS: i64 = 3600;
/// One message for every refused sign-in, whatever the reason (see `auth`).
pub const SIGNIN_REFUSED: &str =
    "Sign-in failed: check your login and password. After repeated failures, sign-in is paused for a while.";
const SIGNIN_EXPIRED: &str = "The sign-in form expired: please sign in again.";

const STYLESHEET: &str = include_str!("console.css");
const SCRIPT: &str = include_str!("console.js");

/// Every console route and whether it needs a signed-in user, for the authorization test
/// (`http::api::tests`): keep it in step with [`routes`].
pub const PAGES: &[(http::Method, &str, bool)] = &[
    (http::Method::GET, HOME_PATH, true),
    (http::Method::GET, queue::QUEUE_PATH, true),
    (http::Method::POST, "/queue/{id}/ack", true),
    (http::Method::GET, customers::CUSTOMERS_PATH, true),
    (http::Method::GET, "/orgs/{org}", true),
    (http::Method::GET, "/orgs/{org}/report", true),
    (http::Method::GET, "/orgs/{org}/capacity", true),
    (http::Method::GET, "/orgs/{org}/findings.csv", true),
    (http::Method::GET, "/orgs/{org}/hosts.csv", true),
    (http::Method::GET, "/hosts/{host_id}", true),
    (http::Method::GET, "/hosts/{host_id}/diff", true),
    (http::Method::GET, "/queue/{id}/changes", true),
    (http::Method::GET, SIGNIN_PATH, false),
    (http::Method::POST, SIGNIN_PATH, false),
    (http::Method::POST, SIGNOUT_PATH, true),
    (http::Method::GET, STYLESHEET_PATH, false),
    (http::Method::GET, SCRIPT_PATH, false),
];

/// The console's routes, each answer with the security headers.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(HOME_PATH, get(queue::queue_page))
        .route(queue::QUEUE_PATH, get(queue::queue_page))
        .route("/queue/{id}/ack", post(queue::acknowledge))
        // ---- dashboard pages: customers, org, host, what changed, report, CSV (issue 6) ----
        .route(customers::CUSTOMERS_PATH, get(customers::customers_page))
        .route("/orgs/{org}", get(org::org_page))
        .route("/orgs/{org}/report", get(report::report_page))
        .route("/orgs/{org}/capacity", get(org::capacity_page))
        // The API's CSV handlers: the same files, with the sign-in redirect of a page.
        .route(
            "/orgs/{org}/findings.csv",
            get(crate::http::api::orgs::findings_csv),
        )
        .route("/orgs/{org}/hosts.csv", get(crate::http::api::orgs::hosts_csv))
        .route("/hosts/{host_id}", get(host::host_page))
        .route("/hosts/{host_id}/diff", get(host::host_diff))
        .route("/queue/{id}/changes", get(host::queue_changes))
        // ---- end of dashboard pages ----
        .route(SIGNIN_PATH, get(signin_form).post(signin))
        .route(SIGNOUT_PATH, post(signout))
        .route(STYLESHEET_PATH, get(stylesheet))
        .route(SCRIPT_PATH, get(script))
        .layer(middleware::from_fn(security_headers))
}

pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'"),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Renders a template as an HTML answer; a rendering failure is a logged 500.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))],
            body,
        )
            .into_response(),
        Err(e) => AppError::Internal(format!("template rendering failed: {e}")).into_response(),
    }
}

async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", SCRIPT)
}

/// A file built into the binary; `no-cache` revalidates, so a new collector's file is picked up.
fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    next: &'a str,
    login: &'a str,
    error: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// The sign-in form's token: the browser's current one when it has a well-formed one (several tabs
/// keep working), else a fresh one to set.
fn signin_token(headers: &HeaderMap) -> Result<(String, bool), AppError> {
    match cookie(headers, SIGNIN_COOKIE).filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Some(t) => Ok((t.to_owned(), false)),
        None => Ok((
            crate::secret::random_hex(32).map_err(|e| AppError::Internal(e.to_string()))?,
            true,
        )),
    }
}

fn signin_page(
    status: StatusCode,
    token: &str,
    fresh: bool,
    next: &str,
    login: &str,
    error: Option<&str>,
) -> Response {
    let mut response = html(
        status,
        &SignInPage {
            csrf: token,
            next,
            login,
            error,
        },
    );
    if fresh {
        response.headers_mut().append(
            SET_COOKIE,
            set_cookie(SIGNIN_COOKIE, token, SIGNIN_PATH, SIGNIN_COOKIE_SECS),
        );
    }
    response
}

/// `GET /signin`: the form, or straight on to `next` for someone already signed in.
async fn signin_form(
    State(state): State<AppState>,
    Query(query): Query<NextQuery>,
    request: Request,
) -> Result<Response, AuthRejection> {
    let (parts, _) = request.into_parts();
    let next = query
        .next
        .as_deref()
        .and_then(auth::safe_next)
        .unwrap_or_else(|| "/".to_owned());
    if auth::authenticate(&parts, &state).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let (token, fresh) = signin_token(&parts.headers).map_err(AuthRejection::Store)?;
    Ok(signin_page(StatusCode::OK, &token, fresh, &next, "", None))
}

/// `POST /signin`: checks the form's token, then the login and password under the lock-out; on
/// success sets the session cookie and sends the browser to `next` (a local path) or `/`.
async fn signin(State(state): State<AppState>, request: Request) -> Result<Response, AuthRejection> {
    let (parts, body) = request.into_parts();
    let form = auth::read_form(&parts.headers, body).await?;
    let next = auth::field(&form, "next")
        .and_then(auth::safe_next)
        .unwrap_or_else(|| "/".to_owned());
    let login = auth::field(&form, "login").unwrap_or_default().trim();
    let password = auth::field(&form, "password").unwrap_or_default();
    let token_ok = match (cookie(&parts.headers, SIGNIN_COOKIE), auth::field(&form, "csrf")) {
        (Some(cookie), Some(submitted)) => !cookie.is_empty() && auth::constant_time_eq(cookie, submitted),
        _ => false,
    };
    if !token_ok {
        // Another site's form, or a stale page: no attempt is made, and a fresh form is shown.
        let token = crate::secret::random_hex(32)
            .map_err(|e| AuthRejection::Store(AppError::Internal(e.to_string())))?;
        return Ok(signin_page(
            StatusCode::FORBIDDEN,
            &token,
            true,
            &next,
            login,
            Some(SIGNIN_EXPIRED),
        ));
    }
    let ip = auth::client_ip(&parts.extensions);
    let now = OffsetDateTime::now_utc();
    let outcome = {
        let _permit = state
            .auth
            .hashing
            .acquire()
            .await
            .map_err(|e| AuthRejection::Store(AppError::Internal(e.to_string())))?;
        state
            .store
            .sign_in(
                login,
                password.to_owned(),
                ip.clone(),
                &state.auth.hasher,
                state.auth.config,
                now,
            )
            .await
            .map_err(|e| AuthRejection::Store(e.into()))?
    };
    let token = cookie(&parts.headers, SIGNIN_COOKIE).unwrap_or_default();
    match outcome {
        SignIn::Accepted(account) => {
            let user_agent = parts
                .headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let session = state
                .store
                .create_session(account.user_id, ip.clone(), user_agent, state.auth.config, now)
                .await
                .map_err(|e| AuthRejection::Store(e.into()))?;
            tracing::info!(login = %account.login, ip = ip.as_deref().unwrap_or("-"), "console sign-in");
            let max_age = (session.expires_at - now).whole_seconds();
            let mut response = Redirect::to(&next).into_response();
            let headers = response.headers_mut();
            headers.append(
                SET_COOKIE,
                set_cookie(SESSION_COOKIE, session.token.expose(), "/", max_age),
            );
            headers.append(SET_COOKIE, set_cookie(SIGNIN_COOKIE, "", SIGNIN_PATH, 0));
            Ok(response)
        }
        SignIn::Refused(reason) => {
            tracing::warn!(login = %login, ip = ip.as_deref().unwrap_or("-"), ?reason, "console sign-in refused");
            tokio::time::sleep(state.auth.failure_delay.min(Duration::from_secs(10))).await;
            Ok(signin_page(
                StatusCode::UNAUTHORIZED,
                token,
                false,
                &next,
                login,
                Some(SIGNIN_REFUSED),
            ))
        }
    }
}

/// A form with no field but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// `POST /signout`: ends the session (CSRF-checked) and clears the cookie.
async fn signout(
    State(state): State<AppState>,
    CsrfForm(principal, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, AuthRejection> {
    if let Via::Session { id, .. } = &principal.via {
        state
            .store
            .delete_session(id.clone(), principal.actor(), OffsetDateTime::now_utc())
            .await
            .map_err(|e| AuthRejection::Store(e.into()))?;
    }
    tracing::info!(login = %principal.login, "console sign-out");
    let mut response = Redirect::to(SIGNIN_PATH).into_response();
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(SESSION_COOKIE, "", "/", 0));
    Ok(response)
}

#[cfg(test)]
mod tests;
