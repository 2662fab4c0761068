//! Who is calling the TAM console and API, and what they may see.
//!
//! A [`Principal`] comes from one of two places:
//! - `Authorization: Bearer chtt_…`: an API token, for scripts. No cookie, so no CSRF risk: forms
//!   posted with a token skip the CSRF check. A bad or revoked token is a 401 on any path.
//! - the `callhome_session` cookie (`Secure; HttpOnly; SameSite=Strict; Path=/`), for browsers.
//!
//! Without either, a route that needs a principal answers 401 JSON under `/v1` and a 303 to
//! `/signin?next=…` elsewhere (pages). Authorization is by org: admins see every org, TAMs the orgs
//! they are assigned to; anything about an org the principal may not see is a **404**, exactly as
//! if it did not exist ([`Principal::require_org`]), so ids of other customers cannot be probed.
//!
//! CSRF: every state-changing form carries the session's CSRF token in a hidden `csrf` field,
//! compared in constant time ([`CsrfForm`]); missing or wrong is a 403. The sign-in form, which has
//! no session yet, uses a double-submit cookie (`callhome_signin`, see `console`), so another site
//! cannot sign a victim into the attacker's account.
//!
//! Sign-in throttling (the `[console]` config): after `lockout_failures` (5) failed sign-ins for a
//! login, or 4 times as many from one address, within `lockout_minutes` (15), further attempts are
//! refused for `lockout_minutes` even with the right password (`store::accounts`, invariant 4).
//! Every refusal, locked or not, gets the same message after the same fixed delay
//! ([`FAILURE_DELAY`]), and costs the same Argon2 verification, so neither the message nor the timing
//! tells whether a login exists or is locked. At most [`MAX_CONCURRENT_HASHES`] verifications run at
//! once: each takes 19 MiB, and a flood of sign-ins must not exhaust the collector's memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Redirect, Response};
use callhome_shared::api::{ApiError, TAM_TOKEN_PREFIX};
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::{AppError, AppState};
use crate::config::ConsoleConfig;
use crate::password::Hasher;
use crate::secret;
use crate::store::accounts::{Account, Role, Visibility};
use crate::store::audit::Actor;

pub const SESSION_COOKIE: &str = "callhome_session";
/// The path API clients are told to sign in at, and pages redirect to.
pub const SIGNIN_PATH: &str = "/signin";
/// Delay before answering a refused sign-in (documented in the module note).
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Argon2 verifications running at once (each holds 19 MiB).
pub const MAX_CONCURRENT_HASHES: usize = 4;
/// Bodies of console forms: a few short fields.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// `next` targets longer than this are dropped (a URL of a page of ours is far shorter).
const MAX_NEXT_LEN: usize = 2048;

/// Settings and shared state of console authentication, part of [`AppState`].
#[derive(Debug, Clone)]
pub struct AuthState {
    pub config: ConsoleConfig,
    pub hasher: Hasher,
    pub hashing: Arc<Semaphore>,
    pub failure_delay: Duration,
}

impl AuthState {
    pub fn new(config: ConsoleConfig) -> AuthState {
        AuthState {
            config,
            hasher: Hasher::new(),
            hashing: Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)),
            failure_delay: FAILURE_DELAY,
        }
    }

    /// Cheap hashing and no failure delay: unit tests only.
    #[cfg(test)]
    pub fn for_tests(config: ConsoleConfig) -> AuthState {
        AuthState {
            hasher: Hasher::insecure_for_tests(),
            failure_delay: Duration::ZERO,
            ..AuthState::new(config)
        }
    }
}

impl AppState {
    /// Applies the `[console]` config.
    pub fn with_console(mut self, config: ConsoleConfig) -> AppState {
        self.auth = AuthState { config, ..self.auth };
        self
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session: its id (SHA-256 of the cookie) and its CSRF token.
    Session { id: String, csrf: String },
    /// An API token (no cookie: exempt from CSRF checks).
    ApiToken,
}

/// The signed-in caller of a console page or TAM API route.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub login: String,
    pub name: String,
    pub role: Role,
    visibility: Visibility,
    pub via: Via,
    /// The client's address (for the audit log); `None` when the connection's is unknown.
    pub address: Option<String>,
}

impl Principal {
    fn new(account: Account, via: Via, address: Option<String>) -> Principal {
        Principal {
            user_id: account.user_id,
            login: account.login,
            name: account.name,
            role: account.role,
            visibility: account.visibility,
            via,
            address,
        }
    }

    /// The principal as the audit log records it.
    pub fn actor(&self) -> Actor {
        Actor::user(&self.login, self.role, self.address.as_deref())
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn can_see_org(&self, org: &str) -> bool {
        self.visibility.contains(org)
    }

    pub fn visibility(&self) -> &Visibility {
        &self.visibility
    }

    /// `Ok` when the principal may see `org`; otherwise the very 404 an unknown org gets.
    pub fn require_org(&self, org: &str) -> Result<(), AppError> {
        if self.can_see_org(org) {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    /// The CSRF token state-changing forms must carry (`None` for API tokens).
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.via {
            Via::Session { csrf, .. } => Some(csrf),
            Via::ApiToken => None,
        }
    }

    /// Checks a submitted CSRF token in constant time; API-token requests are exempt.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), AuthRejection> {
        match (&self.via, submitted) {
            (Via::ApiToken, _) => Ok(()),
            (Via::Session { csrf, .. }, Some(submitted)) if constant_time_eq(csrf, submitted) => Ok(()),
            _ => Err(AuthRejection::CsrfFailed),
        }
    }
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Why a request was not let through.
#[derive(Debug)]
pub enum AuthRejection {
    /// No session or token: 401 JSON for the API, a redirect to the sign-in form for pages.
    SignInRequired {
        api: bool,
        next: String,
    },
    /// An `Authorization` header that is not a live API token.
    InvalidToken,
    /// A state-changing form without the session's CSRF token.
    CsrfFailed,
    Form(String),
    UnsupportedMediaType,
    Store(AppError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let json = |status: StatusCode, error: &str, message: &str| {
            (
                status,
                Json(ApiError {
                    error: error.to_owned(),
                    message: message.to_owned(),
                }),
            )
                .into_response()
        };
        match self {
            AuthRejection::SignInRequired { api: true, .. } => {
                let mut r = json(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "sign in first: send `Authorization: Bearer chtt_…` (an API token) or a session cookie",
                );
                r.headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            AuthRejection::SignInRequired { api: false, next } => {
                Redirect::to(&signin_location(&next)).into_response()
            }
            AuthRejection::InvalidToken => {
                let mut r = json(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "unknown, revoked or malformed API token",
                );
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                r
            }
            AuthRejection::CsrfFailed => json(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "the form's CSRF token is missing or wrong: reload the page and try again",
            ),
            AuthRejection::Form(message) => json(StatusCode::BAD_REQUEST, "invalid_request", &message),
            AuthRejection::UnsupportedMediaType => json(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the form as application/x-www-form-urlencoded",
            ),
            AuthRejection::Store(e) => e.into_response(),
        }
    }
}

/// `/signin`, with `next` when it is somewhere other than the home page.
pub fn signin_location(next: &str) -> String {
    match safe_next(next) {
        Some(next) if next != "/" => {
            let encoded: String = form_urlencoded_component(&next);
            format!("{SIGNIN_PATH}?next={encoded}")
        }
        _ => SIGNIN_PATH.to_owned(),
    }
}

fn form_urlencoded_component(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|encoded| encoded.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// `next` when it is a path on this site, `None` otherwise (an open redirect is refused). Browsers
/// read `//host` and `/\host` as another host, and strip tabs and newlines before they parse, so a
/// safe target is a `/` not followed by `/` or `\`, with no backslash or control character at all.
pub fn safe_next(next: &str) -> Option<String> {
    let ok = next.len() <= MAX_NEXT_LEN
        && next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    ok.then(|| next.to_owned())
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// `Set-Cookie` for a console cookie: `Secure`, `HttpOnly`, `SameSite=Strict` always.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_secs: i64) -> HeaderValue {
    let text =
        format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; Secure; HttpOnly; SameSite=Strict");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The client's address, as the accept loop saw it (no proxy header is trusted).
pub fn client_ip(parts_extensions: &http::Extensions) -> Option<String> {
    parts_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

fn is_api_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// The principal of a request, `None` when it carries neither token nor live session.
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Option<Principal>, AuthRejection> {
    let now = OffsetDateTime::now_utc();
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| secret::has_shape(t, TAM_TOKEN_PREFIX))
            .ok_or(AuthRejection::InvalidToken)?;
        let account = state
            .store
            .authenticate_api_token(token.to_owned(), now)
            .await
            .map_err(|e| AuthRejection::Store(e.into()))?
            .ok_or(AuthRejection::InvalidToken)?;
        return Ok(Some(Principal::new(
            account,
            Via::ApiToken,
            client_ip(&parts.extensions),
        )));
    }
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE).filter(|t| secret::has_shape(t, "chs_")) else {
        return Ok(None);
    };
    let session = state
        .store
        .authenticate_session(token.to_owned(), state.auth.config, now)
        .await
        .map_err(|e| AuthRejection::Store(e.into()))?;
    Ok(session.map(|s| {
        Principal::new(
            s.account,
            Via::Session {
                id: s.id,
                csrf: s.csrf,
            },
            client_ip(&parts.extensions),
        )
    }))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state).await? {
            Some(principal) => Ok(principal),
            None => Err(AuthRejection::SignInRequired {
                api: is_api_path(parts.uri.path()),
                next: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            }),
        }
    }
}

/// A state-changing form of a signed-in principal, its CSRF token checked: `T` is the form's other
/// fields (unknown fields, `csrf` among them, are ignored by serde unless `T` denies them).
#[derive(Debug)]
pub struct CsrfForm<T>(pub Principal, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = AuthRejection;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let principal = Principal::from_request_parts(&mut parts, state).await?;
        let fields = read_form(&parts.headers, body).await?;
        principal.check_csrf(field(&fields, "csrf"))?;
        let form = serde_urlencoded::from_bytes(&fields.1).map_err(|e| AuthRejection::Form(e.to_string()))?;
        Ok(CsrfForm(principal, form))
    }
}

/// A form body's fields and raw bytes, under [`MAX_FORM_BYTES`].
pub type FormBody = (Vec<(String, String)>, axum::body::Bytes);

pub async fn read_form(headers: &HeaderMap, body: axum::body::Body) -> Result<FormBody, AuthRejection> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(AuthRejection::UnsupportedMediaType);
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| AuthRejection::Form(format!("the form is larger than {MAX_FORM_BYTES} bytes")))?;
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&bytes).map_err(|e| AuthRejection::Form(e.to_string()))?;
    Ok((fields, bytes))
}

pub fn field<'a>(form: &'a FormBody, name: &str) -> Option<&'a str> {
    form.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `GET /v1/me`: who the credentials belong to and which orgs they see (for scripts and tests).
pub async fn me(principal: Principal) -> Json<Me> {
    let orgs = match principal.visibility() {
        Visibility::All => None,
        Visibility::Orgs(orgs) => Some(orgs.iter().cloned().collect()),
    };
    Json(Me {
        login: principal.login,
        name: principal.name,
        role: principal.role,
        orgs,
    })
}

#[derive(Debug, Serialize)]
pub struct Me {
    pub login: String,
    pub name: String,
    pub role: Role,
    /// `null` for admins: every org.
    pub orgs: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_be_a_local_path() {
        for good in ["/", "/orgs/ACME?x=1", "/a/b#c", "/%2F%2Fevil.example"] {
            assert_eq!(safe_next(good).as_deref(), Some(good), "{good}");
        }
        for bad in [
            "//evil.example",
            "https://evil.example",
            "http://evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "evil.example",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(3000))), None);
    }

    #[test]
    fn signin_location_encodes_next() {
        assert_eq!(signin_location("/"), "/signin");
        assert_eq!(signin_location("//evil.example"), "/signin");
        assert_eq!(
            signin_location("/orgs/A B?x=1&y=2"),
            "/signin?next=%2Forgs%2FA+B%3Fx%3D1%26y%3D2"
        );
    }

    #[test]
    fn cookies_are_found_among_several() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; callhome_session=chs_x"));
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("chs_x"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "callhome"), None);
        let set = set_cookie(SESSION_COOKIE, "v", "/", 60);
        let set = set.to_str().unwrap();
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=60"] {
            assert!(set.split("; ").any(|a| a == attr), "{attr} in {set}");
        }
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
        assert!(!constant_time_eq("", "a"));
    }
}
