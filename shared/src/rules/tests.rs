//! Catalog-wide invariants: ids, wording, placeholders, uniqueness.

use std::collections::BTreeSet;

use super::*;

fn valid_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 3
        && parts[..2]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        && parts[2].len() == 3
        && parts[2].bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn ids_are_well_formed_and_unique() {
    let mut seen = BTreeSet::new();
    for r in catalog() {
        assert!(valid_id(r.id), "rule id `{}` is not AREA-TOPIC-NNN", r.id);
        assert!(seen.insert(r.id), "rule id `{}` appears twice", r.id);
    }
}

#[test]
fn scopes_match_their_tables() {
    assert!(HOST_RULES.iter().all(|r| r.info.scope == Scope::Host));
    assert!(FLEET_RULES.iter().all(|r| r.info.scope == Scope::Fleet));
}

#[test]
fn wording_is_complete_and_placeholders_are_evidence() {
    for r in catalog() {
        for (what, text) in [
            ("title", r.title),
            ("rationale", r.rationale),
            ("remediation", r.remediation),
            ("reference", r.reference),
        ] {
            assert!(!text.trim().is_empty(), "{}: empty {what}", r.id);
        }
        for name in placeholders(r.title) {
            assert!(
                r.evidence.contains(&name),
                "{}: title placeholder `{{{name}}}` is not an evidence field",
                r.id
            );
        }
    }
}

#[test]
fn render_fills_known_and_keeps_unknown() {
    let mut ev = BTreeMap::new();
    ev.insert("mount".to_owned(), Value::from("/var"));
    ev.insert("pct".to_owned(), Value::from(4.5));
    assert_eq!(render("{mount} at {pct} % {x}", &ev), "/var at 4.5 % {x}");
    assert_eq!(render("no {close", &ev), "no {close");
}

#[test]
fn severity_parses_and_orders() {
    assert_eq!("CRITICAL".parse::<Severity>(), Ok(Severity::Critical));
    assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
    assert!("urgent".parse::<Severity>().is_err());
}

#[test]
fn evaluation_is_sorted_and_reports_skips() {
    // These judge the envelope (agent version, probe errors), which every snapshot has.
    const ENVELOPE_RULES: [&str; 2] = ["AGENT-VER-001", "PROBE-ERR-001"];
    let eval = evaluate_host(&testing::snapshot_with(|_| {}));
    assert!(eval.findings.is_empty());
    let section_rules: Vec<&str> = HOST_RULES
        .iter()
        .map(|r| r.info.id)
        .filter(|id| !ENVELOPE_RULES.contains(id))
        .collect();
    assert_eq!(
        eval.skipped, section_rules,
        "no section: every section-based rule skipped"
    );
}

#[test]
fn stale_fleet_rule_counts_from_enrolment_when_never_heard() {
    let mut silent = testing::fleet_host(1);
    silent.last_received_at = None;
    let fresh = testing::fleet_host(2);
    let input = FleetInput {
        now: testing::COLLECTED_AT + time::Duration::hours(1),
        default_interval_secs: 3600,
        hosts: vec![silent.clone(), fresh],
    };
    let found = evaluate_fleet(&input);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, Some(silent.host_id));
    assert_eq!(found[0].1.rule, "FLEET-STALE-002");
}
