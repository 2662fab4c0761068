//! End-to-end: the real collector and agent binaries, talking HTTPS on loopback, storing in SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use callhome_e2e::{Agent, Collector, describe, peak_rss_bytes, post};

const SNAPSHOTS: &str = "/v1/snapshots";

/// Exit code the agent uses when the snapshot could not be delivered now but may be later.
const EX_TEMPFAIL: i32 = 75;

#[test]
fn agent_enrolls_sends_and_the_collector_stores_once() {
    let collector = Collector::start_with_demo_org();
    let token = collector.issue_token("ACME", "prod");
    assert!(token.starts_with("chet_"), "{token}");

    let agent = Agent::new();
    let enrolled = agent.enroll(&collector, &token);
    assert!(
        enrolled.contains("ACME") && enrolled.contains("prod"),
        "{enrolled}"
    );

    let sent = agent.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");

    let hosts = collector.hosts();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let host = &hosts[0];
    assert_eq!(host["org"], "ACME");
    assert_eq!(host["environment"], "prod");
    assert_eq!(host["snapshots"], 1);
    assert!(host["last_seen"].is_string(), "{host}");

    // The snapshot the agent would send, posted twice: one new row, then a 2xx that adds nothing.
    let snapshot = agent.collect();
    for key in ["id", "schema_version", "host", "collected_at", "sections"] {
        assert!(snapshot.get(key).is_some(), "collect output lacks `{key}`");
    }
    assert_eq!(
        snapshot["host"]["host_id"], host["host_id"],
        "host id must be stable across runs"
    );
    let body = serde_json::to_vec(&snapshot).unwrap();
    let credential = agent.credential();
    let first = post(&collector, SNAPSHOTS, Some(&credential), None, body.clone());
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["status"], "stored");
    let replay = post(&collector, SNAPSHOTS, Some(&credential), None, body);
    assert_eq!(replay.status, 200, "{replay:?}");
    assert_eq!(replay.body["status"], "duplicate");
    assert_eq!(collector.hosts()[0]["snapshots"], 2);
}

#[test]
fn snapshot_sent_compressed_with_gzip_is_stored() {
    let collector = Collector::start_with_demo_org();
    let agent = Agent::new();
    agent.enroll(&collector, &collector.issue_token("ACME", "prod"));
    let body = serde_json::to_vec(&agent.collect()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).unwrap();
    let reply = post(
        &collector,
        SNAPSHOTS,
        Some(&agent.credential()),
        Some("gzip"),
        gz.finish().unwrap(),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
}

#[test]
fn wrong_credential_gets_401_and_stores_nothing() {
    let collector = Collector::start_with_demo_org();
    let agent = Agent::new();
    agent.enroll(&collector, &collector.issue_token("ACME", "prod"));
    let body = serde_json::to_vec(&agent.collect()).unwrap();

    let forged = format!("chac_{}", "0".repeat(64));
    let reply = post(&collector, SNAPSHOTS, Some(&forged), None, body.clone());
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.body["error"], "unknown_credential");
    let reply = post(&collector, SNAPSHOTS, None, None, body);
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(collector.hosts()[0]["snapshots"], 0);
}

#[test]
fn garbage_gets_400_naming_what_is_wrong() {
    let collector = Collector::start_with_demo_org();
    let agent = Agent::new();
    agent.enroll(&collector, &collector.issue_token("ACME", "prod"));
    let credential = agent.credential();

    let reply = post(
        &collector,
        SNAPSHOTS,
        Some(&credential),
        None,
        b"{\"id\": nonsense".to_vec(),
    );
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.body["error"], "malformed_json");
    assert!(
        reply.body["message"].as_str().unwrap().contains("line 1"),
        "{reply:?}"
    );

    let mut snapshot = agent.collect();
    snapshot["collection_ms"] = "fast".into();
    let reply = post(
        &collector,
        SNAPSHOTS,
        Some(&credential),
        None,
        serde_json::to_vec(&snapshot).unwrap(),
    );
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(
        reply.body["message"].as_str().unwrap().contains("collection_ms"),
        "{reply:?}"
    );

    snapshot["collection_ms"] = 1.into();
    snapshot["schema_version"] = 99.into();
    let reply = post(
        &collector,
        SNAPSHOTS,
        Some(&credential),
        None,
        serde_json::to_vec(&snapshot).unwrap(),
    );
    assert_eq!(reply.status, 422, "{reply:?}");

    let reply = post(
        &collector,
        SNAPSHOTS,
        Some(&credential),
        Some("br"),
        b"{}".to_vec(),
    );
    assert_eq!(reply.status, 415, "{reply:?}");
    assert_eq!(collector.hosts()[0]["snapshots"], 0);
}

/// A few KiB of zstd that would inflate to 1 GiB: refused with 413, and the collector's peak memory
/// stays near its 16 MiB decompression limit instead of growing by the inflated size.
#[test]
fn zstd_bomb_gets_413_without_inflating() {
    let collector = Collector::start_with_demo_org();
    let agent = Agent::new();
    agent.enroll(&collector, &collector.issue_token("ACME", "prod"));

    // Concatenated zstd frames decode as the concatenation of their contents.
    let frame = zstd::encode_all(&vec![b' '; 8 << 20][..], 3).unwrap();
    let bomb: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 128).collect();
    assert!(bomb.len() < 256 << 10, "bomb is {} bytes", bomb.len());

    let before = peak_rss_bytes(collector.pid());
    let reply = post(
        &collector,
        SNAPSHOTS,
        Some(&agent.credential()),
        Some("zstd"),
        bomb,
    );
    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(reply.body["error"], "decompressed_too_large");
    let growth = peak_rss_bytes(collector.pid()).saturating_sub(before);
    assert!(
        growth < 96 << 20,
        "collector peak memory grew by {} MiB",
        growth >> 20
    );
}

#[test]
fn a_credential_cannot_post_for_another_host() {
    let collector = Collector::start_with_demo_org();
    let token = collector.issue_token("ACME", "prod");
    let (a, b) = (Agent::new(), Agent::new());
    a.enroll(&collector, &token);
    b.enroll(&collector, &token);
    let b_snapshot = serde_json::to_vec(&b.collect()).unwrap();
    let reply = post(&collector, SNAPSHOTS, Some(&a.credential()), None, b_snapshot);
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(collector.hosts().iter().all(|h| h["snapshots"] == 0));
}

#[test]
fn lapsed_org_is_refused_at_enrollment() {
    let collector = Collector::new(None);
    collector.seed_org("OLDCO", "2023-01-01", "2024-12-31");
    collector.env_add("OLDCO", "prod");
    let token = collector.issue_token("OLDCO", "prod");
    let collector = collector.start();
    let agent = Agent::new();
    let cert = collector.cert_path();
    let out = agent.run(&[
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &token,
        "--ca",
        cert.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lapsed") || stderr.contains("contract"),
        "{stderr}"
    );
    assert!(collector.hosts().is_empty());
}

#[test]
fn agent_refuses_an_untrusted_certificate() {
    let collector = Collector::start_with_demo_org();
    let token = collector.issue_token("ACME", "prod");
    let agent = Agent::new();
    let cmd = agent.command(&["enroll", "--collector", &collector.url(), "--token", &token]);
    let out = agent.run(&["enroll", "--collector", &collector.url(), "--token", &token]);
    assert!(!out.status.success(), "{}", describe(&cmd, &out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("certificate"), "{}", describe(&cmd, &out));
    assert!(collector.hosts().is_empty());
}

#[test]
fn send_with_collector_down_exits_tempfail_and_restart_keeps_everything() {
    let mut collector = Collector::start_with_demo_org();
    let agent = Agent::new();
    agent.enroll(&collector, &collector.issue_token("ACME", "prod"));
    agent.run_ok(&["send"]);
    let fingerprint = std::fs::read(collector.cert_path()).unwrap();

    collector.kill();
    let out = agent.run(&["send"]);
    assert_eq!(
        out.status.code(),
        Some(EX_TEMPFAIL),
        "{}",
        describe(&agent.command(&["send"]), &out)
    );

    collector.spawn();
    assert_eq!(
        std::fs::read(collector.cert_path()).unwrap(),
        fingerprint,
        "certificate must be reused"
    );
    // The snapshot spooled while the collector was down goes first, then the new one.
    agent.run_ok(&["send"]);
    assert_eq!(collector.hosts()[0]["snapshots"], 3);
}
