//! Public-key pinning of the collector (SPEC §6, issue 7 item 2).
//!
//! A pin is the SHA-256 of the collector certificate's SubjectPublicKeyInfo (DER), written as curl's
//! `--pinnedpubkey` and HPKP write it: `sha256//` and the standard base64 of the 32 bytes. 64 hex
//! digits (colons allowed) are accepted too and normalised to that form. Pinning the key rather than
//! the certificate lets the collector renew its certificate with the same key without touching the
//! agents; a list of pins lets a key rotation list the old key and the new one.
//!
//! Two modes, decided by whether a CA is in use:
//! - **pins alone**: the pinned key is the trust anchor, as an SSH host key is. The certificate's
//!   chain, name and dates are not checked: a collector with a self-signed certificate needs nothing
//!   else on the agent.
//! - **pins and a CA file**: the usual WebPKI verification (chain to the CA, name, dates) must pass,
//!   and then the key must be one of the pins.
//!
//! Pins apply to the collector's host only: any other server the same TLS config meets (an `https://`
//! proxy) is verified against the CA file or the system roots, as without pins.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

/// The prefix of the canonical form.
pub const PREFIX: &str = "sha256//";

/// The config key pins come from, named in messages.
pub const CONFIG_KEY: &str = "collector.pin_sha256";

/// SHA-256 of a SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error(
        "`{0}` is not a public key pin: expected `sha256//` and 44 base64 characters (as \
         `callhome-collector tls pin` prints it) or 64 hex digits"
    )]
    Syntax(String),
    #[error("cannot read the certificate's public key: {0}")]
    Certificate(String),
}

impl Pin {
    /// The pin of a SubjectPublicKeyInfo in DER.
    pub fn of_spki(spki_der: &[u8]) -> Pin {
        let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Pin(bytes)
    }

    /// The pin of a certificate's (DER) public key.
    pub fn of_certificate(cert_der: &[u8]) -> Result<Pin, PinError> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| PinError::Certificate(e.to_string()))?;
        Ok(Pin::of_spki(cert.tbs_certificate.subject_pki.raw))
    }

    /// Reads `sha256//BASE64` or 64 hex digits (optionally colon-separated).
    pub fn parse(text: &str) -> Result<Pin, PinError> {
        let text = text.trim();
        let syntax = || PinError::Syntax(text.chars().take(100).collect());
        if let Some(b64) = text.strip_prefix(PREFIX) {
            let bytes = STANDARD.decode(b64).map_err(|_| syntax())?;
            return <[u8; 32]>::try_from(bytes.as_slice())
                .map(Pin)
                .map_err(|_| syntax());
        }
        let hex: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
        if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(syntax());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| syntax())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| syntax())?;
        }
        Ok(Pin(bytes))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", STANDARD.encode(self.0))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Pin {
    type Err = PinError;

    fn from_str(s: &str) -> Result<Pin, PinError> {
        Pin::parse(s)
    }
}

/// The collector presented a key that no pin names. Travels inside rustls's error
/// (`CertificateError::Other`) so that the delivery code can tell it from other certificate errors.
#[derive(Debug, Clone, thiserror::Error)]
#[error("collector public key {presented} is not one of the pinned keys ({CONFIG_KEY})")]
pub struct PinMismatch {
    pub presented: Pin,
}

/// A rustls verifier that checks the collector's key against the pins, after the WebPKI checks when a
/// CA is in use.
#[derive(Debug)]
pub struct PinnedVerifier {
    /// The collector's host as the TLS layer names it: only it is pinned.
    collector: ServerName<'static>,
    pins: Vec<Pin>,
    /// The WebPKI verifier over the CA file, or over the system roots in pins-alone mode (for an
    /// `https://` proxy only); `None` when there are no roots at all.
    roots: Option<Arc<WebPkiServerVerifier>>,
    /// Whether the collector's chain must also pass `roots` (a CA file is in use).
    collector_needs_chain: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    /// `pins` must not be empty (the caller uses the plain WebPKI verifier without pins).
    pub fn new(
        collector: ServerName<'static>,
        pins: Vec<Pin>,
        roots: Option<Arc<WebPkiServerVerifier>>,
        collector_needs_chain: bool,
        provider: &rustls::crypto::CryptoProvider,
    ) -> PinnedVerifier {
        PinnedVerifier {
            collector,
            pins,
            roots,
            collector_needs_chain,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let is_collector = *server_name == self.collector;
        if !is_collector || self.collector_needs_chain {
            match &self.roots {
                Some(roots) => {
                    roots.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
                }
                None => return Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            }
        }
        if !is_collector {
            return Ok(ServerCertVerified::assertion());
        }
        let presented = Pin::of_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        // Fixed-size arrays compared whole; the pins are public values, so timing reveals nothing.
        if self.pins.contains(&presented) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch { presented })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.roots.as_ref().and_then(|r| r.root_hint_subjects())
    }
}

/// The pin mismatch behind a rustls error, if that is what it is.
pub fn mismatch_in(error: &rustls::Error) -> Option<&PinMismatch> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<PinMismatch>()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, PublicKeyData};

    struct Leaf {
        der: CertificateDer<'static>,
        pin: Pin,
    }

    fn self_signed(name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Leaf {
            der: cert.der().clone(),
            pin: Pin::of_spki(&key.subject_public_key_info()),
        }
    }

    fn ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    fn signed_by(ca: &CertifiedIssuer<'static, KeyPair>, name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, ca)
            .unwrap();
        Leaf {
            der: cert.der().clone(),
            pin: Pin::of_spki(&key.subject_public_key_info()),
        }
    }

    fn roots_of(ca: &CertifiedIssuer<'static, KeyPair>) -> Arc<WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn verifier(collector: &str, pins: &[Pin], roots: Option<Arc<WebPkiServerVerifier>>) -> PinnedVerifier {
        let needs_chain = roots.is_some();
        PinnedVerifier::new(
            ServerName::try_from(collector.to_string()).unwrap(),
            pins.to_vec(),
            roots,
            needs_chain,
            &rustls::crypto::ring::default_provider(),
        )
    }

    fn verify(v: &PinnedVerifier, leaf: &Leaf, name: &str) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(name.to_string()).unwrap();
        v.verify_server_cert(&leaf.der, &[], &name, &[], UnixTime::now())
    }

    #[test]
    fn pins_parse_in_both_forms_and_print_in_curls() {
        let pin = Pin::of_spki(b"some key");
        let text = pin.to_string();
        assert!(text.starts_with("sha256//") && text.len() == 8 + 44, "{text}");
        assert_eq!(Pin::parse(&text).unwrap(), pin);
        assert_eq!(Pin::parse(&format!("  {text}\n")).unwrap(), pin);
        let hex: String = pin.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Pin::parse(&hex).unwrap(), pin);
        assert_eq!(Pin::parse(&hex.to_uppercase()).unwrap(), pin);
        let colons: Vec<String> = pin.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(Pin::parse(&colons.join(":")).unwrap(), pin);
        // A known value: SHA-256 of the empty string.
        assert_eq!(
            Pin::of_spki(b"").to_string(),
            "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn malformed_pins_are_refused() {
        let good = Pin::of_spki(b"k").to_string();
        let b64 = good.strip_prefix(PREFIX).unwrap();
        for bad in [
            "",
            b64,                                // no prefix
            &format!("sha256/{b64}"),           // one slash
            &format!("sha1//{b64}"),            // another hash
            "sha256//AAAA",                     // too short
            &format!("sha256//{b64}AAAA"),      // too long
            &format!("sha256//{}", &b64[..43]), // padding missing
            &"ab".repeat(31),                   // 62 hex digits
            &"zz".repeat(32),                   // not hex
        ] {
            let err = Pin::parse(bad).unwrap_err();
            assert!(matches!(err, PinError::Syntax(_)), "{bad:?}");
            assert!(err.to_string().contains("sha256//"), "{err}");
        }
    }

    #[test]
    fn certificate_pin_is_the_hash_of_its_spki() {
        let leaf = self_signed("localhost");
        assert_eq!(Pin::of_certificate(&leaf.der).unwrap(), leaf.pin);
        assert!(matches!(
            Pin::of_certificate(b"not a certificate"),
            Err(PinError::Certificate(_))
        ));
    }

    #[test]
    fn pins_alone_trust_the_key_and_ignore_chain_and_name() {
        let leaf = self_signed("localhost");
        let other = Pin::of_spki(b"rotated key");
        // The certificate names neither host: with pins alone, only the key counts.
        for host in ["collector.example.com", "10.1.2.3"] {
            let v = verifier(host, &[other, leaf.pin], None);
            verify(&v, &leaf, host).unwrap();
        }
    }

    #[test]
    fn a_key_no_pin_names_is_refused_with_the_pin_it_presented() {
        let leaf = self_signed("localhost");
        let v = verifier("localhost", &[Pin::of_spki(b"another key")], None);
        let err = verify(&v, &leaf, "localhost").unwrap_err();
        let mismatch = mismatch_in(&err).expect("a pin mismatch");
        assert_eq!(mismatch.presented, leaf.pin);
        assert_eq!(
            mismatch.to_string(),
            format!(
                "collector public key {} is not one of the pinned keys (collector.pin_sha256)",
                leaf.pin
            )
        );
        // Other certificate errors are not taken for a mismatch.
        assert!(
            mismatch_in(&rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
            .is_none()
        );
    }

    #[test]
    fn pins_and_a_ca_must_both_pass() {
        let ca = ca("Test CA");
        let leaf = signed_by(&ca, "localhost");
        let v = verifier("localhost", &[leaf.pin], Some(roots_of(&ca)));
        verify(&v, &leaf, "localhost").unwrap();

        // Right CA, wrong pin: refused for the pin.
        let v = verifier("localhost", &[Pin::of_spki(b"x")], Some(roots_of(&ca)));
        assert!(mismatch_in(&verify(&v, &leaf, "localhost").unwrap_err()).is_some());

        // Right pin, another CA: refused for the chain, not the pin.
        let v = verifier("localhost", &[leaf.pin], Some(roots_of(&self::ca("Other CA"))));
        let err = verify(&v, &leaf, "localhost").unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            ),
            "{err:?}"
        );

        // Right pin and CA, but the certificate is not for this name: the CA's checks still apply.
        let v = verifier("collector.example.com", &[leaf.pin], Some(roots_of(&ca)));
        let err = verify(&v, &leaf, "collector.example.com").unwrap_err();
        assert!(mismatch_in(&err).is_none(), "{err:?}");
    }

    #[test]
    fn other_hosts_such_as_an_https_proxy_are_checked_by_the_roots_not_the_pins() {
        let ca = ca("Test CA");
        let proxy = signed_by(&ca, "proxy.example.com");
        let v = PinnedVerifier::new(
            ServerName::try_from("collector.example.com").unwrap(),
            vec![Pin::of_spki(b"collector key")],
            Some(roots_of(&ca)),
            false,
            &rustls::crypto::ring::default_provider(),
        );
        verify(&v, &proxy, "proxy.example.com").unwrap();
        let stranger = self_signed("proxy.example.com");
        assert!(verify(&v, &stranger, "proxy.example.com").is_err());
        // With no roots at all, another host cannot be trusted.
        let v = verifier("collector.example.com", &[stranger.pin], None);
        assert!(verify(&v, &stranger, "proxy.example.com").is_err());
    }
}
