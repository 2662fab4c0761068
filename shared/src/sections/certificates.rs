//! Section `certificates`: certificates at configured paths: subject, issuer, validity, fingerprint.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `certificates` probe: the Linux VDA's TLS certificates and any others the config names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CertificatesSection {
    /// Every certificate found, file by file; in a file, in order (a chain: leaf first, as written).
    pub certificates: Vec<CertificateInfo>,
    /// Files that could not be read or parsed, with the reason, at most 16.
    pub errors: Vec<CertificateFileError>,
    /// Whether the file or certificate bounds cut the list short.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// Host path of the file.
    pub path: String,
    /// Position in the file, from 0.
    pub index: u32,
    /// Subject distinguished name, RFC 4514 style (`CN=vda01.example.com, O=Example`).
    pub subject: String,
    pub issuer: String,
    /// DNS names of the subjectAltName extension, at most 8.
    pub dns_names: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Whole days from the host's "now" to `not_after`, rounded down; negative once expired.
    pub days_left: i64,
    /// `not_after` is in the past.
    pub expired: bool,
    /// `not_before` is in the future.
    pub not_yet_valid: bool,
    /// Whether the certificate is a CA (basicConstraints `cA`).
    pub is_ca: bool,
    /// Subject equals issuer.
    pub self_issued: bool,
    /// SHA-256 of the DER encoding, upper-case hex in colon-separated pairs (as
    /// `openssl x509 -fingerprint -sha256` prints it).
    pub sha256_fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CertificateFileError {
    pub path: String,
    pub message: String,
}
