//! Bodies of the agent-facing HTTP API under `/v1`. Both sides use these types, so a change here is a
//! protocol change.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::HostRole;

pub const ENROLL_PATH: &str = "/v1/enroll";
pub const SNAPSHOTS_PATH: &str = "/v1/snapshots";
/// `POST`: an enrolled agent trades a CSR for a new client certificate (mutual TLS renewal).
pub const CERTIFICATE_PATH: &str = "/v1/agents/certificate";

/// Prefix of enrollment tokens and agent credentials: makes a leaked secret recognisable to secret
/// scanners and tells the two apart at a glance.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "chet_";
pub const AGENT_CREDENTIAL_PREFIX: &str = "chac_";
/// Prefix of the API tokens TAMs and admins use in scripts (`Authorization: Bearer chtt_…`).
pub const TAM_TOKEN_PREFIX: &str = "chtt_";

/// `POST /v1/enroll`: trade an enrollment token for a credential bound to one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    pub host_id: Uuid,
    pub hostname: String,
    pub role: HostRole,
    pub agent_version: String,
}

/// The body of `POST /v1/enroll`: an [`EnrollRequest`]'s fields and, from an agent that keeps a
/// client certificate, `csr`: a PKCS#10 certificate signing request (PEM) for a key made on the host.
/// An agent without a CSR sends exactly an `EnrollRequest`. (Not `#[serde(flatten)]`: serde ignores
/// `deny_unknown_fields` through it.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    pub token: String,
    pub host_id: Uuid,
    pub hostname: String,
    pub role: HostRole,
    pub agent_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
}

impl EnrollBody {
    pub fn new(request: EnrollRequest, csr: Option<String>) -> EnrollBody {
        EnrollBody {
            token: request.token,
            host_id: request.host_id,
            hostname: request.hostname,
            role: request.role,
            agent_version: request.agent_version,
            csr,
        }
    }

    /// The enrollment request and the CSR, apart.
    pub fn split(self) -> (EnrollRequest, Option<String>) {
        let request = EnrollRequest {
            token: self.token,
            host_id: self.host_id,
            hostname: self.hostname,
            role: self.role,
            agent_version: self.agent_version,
        };
        (request, self.csr)
    }
}

/// Answer to a successful enrollment (201). The credential is shown once; the collector keeps only its
/// hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub credential: String,
    pub host_id: Uuid,
    pub org: String,
    pub environment: String,
    /// The client certificate signed for the enrollment's CSR; absent when none was sent (or from a
    /// collector that issues none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,
}

/// A client certificate the collector's agent CA signed: subject CN the host id, SAN URIs
/// `urn:callhome:host:<uuid>`, `urn:callhome:org:<org>` and `urn:callhome:env:<environment>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientCertificate {
    /// The certificate, PEM.
    pub certificate: String,
    /// The agent CA's certificate, PEM: what the collector verifies client certificates against.
    pub ca: String,
}

/// `POST /v1/agents/certificate`: a CSR (PEM) for a new key of the same host; the answer is a
/// [`ClientCertificate`] with the same binding as the credential's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    pub csr: String,
}

/// Answer to `POST /v1/snapshots`: 201 with `Stored` the first time, 200 with `Duplicate` for a replay
/// of a snapshot id already stored. Both mean "delete it from your spool".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotAccepted {
    pub id: Uuid,
    pub status: IngestStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    Stored,
    Duplicate,
}

/// Body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable, machine-readable reason, e.g. `malformed_json`, `unknown_credential`, `contract_lapsed`.
    pub error: String,
    /// For a person: what was wrong and, where it helps, what to do.
    pub message: String,
}

/// Request header with the agent's clock at the moment it sent (RFC 3339): the collector compares
/// it with its own clock to measure the host's clock skew, also for snapshots replayed from a spool.
pub const SENT_AT_HEADER: &str = "x-callhome-sent-at";

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> EnrollRequest {
        EnrollRequest {
            token: "chet_x".into(),
            host_id: Uuid::from_u128(7),
            hostname: "vda01".into(),
            role: HostRole::Vda,
            agent_version: "1.0.0".into(),
        }
    }

    /// Old agents send a bare `EnrollRequest`; new ones the same fields plus `csr`; anything else is
    /// still refused, as `EnrollRequest`'s `deny_unknown_fields` promises.
    #[test]
    fn enroll_body_is_an_enroll_request_with_an_optional_csr() {
        let old = serde_json::to_value(request()).unwrap();
        let body: EnrollBody = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(serde_json::to_value(&body).unwrap(), old);
        assert_eq!(body.split(), (request(), None));

        let mut new = old.clone();
        new["csr"] = "-----BEGIN CERTIFICATE REQUEST-----".into();
        let body: EnrollBody = serde_json::from_value(new.clone()).unwrap();
        assert_eq!(serde_json::to_value(&body).unwrap(), new);
        let csr = Some("-----BEGIN CERTIFICATE REQUEST-----".to_owned());
        assert_eq!(EnrollBody::new(request(), csr.clone()), body);
        assert_eq!(body.split(), (request(), csr));

        let mut unknown = old;
        unknown["extra"] = true.into();
        let err = serde_json::from_value::<EnrollBody>(unknown).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }
}
