//! Builders and assertions for rule tests: a minimal snapshot with just the sections a test sets.

use time::macros::datetime;
use uuid::Uuid;

use super::{Finding, FleetHost, HostRule, Outcome};
use crate::sections::Sections;
use crate::snapshot::{AgentInfo, HostIdentity, HostRole, SCHEMA_VERSION, Snapshot};

/// The time every test snapshot was collected at.
pub const COLLECTED_AT: time::OffsetDateTime = datetime!(2026-11-20 09:00:00 UTC);

/// A valid snapshot with no sections; `f` fills the ones the test needs.
pub fn snapshot_with(f: impl FnOnce(&mut Sections)) -> Snapshot {
    let mut sections = Sections::default();
    f(&mut sections);
    Snapshot {
        id: Uuid::from_u128(0x0193_4a2b_0000_7000_8000_0000_0000_0001),
        schema_version: SCHEMA_VERSION,
        agent: AgentInfo {
            version: "0.1.0".to_owned(),
        },
        host: HostIdentity {
            host_id: Uuid::from_u128(0x0193_4a2b_0000_7000_8000_0000_0000_00aa),
            hostname: "vda01.example.com".to_owned(),
            role: HostRole::Vda,
            os: "Red Hat Enterprise Linux 9.4".to_owned(),
            kernel: "5.14.0".to_owned(),
        },
        collected_at: COLLECTED_AT,
        collection_ms: 10,
        sections,
        probes: Default::default(),
        errors: Vec::new(),
    }
}

/// Asserts `rule` fires exactly once on `s` and returns the finding.
#[track_caller]
pub fn fires(rule: &HostRule, s: &Snapshot) -> Finding {
    let mut all = fires_all(rule, s);
    assert_eq!(
        all.len(),
        1,
        "{} fired {} times: {all:#?}",
        rule.info.id,
        all.len()
    );
    all.remove(0)
}

/// Asserts `rule` fires at least once on `s` and returns the findings.
#[track_caller]
pub fn fires_all(rule: &HostRule, s: &Snapshot) -> Vec<Finding> {
    match (rule.eval)(s) {
        Outcome::Hits(hits) if !hits.is_empty() => {
            let findings: Vec<Finding> = hits.into_iter().map(|h| Finding::new(&rule.info, h)).collect();
            for f in &findings {
                for key in rule.info.evidence {
                    assert!(
                        f.evidence.contains_key(*key),
                        "{}: evidence lacks `{key}`",
                        rule.info.id
                    );
                }
                assert!(
                    !f.title.contains('{'),
                    "{}: title not filled: {}",
                    rule.info.id,
                    f.title
                );
            }
            findings
        }
        other => panic!("{} did not fire: {other:?}", rule.info.id),
    }
}

/// Asserts `rule` judged `s` healthy.
#[track_caller]
pub fn passes(rule: &HostRule, s: &Snapshot) {
    assert_eq!((rule.eval)(s), Outcome::pass(), "{} should pass", rule.info.id);
}

/// Asserts `rule` had no input to judge `s`.
#[track_caller]
pub fn skipped(rule: &HostRule, s: &Snapshot) {
    assert_eq!(
        (rule.eval)(s),
        Outcome::Skipped,
        "{} should be skipped",
        rule.info.id
    );
}

/// A fleet host that reported at `COLLECTED_AT`, every hour, with nothing else known.
pub fn fleet_host(n: u128) -> FleetHost {
    FleetHost {
        host_id: Uuid::from_u128(0x0193_4a2b_0000_7000_8000_0000_0001_0000 + n),
        hostname: format!("vda{n:02}.example.com"),
        last_received_at: Some(COLLECTED_AT),
        enrolled_at: datetime!(2026-01-01 00:00:00 UTC),
        schedule_interval_secs: Some(3600),
        vda_version: None,
        controllers: None,
        clock_skew_secs: None,
    }
}
