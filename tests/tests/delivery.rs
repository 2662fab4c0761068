//! Delivery end to end (issue 4): the real `callhome-agent run` and `send` against the real collector
//! (or a fake one, to script its answers), on loopback. Every check counts snapshot ids: the ids the
//! agent logged as taken, spooled and acknowledged, against the ids in the collector's database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use callhome_e2e::{
    Agent, Collector, ConnectProxy, FAST_SCHEDULE, FakeCollector, cycles_in, describe, ids_logged, signal,
};

const EX_DATAERR: i32 = 65;
const EX_TEMPFAIL: i32 = 75;

/// An agent enrolled with a running collector.
fn enrolled(extra: &str) -> (Collector, Agent) {
    let collector = Collector::start_with_demo_org();
    let agent = Agent::with_config(&format!("{FAST_SCHEDULE}{extra}"));
    agent.enroll(&collector, &collector.issue_token("ACME", "prod"));
    (collector, agent)
}

/// Stops the daemon with SIGTERM and checks it stopped promptly and cleanly.
fn stop(daemon: &mut callhome_e2e::Daemon) {
    let (took, status) = daemon.terminate();
    assert!(
        status.success(),
        "agent exited with {status}\n{}",
        daemon.log_text()
    );
    assert!(took < Duration::from_secs(5), "agent took {took:?} to stop");
    assert!(
        daemon.log_text().contains("agent stopping"),
        "{}",
        daemon.log_text()
    );
}

/// Every id in `ids` once, no other.
fn assert_exactly_once(stored: &[String], expected: &BTreeSet<String>, what: &str) {
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(
        unique.len(),
        stored.len(),
        "{what}: a snapshot stored twice: {stored:?}"
    );
    let stored: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(&stored, expected, "{what}");
}

#[test]
fn outage_every_snapshot_is_stored_once_in_the_order_taken() {
    const N: usize = 4;
    let (mut collector, agent) = enrolled("");
    collector.kill();

    let mut daemon = agent.spawn_run();
    daemon.wait_until(Duration::from_secs(20), "N cycles spooled", |d| {
        d.cycles().len() >= N
    });
    let outage: Vec<String> = daemon.cycles()[..N].iter().map(|c| c.snapshot.clone()).collect();
    assert!(
        daemon.cycles()[..N].iter().all(|c| c.outcome == "spooled"),
        "{:?}",
        daemon.cycles()
    );

    collector.spawn();
    let t0 = Instant::now();
    daemon.wait_until(Duration::from_secs(10), "the outage's snapshots stored", |_| {
        let stored = collector.stored_ids();
        outage.iter().all(|id| stored.contains(id))
    });
    let recovered_in = t0.elapsed();
    stop(&mut daemon);

    // Everything the agent took is stored or still waits (a cycle may have run just before the
    // stop); nothing is stored twice, nothing foreign.
    let taken: Vec<String> = daemon.cycles().iter().map(|c| c.snapshot.clone()).collect();
    let waiting: BTreeSet<String> = agent.spool_json()["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect();
    let stored = collector.stored_ids();
    let expected: BTreeSet<String> = taken
        .iter()
        .filter(|id| !waiting.contains(*id))
        .cloned()
        .collect();
    assert_exactly_once(&stored, &expected, "stored after the outage");
    // In the order taken: the outage's first, oldest first, then the rest.
    let taken_and_stored: Vec<&String> = taken.iter().filter(|id| stored.contains(id)).collect();
    let stored_refs: Vec<&String> = stored.iter().collect();
    assert_eq!(stored_refs, taken_and_stored, "stored out of order");
    assert_eq!(&stored[..N], &outage[..]);
    assert!(
        recovered_in < Duration::from_secs(5),
        "took {recovered_in:?} to catch up"
    );
    let hosts = collector.hosts();
    assert_eq!(hosts[0]["snapshots"], stored.len());
}

#[test]
fn collector_killed_repeatedly_loses_nothing_and_stores_nothing_twice() {
    let (mut collector, agent) = enrolled("");
    let mut daemon = agent.spawn_run();
    daemon.wait_until(Duration::from_secs(10), "a first delivery", |d| {
        d.cycles().iter().any(|c| c.outcome == "delivered")
    });
    for round in 0..4u64 {
        // Kill at a different point of the cycle each time.
        std::thread::sleep(Duration::from_millis(300 + 250 * round));
        collector.kill();
        std::thread::sleep(Duration::from_millis(400 + 150 * round));
        collector.spawn();
    }
    let before = daemon.cycles().len();
    daemon.wait_until(
        Duration::from_secs(10),
        "a delivery after the last restart",
        |d| d.cycles()[before..].iter().any(|c| c.outcome == "delivered"),
    );
    stop(&mut daemon);

    let log = daemon.log_text();
    let acknowledged: BTreeSet<String> = ids_logged(&log, "delivered").into_iter().collect();
    let stored = collector.stored_ids();
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged but not stored: {missing:?}");

    // Flush what still waits, then every snapshot taken is stored exactly once.
    let sent = agent.run_ok(&["send"]);
    let last = sent.trim().strip_prefix("stored ").expect(&sent).to_string();
    let mut taken: BTreeSet<String> = cycles_in(&log).into_iter().map(|c| c.snapshot).collect();
    taken.insert(last);
    assert_exactly_once(&collector.stored_ids(), &taken, "after the collector crashes");
    assert!(agent.spool_files().is_empty(), "{:?}", agent.spool_files());
}

#[test]
fn agent_killed_repeatedly_even_mid_write_replays_nothing_corrupt_and_loses_nothing_spooled() {
    // Each spool write pauses half-way, so that a kill lands inside one.
    let (collector, agent) = enrolled("[spool]\nwrite_pause_ms = 300\n");
    let mut mid_write_kills = 0;
    for round in 0..8u64 {
        let mut daemon = agent.spawn_run();
        if round % 2 == 0 {
            // Aimed: as soon as a temporary spool file exists, the write is in progress.
            daemon.wait_until(Duration::from_secs(10), "a spool write in progress", |_| {
                agent.spool_files().iter().any(|f| f.starts_with(".tmp-"))
            });
        } else {
            // Anywhere: before, during or after a delivery.
            std::thread::sleep(Duration::from_millis(400 + 197 * round));
        }
        daemon.kill();
        if agent.spool_files().iter().any(|f| f.starts_with(".tmp-")) {
            mid_write_kills += 1;
        }
    }
    assert!(
        mid_write_kills >= 4,
        "only {mid_write_kills} kills landed mid-write"
    );

    // Restart: the daemon replays the spool first; then `send` flushes whatever is left.
    let mut daemon = agent.spawn_run();
    daemon.wait_until(Duration::from_secs(10), "a cycle after restart", |d| {
        !d.cycles().is_empty()
    });
    stop(&mut daemon);
    let sent = agent.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");

    let logs = agent.run_logs();
    let spooled: BTreeSet<String> = ids_logged(&logs, "spooled").into_iter().collect();
    let stored = collector.stored_ids();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a snapshot stored twice");
    let lost: Vec<&String> = spooled.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "spooled (write completed) but never delivered: {lost:?}"
    );
    // Nothing corrupt was met: no quarantine, no refusal, no temporary file left.
    let report = agent.spool_json();
    assert_eq!(report["quarantined_total"], 0, "{report:#}");
    assert!(agent.spool_files().is_empty(), "{:?}", agent.spool_files());
    assert!(!logs.contains("quarantined"), "{logs}");
    // Every stored snapshot is one the agent took (a torn one would have been refused, not stored).
    let taken: BTreeSet<String> = ids_logged(&logs, "cycle")
        .into_iter()
        .chain(spooled.iter().cloned())
        .chain(std::iter::once(sent.trim()["stored ".len()..].to_string()))
        .collect();
    assert!(stored.iter().all(|id| taken.contains(id)), "{stored:?}");
}

#[test]
fn full_spool_drops_the_oldest_and_the_next_snapshot_reports_how_many() {
    let (mut collector, agent) = enrolled("[spool]\nmax_files = 3\n");
    collector.kill();
    let mut daemon = agent.spawn_run();
    daemon.wait_until(Duration::from_secs(20), "6 cycles", |d| d.cycles().len() >= 6);
    stop(&mut daemon);
    let cycles = daemon.cycles();
    let ids: Vec<String> = cycles.iter().map(|c| c.snapshot.clone()).collect();
    let n = ids.len();

    // The newest 3 wait; the others were dropped, oldest first.
    let report = agent.spool_json();
    let waiting: Vec<String> = report["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(waiting, ids[n - 3..].to_vec(), "{report:#}");
    assert_eq!(report["dropped_unreported"], n - 3, "{report:#}");
    // Each cycle's snapshot reported the drops before it was taken: none for the first four.
    let dropped: Vec<u64> = cycles.iter().map(|c| c.dropped).collect();
    let expected: Vec<u64> = (0..n as u64).map(|i| i.saturating_sub(3)).collect();
    assert_eq!(dropped, expected, "{cycles:?}");

    // The collector is back: the next snapshot reports exactly how many were dropped.
    collector.spawn();
    let out = agent.run(&["send"]);
    assert!(
        out.status.success(),
        "{}",
        describe(&agent.command(&["send"]), &out)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let next = line.trim().strip_prefix("stored ").expect(&line).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let taken = stderr
        .lines()
        .find(|l| l.contains(" taken "))
        .expect("a `taken` line");
    assert_eq!(
        callhome_e2e::field(taken, "dropped"),
        Some(&*(n - 3).to_string()),
        "{taken}"
    );
    // Spooling `next` into the full spool dropped one more (the oldest), which `next`, taken
    // before, could not know: the snapshot after it reports that one.
    let mut expected_stored = ids[n - 2..].to_vec();
    expected_stored.push(next.clone());
    assert_eq!(collector.stored_ids(), expected_stored);
    // When the `agent` section is there (issue 3's probe), it carries the same count.
    let snapshots = collector.stored_snapshots();
    let agent_section = &snapshots.last().unwrap().1["sections"]["agent"];
    if let Some(count) = agent_section.get("dropped_since_last_delivery") {
        assert_eq!(count, n - 3, "{agent_section}");
    }
    let report = agent.spool_json();
    assert_eq!(report["dropped_unreported"], 1, "{report:#}");
    assert_eq!(report["dropped_total"], n - 2, "{report:#}");
    assert_eq!(report["depth"], 0, "{report:#}");
    let out = agent.run(&["send"]);
    assert!(
        out.status.success(),
        "{}",
        describe(&agent.command(&["send"]), &out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let taken = stderr
        .lines()
        .find(|l| l.contains(" taken "))
        .expect("a `taken` line");
    assert_eq!(callhome_e2e::field(taken, "dropped"), Some("1"), "{taken}");
    assert_eq!(agent.spool_json()["dropped_unreported"], 0);
}

#[test]
fn corrupt_spool_file_is_quarantined_and_the_rest_delivered() {
    let (mut collector, agent) = enrolled("");
    collector.kill();
    for _ in 0..3 {
        let out = agent.run(&["send"]);
        assert_eq!(
            out.status.code(),
            Some(EX_TEMPFAIL),
            "{}",
            describe(&agent.command(&["send"]), &out)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("spooled "));
    }
    let files: Vec<String> = agent.spool_files();
    assert_eq!(files.len(), 3, "{files:?}");
    let ids: Vec<String> = files
        .iter()
        .map(|f| f.trim_end_matches(".snap").to_string())
        .collect();
    // A bit flips in the middle one.
    let path = agent.state_dir().join("spool").join(&files[1]);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();

    let report = agent.spool_json();
    assert!(
        report["last_error"].as_str().unwrap().contains("cannot reach"),
        "{report:#}"
    );

    collector.spawn();
    let sent = agent.run_ok(&["send"]);
    let next = sent.trim().strip_prefix("stored ").expect(&sent).to_string();
    assert_eq!(collector.stored_ids(), vec![ids[0].clone(), ids[2].clone(), next]);
    let report = agent.spool_json();
    assert_eq!(report["depth"], 0, "{report:#}");
    assert_eq!(report["quarantined_total"], 1, "{report:#}");
    let q = &report["quarantine"][0];
    assert_eq!(q["file"], files[1], "{report:#}");
    assert!(
        q["reason"].as_str().unwrap().contains("checksum mismatch"),
        "{report:#}"
    );
    assert!(report["last_error"].is_null(), "{report:#}");
    // The human form says the same.
    let text = agent.run_ok(&["spool"]);
    assert!(
        text.contains("quarantined: 1") && text.contains("checksum mismatch"),
        "{text}"
    );
}

#[test]
fn a_429_storm_with_retry_after_is_honoured() {
    let fake = FakeCollector::start(|_| {
        (
            429,
            vec![("retry-after".into(), "2".into())],
            r#"{"error":"rate_limited","message":"ingest queue full"}"#.into(),
        )
    });
    let agent = Agent::with_config(FAST_SCHEDULE);
    agent.write_enrollment(&fake.url(), &fake.ca_path);
    let mut daemon = agent.spawn_run();
    std::thread::sleep(Duration::from_millis(6500));
    stop(&mut daemon);

    let seen = fake.seen();
    assert!(
        seen.iter()
            .all(|r| r.method == "POST" && r.path == "/v1/snapshots"),
        "{seen:?}"
    );
    // A snapshot a second and a 50 ms backoff would mean dozens of requests; Retry-After: 2 allows
    // one every 2 s (plus up to a tenth of jitter): 3 or 4 in 6.5 s.
    assert!((3..=4).contains(&seen.len()), "{} requests: {seen:?}", seen.len());
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(1950), "requests {gap:?} apart");
    }
    // Every snapshot taken still waits.
    let cycles = daemon.cycles();
    assert!(cycles.len() >= 5, "{cycles:?}");
    assert_eq!(agent.spool_json()["depth"], cycles.len(), "{:?}", cycles);
    assert!(
        daemon.log_text().contains("retry_after_secs=2"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn refused_snapshots_are_quarantined_with_the_collectors_message_and_401_keeps_the_spool() {
    let fake = FakeCollector::start(|n| match n {
        0 => (
            422,
            vec![],
            r#"{"error":"unsupported_schema_version","message":"schema_version 1 is not supported"}"#.into(),
        ),
        _ => (
            401,
            vec![],
            r#"{"error":"unknown_credential","message":"unknown or revoked credential"}"#.into(),
        ),
    });
    let agent = Agent::with_config(FAST_SCHEDULE);
    agent.write_enrollment(&fake.url(), &fake.ca_path);

    let out = agent.run(&["send"]);
    assert_eq!(
        out.status.code(),
        Some(EX_DATAERR),
        "{}",
        describe(&agent.command(&["send"]), &out)
    );
    let report = agent.spool_json();
    assert_eq!(report["depth"], 0, "{report:#}");
    let reason = report["quarantine"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("422") && reason.contains("schema_version 1 is not supported"),
        "{reason}"
    );

    let out = agent.run(&["send"]);
    assert_eq!(
        out.status.code(),
        Some(EX_TEMPFAIL),
        "{}",
        describe(&agent.command(&["send"]), &out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("re-enroll"),
        "{out:?}"
    );
    let report = agent.spool_json();
    assert_eq!(report["depth"], 1, "{report:#}");
    assert!(
        report["last_error"].as_str().unwrap().contains("401"),
        "{report:#}"
    );

    // The daemon does not hammer a collector that refuses the credential: one try per run.
    let mut daemon = agent.spawn_run();
    std::thread::sleep(Duration::from_millis(2500));
    stop(&mut daemon);
    let tries = fake.seen().len() - 2;
    let runs = daemon.cycles().len();
    assert!(tries <= runs + 1, "{tries} requests for {runs} runs");
    assert!(daemon.log_text().contains("re-enroll"), "{}", daemon.log_text());
}

#[test]
fn delivery_through_an_https_proxy_from_config_or_environment() {
    let collector = Collector::start_with_demo_org();
    let proxy = ConnectProxy::start();
    let agent = Agent::with_config(&format!("[collector]\nproxy = \"{}\"\n", proxy.url()));
    agent.enroll(&collector, &collector.issue_token("ACME", "prod"));
    agent.run_ok(&["send"]);
    // One tunnel for `enroll`, one for `send`, both to the collector.
    let target = collector.addr.to_string();
    assert_eq!(proxy.tunnels(), vec![target.clone(), target]);

    // HTTPS_PROXY from the environment, and NO_PROXY bypassing it.
    let plain = Agent::new();
    plain.enroll(&collector, &collector.issue_token("ACME", "prod"));
    let before = proxy.tunnels().len();
    let mut cmd = plain.command(&["send"]);
    cmd.env("HTTPS_PROXY", proxy.url())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    assert_eq!(proxy.tunnels().len(), before + 1);
    let mut cmd = plain.command(&["send"]);
    cmd.env("HTTPS_PROXY", proxy.url()).env("NO_PROXY", "127.0.0.1");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    assert_eq!(proxy.tunnels().len(), before + 1, "NO_PROXY was not honoured");
    assert_eq!(
        collector
            .hosts()
            .iter()
            .map(|h| h["snapshots"].as_u64().unwrap())
            .sum::<u64>(),
        3
    );
}

#[test]
fn sigint_stops_the_daemon_too_and_a_restart_replays_first() {
    let (mut collector, agent) = enrolled("");
    collector.kill();
    let mut daemon = agent.spawn_run();
    daemon.wait_until(Duration::from_secs(10), "2 cycles", |d| d.cycles().len() >= 2);
    signal(daemon.pid(), "INT");
    daemon.wait_until(Duration::from_secs(5), "the stop", |d| {
        d.log_text().contains("agent stopping")
    });
    daemon.kill();
    let waiting = agent.spool_files().len();
    assert!(waiting >= 2);

    collector.spawn();
    let mut daemon = agent.spawn_run();
    daemon.wait_until(Duration::from_secs(5), "the replay", |_| {
        collector.stored_ids().len() >= waiting
    });
    // The replay came before the first cycle of this run delivered anything new.
    let log = daemon.log_text();
    let started = log.find("agent started").unwrap();
    let first_delivery = log.find(" delivered ").unwrap();
    assert!(first_delivery > started);
    stop(&mut daemon);
}
