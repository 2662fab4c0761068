//! The TAM console's accounts end to end: users made by the admin commands, sign-in through the real
//! form over HTTPS, the session cookie, sign-out, and API tokens revoked while the server runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use callhome_e2e::{Collector, bin, describe, runtime, tls_client_config};
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};

const TAM_PASSWORD: &str = "tam one's long password";

/// An admin command with `stdin` piped in.
fn admin_with_stdin(collector: &Collector, args: &[&str], stdin: &str) -> String {
    let mut cmd = Command::new(bin("callhome-collector"));
    cmd.arg("--data-dir").arg(collector.dir.path()).args(args);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    String::from_utf8(out.stdout).unwrap()
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers.get(LOCATION).map_or("", |v| v.to_str().unwrap())
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with(&format!("{name}=")))
    }
}

/// A browser-like client that does not follow redirects, so each 303 can be looked at.
struct Browser {
    base: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Browser {
    fn new(collector: &Collector) -> Browser {
        let rt = runtime();
        let client = rt.block_on(async {
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls_client_config(&collector.cert_path()))
                .https_only(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
        });
        Browser {
            base: collector.url(),
            client,
            rt,
        }
    }

    fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        self.rt.block_on(async {
            let resp = request.send().await.unwrap();
            Reply {
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
                body: resp.text().await.unwrap(),
            }
        })
    }

    fn get(&self, path: &str, cookie: Option<&str>, bearer: Option<&str>) -> Reply {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            r = r.header(COOKIE, c);
        }
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        self.send(r)
    }

    fn post_form(&self, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Reply {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = cookie {
            r = r.header(COOKIE, c);
        }
        self.send(r)
    }

    /// Signs in through the form; the session's `Cookie` value, or the refusal.
    fn sign_in(&self, login: &str, password: &str, next: &str) -> Result<(String, Reply), Box<Reply>> {
        let form = self.get("/signin", None, None);
        assert_eq!(form.status, 200, "{}", form.body);
        let form_cookie = form.set_cookie("callhome_signin").expect("form cookie");
        let form_cookie = form_cookie.split(';').next().unwrap().to_owned();
        let csrf = hidden(&form.body, "csrf");
        let reply = self.post_form(
            "/signin",
            Some(&form_cookie),
            &[
                ("login", login),
                ("password", password),
                ("next", next),
                ("csrf", &csrf),
            ],
        );
        match reply.set_cookie("callhome_session") {
            Some(set) if reply.status == 303 => Ok((set.split(';').next().unwrap().to_owned(), reply)),
            _ => Err(Box::new(reply)),
        }
    }
}

/// application/x-www-form-urlencoded, as a browser sends it.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => char::from(b).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}: {body}"))
        + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn accounts_sign_in_sign_out_and_revoked_tokens_over_https() {
    let collector = Collector::new(None);
    collector.seed_org("ACME", "2026-01-01", "2027-12-31");
    collector.seed_org("OTHER", "2026-01-01", "2027-12-31");

    // Accounts by the admin commands: a generated admin password, a TAM's from stdin.
    let out = collector.admin(&[
        "user",
        "add",
        "root",
        "--role",
        "admin",
        "--name",
        "Ada Admin",
        "--generate-password",
    ]);
    let admin_password = out.trim().to_owned();
    assert_eq!(out.lines().count(), 1, "the password alone on stdout: {out:?}");
    assert!(admin_password.len() >= 12);
    let out = admin_with_stdin(
        &collector,
        &["user", "add", "tam1", "--role", "tam", "--name", "Tam One"],
        &format!("{TAM_PASSWORD}\n"),
    );
    assert!(out.is_empty(), "nothing on stdout: {out:?}");
    collector.admin(&["tam", "assign", "tam1", "ACME"]);
    // A password below the policy is refused with 78.
    let mut short = Command::new(bin("callhome-collector"));
    short
        .arg("--data-dir")
        .arg(collector.dir.path())
        .args(["user", "add", "tam2", "--role", "tam", "--name", "Short"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = short.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"too short\n").unwrap();
    let refused = child.wait_with_output().unwrap();
    assert_eq!(refused.status.code(), Some(78), "{}", describe(&short, &refused));

    let users: serde_json::Value =
        serde_json::from_str(&collector.admin(&["user", "list", "--json"])).unwrap();
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 2, "{users:?}");
    assert_eq!(users[1]["login"], "tam1");
    assert_eq!(users[1]["orgs"], serde_json::json!(["ACME"]));
    assert!(users.iter().all(|u| u.get("password_hash").is_none()));

    let mut collector = collector.start();
    let browser = Browser::new(&collector);

    // Anonymous: sent to the form.
    let home = browser.get("/", None, None);
    assert_eq!(home.status, 303);
    assert_eq!(home.location(), "/signin");
    assert_eq!(home.headers["x-frame-options"], "DENY");
    let api = browser.get("/v1/me", None, None);
    assert_eq!(api.status, 401, "{}", api.body);

    // A wrong password: refused after the delay, no cookie.
    let started = std::time::Instant::now();
    let wrong = browser
        .sign_in("tam1", "not the password at all", "/")
        .unwrap_err();
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Sign-in failed"), "{}", wrong.body);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // Sign in, follow the cookie.
    let (cookie, reply) = browser.sign_in("tam1", TAM_PASSWORD, "/").unwrap();
    assert_eq!(reply.location(), "/");
    let set = reply.set_cookie("callhome_session").unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr}: {set}");
    }
    let home = browser.get("/", Some(&cookie), None);
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        home.body.contains("Tam One") && home.body.contains("Critical queue"),
        "the home page is the signed-in user's queue: {}",
        home.body
    );
    let customers = browser.get("/customers", Some(&cookie), None);
    assert_eq!(customers.status, 200, "{}", customers.body);
    assert!(customers.body.contains("ACME"), "{}", customers.body);
    assert!(!home.body.contains("OTHER"));
    assert_eq!(home.headers["content-security-policy"], "default-src 'self'");
    let me: serde_json::Value =
        serde_json::from_str(&browser.get("/v1/me", Some(&cookie), None).body).unwrap();
    assert_eq!(me["orgs"], serde_json::json!(["ACME"]));

    // Sign out: the CSRF token is required, then the session is gone.
    let csrf = hidden(&home.body, "csrf");
    assert_eq!(browser.post_form("/signout", Some(&cookie), &[]).status, 403);
    let out = browser.post_form("/signout", Some(&cookie), &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/signin");
    let after = browser.get("/", Some(&cookie), None);
    assert_eq!(after.status, 303);
    assert_eq!(browser.get("/v1/me", Some(&cookie), None).status, 401);

    // The admin sees every org; `next` is followed only on this site.
    let (admin, reply) = browser
        .sign_in("root", &admin_password, "https://evil.example/")
        .unwrap();
    assert_eq!(reply.location(), "/");
    let me: serde_json::Value =
        serde_json::from_str(&browser.get("/v1/me", Some(&admin), None).body).unwrap();
    assert_eq!(me["role"], "admin");
    assert!(me["orgs"].is_null());

    // An API token works until it is revoked, effective on the very next request.
    let token = collector.admin(&["api-token", "issue", "tam1", "--name", "e2e script"]);
    let token = token.trim();
    assert!(token.starts_with("chtt_"), "{token}");
    let me = browser.get("/v1/me", None, Some(token));
    assert_eq!(me.status, 200, "{}", me.body);
    let listed: serde_json::Value =
        serde_json::from_str(&collector.admin(&["api-token", "list", "tam1", "--json"])).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");
    collector.admin(&["api-token", "revoke", &id]);
    let revoked = browser.get("/v1/me", None, Some(token));
    assert_eq!(revoked.status, 401, "{}", revoked.body);

    // Disabling a user ends their sessions.
    let (cookie, _) = browser.sign_in("tam1", TAM_PASSWORD, "/").unwrap();
    assert_eq!(browser.get("/", Some(&cookie), None).status, 200);
    collector.admin(&["user", "disable", "tam1"]);
    assert_eq!(browser.get("/", Some(&cookie), None).status, 303);
    assert!(browser.sign_in("tam1", TAM_PASSWORD, "/").is_err());

    assert!(collector.log_text().contains("console sign-in"));
    assert!(
        !collector.log_text().contains(TAM_PASSWORD),
        "a password reached the log"
    );
    collector.terminate(std::time::Duration::from_secs(15));
}
