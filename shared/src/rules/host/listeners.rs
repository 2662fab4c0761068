//! Area NET: the VDA's listeners. A closed ICA port on a VDA host means no session can connect.

use super::vda::vda_installed;
use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::snapshot::Snapshot;

/// The verdict on `port` on a VDA host: skipped when the port or the VDA's presence is unknown,
/// healthy on a host without the VDA (nothing is meant to listen there).
fn vda_port_closed(s: &Snapshot, port: u16) -> Outcome {
    let Some(listeners) = &s.sections.listeners else {
        return Outcome::Skipped;
    };
    let Some(entry) = listeners.ports.iter().find(|p| p.port == port) else {
        return Outcome::Skipped;
    };
    match vda_installed(s) {
        None => Outcome::Skipped,
        Some(false) => Outcome::pass(),
        Some(true) => Outcome::fire_if(!entry.listening, || {
            Hit::host_wide()
                .with("port", port)
                .with("purpose", entry.purpose.clone())
        }),
    }
}

pub const ICA_CLOSED: HostRule = HostRule {
    info: RuleInfo {
        id: "NET-ICA-001",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "The ICA listener (TCP {port}) is not listening on this VDA",
        rationale: "Clients (directly or through a Citrix Gateway) connect to the VDA's ICA port; with it \
            closed the machine may still be registered and be handed sessions that then fail to \
            connect.",
        remediation: "Check `ctxhdx` (`systemctl status ctxhdx`, `/var/log/xdl/hdx.log`), restart it, and \
            confirm with `ss -ltn 'sport = :1494'`; check that no policy moved the ICA port.",
        reference: "https://docs.citrix.com/en-us/citrix-virtual-apps-desktops/technical-overview/communication-ports.html",
        evidence: &["port", "purpose"],
    },
    eval: |s| vda_port_closed(s, 1494),
};

pub const CGP_CLOSED: HostRule = HostRule {
    info: RuleInfo {
        id: "NET-CGP-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "Session reliability (CGP, TCP {port}) is not listening on this VDA",
        rationale: "Session reliability keeps a session open through a short network drop; without its \
            listener sessions connect over plain ICA and are cut (then reconnect, or are lost) at \
            every blip, which users report as random disconnections.",
        remediation: "Check `ctxhdx` and the Session reliability policy settings; if session reliability \
            is off on purpose, suppress this finding for the host or environment, otherwise restart \
            `ctxhdx` and confirm with `ss -ltn 'sport = :2598'`.",
        reference: "https://docs.citrix.com/en-us/citrix-virtual-apps-desktops/policies/reference/ica-policy-settings/session-reliability-policy-settings.html",
        evidence: &["port", "purpose"],
    },
    eval: |s| vda_port_closed(s, 2598),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, passes, skipped, snapshot_with};
    use crate::sections::{ListenersSection, ListeningPort, VdaSection};
    use crate::snapshot::{ProbeOutcome, ProbeReport};

    fn ports(ica: bool, cgp: bool, vda: Option<bool>) -> Snapshot {
        let port = |port: u16, purpose: &str, listening: bool| ListeningPort {
            port,
            purpose: purpose.into(),
            listening,
            addresses: if listening { vec!["0.0.0.0".into()] } else { vec![] },
        };
        let mut snap = snapshot_with(|s| {
            s.listeners = Some(ListenersSection {
                ports: vec![
                    port(1494, "ica", ica),
                    port(2598, "cgp", cgp),
                    port(443, "tls", false),
                ],
            });
            if vda == Some(true) {
                s.vda = Some(VdaSection::default());
            }
        });
        if vda == Some(false) {
            snap.probes.insert(
                "vda".into(),
                ProbeReport {
                    outcome: ProbeOutcome::NoData,
                    duration_ms: 1,
                },
            );
        }
        snap
    }

    #[test]
    fn closed_ica_on_a_vda_fires() {
        let f = fires(&ICA_CLOSED, &ports(false, true, Some(true)));
        assert_eq!(
            f.title,
            "The ICA listener (TCP 1494) is not listening on this VDA"
        );
    }

    #[test]
    fn open_ica_or_no_vda_passes() {
        passes(&ICA_CLOSED, &ports(true, true, Some(true)));
        passes(&ICA_CLOSED, &ports(false, false, Some(false)));
        skipped(&ICA_CLOSED, &ports(false, false, None));
        skipped(&ICA_CLOSED, &snapshot_with(|_| {}));
    }

    #[test]
    fn closed_cgp_on_a_vda_fires() {
        let f = fires(&CGP_CLOSED, &ports(true, false, Some(true)));
        assert_eq!(f.evidence["purpose"], "cgp");
    }

    #[test]
    fn open_cgp_passes() {
        passes(&CGP_CLOSED, &ports(true, true, Some(true)));
        passes(&CGP_CLOSED, &ports(true, false, Some(false)));
        skipped(&CGP_CLOSED, &ports(true, false, None));
    }
}
