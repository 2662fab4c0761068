//! HTTPS to the collector: enrollment and snapshot delivery.
//!
//! TLS is rustls on ring with TLS 1.2 and 1.3 only (SPEC §6), configured here rather than by reqwest so
//! that the roots are exactly the ones the operator chose: the CA file when one is given (and then
//! only it), else the system's roots. Redirects are not followed: the collector URL is configured, and
//! a redirect would be a misconfiguration to report, not to follow with a credential.
//!
//! With public-key pins (`collector.pin_sha256`, `enroll --pin`), the verifier is
//! [`crate::pin::PinnedVerifier`]: the pinned key is the trust anchor, or, with a CA file, an addition
//! to it. A key that no pin names fails the TLS handshake, before any HTTP request is written.
//!
//! Every outcome maps to one [`DeliverError`] variant, and each variant to a sysexits exit code, so
//! that scripts can tell "try later" from "fix the config", and to a [`Disposition`], which tells the
//! spool what to do with the snapshot: retry after a backoff ([`Backoff`], full jitter) or after the
//! collector's `Retry-After`, quarantine it (400, 413, 415, 422), or keep it and wait for an operator
//! (401: re-enroll; 403: lapsed contract or wrong org, retried rarely).
//!
//! Client certificate (mutual TLS): when the agent holds one (`client_cert`), every connection
//! presents it; the collector asks for it only when it requires it.
//!
//! Proxies: `collector.proxy`, else `HTTPS_PROXY`/`ALL_PROXY` from the environment, each with
//! `NO_PROXY` honoured (reqwest's matcher; it needs no cargo feature: `system-proxy` only adds the
//! macOS and Windows system settings). The collector's TLS session runs inside the proxy's CONNECT
//! tunnel with the same rustls config as a direct connection, so the proxy sees neither the
//! credential nor the snapshot; an `https://` proxy is reached with that same config too.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callhome_shared::Snapshot;
use callhome_shared::api::{
    ApiError, CERTIFICATE_PATH, CertificateRequest, ClientCertificate, ENROLL_PATH, EnrollBody,
    EnrollResponse, IngestStatus, SENT_AT_HEADER, SNAPSHOTS_PATH, SnapshotAccepted,
};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::client_cert::ClientIdentity;
use crate::exit;
use crate::pin::{Pin, PinMismatch, PinnedVerifier};

/// zstd level for snapshot bodies: the library's default, a good ratio at little CPU.
const ZSTD_LEVEL: i32 = 3;

/// Longest part of a non-JSON error body quoted in a message.
const BODY_EXCERPT: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The URL or the trust roots cannot be used: fix the config or the command line.
    #[error("{0}")]
    Setup(String),
    /// The collector's certificate did not verify against the roots in use.
    #[error(
        "the collector's TLS certificate was not trusted ({detail}): pass `--ca FILE` to `enroll`, or set \
         `collector.ca_file`, to the CA that signed it{}",
        roots_hint(ca_file.as_deref())
    )]
    Untrusted {
        detail: String,
        ca_file: Option<PathBuf>,
    },
    /// The collector's public key is not one of the pins: the handshake was abandoned, nothing sent.
    #[error(
        "{0}: nothing was sent. If the collector's key changed on purpose, add its new pin \
         (`callhome-collector tls pin` prints it) to collector.pin_sha256, or enroll again with `--pin`"
    )]
    PinMismatch(PinMismatch),
    /// No answer: connection refused or reset, DNS, TLS handshake other than trust.
    #[error("cannot reach the collector at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("no answer from the collector at {url} within {secs} s")]
    Timeout { url: String, secs: u64 },
    /// The collector answered with an error status.
    #[error("collector answered {status}: {message}")]
    Rejected {
        status: StatusCode,
        /// `ApiError.message` when the collector sent one, else an excerpt of the body.
        message: String,
        api: Option<ApiError>,
        /// The `Retry-After` header, when the collector sent one.
        retry_after: Option<Duration>,
    },
    /// A 2xx, 3xx or other answer that is not what the API says.
    #[error("unexpected answer from the collector: {0}")]
    Protocol(String),
}

fn roots_hint(ca_file: Option<&Path>) -> String {
    match ca_file {
        Some(path) => format!(" (trusted roots: only {})", path.display()),
        None => " (trusted roots: the system's)".to_string(),
    }
}

impl DeliverError {
    /// The sysexits code a command ends with on this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DeliverError::Setup(_) | DeliverError::Untrusted { .. } | DeliverError::PinMismatch(_) => {
                exit::CONFIG
            }
            DeliverError::Connect { .. } | DeliverError::Timeout { .. } => exit::TEMPFAIL,
            DeliverError::Rejected { status, .. } => exit_code_for_status(*status),
            DeliverError::Protocol(_) => exit::PROTOCOL,
        }
    }
}

/// What to do with a snapshot after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Try again: after `after` when the collector said so (`Retry-After`), else after a backoff.
    Retry { after: Option<Duration> },
    /// The collector refused this snapshot for good (400, 413, 415, 422): move it to quarantine.
    Quarantine,
    /// 401: the credential is unknown or revoked. Keep the spool; an operator must re-enroll.
    Reenroll,
    /// 403: lapsed contract, wrong org or host. Keep the spool and try again rarely.
    Forbidden,
}

impl DeliverError {
    /// What the spool does after this error (SPEC §4 lists what each status means to a client).
    pub fn disposition(&self) -> Disposition {
        match self {
            DeliverError::Rejected {
                status, retry_after, ..
            } => match status.as_u16() {
                400 | 413 | 415 | 422 => Disposition::Quarantine,
                401 => Disposition::Reenroll,
                403 => Disposition::Forbidden,
                _ => Disposition::Retry { after: *retry_after },
            },
            // Unreachable, untrusted or unpinned (an operator may fix the CA or the pins while we
            // wait; `send` tries once, `run` backs off up to `retry.max_elapsed_secs`), a protocol
            // surprise (a proxy's error page): all may pass, none is the snapshot's fault.
            _ => Disposition::Retry { after: None },
        }
    }
}

/// Longest `Retry-After` obeyed: a misconfigured proxy must not silence the agent for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Reads a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date (IMF-fixdate).
/// A date in the past is no delay; anything unreadable is ignored (`None`).
pub fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX)).min(MAX_RETRY_AFTER));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format).ok()?.assume_utc();
    let delta = at - now;
    Some(
        Duration::try_from(delta)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The backoff settings (config `[retry]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_elapsed: Duration,
}

/// Exponential backoff with full jitter (the AWS Architecture Blog's "Exponential Backoff And
/// Jitter"): attempt n waits a uniformly random time in `[0, min(cap, base * 2^n)]`, which spreads
/// a fleet that failed together better than any fixed schedule.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    attempts: u32,
    since: Option<Instant>,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Backoff {
        Backoff {
            policy,
            attempts: 0,
            since: None,
        }
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// After a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.since = None;
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before the next attempt after a failure at `now`, or `None` when the failures have
    /// lasted `max_elapsed` (then the caller waits for its next scheduled run, and the backoff starts
    /// over). A `Retry-After` is obeyed, plus up to a tenth more so that a fleet told the same
    /// delay does not come back in the same second.
    pub fn next_delay(&mut self, now: Instant, retry_after: Option<Duration>) -> Option<Duration> {
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.policy.max_elapsed {
            self.reset();
            return None;
        }
        let exp = self.policy.base.saturating_mul(1u32 << self.attempts.min(30));
        self.attempts = self.attempts.saturating_add(1);
        let jittered = crate::schedule::random_below(exp.min(self.policy.cap));
        Some(match retry_after {
            Some(after) => {
                let after = after.min(MAX_RETRY_AFTER);
                (after + crate::schedule::random_below(after / 10)).max(jittered)
            }
            None => jittered,
        })
    }
}

/// Exit code for an error status (SPEC §4 lists what each means to a client).
pub fn exit_code_for_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        401 | 403 => exit::NOPERM,
        400 | 413 | 415 | 422 => exit::DATAERR,
        429 | 500..=599 => exit::TEMPFAIL,
        _ => exit::PROTOCOL,
    }
}

/// Reads a PEM bundle; it must hold at least one certificate.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, DeliverError> {
    let setup = |m: String| DeliverError::Setup(format!("CA file {}: {m}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| setup(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(e.to_string()))?;
    if certs.is_empty() {
        return Err(setup("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The trust roots: the CA file's only, or the system's. The system's may be missing only when
/// `required` is false (pins alone, where they serve an `https://` proxy at most).
fn load_roots(ca_file: Option<&Path>, required: bool) -> Result<rustls::RootCertStore, DeliverError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_ca_file(path)? {
                roots
                    .add(cert)
                    .map_err(|e| DeliverError::Setup(format!("CA file {}: {e}", path.display())))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::debug!(%error, "skipped part of the system's CA certificates");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "loaded the system's CA certificates");
            if roots.is_empty() && required {
                return Err(DeliverError::Setup(
                    "no system CA certificates found: pass `--ca FILE` or set `collector.ca_file`, or pin \
                     the collector's key (`--pin`, `collector.pin_sha256`)"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// The rustls client config: ring, TLS 1.2 and 1.3. Without pins, the roots from `ca_file` only, or
/// the system's roots when there is none. With pins, the [`PinnedVerifier`] for `collector`'s host:
/// pins alone without `ca_file`, pins and the CA's chain with it. With `identity`, its certificate
/// is presented when the collector asks for one.
pub fn tls_config(
    ca_file: Option<&Path>,
    pins: &[Pin],
    collector: &reqwest::Url,
    identity: Option<&ClientIdentity>,
) -> Result<rustls::ClientConfig, DeliverError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| DeliverError::Setup(format!("TLS setup: {e}")))?;
    let client_auth = |builder: rustls::ConfigBuilder<
        rustls::ClientConfig,
        rustls::client::WantsClientCert,
    >| {
        match identity {
            None => Ok(builder.with_no_client_auth()),
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key())
                .map_err(|e| DeliverError::Setup(format!("client certificate: {e}"))),
        }
    };
    if pins.is_empty() {
        let roots = load_roots(ca_file, true)?;
        return client_auth(builder.with_root_certificates(roots));
    }
    let roots = load_roots(ca_file, false)?;
    let roots = if roots.is_empty() {
        None
    } else {
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| DeliverError::Setup(format!("TLS setup: {e}")))?;
        Some(verifier)
    };
    let verifier = PinnedVerifier::new(
        collector_server_name(collector)?,
        pins.to_vec(),
        roots,
        ca_file.is_some(),
        &provider,
    );
    client_auth(
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier)),
    )
}

/// The collector's host as rustls receives it from the connector: a DNS name or an IP address
/// (without the brackets of an IPv6 literal).
fn collector_server_name(url: &reqwest::Url) -> Result<rustls::pki_types::ServerName<'static>, DeliverError> {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| DeliverError::Setup(format!("collector host `{host}`: {e}")))
}

/// What `send` achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// 201: the collector stored it now.
    Stored(uuid::Uuid),
    /// 200: the collector already had this snapshot id.
    Duplicate(uuid::Uuid),
}

/// A client for one collector.
#[derive(Debug, Clone)]
pub struct Collector {
    client: reqwest::Client,
    base: String,
    ca_file: Option<PathBuf>,
    timeout: Duration,
}

impl Collector {
    /// `url` is the collector's base URL (`https://` only); `ca_file` replaces the system roots.
    /// Proxies come from the environment (`HTTPS_PROXY`, `NO_PROXY`).
    pub fn new(url: &str, ca_file: Option<&Path>, timeout: Duration) -> Result<Collector, DeliverError> {
        Collector::with_proxy(url, ca_file, &[], timeout, None)
    }

    /// As [`Collector::new`], with the collector's key pinned to `pins` when there are any (see
    /// [`tls_config`]), and through `proxy` (config `collector.proxy`) when given, with `NO_PROXY`
    /// from the environment still honoured.
    pub fn with_proxy(
        url: &str,
        ca_file: Option<&Path>,
        pins: &[Pin],
        timeout: Duration,
        proxy: Option<&str>,
    ) -> Result<Collector, DeliverError> {
        Collector::with_identity(url, ca_file, pins, None, timeout, proxy)
    }

    /// As [`Collector::with_proxy`], presenting `identity`'s client certificate when there is one.
    pub fn with_identity(
        url: &str,
        ca_file: Option<&Path>,
        pins: &[Pin],
        identity: Option<&ClientIdentity>,
        timeout: Duration,
        proxy: Option<&str>,
    ) -> Result<Collector, DeliverError> {
        let parsed = crate::config::check_collector_url(url).map_err(DeliverError::Setup)?;
        let tls = tls_config(ca_file, pins, &parsed, identity)?;
        let mut builder = reqwest::Client::builder();
        if let Some(proxy) = proxy {
            // Messages name the key, never the URL: it may hold the proxy's password.
            crate::config::check_proxy_url(proxy)
                .map_err(|m| DeliverError::Setup(format!("collector.proxy: {m}")))?;
            let proxy = reqwest::Proxy::https(proxy)
                .map_err(|e| DeliverError::Setup(format!("collector.proxy: {}", chain_text(&e))))?
                .no_proxy(reqwest::NoProxy::from_env());
            builder = builder.proxy(proxy);
        }
        let client = builder
            .tls_backend_preconfigured(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(format!("callhome-agent/{}", crate::AGENT_VERSION))
            .build()
            .map_err(|e| DeliverError::Setup(format!("HTTP client: {}", chain_text(&e))))?;
        Ok(Collector {
            client,
            base: parsed.as_str().trim_end_matches('/').to_string(),
            ca_file: ca_file.map(Path::to_path_buf),
            timeout,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /v1/enroll`: trades the token in `request` for a credential (and its CSR, if any, for a
    /// client certificate).
    ///
    /// A collector older than client certificates refuses the unknown `csr` field (400): the request
    /// is then made again without it, and the answer carries no certificate.
    pub async fn enroll(&self, request: &EnrollBody) -> Result<EnrollResponse, DeliverError> {
        match self.enroll_once(request).await {
            Err(error) if request.csr.is_some() && refuses_csr_field(&error) => {
                tracing::warn!(
                    "the collector does not take a CSR (an older version): enrolling without a client certificate"
                );
                let without = EnrollBody {
                    csr: None,
                    ..request.clone()
                };
                self.enroll_once(&without).await
            }
            other => other,
        }
    }

    async fn enroll_once(&self, request: &EnrollBody) -> Result<EnrollResponse, DeliverError> {
        let body =
            serde_json::to_vec(request).map_err(|e| DeliverError::Setup(format!("enroll request: {e}")))?;
        let url = format!("{}{ENROLL_PATH}", self.base);
        let request = self
            .client
            .post(&url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        let (status, bytes) = self.exchange(&url, request).await?;
        if !status.is_success() {
            return Err(rejected(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            DeliverError::Protocol(format!("{status} with a body that is not an enrollment: {e}"))
        })
    }

    /// `POST /v1/agents/certificate`: a new client certificate for the key of `csr_pem`.
    pub async fn renew_certificate(
        &self,
        csr_pem: &str,
        credential: &str,
    ) -> Result<ClientCertificate, DeliverError> {
        let body = serde_json::to_vec(&CertificateRequest {
            csr: csr_pem.to_owned(),
        })
        .map_err(|e| DeliverError::Setup(format!("certificate request: {e}")))?;
        let url = format!("{}{CERTIFICATE_PATH}", self.base);
        let request = self
            .client
            .post(&url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(AUTHORIZATION, bearer(credential)?)
            .body(body);
        let (status, bytes) = self.exchange(&url, request).await?;
        if !status.is_success() {
            return Err(rejected(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            DeliverError::Protocol(format!("{status} with a body that is not a certificate: {e}"))
        })
    }

    /// `POST /v1/snapshots`: the snapshot as compact JSON, zstd-compressed.
    pub async fn send(&self, snapshot: &Snapshot, credential: &str) -> Result<Delivered, DeliverError> {
        let body = encode_body(snapshot)?;
        self.send_body(snapshot.id, body, credential).await
    }

    /// `POST /v1/snapshots` of a body made by [`encode_body`] (as the spool keeps it).
    pub async fn send_body(
        &self,
        id: uuid::Uuid,
        body: Vec<u8>,
        credential: &str,
    ) -> Result<Delivered, DeliverError> {
        tracing::debug!(%id, zstd_bytes = body.len(), "sending snapshot");
        let url = format!("{}{SNAPSHOTS_PATH}", self.base);
        let request = self.snapshot_request(&url, body, credential, time::OffsetDateTime::now_utc())?;
        let (status, bytes, retry_after) = self.exchange_with_retry_after(&url, request).await?;
        if !status.is_success() {
            let mut error = rejected(status, &bytes);
            if let DeliverError::Rejected {
                retry_after: slot, ..
            } = &mut error
            {
                *slot = retry_after;
            }
            return Err(error);
        }
        delivered(status, &bytes, id)
    }

    /// The `POST /v1/snapshots` request, stamped with the agent's clock at `now` (the moment of this
    /// try, not of collection: the collector measures the clock skew from it, also for a replay).
    fn snapshot_request(
        &self,
        url: &str,
        body: Vec<u8>,
        credential: &str,
        now: time::OffsetDateTime,
    ) -> Result<reqwest::RequestBuilder, DeliverError> {
        let auth = bearer(credential)?;
        Ok(self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(CONTENT_ENCODING, HeaderValue::from_static("zstd"))
            .header(AUTHORIZATION, auth)
            .header(SENT_AT_HEADER, sent_at_value(now)?)
            .body(body))
    }

    async fn exchange(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), DeliverError> {
        let (status, bytes, _) = self.exchange_with_retry_after(url, request).await?;
        Ok((status, bytes))
    }

    async fn exchange_with_retry_after(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>, Option<Duration>), DeliverError> {
        let response = request.send().await.map_err(|e| self.transport_error(url, &e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(url, &e))?;
        tracing::debug!(%url, %status, bytes = bytes.len(), ?retry_after, "collector answered");
        Ok((status, bytes.to_vec(), retry_after))
    }

    fn transport_error(&self, url: &str, error: &reqwest::Error) -> DeliverError {
        if let Some(tls) = find_rustls_error(error) {
            if let Some(mismatch) = crate::pin::mismatch_in(tls) {
                return DeliverError::PinMismatch(mismatch.clone());
            }
            return match tls {
                rustls::Error::InvalidCertificate(cert) => DeliverError::Untrusted {
                    detail: describe_certificate_error(cert),
                    ca_file: self.ca_file.clone(),
                },
                other => DeliverError::Connect {
                    url: url.to_string(),
                    detail: format!("TLS: {other}"),
                },
            };
        }
        if error.is_timeout() {
            return DeliverError::Timeout {
                url: url.to_string(),
                secs: self.timeout.as_secs(),
            };
        }
        // reqwest's own message only repeats the URL: start at its cause.
        let detail = match error.source() {
            Some(cause) => chain_text(cause),
            None => chain_text(error),
        };
        DeliverError::Connect {
            url: url.to_string(),
            detail,
        }
    }
}

/// Whether an enrollment was refused only for its `csr` field: the 400 `malformed_json` of a collector
/// whose enrollment request knows no such field (serde's "unknown field" message names it).
fn refuses_csr_field(error: &DeliverError) -> bool {
    matches!(error, DeliverError::Rejected { status, api: Some(api), .. }
        if status.as_u16() == 400 && api.error == "malformed_json" && api.message.contains("unknown field `csr`"))
}

/// `Authorization: Bearer <credential>`, marked sensitive (never logged by the HTTP stack).
fn bearer(credential: &str) -> Result<HeaderValue, DeliverError> {
    let mut auth = HeaderValue::from_str(&format!("Bearer {credential}")).map_err(|_| {
        DeliverError::Setup("the saved credential is not a valid header value: enroll again".into())
    })?;
    auth.set_sensitive(true);
    Ok(auth)
}

/// The `x-callhome-sent-at` value: RFC 3339 in UTC, to the millisecond.
pub fn sent_at_value(now: time::OffsetDateTime) -> Result<HeaderValue, DeliverError> {
    let utc = now.to_offset(time::UtcOffset::UTC);
    let utc = utc
        .replace_nanosecond(utc.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(utc);
    let text = utc
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| DeliverError::Setup(format!("{SENT_AT_HEADER}: {e}")))?;
    HeaderValue::from_str(&text).map_err(|e| DeliverError::Setup(format!("{SENT_AT_HEADER}: {e}")))
}

/// The request body of a snapshot: compact JSON, zstd-compressed. This is also what the spool keeps.
pub fn encode_body(snapshot: &Snapshot) -> Result<Vec<u8>, DeliverError> {
    let json = serde_json::to_vec(snapshot).map_err(|e| DeliverError::Setup(format!("snapshot: {e}")))?;
    zstd::encode_all(json.as_slice(), ZSTD_LEVEL).map_err(|e| DeliverError::Setup(format!("zstd: {e}")))
}

/// Words for the certificate errors an operator meets; rustls's names for the rest.
fn describe_certificate_error(error: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match error {
        E::UnknownIssuer => "issued by a CA that is not among the trusted roots".into(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "not valid for the collector's host name".into()
        }
        E::Expired | E::ExpiredContext { .. } => "expired".into(),
        E::NotValidYet | E::NotValidYetContext { .. } => "not valid yet".into(),
        E::Revoked => "revoked".into(),
        E::BadSignature => "bad signature".into(),
        other => format!("{other:?}"),
    }
}

/// Reads a 2xx answer to a snapshot. The status decides when the body is not the documented one: the
/// snapshot is committed either way.
fn delivered(status: StatusCode, bytes: &[u8], id: uuid::Uuid) -> Result<Delivered, DeliverError> {
    match serde_json::from_slice::<SnapshotAccepted>(bytes) {
        Ok(accepted) => {
            if accepted.id != id {
                tracing::warn!(sent = %id, acknowledged = %accepted.id, "collector acknowledged another snapshot id");
            }
            Ok(match accepted.status {
                IngestStatus::Stored => Delivered::Stored(id),
                IngestStatus::Duplicate => Delivered::Duplicate(id),
            })
        }
        Err(error) => {
            tracing::warn!(%status, %error, "collector's 2xx answer is not a SnapshotAccepted");
            match status {
                StatusCode::CREATED => Ok(Delivered::Stored(id)),
                StatusCode::OK => Ok(Delivered::Duplicate(id)),
                _ => Err(DeliverError::Protocol(format!("{status}: {error}"))),
            }
        }
    }
}

/// A non-2xx answer as an error, with the collector's own message when it sent an [`ApiError`].
fn rejected(status: StatusCode, bytes: &[u8]) -> DeliverError {
    if status.is_redirection() {
        return DeliverError::Protocol(format!(
            "{status}: the collector redirects; set the collector URL to where it points"
        ));
    }
    match serde_json::from_slice::<ApiError>(bytes) {
        Ok(api) => DeliverError::Rejected {
            status,
            message: format!("{} ({})", api.message, api.error),
            api: Some(api),
            retry_after: None,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_string()
            } else {
                text.chars().take(BODY_EXCERPT).collect()
            };
            DeliverError::Rejected {
                status,
                message,
                api: None,
                retry_after: None,
            }
        }
    }
}

/// The rustls error behind a failed request, if any. `io::Error::source` skips the error it wraps
/// (and reqwest's connector wraps tokio-rustls's `io::Error` in another), so an `io::Error` link is
/// looked into with `get_ref` rather than `source`.
fn find_rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn StdError + 'static)),
                None => None,
            },
            None => e.source(),
        };
    }
    None
}

/// An error and its causes on one line, without repeating a cause that its parent already quotes.
fn chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_sysexits() {
        let code = |s: u16| exit_code_for_status(StatusCode::from_u16(s).unwrap());
        assert_eq!(code(401), 77);
        assert_eq!(code(403), 77);
        for s in [400, 413, 415, 422] {
            assert_eq!(code(s), 65, "{s}");
        }
        for s in [429, 500, 502, 503, 504] {
            assert_eq!(code(s), 75, "{s}");
        }
        assert_eq!(code(404), exit::PROTOCOL);
    }

    #[test]
    fn statuses_map_to_dispositions() {
        let d = |s: u16, after: Option<u64>| {
            let mut e = rejected(StatusCode::from_u16(s).unwrap(), b"");
            if let DeliverError::Rejected { retry_after, .. } = &mut e {
                *retry_after = after.map(Duration::from_secs);
            }
            e.disposition()
        };
        for s in [400, 413, 415, 422] {
            assert_eq!(d(s, None), Disposition::Quarantine, "{s}");
        }
        assert_eq!(d(401, None), Disposition::Reenroll);
        assert_eq!(d(403, Some(5)), Disposition::Forbidden);
        assert_eq!(
            d(429, Some(2)),
            Disposition::Retry {
                after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            d(503, Some(5)),
            Disposition::Retry {
                after: Some(Duration::from_secs(5))
            }
        );
        assert_eq!(d(500, None), Disposition::Retry { after: None });
        assert_eq!(d(404, None), Disposition::Retry { after: None });
        let timeout = DeliverError::Timeout {
            url: "https://x".into(),
            secs: 1,
        };
        assert_eq!(timeout.disposition(), Disposition::Retry { after: None });
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = time::macros::datetime!(2026-11-20 09:00:00 UTC);
        let cases: &[(&str, Option<u64>)] = &[
            ("2", Some(2)),
            (" 120 ", Some(120)),
            ("0", Some(0)),
            ("99999999999999999999", Some(3600)),
            // RFC 9110's format, 30 s ahead, and one in the past.
            ("Fri, 20 Nov 2026 09:00:30 GMT", Some(30)),
            ("Fri, 20 Nov 2026 08:00:00 GMT", Some(0)),
            ("-5", None),
            ("soon", None),
            ("", None),
            ("Friday, 20-Nov-26 09:00:30 GMT", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_retry_after(value, now),
                expected.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_with_full_jitter_up_to_the_cap_and_gives_up_after_max_elapsed() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        let mut b = Backoff::new(policy);
        let mut max_seen = Duration::ZERO;
        for n in 0..40u32 {
            let d = b.next_delay(t0, None).unwrap();
            let ceiling = (policy.base * 2u32.pow(n.min(20))).min(policy.cap);
            assert!(d <= ceiling, "attempt {n}: {d:?} > {ceiling:?}");
            max_seen = max_seen.max(d);
        }
        assert!(
            max_seen > Duration::from_millis(500),
            "never near the cap: {max_seen:?}"
        );
        // Retry-After wins over a shorter backoff, within a tenth more.
        b.reset();
        let d = b.next_delay(t0, Some(Duration::from_secs(2))).unwrap();
        assert!(
            d >= Duration::from_secs(2) && d <= Duration::from_millis(2200),
            "{d:?}"
        );
        // After max_elapsed of failures: give up (None) and start over.
        assert_eq!(b.next_delay(t0 + Duration::from_secs(61), None), None);
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay(t0 + Duration::from_secs(61), None).unwrap() <= policy.base);
    }

    #[test]
    fn api_error_message_is_kept() {
        let body = br#"{"error":"contract_lapsed","message":"org OLDCO has no active contract"}"#;
        let err = rejected(StatusCode::FORBIDDEN, body);
        assert_eq!(err.exit_code(), 77);
        let text = err.to_string();
        assert!(
            text.contains("403") && text.contains("no active contract"),
            "{text}"
        );
    }

    #[test]
    fn non_json_error_body_is_quoted_briefly() {
        let err = rejected(StatusCode::BAD_GATEWAY, "x".repeat(1000).as_bytes());
        assert_eq!(err.exit_code(), 75);
        assert!(err.to_string().len() < 300);
        let err = rejected(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert!(err.to_string().contains("Service Unavailable"), "{err}");
    }

    #[test]
    fn accepted_bodies_and_bare_statuses() {
        let id = uuid::Uuid::now_v7();
        let body = serde_json::to_vec(&SnapshotAccepted {
            id,
            status: IngestStatus::Duplicate,
        })
        .unwrap();
        assert_eq!(
            delivered(StatusCode::OK, &body, id).unwrap(),
            Delivered::Duplicate(id)
        );
        assert_eq!(
            delivered(StatusCode::CREATED, b"", id).unwrap(),
            Delivered::Stored(id)
        );
        assert!(delivered(StatusCode::ACCEPTED, b"", id).is_err());
    }

    #[test]
    fn ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not pem\n").unwrap();
        let err = read_ca_file(&path).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        assert!(read_ca_file(&dir.path().join("missing.pem")).is_err());
    }

    #[test]
    fn sent_at_is_rfc3339_utc_to_the_millisecond() {
        use time::macros::datetime;
        let v = sent_at_value(datetime!(2026-11-20 10:00:00.123456 +01:00)).unwrap();
        assert_eq!(v.to_str().unwrap(), "2026-11-20T09:00:00.123Z");
        let v = sent_at_value(datetime!(2026-11-20 09:00:00 UTC)).unwrap();
        assert_eq!(v.to_str().unwrap(), "2026-11-20T09:00:00Z");
    }

    #[test]
    fn every_snapshot_post_carries_the_sent_at_header() {
        // Any PEM certificate will do as the CA: nothing connects.
        let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/hosts/rpm-healthy/etc/xdl/.sslkeystore/cacerts/example-root-ca.pem");
        let client = Collector::new("https://127.0.0.1:1", Some(&ca), Duration::from_secs(1)).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let request = client
            .snapshot_request("https://127.0.0.1:1/v1/snapshots", vec![1, 2, 3], "chcred_x", now)
            .unwrap()
            .build()
            .unwrap();
        let sent = request.headers()[SENT_AT_HEADER].to_str().unwrap();
        let parsed =
            time::OffsetDateTime::parse(sent, &time::format_description::well_known::Rfc3339).unwrap();
        assert!((parsed - now).abs() < time::Duration::milliseconds(1), "{sent}");
        assert!(sent.ends_with('Z'), "{sent}");
        assert_eq!(request.headers()[CONTENT_ENCODING], "zstd");
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn an_older_collectors_refusal_of_the_csr_field_is_recognised() {
        // What a collector before client certificates answers (serde's message, `deny_unknown_fields`).
        let body = br#"{"error":"malformed_json","message":"invalid enrollment request: unknown field `csr`, expected one of `token`, `host_id`, `hostname`, `role`, `agent_version` at line 1 column 180"}"#;
        assert!(refuses_csr_field(&rejected(StatusCode::BAD_REQUEST, body)));
        let other =
            br#"{"error":"malformed_json","message":"invalid enrollment request: unknown field `extra`"}"#;
        assert!(!refuses_csr_field(&rejected(StatusCode::BAD_REQUEST, other)));
        let csr_refused = br#"{"error":"invalid_request","message":"invalid certificate signing request: unknown field `csr`"}"#;
        assert!(!refuses_csr_field(&rejected(
            StatusCode::BAD_REQUEST,
            csr_refused
        )));
        assert!(!refuses_csr_field(&rejected(StatusCode::UNAUTHORIZED, body)));
    }

    #[test]
    fn plain_http_is_refused_before_any_connection() {
        let err = Collector::new("http://127.0.0.1:1", None, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("https://"), "{err}");
    }

    #[test]
    fn untrusted_message_says_what_to_do() {
        let err = DeliverError::Untrusted {
            detail: "UnknownIssuer".into(),
            ca_file: None,
        };
        let text = err.to_string();
        assert!(text.contains("certificate was not trusted"), "{text}");
        assert!(text.contains("--ca") && text.contains("ca_file"), "{text}");
    }

    /// A loopback HTTPS server with a self-signed certificate that counts the TLS connections it
    /// accepts and the HTTP requests it reads, and answers every request 201.
    struct CountingServer {
        url: String,
        pin: Pin,
        connections: Arc<std::sync::atomic::AtomicUsize>,
        requests: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl CountingServer {
        fn start() -> CountingServer {
            use std::io::{Read, Write};
            use std::sync::atomic::Ordering;
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let pin = Pin::of_certificate(cert.der()).unwrap();
            let key_der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der.into())
            .unwrap();
            let config = Arc::new(config);
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("https://{}", listener.local_addr().unwrap());
            let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (c, r) = (connections.clone(), requests.clone());
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    let Ok(tcp) = tcp else { return };
                    c.fetch_add(1, Ordering::SeqCst);
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    // Headers, then as many body bytes as Content-Length says.
                    let complete = loop {
                        match tls.read(&mut buf) {
                            Ok(0) | Err(_) => break false,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if seen.len() >= end + 4 + length {
                                break true;
                            }
                        }
                    };
                    if complete {
                        r.fetch_add(1, Ordering::SeqCst);
                        let _ = tls.write_all(
                            b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                }
            });
            CountingServer {
                url,
                pin,
                connections,
                requests,
            }
        }

        fn counts(&self) -> (usize, usize) {
            use std::sync::atomic::Ordering;
            (
                self.connections.load(Ordering::SeqCst),
                self.requests.load(Ordering::SeqCst),
            )
        }
    }

    #[test]
    fn a_wrong_pin_fails_the_handshake_and_nothing_is_sent() {
        let server = CountingServer::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let id = uuid::Uuid::now_v7();
        let client = |pins: &[Pin]| {
            Collector::with_proxy(&server.url, None, pins, Duration::from_secs(5), None).unwrap()
        };

        // The right pin alone is enough for a self-signed certificate whose name is not the host.
        let right = client(&[Pin::of_spki(b"old key"), server.pin]);
        let sent = rt
            .block_on(right.send_body(id, vec![1, 2, 3], "chcred_x"))
            .unwrap();
        assert_eq!(sent, Delivered::Stored(id));
        assert_eq!(server.counts(), (1, 1));

        let wrong = client(&[Pin::of_spki(b"old key")]);
        let err = rt
            .block_on(wrong.send_body(id, vec![1, 2, 3], "chcred_x"))
            .unwrap_err();
        assert!(matches!(err, DeliverError::PinMismatch(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "collector public key {} is not one of the pinned keys (collector.pin_sha256)",
                server.pin
            )),
            "{text}"
        );
        assert_eq!(err.exit_code(), exit::CONFIG);
        assert_eq!(err.disposition(), Disposition::Retry { after: None });
        // Enrollment is refused the same way: the token never leaves either.
        let request = EnrollBody::new(
            callhome_shared::api::EnrollRequest {
                token: "chet_secret".into(),
                host_id: uuid::Uuid::new_v4(),
                hostname: "vda01".into(),
                role: callhome_shared::HostRole::Vda,
                agent_version: "test".into(),
            },
            None,
        );
        let err = rt.block_on(wrong.enroll(&request)).unwrap_err();
        assert!(matches!(err, DeliverError::PinMismatch(_)), "{err:?}");
        // Both attempts reached the server's TLS layer; no request got past it.
        assert_eq!(server.counts(), (3, 1));
    }

    #[test]
    fn rustls_error_is_found_inside_io_errors() {
        // As reqwest 0.13 reports it: io::Error(Other) around tokio-rustls's io::Error.
        let inner = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let io = std::io::Error::other(inner);
        assert!(matches!(
            find_rustls_error(&io),
            Some(rustls::Error::InvalidCertificate(_))
        ));
    }
}
