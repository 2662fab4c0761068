//! The agent CA: it signs the client certificates agents present to a collector with
//! `[tls] client_auth = "required"` (mutual TLS).
//!
//! It lives in `DATA_DIR/agent-ca/` (`ca.key` mode 0600, `ca.pem`) and is made at the first `serve`.
//! An agent makes its key pair on its host and sends only a CSR (at enrollment, then to renew); the
//! collector takes nothing from the CSR but its public key (the signature proves the agent holds the
//! private half), and writes the binding itself, from the credential or enrollment token: subject CN
//! the host id, and the SAN URIs `urn:callhome:host:<uuid>`, `urn:callhome:org:<org>`,
//! `urn:callhome:env:<environment>`. The agent routes compare that binding with the bearer
//! credential's on every request ([`PeerCertificate`], `http::agent_cert`).
//!
//! Several replicas behind one name must share the CA (copy the directory), as they share the
//! database: a certificate signed by one is verified by all.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;
use uuid::Uuid;

/// The directory under the data directory.
pub const DIR: &str = "agent-ca";
const KEY_FILE: &str = "ca.key";
const CERT_FILE: &str = "ca.pem";
/// Validity of the CA itself; client certificates are short-lived and renewed.
const CA_VALIDITY_DAYS: i64 = 3650;
/// Backdating of issued certificates, for agents whose clock is a little behind.
pub const CLOCK_SLACK: time::Duration = time::Duration::hours(1);

const HOST_URN: &str = "urn:callhome:host:";
const ORG_URN: &str = "urn:callhome:org:";
const ENV_URN: &str = "urn:callhome:env:";

#[derive(Debug, thiserror::Error)]
pub enum AgentCaError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "{found} exists but {missing} does not: restore it, or delete both to make a new agent CA \
         (every agent must then enroll again)"
    )]
    HalfPair { found: PathBuf, missing: PathBuf },
    #[error("no agent CA in {dir} yet: it is made when `serve` starts")]
    NotCreated { dir: PathBuf },
    #[error("cannot make or use the agent CA: {0}")]
    Generate(#[from] rcgen::Error),
    /// The CSR cannot be parsed, or its signature does not verify.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
}

/// Who a client certificate speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub host_id: Uuid,
    pub org: String,
    pub environment: String,
}

impl Binding {
    fn uris(&self) -> [String; 3] {
        [
            format!("{HOST_URN}{}", self.host_id),
            format!("{ORG_URN}{}", percent_encode(&self.org)),
            format!("{ENV_URN}{}", percent_encode(&self.environment)),
        ]
    }

    /// The binding in a certificate's SAN URIs: each of the three exactly once.
    fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Result<Binding, String> {
        let (mut host, mut org, mut env) = (None, None, None);
        for uri in uris {
            let (slot, value) = if let Some(v) = uri.strip_prefix(HOST_URN) {
                (&mut host, v)
            } else if let Some(v) = uri.strip_prefix(ORG_URN) {
                (&mut org, v)
            } else if let Some(v) = uri.strip_prefix(ENV_URN) {
                (&mut env, v)
            } else {
                continue;
            };
            if slot.replace(value).is_some() {
                return Err(format!("names {} more than once", uri_kind(uri)));
            }
        }
        let missing = |what: &str| format!("names no {what} (a `{what}` SAN URI)");
        let host = host.ok_or_else(|| missing("urn:callhome:host"))?;
        let host_id = Uuid::parse_str(host).map_err(|e| format!("host `{host}` is not a UUID: {e}"))?;
        let org = percent_decode(org.ok_or_else(|| missing("urn:callhome:org"))?)?;
        let environment = percent_decode(env.ok_or_else(|| missing("urn:callhome:env"))?)?;
        Ok(Binding {
            host_id,
            org,
            environment,
        })
    }
}

fn uri_kind(uri: &str) -> &str {
    uri.rsplit_once(':').map_or(uri, |(kind, _)| kind)
}

/// Org and environment names are URI-safe today (letters, digits, `.`, `_`, `-`); anything else is
/// percent-encoded, so that a wider naming rule cannot break the URIs.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in `{s}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

/// The verified client certificate of a connection, as the agent routes need it. Set by the
/// connection service (`server.rs`) on every request of a connection whose client presented one
/// (rustls has verified it against the agent CA by then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// `Err` with the reason when the certificate carries no usable binding.
    pub binding: Result<Binding, String>,
    /// `None` when it cannot be read (the binding then says why).
    pub not_after: Option<OffsetDateTime>,
}

impl PeerCertificate {
    /// Reads the binding and the expiry of a DER certificate.
    pub fn parse(der: &[u8]) -> PeerCertificate {
        let cert = match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => cert,
            Err(e) => {
                return PeerCertificate {
                    binding: Err(format!("is not readable X.509 ({e})")),
                    not_after: None,
                };
            }
        };
        let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok();
        let binding = match cert.subject_alternative_name() {
            Ok(Some(san)) => Binding::from_uris(san.value.general_names.iter().filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })),
            Ok(None) => Err("has no subject alternative names".to_owned()),
            Err(e) => Err(format!("unreadable subject alternative names: {e}")),
        };
        PeerCertificate { binding, not_after }
    }
}

/// A certificate signing request whose signature verified (the sender holds the private key).
#[derive(Debug, Clone)]
pub struct Csr(CertificateSigningRequestParams);

impl Csr {
    pub fn parse(pem: &str) -> Result<Csr, AgentCaError> {
        CertificateSigningRequestParams::from_pem(pem)
            .map(Csr)
            .map_err(|e| AgentCaError::InvalidCsr(e.to_string()))
    }
}

/// A certificate just signed.
#[derive(Debug, Clone)]
pub struct Issued {
    pub pem: String,
    pub not_after: OffsetDateTime,
}

/// The CA's certificate and key.
#[derive(Debug)]
pub struct AgentCa {
    cert_path: PathBuf,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

impl AgentCa {
    fn paths(data_dir: &Path) -> (PathBuf, PathBuf) {
        let dir = data_dir.join(DIR);
        (dir.join(CERT_FILE), dir.join(KEY_FILE))
    }

    /// The data directory's agent CA; `created` is true when it was made now.
    pub fn load_or_create(data_dir: &Path) -> Result<(AgentCa, bool), AgentCaError> {
        let (cert, key) = AgentCa::paths(data_dir);
        match (cert.exists(), key.exists()) {
            (false, false) => {
                create(&cert, &key, OffsetDateTime::now_utc())?;
                Ok((AgentCa::load(data_dir)?, true))
            }
            _ => Ok((AgentCa::load(data_dir)?, false)),
        }
    }

    /// The data directory's agent CA; never makes one.
    pub fn load(data_dir: &Path) -> Result<AgentCa, AgentCaError> {
        let (cert_path, key_path) = AgentCa::paths(data_dir);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {}
            (false, false) => {
                return Err(AgentCaError::NotCreated {
                    dir: data_dir.join(DIR),
                });
            }
            (true, false) => {
                return Err(AgentCaError::HalfPair {
                    found: cert_path,
                    missing: key_path,
                });
            }
            (false, true) => {
                return Err(AgentCaError::HalfPair {
                    found: key_path,
                    missing: cert_path,
                });
            }
        }
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| AgentCaError::Read {
                path: path.to_owned(),
                message: e.to_string(),
            })
        };
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        warn_if_readable_by_others(&key_path);
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| AgentCaError::Read {
                path: cert_path.clone(),
                message: e.to_string(),
            })?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| AgentCaError::Read {
            path: key_path.clone(),
            message: e.to_string(),
        })?;
        // The pair must match, or every certificate issued would fail verification.
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der).map_err(|e| AgentCaError::Read {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
        if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err(AgentCaError::Read {
                path: key_path,
                message: format!("not the key of {}", cert_path.display()),
            });
        }
        Ok(AgentCa {
            cert_path,
            cert_pem,
            cert_der,
            key,
        })
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// SHA-256 of the CA certificate, colon-separated hex.
    pub fn fingerprint(&self) -> String {
        crate::tls::fingerprint(&self.cert_der)
    }

    /// Signs a client certificate for the CSR's public key with `binding`, valid from
    /// [`CLOCK_SLACK`] before `now` to `validity` after it. Nothing but the key is taken from the CSR.
    pub fn issue(
        &self,
        csr: &Csr,
        binding: &Binding,
        validity: time::Duration,
        now: OffsetDateTime,
    ) -> Result<Issued, AgentCaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, binding.host_id.to_string());
        params.subject_alt_names = binding
            .uris()
            .into_iter()
            .map(|uri| uri.try_into().map(SanType::URI))
            .collect::<Result<Vec<_>, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(random_serial()?);
        params.not_before = now - CLOCK_SLACK;
        let not_after = now + validity;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key)?;
        let cert = params.signed_by(&csr.0.public_key, &issuer)?;
        Ok(Issued {
            pem: cert.pem(),
            // What the certificate says: whole seconds.
            not_after: not_after.replace_nanosecond(0).unwrap_or(not_after),
        })
    }
}

/// 16 random bytes, positive (RFC 5280 §4.1.2.2: at most 20 octets, non-negative).
fn random_serial() -> Result<SerialNumber, AgentCaError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AgentCaError::Generate(rcgen::Error::RingUnspecified))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Makes the CA: ECDSA P-256, may sign end-entity certificates only (path length 0). The key is
/// written first, mode 0600.
fn create(cert_path: &Path, key_path: &Path, now: OffsetDateTime) -> Result<(), AgentCaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    // A name of its own (the serial's first bytes): certificates of another collector's CA are then
    // "unknown issuer", not a confusing bad signature.
    let serial = random_serial()?;
    let tag = hex::encode(serial.as_ref().get(..4).unwrap_or_default());
    params
        .distinguished_name
        .push(DnType::CommonName, format!("callhome agent CA {tag}"));
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, format!("made {}", now.date()));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(serial);
    params.not_before = now - CLOCK_SLACK;
    params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
    let cert = params.self_signed(&key)?;
    if let Some(dir) = cert_path.parent() {
        create_private_dir(dir)?;
    }
    write_file(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), AgentCaError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| AgentCaError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Through a temporary file and a rename: a crash never leaves half a key.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), AgentCaError> {
    crate::tls::write_atomic(path, contents, mode).map_err(|source| AgentCaError::Write {
        path: path.to_owned(),
        source,
    })
}

fn warn_if_readable_by_others(key: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(key)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %key.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "agent CA private key is readable by other users: chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = key;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding {
        Binding {
            host_id: Uuid::from_u128(0x1234),
            org: "ACME".to_owned(),
            environment: "prod-eu.1".to_owned(),
        }
    }

    fn csr() -> (KeyPair, String) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::default().serialize_request(&key).unwrap();
        (key, csr.pem().unwrap())
    }

    #[test]
    fn made_once_with_a_private_key_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let err = AgentCa::load(dir.path()).unwrap_err();
        assert!(matches!(err, AgentCaError::NotCreated { .. }), "{err}");
        let (first, created) = AgentCa::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (second, created) = AgentCa::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(first.cert_der(), second.cert_der());
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("agent-ca/ca.key")), 0o600);
            assert_eq!(mode(&dir.path().join("agent-ca")), 0o700);
        }
        std::fs::remove_file(dir.path().join("agent-ca/ca.key")).unwrap();
        let err = AgentCa::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, AgentCaError::HalfPair { .. }), "{err}");
    }

    #[test]
    fn a_key_that_is_not_the_cas_is_refused() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        AgentCa::load_or_create(a.path()).unwrap();
        AgentCa::load_or_create(b.path()).unwrap();
        std::fs::copy(b.path().join("agent-ca/ca.key"), a.path().join("agent-ca/ca.key")).unwrap();
        let err = AgentCa::load(a.path()).unwrap_err();
        assert!(err.to_string().contains("not the key of"), "{err}");
    }

    /// The issued certificate carries the binding, the CSR's key, the validity asked for, and
    /// chains to the CA as rustls's client verifier checks it.
    #[test]
    fn issued_certificates_bind_host_org_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = AgentCa::load_or_create(dir.path()).unwrap();
        let (key, csr) = csr();
        let now = OffsetDateTime::now_utc();
        let csr = Csr::parse(&csr).unwrap();
        let issued = ca.issue(&csr, &binding(), time::Duration::days(90), now).unwrap();
        let der = CertificateDer::from_pem_slice(issued.pem.as_bytes()).unwrap();

        let peer = PeerCertificate::parse(&der);
        assert_eq!(peer.binding, Ok(binding()));
        assert_eq!(peer.not_after, Some(issued.not_after));
        assert!((issued.not_after - (now + time::Duration::days(90))).abs() < time::Duration::seconds(1));

        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(
            cert.public_key().raw,
            rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        );
        assert_eq!(
            cert.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            binding().host_id.to_string()
        );
        let not_before = OffsetDateTime::from_unix_timestamp(cert.validity().not_before.timestamp()).unwrap();
        assert!(not_before <= now - CLOCK_SLACK + time::Duration::seconds(1));

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let now_pki = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            now.unix_timestamp().try_into().unwrap(),
        ));
        verifier.verify_client_cert(&der, &[], now_pki).unwrap();
        // Past its expiry, the same certificate is refused.
        let later = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            (now + time::Duration::days(91))
                .unix_timestamp()
                .try_into()
                .unwrap(),
        ));
        let err = verifier.verify_client_cert(&der, &[], later).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn a_csr_whose_signature_does_not_verify_is_refused() {
        let (_, csr) = csr();
        let der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).unwrap();
        let mut bytes = der.as_ref().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let tampered = pem_of("CERTIFICATE REQUEST", &bytes);
        Csr::parse(&csr).unwrap();
        for bad in [tampered.as_str(), "not a CSR", ""] {
            let err = Csr::parse(bad).unwrap_err();
            assert!(matches!(err, AgentCaError::InvalidCsr(_)), "{bad}: {err}");
        }
    }

    fn pem_of(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn bindings_are_read_back_exactly_or_refused_with_the_reason() {
        let b = binding();
        let uris = b.uris();
        assert_eq!(uris[0], "urn:callhome:host:00000000-0000-0000-0000-000000001234");
        assert_eq!(Binding::from_uris(uris.iter().map(String::as_str)), Ok(b.clone()));

        let odd = Binding {
            org: "A C/M%é".to_owned(),
            ..b.clone()
        };
        let odd_uris = odd.uris();
        assert_eq!(odd_uris[1], "urn:callhome:org:A%20C%2FM%25%C3%A9");
        assert_eq!(Binding::from_uris(odd_uris.iter().map(String::as_str)), Ok(odd));

        let err = Binding::from_uris([uris[0].as_str(), uris[1].as_str()]).unwrap_err();
        assert!(err.contains("urn:callhome:env"), "{err}");
        let err =
            Binding::from_uris([&uris[0], &uris[0], &uris[1], &uris[2]].map(String::as_str)).unwrap_err();
        assert!(err.contains("more than once"), "{err}");
        let err = Binding::from_uris(["urn:callhome:host:nope", &uris[1], &uris[2]]).unwrap_err();
        assert!(err.contains("not a UUID"), "{err}");
        let err = Binding::from_uris([&uris[0], "urn:callhome:org:%G1", &uris[2]]).unwrap_err();
        assert!(err.contains("percent"), "{err}");
        // Unrelated URIs are ignored.
        let mut with_extra = vec!["https://example.com/"];
        with_extra.extend(uris.iter().map(String::as_str));
        assert_eq!(Binding::from_uris(with_extra), Ok(b));
    }

    #[test]
    fn a_certificate_without_the_binding_parses_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        crate::tls::generate(&cert, &key, &["localhost".to_owned()]).unwrap();
        let der = CertificateDer::from_pem_file(&cert).unwrap();
        let peer = PeerCertificate::parse(&der);
        assert!(peer.binding.unwrap_err().contains("urn:callhome:host"));
        assert!(peer.not_after.is_some());
        let junk = PeerCertificate::parse(b"junk");
        assert!(junk.binding.unwrap_err().contains("X.509"));
    }
}
