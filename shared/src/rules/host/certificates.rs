//! Area CERT: certificates the VDA uses (TLS for HDX, the VDA's SSL listener, trust anchors) that
//! expire soon or already did. Expiry is judged at the snapshot's `collected_at`.

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::sections::CertificateInfo;
use crate::snapshot::Snapshot;

/// CERT-EXP-001 fires when a certificate expires within this many days: enough for a change request
/// and a CA turnaround.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

const CERT_REFERENCE: &str = "https://docs.openssl.org/3.0/man1/openssl-x509/";

pub const EXPIRING: HostRule = HostRule {
    info: RuleInfo {
        id: "CERT-EXP-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::Medium,
        title: "Certificate {subject} in {path} expires in {days_left} days",
        rationale: "When a certificate expires, TLS connections that rely on it fail: HDX over TLS or DTLS \
            sessions cannot start, and a trust anchor that expires breaks every chain under it.",
        remediation: "Request or renew the certificate now, install it at the same path with its key \
            (for the VDA's TLS listener, `/opt/Citrix/VDA/sbin/enable_vdassl.sh`), and restart the \
            service that uses it.",
        reference: CERT_REFERENCE,
        evidence: &["path", "subject", "issuer", "not_after", "days_left"],
    },
    eval: expiring,
};

pub const EXPIRED: HostRule = HostRule {
    info: RuleInfo {
        id: "CERT-EXP-002",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "Certificate {subject} in {path} expired on {not_after}",
        rationale: "An expired certificate fails every TLS handshake that relies on it: users cannot \
            connect over TLS/DTLS, or a service refuses its peers.",
        remediation: "Install a renewed certificate at the same path with its key, restart the service \
            that uses it, and put its expiry in the renewal calendar.",
        reference: CERT_REFERENCE,
        evidence: &["path", "subject", "issuer", "not_after", "days_left"],
    },
    eval: expired,
};

/// Whole days from the snapshot to `not_after`, rounded down; negative once expired.
fn days_left(s: &Snapshot, c: &CertificateInfo) -> i64 {
    let left = c.not_after - s.collected_at;
    let days = left.whole_days();
    // Round toward minus infinity, so 6 hours past expiry is day -1, not day 0.
    if left.is_negative() && left != time::Duration::days(days) {
        days - 1
    } else {
        days
    }
}

fn hit(s: &Snapshot, c: &CertificateInfo) -> Hit {
    Hit::about(format!("{}: {}", c.path, c.subject))
        .with("path", c.path.clone())
        .with("subject", c.subject.clone())
        .with("issuer", c.issuer.clone())
        .with(
            "not_after",
            c.not_after
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
        )
        .with("days_left", days_left(s, c))
}

fn judge(s: &Snapshot, wanted: fn(&Snapshot, &CertificateInfo) -> bool) -> Outcome {
    let Some(certs) = &s.sections.certificates else {
        return Outcome::Skipped;
    };
    let mut found: Vec<&CertificateInfo> = certs.certificates.iter().filter(|c| wanted(s, c)).collect();
    // One finding per subject (invariant 2): a file may hold two certificates with the same DN (a
    // renewed CA beside the old one); the one expiring first speaks for them.
    found.sort_by(|a, b| (&a.path, &a.subject, a.not_after).cmp(&(&b.path, &b.subject, b.not_after)));
    found.dedup_by(|later, first| later.path == first.path && later.subject == first.subject);
    Outcome::Hits(found.into_iter().map(|c| hit(s, c)).collect())
}

fn is_expired(s: &Snapshot, c: &CertificateInfo) -> bool {
    c.not_after <= s.collected_at
}

fn expiring(s: &Snapshot) -> Outcome {
    // Expired ones belong to CERT-EXP-002 alone.
    judge(s, |s, c| {
        !is_expired(s, c) && c.not_after - s.collected_at <= time::Duration::days(EXPIRY_WARNING_DAYS)
    })
}

fn expired(s: &Snapshot) -> Outcome {
    judge(s, is_expired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{COLLECTED_AT, fires, passes, skipped, snapshot_with};
    use crate::sections::CertificatesSection;

    fn cert(path: &str, not_after: time::OffsetDateTime) -> CertificateInfo {
        CertificateInfo {
            path: path.to_owned(),
            index: 0,
            subject: "CN=vda01.example.com".to_owned(),
            issuer: "CN=Example CA".to_owned(),
            dns_names: vec!["vda01.example.com".to_owned()],
            not_before: COLLECTED_AT - time::Duration::days(365),
            not_after,
            days_left: 0,
            expired: false,
            not_yet_valid: false,
            is_ca: false,
            self_issued: false,
            sha256_fingerprint: "AA:BB".to_owned(),
        }
    }

    fn certs(list: Vec<CertificateInfo>) -> Snapshot {
        snapshot_with(|s| {
            s.certificates = Some(CertificatesSection {
                certificates: list,
                ..Default::default()
            })
        })
    }

    #[test]
    fn expiring_within_thirty_days_fires() {
        let s = certs(vec![
            cert(
                "/etc/xdl/.sslkeystore/certs/vda.pem",
                COLLECTED_AT + time::Duration::days(12),
            ),
            cert(
                "/etc/pki/tls/certs/other.pem",
                COLLECTED_AT + time::Duration::days(200),
            ),
        ]);
        let f = fires(&EXPIRING, &s);
        assert_eq!(
            f.title,
            "Certificate CN=vda01.example.com in /etc/xdl/.sslkeystore/certs/vda.pem expires in 12 days"
        );
        assert_eq!(
            f.subject,
            "/etc/xdl/.sslkeystore/certs/vda.pem: CN=vda01.example.com"
        );
        passes(&EXPIRED, &s);
    }

    #[test]
    fn expired_fires_critical_and_not_as_expiring() {
        let s = certs(vec![cert(
            "/etc/vda.pem",
            COLLECTED_AT - time::Duration::hours(6),
        )]);
        let f = fires(&EXPIRED, &s);
        assert_eq!(f.evidence["days_left"], -1);
        assert_eq!(
            f.title,
            "Certificate CN=vda01.example.com in /etc/vda.pem expired on 2026-11-20T03:00:00Z"
        );
        passes(&EXPIRING, &s);
    }

    #[test]
    fn same_subject_twice_in_a_file_is_one_finding_about_the_first_to_expire() {
        let s = certs(vec![
            cert("/etc/ca.pem", COLLECTED_AT + time::Duration::days(20)),
            cert("/etc/ca.pem", COLLECTED_AT + time::Duration::days(5)),
        ]);
        let f = fires(&EXPIRING, &s);
        assert_eq!(f.evidence["days_left"], 5);
    }

    #[test]
    fn long_lived_certificates_pass_and_absent_section_skips() {
        let s = certs(vec![cert(
            "/etc/vda.pem",
            COLLECTED_AT + time::Duration::days(31),
        )]);
        passes(&EXPIRING, &s);
        passes(&EXPIRED, &s);
        skipped(&EXPIRING, &snapshot_with(|_| {}));
        skipped(&EXPIRED, &snapshot_with(|_| {}));
    }
}
