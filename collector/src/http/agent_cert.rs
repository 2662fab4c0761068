//! Agents' client certificates (mutual TLS): the check the agent routes make, the certificate issued
//! at enrollment, and `POST /v1/agents/certificate`, the renewal.
//!
//! With `[tls] client_auth = "required"`, a request to an agent route other than enrollment needs
//! both its bearer credential and a client certificate bound to the credential's host, org and
//! environment: the certificate proves the key never left the host it was issued to, and the
//! credential, checked in the store on every request, is what revocation acts on. The refusals:
//! - no certificate: 401 `client_certificate_required`;
//! - expired (on a connection opened before it expired; the handshake refuses it after):
//!   401 `client_certificate_expired`;
//! - bound to another host, org or environment, or to none: 403 `client_certificate_mismatch`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use callhome_shared::api::{CertificateRequest, ClientCertificate};
use http::HeaderMap;
use time::OffsetDateTime;

use super::{AppError, AppState, snapshots};
use crate::agent_ca::{AgentCa, Binding, Csr, PeerCertificate};
use crate::config::{ClientAuth, TlsConfig};
use crate::ingest;
use crate::store::AgentIdentity;

/// The agent CA and the `[tls]` settings about client certificates, part of [`AppState`].
#[derive(Debug, Clone)]
pub struct AgentCertificates {
    /// `None`: no certificates are issued (in-process tests); `client_auth` is then `Off`.
    pub ca: Option<Arc<AgentCa>>,
    pub client_auth: ClientAuth,
    pub validity: time::Duration,
}

impl Default for AgentCertificates {
    fn default() -> Self {
        AgentCertificates {
            ca: None,
            client_auth: ClientAuth::Off,
            validity: TlsConfig::default().client_cert_validity(),
        }
    }
}

impl AppState {
    /// Issues client certificates from `ca`, and requires them when `tls.client_auth` says so.
    pub fn with_agent_ca(mut self, ca: Arc<AgentCa>, tls: &TlsConfig) -> AppState {
        self.agent_certs = AgentCertificates {
            ca: Some(ca),
            client_auth: tls.client_auth,
            validity: tls.client_cert_validity(),
        };
        self
    }
}

impl AgentCertificates {
    pub fn required(&self) -> bool {
        self.client_auth == ClientAuth::Required && self.ca.is_some()
    }

    /// `Ok` when mutual TLS is off, or the connection's certificate is valid at `now` and bound to
    /// `agent`'s host, org and environment.
    pub fn check(
        &self,
        peer: Option<&PeerCertificate>,
        agent: &AgentIdentity,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        if !self.required() {
            return Ok(());
        }
        let peer = peer.ok_or_else(|| {
            AppError::ClientCertificateRequired(
                "this collector requires a client certificate (mutual TLS) and the connection presented \
                 none: enroll the agent again to get one"
                    .to_owned(),
            )
        })?;
        if let Some(not_after) = peer.not_after
            && now > not_after
        {
            return Err(AppError::ClientCertificateExpired(format!(
                "the client certificate expired at {not_after}: enroll the agent again"
            )));
        }
        let bound = peer.binding.as_ref().map_err(|reason| {
            AppError::ClientCertificateMismatch(format!("the client certificate {reason}"))
        })?;
        let mismatch = |what: &str, cert: &dyn std::fmt::Display, credential: &dyn std::fmt::Display| {
            AppError::ClientCertificateMismatch(format!(
                "the client certificate is for {what} {cert} but the credential belongs to {what} {credential}"
            ))
        };
        if bound.host_id != agent.host_id {
            return Err(mismatch("host", &bound.host_id, &agent.host_id));
        }
        if bound.org != agent.org {
            return Err(mismatch("org", &bound.org, &agent.org));
        }
        if bound.environment != agent.environment {
            return Err(mismatch("environment", &bound.environment, &agent.environment));
        }
        Ok(())
    }

    /// Signs `csr` for `binding`; `None` when this collector issues no certificates.
    pub fn issue(
        &self,
        csr: &Csr,
        binding: &Binding,
        now: OffsetDateTime,
    ) -> Result<Option<ClientCertificate>, AppError> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let issued = ca
            .issue(csr, binding, self.validity, now)
            .map_err(|e| AppError::Internal(format!("cannot sign a client certificate: {e}")))?;
        tracing::info!(host_id = %binding.host_id, org = %binding.org, environment = %binding.environment,
            not_after = %issued.not_after, "client certificate issued");
        Ok(Some(ClientCertificate {
            certificate: issued.pem,
            ca: ca.cert_pem().to_owned(),
        }))
    }
}

/// The CSR of a request, checked (its signature verified) before anything is stored.
pub fn parse_csr(pem: &str) -> Result<Csr, AppError> {
    Csr::parse(pem).map_err(|e| AppError::InvalidRequest(e.to_string()))
}

pub fn binding_of(agent: &AgentIdentity) -> Binding {
    Binding {
        host_id: agent.host_id,
        org: agent.org.clone(),
        environment: agent.environment.clone(),
    }
}

/// `POST /v1/agents/certificate`: a new certificate, same binding, for a new key of an enrolled
/// agent (its bearer credential, and its current certificate when mutual TLS is required).
pub async fn renew(
    State(state): State<AppState>,
    peer: Option<Extension<Arc<PeerCertificate>>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<ClientCertificate>, AppError> {
    let agent = snapshots::authenticate(&state, &headers).await?;
    let now = OffsetDateTime::now_utc();
    state
        .agent_certs
        .check(peer.as_ref().map(|Extension(p)| p.as_ref()), &agent, now)?;
    if state.agent_certs.ca.is_none() {
        return Err(AppError::NotFound);
    }
    // Each renewal costs a signature: it shares the credential's budget with snapshot posts.
    if let Err(wait) = state
        .agent_limiter
        .check(&agent.host_id, std::time::Instant::now())
    {
        return Err(AppError::TooManyRequests {
            retry_after: super::ratelimit::retry_after_secs(wait),
        });
    }
    ingest::check_json_content_type(&headers)?;
    let bytes = ingest::read_limited(body, state.max_enroll_body_bytes()).await?;
    let request: CertificateRequest = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::MalformedJson(format!("invalid certificate request: {e}")))?;
    let csr = parse_csr(&request.csr)?;
    let issued = state.agent_certs.issue(&csr, &binding_of(&agent), now)?;
    issued
        .map(Json)
        .ok_or_else(|| AppError::Internal("agent CA vanished".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn agent() -> AgentIdentity {
        AgentIdentity {
            host_id: Uuid::from_u128(1),
            org: "ACME".to_owned(),
            env_id: 1,
            environment: "prod".to_owned(),
            tier: None,
        }
    }

    fn peer(host: u128, org: &str, env: &str, not_after: OffsetDateTime) -> PeerCertificate {
        PeerCertificate {
            binding: Ok(Binding {
                host_id: Uuid::from_u128(host),
                org: org.to_owned(),
                environment: env.to_owned(),
            }),
            not_after: Some(not_after),
        }
    }

    fn required() -> (AgentCertificates, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = AgentCa::load_or_create(dir.path()).unwrap();
        let certs = AgentCertificates {
            ca: Some(Arc::new(ca)),
            client_auth: ClientAuth::Required,
            validity: time::Duration::days(90),
        };
        (certs, dir)
    }

    #[test]
    fn each_refusal_names_its_reason() {
        let now = OffsetDateTime::now_utc();
        let later = now + time::Duration::days(1);
        let (certs, _dir) = required();
        let code = |r: Result<(), AppError>| r.map_err(|e| (e.status().as_u16(), e.code(), e.to_string()));

        assert_eq!(
            code(certs.check(Some(&peer(1, "ACME", "prod", later)), &agent(), now)),
            Ok(())
        );
        let (status, error, message) = code(certs.check(None, &agent(), now)).unwrap_err();
        assert_eq!((status, error), (401, "client_certificate_required"));
        assert!(message.contains("presented none"), "{message}");
        let (status, error, _) = code(certs.check(
            Some(&peer(1, "ACME", "prod", now - time::Duration::seconds(1))),
            &agent(),
            now,
        ))
        .unwrap_err();
        assert_eq!((status, error), (401, "client_certificate_expired"));
        for (cert, names) in [
            (
                peer(2, "ACME", "prod", later),
                "host 00000000-0000-0000-0000-000000000002",
            ),
            (peer(1, "OTHER", "prod", later), "org OTHER"),
            (peer(1, "ACME", "test", later), "environment test"),
        ] {
            let (status, error, message) = code(certs.check(Some(&cert), &agent(), now)).unwrap_err();
            assert_eq!((status, error), (403, "client_certificate_mismatch"));
            assert!(message.contains(&format!("is for {names} but")), "{message}");
        }
        let unbound = PeerCertificate {
            binding: Err("names no urn:callhome:host".to_owned()),
            not_after: Some(later),
        };
        let (status, _, message) = code(certs.check(Some(&unbound), &agent(), now)).unwrap_err();
        assert_eq!(status, 403);
        assert!(message.contains("names no urn:callhome:host"), "{message}");
    }

    #[test]
    fn nothing_is_checked_when_client_auth_is_off() {
        let (mut certs, _dir) = required();
        certs.client_auth = ClientAuth::Off;
        certs.check(None, &agent(), OffsetDateTime::now_utc()).unwrap();
        AgentCertificates::default()
            .check(None, &agent(), OffsetDateTime::now_utc())
            .unwrap();
    }
}
