//! HTTPS to the collector: enrollment and snapshot delivery.
//!
//! TLS is rustls on ring with TLS 1.2 and 1.3 only (SPEC §6), configured here rather than by reqwest so
//! that the roots are exactly the ones the operator chose: the CA file when one is given (and then
//! only it), else the system's roots. Redirects are not followed: the collector URL is configured, and
//! a redirect would be a misconfiguration to report, not to follow with a credential.
//!
//! Every outcome maps to one [`DeliverError`] variant, and each variant to a sysexits exit code, so
//! that scripts and the future scheduler can tell "try later" from "fix the config".

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use callhome_shared::Snapshot;
use callhome_shared::api::{
    ApiError, ENROLL_PATH, EnrollRequest, EnrollResponse, IngestStatus, SNAPSHOTS_PATH, SnapshotAccepted,
};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::exit;

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
            DeliverError::Setup(_) | DeliverError::Untrusted { .. } => exit::CONFIG,
            DeliverError::Connect { .. } | DeliverError::Timeout { .. } => exit::TEMPFAIL,
            DeliverError::Rejected { status, .. } => exit_code_for_status(*status),
            DeliverError::Protocol(_) => exit::PROTOCOL,
        }
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

/// The rustls client config: ring, TLS 1.2 and 1.3, and the roots from `ca_file` only, or the
/// system's roots when there is none.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, DeliverError> {
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
            if roots.is_empty() {
                return Err(DeliverError::Setup(
                    "no system CA certificates found: pass `--ca FILE` or set `collector.ca_file`".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| DeliverError::Setup(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
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
    pub fn new(url: &str, ca_file: Option<&Path>, timeout: Duration) -> Result<Collector, DeliverError> {
        let parsed = crate::config::check_collector_url(url).map_err(DeliverError::Setup)?;
        let tls = tls_config(ca_file)?;
        let client = reqwest::Client::builder()
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

    /// `POST /v1/enroll`: trades the token in `request` for a credential.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, DeliverError> {
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

    /// `POST /v1/snapshots`: the snapshot as compact JSON, zstd-compressed.
    pub async fn send(&self, snapshot: &Snapshot, credential: &str) -> Result<Delivered, DeliverError> {
        let json = serde_json::to_vec(snapshot).map_err(|e| DeliverError::Setup(format!("snapshot: {e}")))?;
        let body = zstd::encode_all(json.as_slice(), ZSTD_LEVEL)
            .map_err(|e| DeliverError::Setup(format!("zstd: {e}")))?;
        tracing::debug!(
            id = %snapshot.id,
            json_bytes = json.len(),
            zstd_bytes = body.len(),
            "sending snapshot"
        );
        let mut auth = HeaderValue::from_str(&format!("Bearer {credential}")).map_err(|_| {
            DeliverError::Setup("the saved credential is not a valid header value: enroll again".into())
        })?;
        auth.set_sensitive(true);
        let url = format!("{}{SNAPSHOTS_PATH}", self.base);
        let request = self
            .client
            .post(&url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(CONTENT_ENCODING, HeaderValue::from_static("zstd"))
            .header(AUTHORIZATION, auth)
            .body(body);
        let (status, bytes) = self.exchange(&url, request).await?;
        if !status.is_success() {
            return Err(rejected(status, &bytes));
        }
        delivered(status, &bytes, snapshot.id)
    }

    async fn exchange(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), DeliverError> {
        let response = request.send().await.map_err(|e| self.transport_error(url, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(url, &e))?;
        tracing::debug!(%url, %status, bytes = bytes.len(), "collector answered");
        Ok((status, bytes.to_vec()))
    }

    fn transport_error(&self, url: &str, error: &reqwest::Error) -> DeliverError {
        if let Some(tls) = find_rustls_error(error) {
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
