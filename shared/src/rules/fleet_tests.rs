//! Fleet rule tests: each rule fires on an environment built for it and stays quiet on a healthy one.

use serde_json::json;
use time::Duration;

use super::*;
use crate::rules::testing::{COLLECTED_AT, fleet_host};

fn env(hosts: Vec<FleetHost>) -> FleetInput {
    FleetInput {
        now: COLLECTED_AT,
        default_interval_secs: 3600,
        hosts,
    }
}

fn silent_for(n: u128, silence: Duration) -> FleetHost {
    let mut h = fleet_host(n);
    h.last_received_at = Some(COLLECTED_AT - silence);
    h
}

fn with_version(n: u128, version: &str) -> FleetHost {
    let mut h = fleet_host(n);
    h.vda_version = Some(version.to_owned());
    h
}

fn with_controllers(n: u128, list: &[&str]) -> FleetHost {
    let mut h = fleet_host(n);
    h.controllers = Some(list.iter().map(|c| (*c).to_owned()).collect());
    h
}

/// `rule`'s findings, rendered, with the host each is about.
fn run(rule: &FleetRule, input: &FleetInput) -> Vec<(Option<Uuid>, Finding)> {
    (rule.eval)(input)
        .into_iter()
        .map(|h| {
            for key in rule.info.evidence {
                assert!(
                    h.hit.evidence.contains_key(*key),
                    "{}: lacks `{key}`",
                    rule.info.id
                );
            }
            (h.host, Finding::new(&rule.info, h.hit))
        })
        .inspect(|(_, f)| assert!(!f.title.contains('{'), "{}", f.title))
        .collect()
}

#[test]
fn stale_fires_past_twice_the_interval() {
    let late = silent_for(1, Duration::hours(3));
    let on_time = silent_for(2, Duration::minutes(110));
    let found = run(&STALE, &env(vec![late.clone(), on_time]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, Some(late.host_id));
    assert_eq!(
        found[0].1.title,
        "No snapshot from vda01.example.com for 3 h (schedule every 3600 s)"
    );
}

#[test]
fn stale_gives_way_to_stale_long_after_seven_days() {
    let gone = silent_for(1, Duration::days(9));
    let input = env(vec![gone.clone(), fleet_host(2)]);
    assert!(run(&STALE, &input).is_empty());
    let found = run(&STALE_LONG, &input);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, Some(gone.host_id));
    assert_eq!(found[0].1.title, "No snapshot from vda01.example.com for 9 days");
    assert_eq!(found[0].1.severity, Severity::Critical);
}

#[test]
fn stale_long_respects_a_slow_schedule_and_a_fresh_host() {
    // A weekly agent eight days after its last run is on time.
    let mut weekly = silent_for(1, Duration::days(8));
    weekly.schedule_interval_secs = Some(7 * 86_400);
    let input = env(vec![weekly, fleet_host(2), silent_for(3, Duration::days(7))]);
    assert!(run(&STALE_LONG, &input).is_empty());
    // Exactly seven days is still FLEET-STALE-001's.
    assert_eq!(run(&STALE, &input).len(), 1);
}

#[test]
fn stale_long_counts_from_enrolment_when_never_heard() {
    let mut never = fleet_host(1);
    never.last_received_at = None;
    never.enrolled_at = COLLECTED_AT - Duration::days(30);
    let found = run(&STALE_LONG, &env(vec![never]));
    assert_eq!(found[0].1.evidence["last_received_at"], json!(null));
    assert_eq!(found[0].1.evidence["silent_days"], 30);
}

#[test]
fn mixed_vda_versions_fire_once_for_the_environment() {
    let input = env(vec![
        with_version(1, "24.11.0.65-1.el9_x"),
        with_version(2, "24.11.0.65-1.el9_x"),
        with_version(3, "24.05.0.12-1.el9_x"),
        fleet_host(4),
    ]);
    let found = run(&VDA_VERSIONS, &input);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, None);
    assert_eq!(
        found[0].1.title,
        "2 VDA versions across 3 hosts: 24.11.0.65-1.el9_x (2 hosts), 24.05.0.12-1.el9_x (1 host)"
    );
    assert_eq!(
        found[0].1.evidence["versions"],
        json!([
            { "version": "24.11.0.65-1.el9_x", "hosts": 2 },
            { "version": "24.05.0.12-1.el9_x", "hosts": 1 },
        ])
    );
}

#[test]
fn one_vda_version_passes() {
    let input = env(vec![
        with_version(1, "24.11.0.65-1.el9_x"),
        with_version(2, "24.11.0.65-1.el9_x"),
        fleet_host(3),
    ]);
    assert!(run(&VDA_VERSIONS, &input).is_empty());
    assert!(run(&VDA_VERSIONS, &env(Vec::new())).is_empty());
}

#[test]
fn controller_lists_compare_as_case_insensitive_sets() {
    let input = env(vec![
        with_controllers(1, &["ddc1.example.com", "ddc2.example.com"]),
        with_controllers(2, &["DDC2.example.com", "ddc1.example.com."]),
        fleet_host(3),
    ]);
    assert!(run(&CONTROLLERS, &input).is_empty());
}

#[test]
fn different_controller_lists_fire_with_each_configuration() {
    let input = env(vec![
        with_controllers(1, &["ddc1.example.com", "ddc2.example.com"]),
        with_controllers(2, &["ddc2.example.com", "ddc1.example.com"]),
        with_controllers(3, &["ddc-old.example.com"]),
    ]);
    let found = run(&CONTROLLERS, &input);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, None);
    assert_eq!(found[0].1.title, "2 different controller lists across 3 hosts");
    assert_eq!(
        found[0].1.evidence["configurations"],
        json!([
            {
                "controllers": ["ddc1.example.com", "ddc2.example.com"],
                "hosts": 2,
                "hostnames": ["vda01.example.com", "vda02.example.com"],
            },
            {
                "controllers": ["ddc-old.example.com"],
                "hosts": 1,
                "hostnames": ["vda03.example.com"],
            },
        ])
    );
}

#[test]
fn clock_skew_fires_per_host_past_the_threshold() {
    let mut ahead = fleet_host(1);
    ahead.clock_skew_secs = Some(-180.04);
    let mut fine = fleet_host(2);
    fine.clock_skew_secs = Some(119.0);
    let found = run(&CLOCK_SKEW, &env(vec![ahead.clone(), fine, fleet_host(3)]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, Some(ahead.host_id));
    assert_eq!(
        found[0].1.title,
        "Clock of vda01.example.com differs from the collector's by -180.0 s"
    );
}

#[test]
fn clock_skew_passes_when_unknown_or_small() {
    let mut fine = fleet_host(1);
    fine.clock_skew_secs = Some(-120.0);
    assert!(run(&CLOCK_SKEW, &env(vec![fine, fleet_host(2)])).is_empty());
}

#[test]
fn evaluate_fleet_reports_each_host_once_for_staleness() {
    let input = env(vec![
        silent_for(1, Duration::hours(5)),
        silent_for(2, Duration::days(10)),
        fleet_host(3),
    ]);
    let rules: Vec<String> = evaluate_fleet(&input).into_iter().map(|(_, f)| f.rule).collect();
    assert_eq!(rules, ["FLEET-STALE-002", "FLEET-STALE-001"]);
}
