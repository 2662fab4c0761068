//! Area CTRL: the Delivery Controllers the VDA registers with: configured, resolvable, redundant,
//! reachable.

use serde_json::Value;

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::sections::ControllersSection;
use crate::snapshot::Snapshot;

const REFERENCE: &str = "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/troubleshooting.html";

/// The controllers section when its list could be read; `None` (skip) otherwise.
fn listed(s: &Snapshot) -> Option<&ControllersSection> {
    s.sections.controllers.as_ref().filter(|c| c.list_error.is_none())
}

pub const NO_CONTROLLERS: HostRule = HostRule {
    info: RuleInfo {
        id: "CTRL-LIST-001",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "The VDA has no Delivery Controller configured (ListOfDDCs is empty)",
        rationale: "With an empty `ListOfDDCs` the VDA has nobody to register with: the machine never \
            becomes available to users.",
        remediation: "Set the controllers' FQDNs: `/opt/Citrix/VDA/bin/ctxreg create -k \
            \"HKLM\\Software\\Citrix\\VirtualDesktopAgent\" -t \"REG_SZ\" -v \"ListOfDDCs\" -d \
            \"ddc1.example.com ddc2.example.com\" --force` (or rerun `ctxsetup.sh`), then restart \
            `ctxvda`.",
        reference: REFERENCE,
        evidence: &["controllers"],
    },
    eval: no_controllers,
};

fn no_controllers(s: &Snapshot) -> Outcome {
    // The VDA probe reads the same registry value; it judges when the controllers probe did not run.
    let configured = match listed(s) {
        Some(c) => c.controllers.len(),
        None => match s.sections.vda.as_ref().and_then(|v| v.controllers.as_ref()) {
            Some(list) => list.len(),
            None => return Outcome::Skipped,
        },
    };
    Outcome::fire_if(configured == 0, || {
        Hit::host_wide().with("controllers", Value::Array(vec![]))
    })
}

pub const CONTROLLER_UNRESOLVED: HostRule = HostRule {
    info: RuleInfo {
        id: "CTRL-DNS-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::Medium,
        title: "Delivery Controller {controller} does not resolve",
        rationale: "The VDA finds its controllers by name (and Kerberos needs the name): a controller \
            that does not resolve is one the VDA cannot register with, so the farm has one controller \
            less for this machine, or none.",
        remediation: "Check the name in `ListOfDDCs` for typos, then `getent ahosts NAME` against the DNS \
            servers in `/etc/resolv.conf`; add the missing A record (and its PTR record).",
        reference: REFERENCE,
        evidence: &["controller", "configured"],
    },
    eval: controller_unresolved,
};

fn controller_unresolved(s: &Snapshot) -> Outcome {
    let Some(section) = listed(s) else {
        return Outcome::Skipped;
    };
    let configured = section.controllers.len();
    Outcome::Hits(
        section
            .controllers
            .iter()
            .filter(|c| c.addresses.is_empty())
            .map(|c| {
                Hit::about(c.name.clone())
                    .with("controller", c.name.clone())
                    .with("configured", configured)
            })
            .collect(),
    )
}

pub const SINGLE_CONTROLLER: HostRule = HostRule {
    info: RuleInfo {
        id: "CTRL-SPOF-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Low,
        impact: Rating::High,
        title: "Only one Delivery Controller is configured ({controller})",
        rationale: "A single controller is a single point of failure: when it is patched, restarted or \
            lost, every VDA that lists only it deregisters and stays unavailable until it is back.",
        remediation: "List at least two controllers of the site in `ListOfDDCs` (space-separated FQDNs), \
            then restart `ctxvda`.",
        reference: REFERENCE,
        evidence: &["controller"],
    },
    eval: single_controller,
};

fn single_controller(s: &Snapshot) -> Outcome {
    let Some(section) = listed(s) else {
        return Outcome::Skipped;
    };
    match section.controllers.as_slice() {
        [only] => Outcome::fire(Hit::host_wide().with("controller", only.name.clone())),
        _ => Outcome::pass(),
    }
}

pub const CONTROLLER_PORT_UNREACHABLE: HostRule = HostRule {
    info: RuleInfo {
        id: "CTRL-PORT-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::Medium,
        title: "Delivery Controller {controller} is unreachable on port {port} ({error_kind})",
        rationale: "The VDA registers over the controller's registration port (80 by default); a firewall \
            or a stopped broker service on that path means the VDA cannot register with that \
            controller.",
        remediation: "From the VDA, `curl -v http://CONTROLLER:PORT/`; open the port on the firewalls \
            between them, and check the Citrix Broker Service on the controller.",
        reference: "https://docs.citrix.com/en-us/citrix-virtual-apps-desktops/technical-overview/communication-ports.html",
        evidence: &["controller", "port", "error_kind", "error"],
    },
    eval: controller_port_unreachable,
};

/// Only controllers that resolve: one that does not is CTRL-DNS-001's, not a second finding.
fn controller_port_unreachable(s: &Snapshot) -> Outcome {
    let Some(section) = listed(s) else {
        return Outcome::Skipped;
    };
    Outcome::Hits(
        section
            .controllers
            .iter()
            .filter(|c| !c.reachable && !c.addresses.is_empty())
            .map(|c| {
                Hit::about(c.name.clone())
                    .with("controller", c.name.clone())
                    .with("port", section.port)
                    .with(
                        "error_kind",
                        c.connect_error_kind.clone().unwrap_or_else(|| "unknown".into()),
                    )
                    .with("error", c.connect_error.clone().map_or(Value::Null, Value::from))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, fires_all, passes, skipped, snapshot_with};
    use crate::sections::{ControllerCheck, VdaSection};

    fn good(name: &str, addr: &str) -> ControllerCheck {
        ControllerCheck {
            name: name.into(),
            addresses: vec![addr.into()],
            reverse_name: Some(name.into()),
            reverse_matches: Some(true),
            reachable: true,
            connect_ms: Some(3),
            ..Default::default()
        }
    }

    fn controllers(list: Vec<ControllerCheck>) -> Snapshot {
        snapshot_with(|s| {
            s.controllers = Some(ControllersSection {
                port: 80,
                connect_timeout_ms: 2000,
                list_error: None,
                controllers: list,
            })
        })
    }

    fn two_good() -> Vec<ControllerCheck> {
        vec![
            good("ddc1.example.com", "10.0.1.21"),
            good("ddc2.example.com", "10.0.1.22"),
        ]
    }

    fn list_unreadable() -> Snapshot {
        snapshot_with(|s| {
            s.controllers = Some(ControllersSection {
                list_error: Some("ctxreg exited with 1".into()),
                ..Default::default()
            })
        })
    }

    #[test]
    fn empty_list_fires() {
        let f = fires(&NO_CONTROLLERS, &controllers(vec![]));
        assert_eq!(f.severity, Severity::Critical);
        // From the vda section when the controllers probe did not run.
        let snap = snapshot_with(|s| {
            s.vda = Some(VdaSection {
                controllers: Some(vec![]),
                ..Default::default()
            })
        });
        fires(&NO_CONTROLLERS, &snap);
    }

    #[test]
    fn configured_list_passes() {
        passes(&NO_CONTROLLERS, &controllers(two_good()));
        skipped(&NO_CONTROLLERS, &list_unreadable());
        skipped(&NO_CONTROLLERS, &snapshot_with(|_| {}));
    }

    #[test]
    fn unresolved_controller_fires_per_name() {
        let mut list = two_good();
        list[1].addresses.clear();
        list[1].reachable = false;
        let f = fires(&CONTROLLER_UNRESOLVED, &controllers(list));
        assert_eq!(f.subject, "ddc2.example.com");
        assert_eq!(f.title, "Delivery Controller ddc2.example.com does not resolve");
    }

    #[test]
    fn resolved_controllers_pass() {
        passes(&CONTROLLER_UNRESOLVED, &controllers(two_good()));
        skipped(&CONTROLLER_UNRESOLVED, &list_unreadable());
    }

    #[test]
    fn single_controller_fires() {
        let f = fires(
            &SINGLE_CONTROLLER,
            &controllers(vec![good("ddc1.example.com", "10.0.1.21")]),
        );
        assert_eq!(
            f.title,
            "Only one Delivery Controller is configured (ddc1.example.com)"
        );
    }

    #[test]
    fn two_controllers_pass() {
        passes(&SINGLE_CONTROLLER, &controllers(two_good()));
        // None at all is CTRL-LIST-001's finding, not this one's.
        passes(&SINGLE_CONTROLLER, &controllers(vec![]));
        skipped(&SINGLE_CONTROLLER, &snapshot_with(|_| {}));
    }

    #[test]
    fn unreachable_port_fires_per_controller() {
        let mut list = two_good();
        for c in &mut list {
            c.reachable = false;
            c.connect_ms = None;
            c.connect_error_kind = Some("refused".into());
            c.connect_error = Some("connection refused".into());
        }
        list[1].addresses.clear(); // unresolved: CTRL-DNS-001's
        let found = fires_all(&CONTROLLER_PORT_UNREACHABLE, &controllers(list));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].title,
            "Delivery Controller ddc1.example.com is unreachable on port 80 (refused)"
        );
    }

    #[test]
    fn reachable_controllers_pass() {
        passes(&CONTROLLER_PORT_UNREACHABLE, &controllers(two_good()));
        skipped(&CONTROLLER_PORT_UNREACHABLE, &snapshot_with(|_| {}));
    }
}
