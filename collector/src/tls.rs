//! The collector's TLS identity and rustls server configuration.
//!
//! With `[tls]` configured, the files given are loaded. Otherwise the collector makes a self-signed
//! certificate on its first start (`DATA_DIR/tls/cert.pem`, key `key.pem` mode 0600) and reuses it
//! afterwards. That certificate is an end entity (not a CA) with SANs for `localhost`, the loopback
//! addresses and the machine's hostname, so that an agent can pass `cert.pem` as its CA file: webpki
//! accepts a self-signed end-entity certificate as its own trust anchor.
//!
//! Agents may pin the collector's public key instead of (or besides) trusting a CA: the pin is the
//! SHA-256 of the certificate's SubjectPublicKeyInfo as `sha256//BASE64` (curl's `--pinnedpubkey`
//! form). The collector logs it at start beside the fingerprint, and `callhome-collector tls pin`
//! prints it alone. It survives a renewal that keeps the key; a new key needs the agents' pins updated
//! first (they accept a list, so the old and the new key can both be pinned during the change).
//!
//! Mutual TLS (`[tls] client_auth = "required"`): the handshake asks for a client certificate and
//! verifies one presented against the agent CA ([`crate::agent_ca`]); a client that presents none
//! still connects (enrollment and the browser console carry none), and the agent routes refuse its
//! requests. A certificate from another CA, or an expired one, fails the handshake.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::agent_ca::AgentCa;
use crate::config::TlsConfig;

/// Validity of a generated certificate.
const GENERATED_VALIDITY_DAYS: i64 = 730;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "{found} exists but {missing} does not: restore it, or delete both to generate a new certificate"
    )]
    HalfPair { found: PathBuf, missing: PathBuf },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(
        "no certificate in {dir} yet: start the collector once to generate it, or configure [tls] \
         cert_file and key_file"
    )]
    NotGenerated { dir: PathBuf },
    #[error(transparent)]
    AgentCa(#[from] crate::agent_ca::AgentCaError),
}

/// `callhome-collector tls ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TlsCommand {
    /// Print the public key pin of the certificate in use, alone on stdout.
    ///
    /// The pin (`sha256//BASE64`) is what an agent takes as `enroll --pin` or
    /// `collector.pin_sha256`. Reads the configured certificate, or the one generated in
    /// DATA_DIR/tls; makes none.
    Pin,
    /// Print where the agent CA's certificate is and its SHA-256 fingerprint.
    ///
    /// The agent CA signs the client certificates agents present when `[tls] client_auth =
    /// "required"`; `serve` makes it in DATA_DIR/agent-ca on its first start. Makes none.
    AgentCa,
}

/// Runs a `tls` subcommand.
pub fn command(cmd: &TlsCommand, config: &TlsConfig, data_dir: &Path) -> Result<(), TlsError> {
    match cmd {
        TlsCommand::Pin => {
            let identity = load_existing(config, data_dir)?;
            println!("{}", identity.public_key_pin()?);
            Ok(())
        }
        TlsCommand::AgentCa => {
            let ca = AgentCa::load(data_dir)?;
            let path = std::path::absolute(ca.cert_path()).unwrap_or_else(|_| ca.cert_path().to_owned());
            println!("{}", path.display());
            println!("SHA-256 fingerprint {}", ca.fingerprint());
            Ok(())
        }
    }
}

/// How the certificate in use came to be; logged at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertOrigin {
    Configured,
    Generated,
    Reused,
}

#[derive(Debug)]
pub struct TlsIdentity {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub origin: CertOrigin,
}

impl TlsIdentity {
    /// SHA-256 of the leaf certificate's DER, as colon-separated uppercase hex (the form browsers and
    /// `openssl x509 -fingerprint -sha256` show).
    pub fn fingerprint(&self) -> String {
        self.chain.first().map(|c| fingerprint(c)).unwrap_or_default()
    }

    /// The pin of the leaf certificate's public key, `sha256//BASE64`. Checked against the private
    /// key, so the pin printed is the key the server will prove it holds.
    pub fn public_key_pin(&self) -> Result<String, TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        let certified =
            rustls::sign::CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), &provider)?;
        // `from_der` lets a key whose public half is unknown pass; a pin needs it to match.
        certified.keys_match()?;
        let spki = certified
            .key
            .public_key()
            .ok_or(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown))?;
        Ok(public_key_pin(spki.as_ref()))
    }

    /// One line for the log: where the certificate is, how it came to be, and its fingerprint.
    pub fn describe(&self) -> String {
        let what = match self.origin {
            CertOrigin::Configured => "using configured TLS certificate",
            CertOrigin::Generated => "generated self-signed TLS certificate",
            CertOrigin::Reused => "reusing self-signed TLS certificate",
        };
        format!(
            "{what} {} (SHA-256 fingerprint {})",
            self.cert_path.display(),
            self.fingerprint()
        )
    }
}

/// `sha256//` and the base64 SHA-256 of a SubjectPublicKeyInfo (DER).
pub fn public_key_pin(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Where a generated certificate lives.
pub fn default_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// The configured certificate, or the data directory's self-signed one (made if absent). Logs the
/// public key pin agents may pin (the fingerprint is logged by the caller with [`TlsIdentity::describe`]).
pub fn load_or_generate(config: &TlsConfig, data_dir: &Path) -> Result<TlsIdentity, TlsError> {
    let identity = load_or_make(config, data_dir)?;
    match identity.public_key_pin() {
        Ok(pin) => tracing::info!(cert = %identity.cert_path.display(), "public key pin {pin}"),
        // The server config refuses the pair too, with the same reason.
        Err(error) => tracing::warn!(cert = %identity.cert_path.display(), %error, "no public key pin"),
    }
    Ok(identity)
}

fn load_or_make(config: &TlsConfig, data_dir: &Path) -> Result<TlsIdentity, TlsError> {
    if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
        return load(cert, key, CertOrigin::Configured);
    }
    let (cert, key) = default_paths(data_dir);
    match (cert.exists(), key.exists()) {
        (true, true) => {
            warn_if_key_readable_by_others(&key);
            load(&cert, &key, CertOrigin::Reused)
        }
        (false, false) => {
            generate(&cert, &key, &local_names())?;
            load(&cert, &key, CertOrigin::Generated)
        }
        (true, false) => Err(TlsError::HalfPair {
            found: cert,
            missing: key,
        }),
        (false, true) => Err(TlsError::HalfPair {
            found: key,
            missing: cert,
        }),
    }
}

/// The configured certificate, or the data directory's generated one; never makes one.
pub fn load_existing(config: &TlsConfig, data_dir: &Path) -> Result<TlsIdentity, TlsError> {
    if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
        return load(cert, key, CertOrigin::Configured);
    }
    let (cert, key) = default_paths(data_dir);
    match (cert.exists(), key.exists()) {
        (true, true) => load(&cert, &key, CertOrigin::Reused),
        (false, false) => Err(TlsError::NotGenerated {
            dir: cert.parent().unwrap_or(data_dir).to_owned(),
        }),
        (true, false) => Err(TlsError::HalfPair {
            found: cert,
            missing: key,
        }),
        (false, true) => Err(TlsError::HalfPair {
            found: key,
            missing: cert,
        }),
    }
}

fn load(cert_path: &Path, key_path: &Path, origin: CertOrigin) -> Result<TlsIdentity, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read {
            path: cert_path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Read {
        path: key_path.to_owned(),
        source,
    })?;
    Ok(TlsIdentity {
        cert_path: cert_path.to_owned(),
        key_path: key_path.to_owned(),
        chain,
        key,
        origin,
    })
}

/// DNS names and addresses the generated certificate covers.
fn local_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Some(host) = machine_hostname()
        && host != "localhost"
    {
        names.push(host);
    }
    names
}

/// The kernel's hostname (Linux), or `$HOSTNAME`; `None` when neither gives a usable DNS name.
fn machine_hostname() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let host = raw.trim().to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(host)
}

/// Makes a self-signed ECDSA P-256 end-entity certificate for `dns_names` plus the loopback
/// addresses, and writes the key (mode 0600) then the certificate.
pub fn generate(cert_path: &Path, key_path: &Path, dns_names: &[String]) -> Result<(), TlsError> {
    let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let cn = dns_names
        .get(1)
        .or(dns_names.first())
        .map(String::as_str)
        .unwrap_or("localhost");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("callhome-collector {cn}"));
    params.subject_alt_names = dns_names
        .iter()
        .map(|n| n.clone().try_into().map(SanType::DnsName))
        .collect::<Result<Vec<_>, _>>()?;
    params.subject_alt_names.extend([
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for agents whose clock is a little behind.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(GENERATED_VALIDITY_DAYS);
    let cert = params.self_signed(&key_pair)?;

    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    write_file(key_path, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// Writes through a temporary file and a rename, so a crash never leaves half a key behind.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    write_atomic(path, contents, mode).map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

/// `contents` to `path` with `mode`, through `PATH.tmp`, fsynced, then renamed: a reader (or a
/// restart after a crash) sees the old file or the new one, never half of it.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

fn warn_if_key_readable_by_others(key: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(key)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %key.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "TLS private key is readable by other users: chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = key;
}

/// rustls on ring, TLS 1.2 and 1.3 only, HTTP/1.1 by ALPN. With `client_ca`, client certificates
/// are asked for and verified against it, but not required (see the module note).
pub fn server_config(
    identity: &TlsIdentity,
    client_ca: Option<&AgentCa>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.cert_der().clone())?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| rustls::Error::General(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    // The server's order (ring's: AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305), not the client's:
    // every suite offered is AEAD with forward secrecy, but testssl.sh flags a server without an
    // order of its own (docs/tls.md).
    config.ignore_client_order = true;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn client_trusting(cert_pem: &Path) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// A rustls client that trusts only `cert.pem` completes a handshake for each of the names: the
    /// certificate is its own trust anchor and carries the SANs.
    #[tokio::test]
    async fn generated_cert_is_its_own_trust_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let identity = load_or_generate(&TlsConfig::default(), dir.path()).unwrap();
        assert_eq!(identity.origin, CertOrigin::Generated);
        let server = tokio_rustls::TlsAcceptor::from(server_config(&identity, None).unwrap());
        let connector = client_trusting(&identity.cert_path);
        for name in ["localhost", "127.0.0.1", "::1"] {
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let server = server.clone();
            let serve = tokio::spawn(async move {
                let mut tls = server.accept(server_io).await.unwrap();
                let mut buf = [0u8; 4];
                tls.read_exact(&mut buf).await.unwrap();
                tls.write_all(b"pong").await.unwrap();
                tls.shutdown().await.unwrap();
            });
            let server_name = ServerName::try_from(name.to_owned()).unwrap();
            let mut tls = connector.connect(server_name, client_io).await.unwrap();
            tls.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pong");
            assert_eq!(tls.get_ref().1.alpn_protocol(), None);
            serve.await.unwrap();
        }
        // A name the certificate does not cover is refused.
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server = server.clone();
        tokio::spawn(async move { server.accept(server_io).await });
        let wrong = ServerName::try_from("collector.example.com").unwrap();
        assert!(connector.connect(wrong, client_io).await.is_err());
    }

    #[test]
    fn second_start_reuses_the_certificate_and_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(&TlsConfig::default(), dir.path()).unwrap();
        let second = load_or_generate(&TlsConfig::default(), dir.path()).unwrap();
        assert_eq!(second.origin, CertOrigin::Reused);
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        assert!(second.describe().contains("reusing self-signed TLS certificate"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn public_key_pin_is_the_hash_of_the_certificates_key_and_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_existing(&TlsConfig::default(), dir.path()),
            Err(TlsError::NotGenerated { .. })
        ));
        let identity = load_or_generate(&TlsConfig::default(), dir.path()).unwrap();
        let pin = identity.public_key_pin().unwrap();
        // Computed independently: rcgen's encoding of the key file's public half.
        let key = KeyPair::from_pem(&std::fs::read_to_string(&identity.key_path).unwrap()).unwrap();
        let expected = public_key_pin(&rcgen::PublicKeyData::subject_public_key_info(&key));
        assert_eq!(pin, expected);
        assert!(pin.starts_with("sha256//") && pin.len() == 8 + 44, "{pin}");
        let again = load_existing(&TlsConfig::default(), dir.path()).unwrap();
        assert_eq!(again.public_key_pin().unwrap(), pin);
        // Known vector: SHA-256 of nothing.
        assert_eq!(
            public_key_pin(b""),
            "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    /// The server picks the suite in its own order: a client that lists ChaCha20 first still gets
    /// AES-256-GCM, on TLS 1.3 and on TLS 1.2.
    #[tokio::test]
    async fn the_server_orders_the_cipher_suites() {
        use rustls::crypto::ring::cipher_suite as cs;
        let dir = tempfile::tempdir().unwrap();
        let identity = load_or_generate(&TlsConfig::default(), dir.path()).unwrap();
        let server = tokio_rustls::TlsAcceptor::from(server_config(&identity, None).unwrap());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(identity.chain[0].clone()).unwrap();
        let cases = [
            (
                &rustls::version::TLS13,
                vec![cs::TLS13_CHACHA20_POLY1305_SHA256, cs::TLS13_AES_256_GCM_SHA384],
                cs::TLS13_AES_256_GCM_SHA384,
            ),
            (
                &rustls::version::TLS12,
                vec![
                    cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                    cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                ],
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ),
        ];
        for (version, client_order, expected) in cases {
            let provider = rustls::crypto::CryptoProvider {
                cipher_suites: client_order,
                ..rustls::crypto::ring::default_provider()
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let server = server.clone();
            let serve = tokio::spawn(async move {
                let tls = server.accept(server_io).await.unwrap();
                tls.get_ref().1.negotiated_cipher_suite().unwrap().suite()
            });
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tls = connector
                .connect(ServerName::try_from("localhost").unwrap(), client_io)
                .await
                .unwrap();
            let negotiated = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
            assert_eq!(negotiated, expected.suite(), "{version:?}");
            assert_eq!(serve.await.unwrap(), expected.suite());
        }
    }

    /// A client certificate signed by the agent CA for a CSR, as the agent gets one.
    fn client_identity(ca: &AgentCa) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::default().serialize_request(&key).unwrap();
        let csr = crate::agent_ca::Csr::parse(&csr.pem().unwrap()).unwrap();
        let binding = crate::agent_ca::Binding {
            host_id: uuid::Uuid::from_u128(9),
            org: "ACME".to_owned(),
            environment: "prod".to_owned(),
        };
        let issued = ca
            .issue(
                &csr,
                &binding,
                time::Duration::days(1),
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let cert = CertificateDer::from_pem_slice(issued.pem.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        (vec![cert], key)
    }

    /// Mutual TLS: a certificate from the agent CA is accepted and reaches the server; no certificate
    /// is accepted too (enrollment, the console); one from another CA fails the handshake.
    #[tokio::test]
    async fn client_certificates_are_verified_against_the_agent_ca_but_optional() {
        let dir = tempfile::tempdir().unwrap();
        let identity = load_or_generate(&TlsConfig::default(), dir.path()).unwrap();
        let (ca, _) = AgentCa::load_or_create(dir.path()).unwrap();
        let other = tempfile::tempdir().unwrap();
        let (other_ca, _) = AgentCa::load_or_create(other.path()).unwrap();
        let server = tokio_rustls::TlsAcceptor::from(server_config(&identity, Some(&ca)).unwrap());

        let mut roots = rustls::RootCertStore::empty();
        roots.add(identity.chain[0].clone()).unwrap();
        let builder = || {
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
        };
        let (chain, key) = client_identity(&ca);
        let ours = builder().with_client_auth_cert(chain.clone(), key).unwrap();
        let (other_chain, other_key) = client_identity(&other_ca);
        let theirs = builder().with_client_auth_cert(other_chain, other_key).unwrap();
        let none = builder().with_no_client_auth();

        for (config, expect_peer) in [(ours, Some(chain[0].clone())), (none, None)] {
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let server = server.clone();
            let serve = tokio::spawn(async move {
                let mut tls = server.accept(server_io).await.unwrap();
                let mut buf = [0u8; 4];
                tls.read_exact(&mut buf).await.unwrap();
                let peer = tls.get_ref().1.peer_certificates().map(|c| c[0].clone());
                tls.write_all(b"pong").await.unwrap();
                tls.shutdown().await.unwrap();
                peer
            });
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, client_io).await.unwrap();
            tls.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            assert_eq!(serve.await.unwrap(), expect_peer);
        }

        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let serve = tokio::spawn(async move { server.accept(server_io).await.map(|_| ()) });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(theirs));
        let name = ServerName::try_from("localhost").unwrap();
        // TLS 1.3: the client learns of the refusal on its first read.
        let client = async {
            let mut tls = connector.connect(name, client_io).await?;
            tls.write_all(b"ping").await?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map(|_| ())
        };
        assert!(client.await.is_err());
        let err = serve.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_gives_no_pin() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let other_key = dir.path().join("k2.pem");
        generate(&cert, &key, &["collector.example.com".to_owned()]).unwrap();
        generate(&dir.path().join("c2.pem"), &other_key, &["x".to_owned()]).unwrap();
        let config = TlsConfig {
            cert_file: Some(cert),
            key_file: Some(other_key),
            ..TlsConfig::default()
        };
        let identity = load_existing(&config, dir.path()).unwrap();
        assert!(identity.public_key_pin().is_err());
    }

    #[test]
    fn configured_files_are_loaded_and_half_pairs_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        generate(&cert, &key, &["collector.example.com".to_owned()]).unwrap();
        let config = TlsConfig {
            cert_file: Some(cert.clone()),
            key_file: Some(key.clone()),
            ..TlsConfig::default()
        };
        let identity = load_or_generate(&config, dir.path()).unwrap();
        assert_eq!(identity.origin, CertOrigin::Configured);
        server_config(&identity, None).unwrap();

        let data = tempfile::tempdir().unwrap();
        let (default_cert, _) = default_paths(data.path());
        std::fs::create_dir_all(default_cert.parent().unwrap()).unwrap();
        std::fs::copy(&cert, &default_cert).unwrap();
        let err = load_or_generate(&TlsConfig::default(), data.path()).unwrap_err();
        assert!(matches!(err, TlsError::HalfPair { .. }), "{err}");
    }
}
