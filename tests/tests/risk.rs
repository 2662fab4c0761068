//! Issue 5 end to end: a fixture host's findings become queue entries with the tier's deadline, a
//! signed webhook for Priority Plus, and resolve when the host is fixed; a lapsed org's agent is
//! refused and keeps its spool; a mixed-tier org is served as Select.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callhome_e2e::{Agent, Collector, rpm_host, send_tree};

/// One request the receiver got: lower-cased headers and the body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on loopback: answers 200 to every POST and keeps what it got.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/callhome", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                sink.lock().unwrap().push(Received {
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Receiver { url, got }
    }

    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn parse_ts(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

const SECRET: &str = "e2e-webhook-secret-0123456789abcdef";

#[test]
fn priority_plus_critical_is_queued_alerted_and_resolved_when_fixed() {
    let receiver = Receiver::start();
    let collector = Collector::new(Some(&format!(
        "[webhook]\nurl = \"{}\"\nsecret_file = \"webhook.secret\"\n",
        receiver.url
    )));
    std::fs::write(collector.dir.path().join("webhook.secret"), SECRET).unwrap();
    collector.seed_org("ACME", "2026-01-01", "2027-12-31");
    collector.env_add("ACME", "prod");
    let token = collector.issue_token("ACME", "prod");
    let collector = collector.start();
    let agent = Agent::new();
    agent.enroll(&collector, &token);
    let trees = tempfile::tempdir().unwrap();

    let down = rpm_host(trees.path(), "down", "2026-11-20T09:00:00Z", true);
    send_tree(&agent, &collector, &down);

    let open = json(&collector.admin(&["finding", "list", "ACME", "--json", "--rule", "SVC-VDA-001"]));
    assert_eq!(open.as_array().unwrap().len(), 1, "{open:#}");
    let queue = json(&collector.admin(&["queue", "list", "--org", "ACME", "--json"]));
    let entries = queue.as_array().unwrap();
    assert_eq!(entries.len(), 1, "one critical, one entry: {queue:#}");
    let entry = &entries[0];
    assert_eq!(entry["rule"], "SVC-VDA-001");
    assert_eq!(entry["tier"], "priority-plus");
    let detected = parse_ts(entry["detected_at"].as_str().unwrap());
    let deadline = parse_ts(entry["response_deadline"].as_str().unwrap());
    assert_eq!(
        deadline - detected,
        time::Duration::minutes(10),
        "Priority Plus: < 10 min"
    );
    let restoration = parse_ts(entry["restoration_deadline"].as_str().unwrap());
    assert_eq!(restoration - detected, time::Duration::hours(4));

    // The alert: signed over timestamp and body with the configured secret.
    let got = receiver.wait_for(1, Duration::from_secs(15));
    assert_eq!(got.len(), 1, "one webhook call: {got:?}");
    let call = &got[0];
    assert_eq!(call.header("x-callhome-event"), Some("critical.opened"));
    let timestamp = call.header("x-callhome-timestamp").unwrap();
    let signature = call.header("x-callhome-signature").unwrap();
    let tag = signature.strip_prefix("sha256=").expect("sha256= prefix");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    ring::hmac::verify(
        &key,
        format!("{timestamp}.{}", call.body).as_bytes(),
        &hex_decode(tag),
    )
    .expect("the signature verifies with the shared secret");
    let body = json(&call.body);
    assert_eq!(body["rule"], "SVC-VDA-001");
    assert_eq!(body["queue_id"], entry["id"]);
    assert_eq!(body["org"], "ACME");
    assert_eq!(body["response_deadline"], entry["response_deadline"]);

    // Acknowledged by a TAM: who and when are kept.
    let id = entry["id"].to_string();
    collector.admin(&["queue", "ack", &id, "--by", "tam@example.com"]);
    let acked = json(&collector.admin(&["queue", "list", "--org", "ACME", "--json"]));
    assert_eq!(acked[0]["acknowledged_by"], "tam@example.com");

    // The next snapshot shows it fixed: the finding resolves and the entry closes.
    let fixed = rpm_host(trees.path(), "fixed", "2026-11-20T10:00:00Z", false);
    send_tree(&agent, &collector, &fixed);
    let open = json(&collector.admin(&["finding", "list", "ACME", "--json", "--rule", "SVC-VDA-001"]));
    assert!(open.as_array().unwrap().is_empty(), "{open:#}");
    let resolved = json(&collector.admin(&[
        "finding",
        "list",
        "ACME",
        "--json",
        "--rule",
        "SVC-VDA-001",
        "--state",
        "resolved",
    ]));
    assert_eq!(
        resolved[0]["resolved_at"].as_str().map(parse_ts),
        Some(parse_ts("2026-11-20T10:00:00Z"))
    );
    assert!(
        json(&collector.admin(&["queue", "list", "--org", "ACME", "--json"]))
            .as_array()
            .unwrap()
            .is_empty()
    );
    let all = json(&collector.admin(&["queue", "list", "--org", "ACME", "--all", "--json"]));
    assert_eq!(all[0]["close_reason"], "resolved");
    assert_eq!(
        receiver.wait_for(2, Duration::from_millis(500)).len(),
        1,
        "no second alert"
    );

    // Priority Plus is scored.
    let scores = json(&collector.admin(&["score", "show", "ACME", "--json"]));
    assert_eq!(scores["scored"], true, "{scores:#}");
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_mixed_tier_org_is_served_as_select() {
    let collector = Collector::new(None);
    collector.seed_org("MIXED", "2026-01-01", "2027-12-31");
    collector.admin(&[
        "contract",
        "add",
        "MIXED",
        "--product",
        "citrix-cloud",
        "--tier",
        "select",
        "--start",
        "2026-06-01",
        "--end",
        "2027-05-31",
    ]);
    collector.env_add("MIXED", "prod");
    let token = collector.issue_token("MIXED", "prod");
    let collector = collector.start();
    let agent = Agent::new();
    agent.enroll(&collector, &token);
    let trees = tempfile::tempdir().unwrap();
    let down = rpm_host(trees.path(), "down", "2026-11-20T09:00:00Z", true);
    send_tree(&agent, &collector, &down);

    let orgs = json(&collector.admin(&["org", "list", "--json"]));
    assert_eq!(orgs[0]["tier"], "select", "{orgs:#}");
    let open = json(&collector.admin(&["finding", "list", "MIXED", "--json", "--rule", "SVC-VDA-001"]));
    assert_eq!(
        open.as_array().unwrap().len(),
        1,
        "Select orgs see their findings"
    );
    let queue = json(&collector.admin(&["queue", "list", "--all", "--json"]));
    assert!(
        queue.as_array().unwrap().is_empty(),
        "no queue for Select: {queue:#}"
    );
    let scores = json(&collector.admin(&["score", "show", "MIXED", "--json"]));
    assert_eq!(scores["scored"], false);
    assert!(
        scores["environments"][0]["hosts"][0]["score"].is_null(),
        "{scores:#}"
    );
}

#[test]
fn a_lapsed_org_is_refused_with_403_and_its_agent_keeps_the_spool() {
    let collector = Collector::start_with_demo_org();
    let agent = Agent::with_config("[probes.updates]\nenabled = false\n");
    agent.enroll(&collector, &collector.issue_token("ACME", "prod"));
    // The contract runs out after enrollment (the admin commands cannot backdate one).
    let conn = rusqlite::Connection::open(collector.dir.path().join("callhome.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "UPDATE contracts SET start_date = '2024-01-01', end_date = '2025-12-31' WHERE org_id = 'ACME'",
        [],
    )
    .unwrap();
    drop(conn);

    let out = agent.run(&["send"]);
    assert_eq!(out.status.code(), Some(75), "spooled, not stored: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lapsed"), "the agent says why: {stderr}");
    let spool = json(&agent.run_ok(&["spool", "--json"]));
    assert_eq!(spool["depth"], 1, "kept in the spool: {spool:#}");
    assert!(collector.stored_ids().is_empty());
}
