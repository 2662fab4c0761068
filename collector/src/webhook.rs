//! Priority Plus alerts: the sender that drains the webhook outbox.
//!
//! Ingest never calls out: it writes the event into the outbox in the snapshot's own transaction
//! (`store::risk`), and this task delivers it. Each attempt claims the event with a lease (another
//! replica skips it meanwhile), signs the body, and records the outcome: delivered on a 2xx, else
//! retried with exponential backoff and full jitter (capped at 10 minutes), and given up after
//! `webhook.max_age_secs` (logged at error level, visible in the outbox).
//!
//! Signature: `x-callhome-signature: sha256=HEX(HMAC-SHA256(secret, TIMESTAMP + "." + BODY))` with
//! `x-callhome-timestamp: TIMESTAMP` (Unix seconds), so that a receiver can refuse both forgeries
//! and replays of old deliveries (the scheme Stripe and Slack use).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::WebhookConfig;
use crate::store::Store;
use crate::store::risk::{Attempt, OutboxItem};

pub const SIGNATURE_HEADER: &str = "x-callhome-signature";
pub const TIMESTAMP_HEADER: &str = "x-callhome-timestamp";
pub const EVENT_HEADER: &str = "x-callhome-event";
pub const DELIVERY_HEADER: &str = "x-callhome-delivery";

const IDLE_POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF_SECS: u64 = 600;

/// Checks a webhook URL: https anywhere, http only to a loopback address (tests, a local relay).
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let host = parsed.host_str().unwrap_or("");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || bare.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
            if loopback {
                Ok(parsed)
            } else {
                Err("plain http is only allowed to a loopback address: use https".to_owned())
            }
        }
        other => Err(format!("unsupported scheme `{other}`: use https")),
    }
}

/// The signature of `body` sent at `timestamp` (Unix seconds).
pub fn sign(key: &ring::hmac::Key, timestamp: i64, body: &str) -> String {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body.as_bytes());
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

/// The sender, ready to run.
pub struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
    key: ring::hmac::Key,
    timeout: Duration,
    max_age: time::Duration,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("url", &redacted(&self.url))
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// `None` when no webhook is configured.
    pub fn from_config(config: &WebhookConfig) -> anyhow::Result<Option<Sender>> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let url = check_url(url)
            .map_err(anyhow::Error::msg)
            .context("webhook.url")?;
        let secret_file = config
            .secret_file
            .as_deref()
            .context("webhook.url is set but webhook.secret_file is not")?;
        let secret = std::fs::read(secret_file)
            .with_context(|| format!("cannot read webhook.secret_file {}", secret_file.display()))?;
        let secret = secret.trim_ascii();
        if secret.len() < 16 {
            anyhow::bail!(
                "webhook.secret_file {} holds {} bytes: use at least 16 (e.g. `openssl rand -hex 32`)",
                secret_file.display(),
                secret.len()
            );
        }
        let timeout = Duration::from_secs(config.timeout_secs);
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(config.ca_file.as_deref())?)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("callhome-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the webhook HTTP client")?;
        Ok(Some(Sender {
            client,
            url,
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            timeout,
            max_age: time::Duration::seconds(i64::try_from(config.max_age_secs).unwrap_or(i64::MAX)),
        }))
    }

    /// Delivers due events until `stop` turns true.
    pub async fn run(self, store: Store, mut stop: watch::Receiver<bool>) {
        tracing::info!(url = %redacted(&self.url), "webhook alerts enabled");
        let lease =
            time::Duration::try_from(self.timeout + Duration::from_secs(5)).unwrap_or(time::Duration::MINUTE);
        while !*stop.borrow() {
            let now = OffsetDateTime::now_utc();
            let item = match store.claim_webhook(now, lease).await {
                Ok(item) => item,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox unavailable");
                    None
                }
            };
            let Some(item) = item else {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            let attempt = self.deliver(&item).await;
            match &attempt {
                Attempt::Delivered => {
                    tracing::info!(delivery = item.id, event = %item.event, "webhook delivered")
                }
                Attempt::Retry { error, next } => {
                    tracing::warn!(delivery = item.id, attempts = item.attempts + 1, %error, retry_at = %next, "webhook failed, will retry")
                }
                Attempt::GiveUp { error } => {
                    tracing::error!(delivery = item.id, attempts = item.attempts + 1, %error, "webhook given up: alert not delivered")
                }
            }
            if let Err(e) = store
                .record_webhook_attempt(item.id, attempt, OffsetDateTime::now_utc())
                .await
            {
                tracing::warn!(delivery = item.id, error = %e, "cannot record webhook attempt; it will be retried");
            }
        }
    }

    async fn deliver(&self, item: &OutboxItem) -> Attempt {
        let now = OffsetDateTime::now_utc();
        let timestamp = now.unix_timestamp();
        let result = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, &item.event)
            .header(DELIVERY_HEADER, item.id.to_string())
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, sign(&self.key, timestamp, &item.body))
            .body(item.body.clone())
            .send()
            .await;
        let error = match result {
            Ok(r) if r.status().is_success() => return Attempt::Delivered,
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => error_text(&e),
        };
        let created = OffsetDateTime::parse(&item.created_at, &time::format_description::well_known::Rfc3339)
            .unwrap_or(now);
        if now - created >= self.max_age {
            return Attempt::GiveUp { error };
        }
        Attempt::Retry {
            error,
            next: now + backoff(item.attempts),
        }
    }
}

/// Full jitter: a random delay up to 2^attempts seconds, capped.
fn backoff(attempts: i64) -> time::Duration {
    let cap = 1u64
        .checked_shl(u32::try_from(attempts.clamp(0, 20)).unwrap_or(20))
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS);
    let mut byte = [0u8; 8];
    let jitter = match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte) {
        Ok(()) => u64::from_le_bytes(byte) % (cap * 1000 + 1),
        Err(_) => cap * 500,
    };
    time::Duration::milliseconds(i64::try_from(jitter.max(200)).unwrap_or(1000))
}

fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The URL without its query, which may carry a receiver's token.
fn redacted(url: &reqwest::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

fn tls_config(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect())
                .with_context(|| format!("webhook.ca_file {}", path.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .with_context(|| format!("webhook.ca_file {}", path.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_unless_loopback() {
        assert!(check_url("https://alerts.example.com/x").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("http://[::1]:8080/x").is_ok());
        assert!(check_url("http://localhost/x").is_ok());
        assert!(
            check_url("http://alerts.example.com/x")
                .unwrap_err()
                .contains("loopback")
        );
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn signature_covers_timestamp_and_body() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"0123456789abcdef");
        let a = sign(&key, 1_700_000_000, "{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64, "{a}");
        assert_ne!(a, sign(&key, 1_700_000_001, "{}"));
        assert_ne!(a, sign(&key, 1_700_000_000, "{ }"));
        // Verifiable by a receiver that knows the key.
        let tag = hex::decode(&a[7..]).unwrap();
        ring::hmac::verify(&key, b"1700000000.{}", &tag).unwrap();
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempts in 0..30 {
            let d = backoff(attempts);
            assert!(d >= time::Duration::milliseconds(200));
            assert!(d <= time::Duration::seconds(MAX_BACKOFF_SECS as i64));
        }
    }
}
