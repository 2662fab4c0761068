//! Area TIME: clock synchronisation. Kerberos (so AD logons and VDA registration) fails once the
//! clock is off by more than the tolerated skew.

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::snapshot::Snapshot;

pub const SKEW_OVER_KERBEROS: HostRule = HostRule {
    info: RuleInfo {
        id: "TIME-SKEW-001",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "Clock is off by {offset_secs} s, over the Kerberos skew of {clockskew_secs} s",
        rationale: "Kerberos refuses tickets when the clock differs from the domain controller's by more \
            than the tolerated skew: the VDA cannot register with its Delivery Controllers and users \
            cannot log on.",
        remediation: "Synchronise the clock with the domain's time source (chronyd or ntpd pointing at a \
            domain controller), check `chronyc tracking`, then restart the VDA services.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/manual-installation-overview.html",
        evidence: &["offset_secs", "clockskew_secs"],
    },
    eval: skew_over_kerberos,
};

fn skew_over_kerberos(s: &Snapshot) -> Outcome {
    let Some(t) = &s.sections.timesync else {
        return Outcome::Skipped;
    };
    let (Some(offset_ms), Some(skew)) = (t.offset_ms, t.kerberos_clockskew_secs) else {
        return Outcome::Skipped;
    };
    let offset_secs = (offset_ms / 1000.0).abs();
    Outcome::fire_if(offset_secs > skew as f64, || {
        Hit::host_wide()
            .with("offset_secs", (offset_secs * 10.0).round() / 10.0)
            .with("clockskew_secs", skew)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, passes, skipped, snapshot_with};
    use crate::sections::TimesyncSection;

    fn timesync(offset_ms: Option<f64>) -> Snapshot {
        snapshot_with(|s| {
            s.timesync = Some(TimesyncSection {
                offset_ms,
                kerberos_clockskew_secs: Some(300),
                ..Default::default()
            })
        })
    }

    #[test]
    fn fires_past_the_skew() {
        let f = fires(&SKEW_OVER_KERBEROS, &timesync(Some(-301_000.0)));
        assert_eq!(f.evidence["offset_secs"], 301.0);
        assert_eq!(
            f.title,
            "Clock is off by 301.0 s, over the Kerberos skew of 300 s"
        );
    }

    #[test]
    fn passes_within_the_skew() {
        passes(&SKEW_OVER_KERBEROS, &timesync(Some(299_000.0)));
    }

    #[test]
    fn skipped_without_an_offset() {
        skipped(&SKEW_OVER_KERBEROS, &timesync(None));
    }
}
