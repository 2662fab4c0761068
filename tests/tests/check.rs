//! `callhome-agent check` as a user runs it: the real binary on the fixture host trees, with no
//! collector anywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use callhome_e2e::{Agent, describe};
use serde_json::Value;

fn tree(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hosts")
        .join(name)
}

fn check_json(agent: &Agent, name: &str, extra: &[&str]) -> Value {
    let root = tree(name);
    let mut args = vec!["--root", root.to_str().unwrap(), "check", "--json"];
    args.extend_from_slice(extra);
    let out = agent.run_ok(&args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name}: check printed no JSON: {e}\n{out}"))
}

fn findings(report: &Value) -> &Vec<Value> {
    report["findings"].as_array().expect("findings array")
}

fn rules_of(report: &Value, severity: &str) -> Vec<String> {
    findings(report)
        .iter()
        .filter(|f| f["severity"] == severity)
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

fn has(report: &Value, rule: &str) -> bool {
    findings(report).iter().any(|f| f["rule"] == rule)
}

#[test]
fn json_report_on_every_fixture_tree_has_the_promised_shape() {
    let agent = Agent::new();
    let mut names: Vec<String> = std::fs::read_dir(tree(""))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    for name in &names {
        let report = check_json(&agent, name, &[]);
        for key in [
            "catalog_version",
            "host_id",
            "snapshot_id",
            "collected_at",
            "skipped",
        ] {
            assert!(report.get(key).is_some(), "{name}: no `{key}` in {report}");
        }
        // A tree's "now" is its capture time: the snapshot is dated from it.
        assert!(
            report["collected_at"].as_str().unwrap().starts_with("20"),
            "{name}: {report}"
        );
        for f in findings(&report) {
            for key in [
                "rule",
                "severity",
                "subject",
                "title",
                "evidence",
                "remediation",
                "reference",
            ] {
                assert!(f.get(key).is_some(), "{name}: finding lacks `{key}`: {f}");
            }
            assert!(!f["title"].as_str().unwrap().contains('{'), "{name}: {f}");
        }
    }
}

#[test]
fn unregistered_vda_reports_vda_reg_001_critical() {
    let report = check_json(&Agent::new(), "vda-unregistered", &[]);
    let reg = findings(&report)
        .iter()
        .find(|f| f["rule"] == "VDA-REG-001")
        .unwrap_or_else(|| panic!("no VDA-REG-001: {report:#}"));
    assert_eq!(reg["severity"], "critical");
    assert!(
        reg["evidence"]["last_failure_reason"]
            .as_str()
            .unwrap()
            .contains("KRB_AP_ERR_SKEW"),
        "{reg}"
    );
    // The stopped chronyd of that host is the cause: no NTP client.
    assert!(has(&report, "TIME-NTP-001"), "{report:#}");
    assert_eq!(findings(&report)[0]["severity"], "critical", "most severe first");
}

#[test]
fn healthy_hosts_have_no_critical_finding() {
    let agent = Agent::new();
    for name in ["deb-healthy", "rpm-healthy"] {
        let report = check_json(&agent, name, &[]);
        assert_eq!(
            rules_of(&report, "critical"),
            Vec::<String>::new(),
            "{name}: {report:#}"
        );
        // The areas that judge the VDA itself all had their data on these trees.
        for rule in [
            "SVC-VDA-001",
            "VDA-REG-001",
            "NET-ICA-001",
            "CTRL-LIST-001",
            "ID-KEYTAB-001",
        ] {
            let skipped = report["skipped"].as_array().unwrap();
            assert!(!skipped.iter().any(|s| s == rule), "{name}: {rule} skipped");
        }
    }
}

#[test]
fn other_broken_trees_report_their_fault() {
    let agent = Agent::new();
    let flapping = check_json(&agent, "service-flapping", &[]);
    for rule in ["SVC-HDX-001", "NET-ICA-001", "SVC-RESTART-001"] {
        assert!(
            has(&flapping, rule),
            "service-flapping lacks {rule}: {flapping:#}"
        );
    }
    let time_off = check_json(&agent, "time-off", &[]);
    assert!(rules_of(&time_off, "critical").contains(&"TIME-SKEW-001".to_owned()));
    assert!(has(&time_off, "TIME-SYNC-001"), "{time_off:#}");
}

#[test]
fn min_severity_filters_and_fail_on_sets_the_exit_code() {
    let agent = Agent::new();
    let report = check_json(&agent, "vda-unregistered", &["--min-severity", "high"]);
    assert!(!findings(&report).is_empty());
    assert!(
        findings(&report)
            .iter()
            .all(|f| f["severity"] == "critical" || f["severity"] == "high"),
        "{report:#}"
    );

    let root = tree("vda-unregistered");
    let out = agent.run(&["--root", root.to_str().unwrap(), "check", "--fail-on", "critical"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        describe(&agent.command(&[]), &out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("VDA-REG-001"),
        "the table is printed anyway: {stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at or above critical"),
        "{}",
        describe(&agent.command(&[]), &out)
    );

    // Without --fail-on: 0 whatever is found.
    let out = agent.run(&["--root", root.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(0));

    let healthy = tree("rpm-healthy");
    let out = agent.run(&[
        "--root",
        healthy.to_str().unwrap(),
        "check",
        "--fail-on",
        "critical",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        describe(&agent.command(&[]), &out)
    );
}

#[test]
fn table_lists_findings_remediations_and_a_summary() {
    let agent = Agent::new();
    let root = tree("vda-unregistered");
    let out = agent.run_ok(&["--root", root.to_str().unwrap(), "check"]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("SEVERITY  RULE") && header.ends_with("TITLE"),
        "{out}"
    );
    let first = lines.next().unwrap();
    assert!(first.starts_with("critical  VDA-REG-001"), "{out}");
    assert!(out.contains("\nRemediation:\n"), "{out}");
    assert!(out.contains("xdping"), "VDA-REG-001's remediation: {out}");
    let summary = out.lines().last().unwrap();
    assert!(
        summary.contains("finding(s): ") && summary.contains(" critical, ") && summary.contains("skipped"),
        "{summary}"
    );
}

#[test]
fn check_redacts_as_collect_does() {
    let agent = Agent::with_config("[redaction]\nhostnames = \"drop\"\n");
    let report = check_json(&agent, "vda-unregistered", &[]);
    let text = report.to_string();
    assert!(!text.contains("ddc1.example.com"), "{report:#}");
    // The controllers are still judged, under their placeholder.
    assert!(has(&report, "CTRL-DNS-001"), "{report:#}");
}

#[test]
fn bad_severity_is_a_usage_error() {
    let out = Agent::new().run(&["check", "--min-severity", "urgent"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown severity"));
}
