//! The agent against host trees (node_exporter's end-to-end test is the model): `collect --root` on
//! every fixture tree under `tests/fixtures/hosts/` is compared with a golden file in
//! `tests/fixtures/golden/`, and `capture` of this machine replays to the same sections.
//!
//! After a deliberate change to a probe, rewrite the golden files with
//! `UPDATE_GOLDEN=1 cargo test -p callhome-e2e --test fixtures`, and read the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use callhome_e2e::Agent;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn trees() -> Vec<PathBuf> {
    let mut trees: Vec<PathBuf> = std::fs::read_dir(fixtures().join("hosts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    trees.sort();
    trees
}

/// The snapshot without what changes from run to run: ids, timings, and the agent's own section.
fn stable(mut snapshot: Value) -> Value {
    let obj = snapshot.as_object_mut().unwrap();
    for key in ["id", "collection_ms"] {
        obj.remove(key);
    }
    obj["host"].as_object_mut().unwrap().remove("host_id");
    obj["agent"] = Value::Null;
    if let Some(probes) = obj.get_mut("probes").and_then(Value::as_object_mut) {
        for report in probes.values_mut() {
            report.as_object_mut().unwrap().remove("duration_ms");
        }
    }
    if let Some(sections) = obj.get_mut("sections").and_then(Value::as_object_mut) {
        sections.remove("agent");
    }
    snapshot
}

#[test]
fn collect_on_every_fixture_tree_matches_its_golden_file() {
    let agent = Agent::new();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    for tree in trees() {
        let name = tree.file_name().unwrap().to_string_lossy().into_owned();
        let out = agent.run_ok(&["--root", tree.to_str().unwrap(), "collect"]);
        let snapshot: Value = serde_json::from_str(&out).unwrap();
        assert!(
            snapshot["errors"].as_array().is_none_or(|e| e.is_empty()),
            "{name}: probes failed on a fixture tree: {}",
            snapshot["errors"]
        );
        let actual = format!("{}\n", serde_json::to_string_pretty(&stable(snapshot)).unwrap());
        let golden = fixtures().join("golden").join(format!("{name}.json"));
        if update {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &actual).unwrap();
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == actual => {}
            Ok(_) => mismatched.push(format!("{name}: differs from {}", golden.display())),
            Err(_) => mismatched.push(format!("{name}: no golden file {}", golden.display())),
        }
    }
    assert!(
        mismatched.is_empty(),
        "{mismatched:#?}\nrun with UPDATE_GOLDEN=1 and review the diff"
    );
}

#[test]
fn healthy_snapshot_stays_small_on_the_wire() {
    let agent = Agent::new();
    let tree = fixtures().join("hosts/rpm-healthy");
    let out = agent.run_ok(&["--root", tree.to_str().unwrap(), "collect"]);
    let compact = serde_json::to_vec(&serde_json::from_str::<Value>(&out).unwrap()).unwrap();
    let compressed = zstd::encode_all(&compact[..], 3).unwrap();
    eprintln!(
        "rpm-healthy snapshot: {} bytes JSON, {} bytes zstd",
        compact.len(),
        compressed.len()
    );
    assert!(
        compressed.len() < 16 << 10,
        "{} bytes zstd-compressed",
        compressed.len()
    );
}

#[test]
fn capture_of_this_machine_replays_to_the_same_sections() {
    let agent = Agent::new();
    let out_dir = agent.dir.path().join("capture");
    let printed = agent.run_ok(&["capture", "--out", out_dir.to_str().unwrap()]);
    assert!(printed.starts_with("captured "), "{printed}");
    assert!(out_dir.join(".callhome/capture.json").exists());

    // capture keeps the snapshot it took live; replaying the tree must give the same sections.
    let captured: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join(".callhome/snapshot.json")).unwrap())
            .unwrap();
    let replay: Value =
        serde_json::from_str(&agent.run_ok(&["--root", out_dir.to_str().unwrap(), "collect"])).unwrap();
    let sections = replay["sections"].as_object().unwrap();
    assert!(
        sections.contains_key("system") && sections.contains_key("disks"),
        "{sections:?}"
    );
    assert_eq!(
        stable(replay),
        stable(captured),
        "a capture must replay to what was seen live"
    );
}
