//! Area ID: what the host needs right to join and stay in an Active Directory domain: its name, its
//! keytab, its membership.

use serde_json::Value;

use super::vda::vda_installed;
use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::snapshot::Snapshot;

/// The NetBIOS computer-name limit (a longer name is cut for the AD computer account).
const NETBIOS_MAX: usize = 15;

pub const KEYTAB_WITHOUT_HOST_PRINCIPAL: HostRule = HostRule {
    info: RuleInfo {
        id: "ID-KEYTAB-001",
        scope: Scope::Host,
        // High, not critical: the probe compares with `host/FQDN@REALM` as this host names itself, so
        // a naming mismatch can look like a missing key, and when the key truly is missing the
        // registration failure it causes is VDA-REG-001's critical finding.
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "The system keytab has no host principal for {expected}",
        rationale: "The Linux VDA authenticates to its Delivery Controllers with the machine's Kerberos \
            keys in `/etc/krb5.keytab`; without `host/FQDN@REALM` it cannot get a ticket, so it fails \
            to register (at the latest when its current ticket expires), and domain logons through \
            sssd or winbind break too.",
        remediation: "Check `klist -ke /etc/krb5.keytab` and `hostname -f`; if the name is right, rejoin \
            the domain (`realm leave` then `realm join`, or `net ads join -k` with winbind) so that \
            the keytab is written again, then restart `ctxvda`.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/manual-installation-overview/redhat.html",
        evidence: &["expected", "principals", "entries"],
    },
    eval: keytab_without_host_principal,
};

fn keytab_without_host_principal(s: &Snapshot) -> Outcome {
    let Some(id) = &s.sections.identity else {
        return Outcome::Skipped;
    };
    let Some(keytab) = &id.kerberos.keytab else {
        return Outcome::Skipped;
    };
    Outcome::fire_if(!keytab.host_principal_present, || {
        let fqdn = id.hostname.fqdn.as_deref().unwrap_or("?");
        let realm = id.kerberos.default_realm.as_deref().unwrap_or("?");
        Hit::host_wide()
            .with("expected", format!("host/{fqdn}@{realm}"))
            .with("principals", keytab.principals.clone())
            .with("entries", keytab.entries)
    })
}

pub const HOSTNAME_RULES: HostRule = HostRule {
    info: RuleInfo {
        id: "ID-HOST-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "Hostname {hostname} breaks the naming rules of an AD member: {problems}",
        rationale: "An AD computer name has at most 15 characters (NetBIOS), only letters, digits and \
            hyphens, is not all digits, and matches the host's DNS name. A longer name is cut at join, \
            so the computer account and the Kerberos principals name another host; `localhost` or a \
            mismatched FQDN makes the VDA register (and Kerberos look up keys) under the wrong name.",
        remediation: "Rename the host to a unique name of at most 15 letters, digits and hyphens \
            (`hostnamectl set-hostname NAME`), make `hostname -f` return NAME.DOMAIN (`/etc/hosts` or \
            DNS), then rejoin the domain.",
        reference: "https://learn.microsoft.com/en-us/troubleshoot/windows-server/active-directory/naming-conventions-for-computer-domain-site-ou",
        evidence: &["hostname", "problems", "fqdn"],
    },
    eval: hostname_rules,
};

fn hostname_rules(s: &Snapshot) -> Outcome {
    let Some(id) = &s.sections.identity else {
        return Outcome::Skipped;
    };
    let h = &id.hostname;
    if h.short_name.is_empty() {
        return Outcome::Skipped;
    }
    let mut problems = Vec::new();
    if !h.short_name_within_netbios_limit || h.short_name_length > NETBIOS_MAX {
        problems.push(format!(
            "{} characters, over the NetBIOS limit of {NETBIOS_MAX}",
            h.short_name_length
        ));
    }
    if !h.short_name_valid_chars {
        problems.push("characters other than letters, digits and hyphens".to_owned());
    }
    if h.short_name.bytes().all(|b| b.is_ascii_digit()) {
        problems.push("all digits".to_owned());
    }
    let is_localhost = |n: &str| {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        n == "localhost" || n.starts_with("localhost.")
    };
    if is_localhost(&h.short_name) || h.fqdn.as_deref().is_some_and(is_localhost) {
        problems.push("named localhost".to_owned());
    }
    if h.short_name_matches_fqdn == Some(false) {
        problems.push("short name differs from the FQDN's first label".to_owned());
    }
    Outcome::fire_if(!problems.is_empty(), || {
        Hit::host_wide()
            .with("hostname", h.short_name.clone())
            .with("problems", problems.join("; "))
            .with("fqdn", h.fqdn.clone().map_or(Value::Null, Value::from))
    })
}

pub const NOT_JOINED: HostRule = HostRule {
    info: RuleInfo {
        id: "ID-DOMAIN-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "The VDA host is not joined to a domain (checked with {sources})",
        rationale: "The Linux VDA registers with its Delivery Controllers and logs users on through \
            Active Directory: a host that is not (or no longer) a domain member cannot register, and \
            domain users cannot log on.",
        remediation: "Join the domain with the method the VDA was installed for (`realm join`, `net ads \
            join`, or `ctxinstall.sh`), check with `realm list` or `wbinfo -t`, then restart \
            `ctxvda`.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/manual-installation-overview/redhat.html",
        evidence: &["sources", "domain"],
    },
    eval: not_joined,
};

/// Judged only on a VDA host whose membership tools gave an answer.
fn not_joined(s: &Snapshot) -> Outcome {
    let Some(domain) = s.sections.identity.as_ref().and_then(|i| i.domain.as_ref()) else {
        return Outcome::Skipped;
    };
    let Some(joined) = domain.joined else {
        return Outcome::Skipped;
    };
    match vda_installed(s) {
        None => Outcome::Skipped,
        Some(false) => Outcome::pass(),
        Some(true) => Outcome::fire_if(!joined, || {
            Hit::host_wide()
                .with("sources", domain.sources.join(", "))
                .with("domain", domain.domain.clone().map_or(Value::Null, Value::from))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, passes, skipped, snapshot_with};
    use crate::sections::{
        DomainMembership, HostnameInfo, IdentitySection, KerberosInfo, KeytabInfo, VdaSection,
    };

    fn identity(f: impl FnOnce(&mut IdentitySection)) -> Snapshot {
        let mut id = IdentitySection {
            hostname: HostnameInfo {
                short_name: "vda-rh01".into(),
                fqdn: Some("vda-rh01.example.com".into()),
                short_name_length: 8,
                short_name_valid_chars: true,
                short_name_within_netbios_limit: true,
                short_name_matches_fqdn: Some(true),
            },
            kerberos: KerberosInfo {
                default_realm: Some("EXAMPLE.COM".into()),
                keytab: Some(KeytabInfo {
                    entries: 6,
                    host_principal_present: true,
                    principals: vec!["host/vda-rh01.example.com@EXAMPLE.COM".into()],
                    ..Default::default()
                }),
            },
            domain: Some(DomainMembership {
                sources: vec!["realm".into(), "sssctl".into()],
                domain: Some("example.com".into()),
                joined: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        f(&mut id);
        snapshot_with(|s| {
            s.identity = Some(id);
            s.vda = Some(VdaSection::default());
        })
    }

    #[test]
    fn keytab_without_host_principal_fires() {
        let snap = identity(|i| {
            if let Some(k) = i.kerberos.keytab.as_mut() {
                k.host_principal_present = false;
                k.principals = vec!["VDA-RH01$@EXAMPLE.COM".into()];
            }
        });
        let f = fires(&KEYTAB_WITHOUT_HOST_PRINCIPAL, &snap);
        assert_eq!(
            f.title,
            "The system keytab has no host principal for host/vda-rh01.example.com@EXAMPLE.COM"
        );
    }

    #[test]
    fn keytab_with_host_principal_passes() {
        passes(&KEYTAB_WITHOUT_HOST_PRINCIPAL, &identity(|_| {}));
        skipped(
            &KEYTAB_WITHOUT_HOST_PRINCIPAL,
            &identity(|i| i.kerberos.keytab = None),
        );
    }

    #[test]
    fn long_and_invalid_hostnames_fire_with_every_problem() {
        let snap = identity(|i| {
            i.hostname.short_name = "citrix_vda_host_0001".into();
            i.hostname.short_name_length = 20;
            i.hostname.short_name_valid_chars = false;
            i.hostname.short_name_within_netbios_limit = false;
            i.hostname.short_name_matches_fqdn = Some(false);
        });
        let f = fires(&HOSTNAME_RULES, &snap);
        assert_eq!(
            f.evidence["problems"],
            "20 characters, over the NetBIOS limit of 15; characters other than letters, digits and \
             hyphens; short name differs from the FQDN's first label"
        );
    }

    #[test]
    fn localhost_and_numeric_names_fire() {
        let f = fires(
            &HOSTNAME_RULES,
            &identity(|i| {
                i.hostname.short_name = "localhost".into();
                i.hostname.fqdn = Some("localhost.localdomain".into());
            }),
        );
        assert_eq!(
            f.title,
            "Hostname localhost breaks the naming rules of an AD member: named localhost"
        );
        let f = fires(
            &HOSTNAME_RULES,
            &identity(|i| {
                i.hostname.short_name = "12345".into();
                i.hostname.short_name_matches_fqdn = None;
            }),
        );
        assert_eq!(f.evidence["problems"], "all digits");
    }

    #[test]
    fn good_hostname_passes() {
        passes(&HOSTNAME_RULES, &identity(|_| {}));
        skipped(&HOSTNAME_RULES, &snapshot_with(|_| {}));
    }

    #[test]
    fn vda_host_not_joined_fires() {
        let snap = identity(|i| {
            if let Some(d) = i.domain.as_mut() {
                d.joined = Some(false);
            }
        });
        let f = fires(&NOT_JOINED, &snap);
        assert_eq!(
            f.title,
            "The VDA host is not joined to a domain (checked with realm, sssctl)"
        );
    }

    #[test]
    fn joined_or_no_vda_passes() {
        passes(&NOT_JOINED, &identity(|_| {}));
        let mut no_vda = identity(|i| {
            if let Some(d) = i.domain.as_mut() {
                d.joined = Some(false);
            }
        });
        no_vda.sections.vda = None;
        // Without the probe's word the VDA's presence is unknown...
        skipped(&NOT_JOINED, &no_vda);
        // ...with `no_data`, no VDA: membership is none of this rule's business.
        no_vda.probes.insert(
            "vda".into(),
            crate::snapshot::ProbeReport {
                outcome: crate::snapshot::ProbeOutcome::NoData,
                duration_ms: 1,
            },
        );
        passes(&NOT_JOINED, &no_vda);
        skipped(&NOT_JOINED, &identity(|i| i.domain = None));
    }
}
