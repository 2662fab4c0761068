//! `certificates` probe: validity, subject, issuer and fingerprint of the Linux VDA's TLS
//! certificates and of any certificate file or directory the config lists (`[certificates] paths`).
//!
//! The Linux VDA keeps the certificates `enable_vdassl.sh` installs for TLS-secured HDX sessions
//! under `/etc/xdl/.sslkeystore` (Citrix Linux VDA documentation, "Secure user sessions using
//! TLS"); its subdirectories are searched one level deep. In a directory, `*.pem`, `*.crt` and
//! `*.cer` files are read; files and directories whose names say "key" or "private" are never read,
//! so that a private key is neither parsed nor copied into a `capture`. A file the config names is
//! read whatever its name. PEM files may hold a chain: every certificate is reported, in order
//! (bounded). A file without PEM armour is tried as DER. No certificate file at any path: no data.
//!
//! Parsing is x509-parser's; the fingerprint is ring's SHA-256 over the DER. Days left and expiry
//! are measured from `ctx.now()`, so a tree's answer never ages.

use std::collections::BTreeSet;

use callhome_shared::{CertificateFileError, CertificateInfo, CertificatesSection};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

/// Where the Linux VDA keeps its TLS certificates (`enable_vdassl.sh`).
const VDA_KEYSTORE: &str = "/etc/xdl/.sslkeystore";
const MAX_FILES: usize = 64;
const MAX_CERTS_PER_FILE: usize = 16;
const MAX_CERTS: usize = 64;
const MAX_ERRORS: usize = 16;
const MAX_DNS_NAMES: usize = 8;
/// Extensions of certificate files in a directory.
const CERT_EXTENSIONS: &[&str] = &["pem", "crt", "cer"];

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let mut files = Files::default();
    let mut section = CertificatesSection::default();

    files.collect(ctx, VDA_KEYSTORE, false, &mut section);
    let configured: Vec<String> = ctx
        .config
        .certificate_paths()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for path in &configured {
        files.collect(ctx, path, true, &mut section);
    }
    if files.list.is_empty() && section.errors.is_empty() {
        return Ok(ProbeOutput::NoData);
    }
    section.truncated |= files.truncated;

    let now = ctx.now();
    for (path, explicit) in &files.list {
        let data = match ctx.read_head(path) {
            Ok(data) => data,
            Err(e) => {
                push_error(&mut section, path, format!("cannot read: {e}"));
                continue;
            }
        };
        let parsed = parse_certificates(&data.bytes);
        if let Some(message) = parsed.error {
            push_error(&mut section, path, message);
        } else if parsed.certs.is_empty() && *explicit {
            push_error(&mut section, path, "no certificate in this file".into());
        }
        section.truncated |= parsed.truncated;
        for (index, der) in parsed.certs.iter().enumerate() {
            if section.certificates.len() >= MAX_CERTS {
                section.truncated = true;
                break;
            }
            match describe(der, path, index, now) {
                Ok(info) => section.certificates.push(info),
                Err(message) => push_error(&mut section, path, message),
            }
        }
    }
    Ok(ProbeOutput::Section(Section::Certificates(section)))
}

/// The files to read, each with whether the config named it (rather than a directory holding it).
#[derive(Debug, Default)]
struct Files {
    list: Vec<(String, bool)>,
    seen: BTreeSet<String>,
    truncated: bool,
}

impl Files {
    fn push(&mut self, path: String, explicit: bool) {
        if self.seen.contains(&path) {
            return;
        }
        if self.list.len() >= MAX_FILES {
            self.truncated = true;
            return;
        }
        self.seen.insert(path.clone());
        self.list.push((path, explicit));
    }

    /// A file, or the certificate files of a directory and of its subdirectories (one level).
    fn collect(
        &mut self,
        ctx: &ProbeContext,
        path: &str,
        configured: bool,
        section: &mut CertificatesSection,
    ) {
        let meta = match ctx.source.metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                // The VDA keystore is absent wherever TLS was never enabled; a configured path
                // that is missing is worth saying.
                if configured {
                    push_error(section, path, format!("cannot read: {e}"));
                }
                return;
            }
        };
        if !meta.is_dir {
            self.push(path.to_string(), configured);
            return;
        }
        let mut subdirs = Vec::new();
        self.list_one(ctx, path, Some(&mut subdirs));
        for dir in &subdirs {
            self.list_one(ctx, dir, None);
        }
    }

    /// The certificate files of one directory; its subdirectories go to `subdirs` when given.
    fn list_one(&mut self, ctx: &ProbeContext, dir: &str, mut subdirs: Option<&mut Vec<String>>) {
        let Ok(entries) = ctx.source.list_dir(dir) else {
            return;
        };
        for entry in entries {
            let lower = entry.name.to_ascii_lowercase();
            if lower.contains("key") || lower.contains("private") || lower.starts_with('.') {
                continue;
            }
            let full = format!("{}/{}", dir.trim_end_matches('/'), entry.name);
            if entry.metadata.is_dir {
                if let Some(subdirs) = subdirs.as_deref_mut() {
                    subdirs.push(full);
                }
            } else if lower
                .rsplit_once('.')
                .is_some_and(|(_, ext)| CERT_EXTENSIONS.contains(&ext))
            {
                self.push(full, false);
            }
        }
    }
}

fn push_error(section: &mut CertificatesSection, path: &str, message: String) {
    if section.errors.len() < MAX_ERRORS {
        section.errors.push(CertificateFileError {
            path: path.to_string(),
            message,
        });
    } else {
        section.truncated = true;
    }
}

/// The DER certificates of a file.
#[derive(Debug, Default, PartialEq)]
struct Parsed {
    certs: Vec<Vec<u8>>,
    /// Why the file (or its rest) could not be read.
    error: Option<String>,
    truncated: bool,
}

/// PEM (every `CERTIFICATE` block, other blocks such as keys skipped) or, without PEM armour, one
/// DER certificate.
fn parse_certificates(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        if bytes.is_empty() {
            return parsed;
        }
        match X509Certificate::from_der(bytes) {
            Ok(_) => parsed.certs.push(bytes.to_vec()),
            Err(e) => parsed.error = Some(format!("neither PEM nor a DER certificate: {e}")),
        }
        return parsed;
    }
    for block in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        match block {
            Ok(pem)
                if matches!(
                    pem.label.as_str(),
                    "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE"
                ) =>
            {
                if parsed.certs.len() >= MAX_CERTS_PER_FILE {
                    parsed.truncated = true;
                    break;
                }
                parsed.certs.push(pem.contents);
            }
            Ok(_) => {}
            Err(e) => {
                parsed.error = Some(format!("bad PEM block: {e}"));
                break;
            }
        }
    }
    parsed
}

fn describe(der: &[u8], path: &str, index: usize, now: OffsetDateTime) -> Result<CertificateInfo, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("certificate {index}: not X.509: {e}"))?;
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name
                && dns_names.len() < MAX_DNS_NAMES
            {
                dns_names.push((*dns).to_string());
            }
        }
    }
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let fingerprint = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(CertificateInfo {
        path: path.to_string(),
        index: u32::try_from(index).unwrap_or(u32::MAX),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns_names,
        not_before,
        not_after,
        days_left: (not_after - now).whole_seconds().div_euclid(86_400),
        expired: not_after < now,
        not_yet_valid: not_before > now,
        is_ca,
        self_issued: cert.subject() == cert.issuer(),
        sha256_fingerprint: fingerprint,
    })
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(bytes: &[u8], _text: &str, now: OffsetDateTime) {
    let parsed = parse_certificates(bytes);
    for (index, der) in parsed.certs.iter().enumerate() {
        let _ = std::hint::black_box(describe(der, "fuzz.pem", index, now));
    }
    std::hint::black_box(&parsed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::probes::testing;

    fn fixture_file(tree: &str, path: &str) -> Vec<u8> {
        std::fs::read(testing::fixture(tree).join(path)).unwrap()
    }

    #[test]
    fn pem_chain_der_and_garbage() {
        let chain = fixture_file(
            "rpm-healthy",
            "etc/xdl/.sslkeystore/certs/vda-rh01.example.com.pem",
        );
        let parsed = parse_certificates(&chain);
        assert_eq!((parsed.certs.len(), parsed.error.as_deref()), (2, None));

        // DER: the first certificate of the chain, unarmoured.
        let der = parsed.certs[0].clone();
        let parsed_der = parse_certificates(&der);
        assert_eq!(parsed_der.certs, vec![der]);

        // Keys and other blocks are skipped, not errors; a broken block is.
        let key_only = b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(parse_certificates(key_only), Parsed::default());
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        let p = parse_certificates(broken);
        assert!(p.certs.is_empty() && p.error.is_some(), "{p:?}");
        let p = parse_certificates(b"just some text\n");
        assert!(p.certs.is_empty() && p.error.unwrap().contains("neither PEM nor"));
        assert_eq!(parse_certificates(b""), Parsed::default());
        // A CERTIFICATE block that is not X.509 is reported when described.
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(describe(b"\x30\x03\x02\x01\x00", "/x.pem", 0, now).is_err());
    }

    #[test]
    fn many_certificates_in_one_file_are_bounded() {
        let root = String::from_utf8(fixture_file(
            "rpm-healthy",
            "etc/xdl/.sslkeystore/cacerts/example-root-ca.pem",
        ))
        .unwrap();
        let bundle = root.repeat(MAX_CERTS_PER_FILE + 3);
        let p = parse_certificates(bundle.as_bytes());
        assert_eq!(p.certs.len(), MAX_CERTS_PER_FILE);
        assert!(p.truncated);
    }

    fn section_with(tree: &str, config: Config) -> CertificatesSection {
        let Section::Certificates(s) = testing::section(probe, &testing::context_with(tree, config)) else {
            panic!("not a certificates section")
        };
        s
    }

    #[test]
    fn rpm_healthy_vda_certificate_is_far_from_expiry() {
        let s = section_with("rpm-healthy", Config::default());
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert!(!s.truncated);
        let summary: Vec<(&str, u32, &str, i64, bool, bool)> = s
            .certificates
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.index,
                    c.subject.as_str(),
                    c.days_left,
                    c.is_ca,
                    c.self_issued,
                )
            })
            .collect();
        // The private/ stand-in was never read (it would not parse).
        assert_eq!(
            summary,
            [
                (
                    "/etc/xdl/.sslkeystore/cacerts/example-root-ca.pem",
                    0,
                    "CN=Example Root CA, O=Example Corp, C=US",
                    2598,
                    true,
                    true
                ),
                (
                    "/etc/xdl/.sslkeystore/certs/vda-rh01.example.com.pem",
                    0,
                    "CN=vda-rh01.example.com, O=Example Corp, C=US",
                    466,
                    false,
                    false
                ),
                (
                    "/etc/xdl/.sslkeystore/certs/vda-rh01.example.com.pem",
                    1,
                    "CN=Example Issuing CA 01, O=Example Corp, C=US",
                    1137,
                    true,
                    false
                ),
            ]
        );
        let leaf = &s.certificates[1];
        assert_eq!(leaf.issuer, "CN=Example Issuing CA 01, O=Example Corp, C=US");
        assert_eq!(leaf.dns_names, ["vda-rh01.example.com", "vda-rh01"]);
        assert_eq!(leaf.not_before.to_string(), "2026-03-01 0:00:00.0 +00:00:00");
        assert_eq!(leaf.not_after.to_string(), "2028-03-01 0:00:00.0 +00:00:00");
        assert!(!leaf.expired && !leaf.not_yet_valid);
        assert_eq!(
            leaf.sha256_fingerprint,
            "C2:20:E7:E9:77:EA:16:C2:4D:9B:75:BA:D9:24:9B:EB:1A:73:33:04:D8:76:82:93:AA:3F:8B:0E:20:78:F9:CB"
        );
    }

    #[test]
    fn cert_expiring_has_ten_days_left() {
        let s = section_with("cert-expiring", Config::default());
        let leaf = s
            .certificates
            .iter()
            .find(|c| c.subject.starts_with("CN=vda-rh01"))
            .unwrap();
        assert_eq!(leaf.days_left, 10);
        assert!(!leaf.expired);
        assert_eq!(leaf.not_after.to_string(), "2026-11-30 9:00:00.0 +00:00:00");
        assert_eq!(
            leaf.sha256_fingerprint,
            "D0:29:DD:CF:C5:60:D0:56:43:D0:E8:FC:D6:8C:82:8F:84:AF:58:56:C6:7F:76:30:DE:BA:1A:2E:12:6A:80:71"
        );
    }

    #[test]
    fn expiry_is_measured_from_the_hosts_now() {
        let chain = fixture_file(
            "cert-expiring",
            "etc/xdl/.sslkeystore/certs/vda-rh01.example.com.pem",
        );
        let der = &parse_certificates(&chain).certs[0];
        let later = time::macros::datetime!(2026-12-01 09:00 UTC);
        let info = describe(der, "/c.pem", 0, later).unwrap();
        assert_eq!((info.days_left, info.expired), (-1, true));
        let before = time::macros::datetime!(2025-11-01 00:00 UTC);
        assert!(describe(der, "/c.pem", 0, before).unwrap().not_yet_valid);
    }

    #[test]
    fn no_certificate_anywhere_is_no_data() {
        assert_eq!(probe(&testing::context("deb-healthy")), Ok(ProbeOutput::NoData));
    }

    #[test]
    fn configured_paths_are_read_and_missing_ones_reported() {
        // deb-healthy has no VDA keystore; the config points at a file and a directory elsewhere.
        let config = Config::from_toml(
            "[certificates]\npaths = [\"/etc/krb5.conf\", \"/run/systemd/resolve\", \"/etc/pki/missing.pem\"]\n",
        )
        .unwrap();
        let s = section_with("deb-healthy", config);
        assert!(s.certificates.is_empty());
        let errors: Vec<(&str, bool)> = s
            .errors
            .iter()
            .map(|e| {
                (
                    e.path.as_str(),
                    e.message.contains("neither PEM") || e.message.contains("cannot read"),
                )
            })
            .collect();
        // Missing paths are found first, while listing; resolv.conf in the directory is not a
        // certificate file name: not read.
        assert_eq!(errors, [("/etc/pki/missing.pem", true), ("/etc/krb5.conf", true)]);

        let config = Config::from_toml(
            "[certificates]\npaths = [\"/etc/xdl/.sslkeystore/cacerts/example-root-ca.pem\"]\n",
        )
        .unwrap();
        // Named by the config and found by the keystore walk: read once.
        let s = section_with("rpm-healthy", config);
        assert_eq!(s.certificates.len(), 3);
    }
}
