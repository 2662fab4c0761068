//! The agent's client certificate (mutual TLS with a collector that requires it).
//!
//! The key pair is made here, on the host (ECDSA P-256), and never leaves it: the collector gets a
//! CSR, and signs a certificate bound to this host, its org and environment (at enrollment, then on
//! renewal). Key and certificate are kept together in one file of the state directory
//! (`client-identity.pem`, mode 0600, see `state`), so that a crash cannot leave a certificate
//! beside a key that is not its own.
//!
//! Renewal: when less than a third of the certificate's lifetime is left (30 days of 90), before a
//! delivery, with a new key. A failed renewal is logged and tried again later; delivery goes on with
//! the old certificate while it is valid. An expired certificate is not presented (the handshake
//! would fail): the collector then says that a certificate is required, and the agent must enroll
//! again.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum ClientCertError {
    #[error("cannot make a key pair or CSR: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A fresh key pair and its CSR; the key stays in memory until the certificate comes back.
#[derive(Debug)]
pub struct PendingKey {
    key: KeyPair,
    csr_pem: String,
}

impl PendingKey {
    /// A new ECDSA P-256 key and a CSR for it with `host_id` as CN (the collector writes the
    /// certificate's names itself; the CN only makes the CSR readable).
    pub fn generate(host_id: uuid::Uuid) -> Result<PendingKey, ClientCertError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, host_id.to_string());
        let csr_pem = params.serialize_request(&key)?.pem()?;
        Ok(PendingKey { key, csr_pem })
    }

    pub fn csr_pem(&self) -> &str {
        &self.csr_pem
    }

    /// The file to keep: `certificate_pem` (as the collector sent it) then the private key, after
    /// checking that the certificate is for this key.
    pub fn complete(&self, certificate_pem: &str) -> Result<(ClientIdentity, String), ClientCertError> {
        let file = format!("{}\n{}", certificate_pem.trim_end(), self.key.serialize_pem());
        let identity = ClientIdentity::from_pem(&file)?;
        let spki = rcgen::PublicKeyData::subject_public_key_info(&self.key);
        if identity.public_key != spki {
            return Err(ClientCertError::Invalid(
                "the collector's certificate is not for the key this agent sent".to_owned(),
            ));
        }
        Ok((identity, file))
    }
}

/// A client certificate and its key, as kept in the state directory.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    public_key: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            public_key: self.public_key.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }
}

impl ClientIdentity {
    /// Certificate(s), leaf first, and one private key, PEM.
    pub fn from_pem(pem: &str) -> Result<ClientIdentity, ClientCertError> {
        let invalid = |m: String| ClientCertError::Invalid(m);
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("certificate: {e}")))?;
        let leaf = chain
            .first()
            .ok_or_else(|| invalid("no certificate in it".to_owned()))?;
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| invalid(format!("private key: {e}")))?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(leaf).map_err(|e| invalid(format!("certificate: {e}")))?;
        let time = |t: &x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(t.timestamp())
                .map_err(|e| invalid(format!("certificate validity: {e}")))
        };
        let not_before = time(&cert.validity().not_before)?;
        let not_after = time(&cert.validity().not_after)?;
        let public_key = cert.public_key().raw.to_vec();
        Ok(ClientIdentity {
            chain,
            key,
            public_key,
            not_before,
            not_after,
        })
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.not_after
    }

    /// Less than a third of the lifetime left (or none).
    pub fn renewal_due(&self, now: OffsetDateTime) -> bool {
        let lifetime = self.not_after - self.not_before;
        self.not_after - now < lifetime / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for `pending`'s CSR from a throwaway CA, valid from `not_before` to `not_after`.
    fn signed(pending: &PendingKey, not_before: OffsetDateTime, not_after: OffsetDateTime) -> String {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(ca, &ca_key);
        let csr = rcgen::CertificateSigningRequestParams::from_pem(pending.csr_pem()).unwrap();
        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;
        params.signed_by(&csr.public_key, &issuer).unwrap().pem()
    }

    #[test]
    fn the_csr_is_for_a_key_made_here_and_the_certificate_must_match_it() {
        let host = uuid::Uuid::from_u128(5);
        let pending = PendingKey::generate(host).unwrap();
        assert!(
            pending
                .csr_pem()
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
        );
        let csr = rcgen::CertificateSigningRequestParams::from_pem(pending.csr_pem()).unwrap();
        assert_eq!(
            rcgen::PublicKeyData::der_bytes(&csr.public_key),
            rcgen::PublicKeyData::der_bytes(&pending.key)
        );
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let pem = signed(&pending, now, now + time::Duration::days(90));
        let (identity, file) = pending.complete(&pem).unwrap();
        assert_eq!(identity.not_after, now + time::Duration::days(90));
        assert!(file.contains("BEGIN CERTIFICATE") && file.contains("BEGIN PRIVATE KEY"));
        let again = ClientIdentity::from_pem(&file).unwrap();
        assert_eq!(again.chain, identity.chain);
        assert!(!format!("{again:?}").contains("PRIVATE"));

        let other = PendingKey::generate(host).unwrap();
        let err = other.complete(&pem).unwrap_err();
        assert!(err.to_string().contains("not for the key"), "{err}");
        assert!(ClientIdentity::from_pem("junk").is_err());
    }

    #[test]
    fn renewal_is_due_with_a_third_of_the_lifetime_left() {
        let pending = PendingKey::generate(uuid::Uuid::from_u128(5)).unwrap();
        let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let pem = signed(&pending, start, start + time::Duration::days(90));
        let (identity, _) = pending.complete(&pem).unwrap();
        assert!(!identity.renewal_due(start));
        assert!(!identity.renewal_due(start + time::Duration::days(59)));
        assert!(identity.renewal_due(start + time::Duration::days(61)));
        assert!(!identity.is_expired(start + time::Duration::days(89)));
        assert!(identity.is_expired(start + time::Duration::days(90)));
        assert!(identity.renewal_due(start + time::Duration::days(100)));
    }
}
