//! Collector back-pressure with the real binary, counted: a full ingest queue answers 429 with
//! `Retry-After` (never a 5xx) and every snapshot that got a 2xx is in the store; SIGTERM drains the
//! posts in flight, answers late requests 503 `shutting_down`, exits 0, and loses no 2xx.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use callhome_e2e::{Agent, Collector, RawHttps, https_client, post, runtime};
use serde_json::Value;
use uuid::Uuid;

const SNAPSHOTS: &str = "/v1/snapshots";
/// These tests flood from one credential and one address on purpose, to reach the ingest queue's
/// limit; the per-credential and per-address rate limits (tested in `limits.rs`) stay out of the way.
const NO_RATE_LIMITS: &str =
    "agent_posts_per_minute = 1000000\nagent_posts_burst = 1000000\nrequests_per_minute_per_ip = 1000000\n";

/// A collector with the demo org and `config`, one enrolled agent, and a snapshot of this host to send
/// under fresh ids.
struct Setup {
    collector: Collector,
    credential: String,
    template: Value,
    _agent: Agent,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let collector = Collector::new(Some(config));
        collector.seed_org("ACME", "2026-01-01", "2027-12-31");
        collector.env_add("ACME", "prod");
        let collector = collector.start();
        let agent = Agent::new();
        agent.enroll(&collector, &collector.issue_token("ACME", "prod"));
        Setup {
            template: agent.collect(),
            credential: agent.credential(),
            collector,
            _agent: agent,
        }
    }

    /// The host's snapshot under a new id: (id, JSON body).
    fn fresh(&self) -> (String, Vec<u8>) {
        fresh(&self.template)
    }

    fn stored(&self) -> i64 {
        let hosts = self.collector.hosts();
        assert_eq!(hosts.len(), 1, "{hosts:?}");
        hosts[0]["snapshots"].as_i64().unwrap()
    }

    /// The log lines that contain `needle`.
    fn log_count(&self, needle: &str) -> usize {
        self.collector
            .log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn wait_for_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log_count(needle) < count {
            assert!(
                Instant::now() < deadline,
                "no {count} log lines with {needle:?}\n{}",
                self.collector.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn fresh(template: &Value) -> (String, Vec<u8>) {
    let mut snapshot = template.clone();
    let id = Uuid::now_v7().to_string();
    snapshot["id"] = Value::String(id.clone());
    (id, serde_json::to_vec(&snapshot).unwrap())
}

/// What one post got: an HTTP answer, or no answer at all.
#[derive(Debug, Clone)]
enum Outcome {
    Answer {
        status: u16,
        retry_after: Option<String>,
        error: Option<String>,
    },
    NoAnswer(String),
}

impl Outcome {
    fn is_2xx(&self) -> bool {
        matches!(
            self,
            Outcome::Answer {
                status: 200..=299,
                ..
            }
        )
    }
}

async fn post_async(client: &reqwest::Client, url: &str, credential: &str, body: Vec<u8>) -> Outcome {
    let sent = client
        .post(url)
        .bearer_auth(credential)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => return Outcome::NoAnswer(format!("{e:?}")),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let error = match response.bytes().await {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned)),
        Err(e) => return Outcome::NoAnswer(format!("body: {e:?}")),
    };
    Outcome::Answer {
        status,
        retry_after,
        error,
    }
}

/// Concurrent posters on one runtime, whose client keeps its connections from batch to batch.
struct Poster {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    url: String,
    credential: String,
}

impl Poster {
    fn new(setup: &Setup) -> Poster {
        let rt = runtime();
        let cert = setup.collector.cert_path();
        // reqwest's client needs a runtime to be built in.
        let client = rt.block_on(async { https_client(&cert) });
        Poster {
            rt,
            client,
            url: format!("{}{SNAPSHOTS}", setup.collector.url()),
            credential: setup.credential.clone(),
        }
    }

    /// Posts every `(id, body)` at once, each on its own connection if need be; the outcomes by id.
    fn post_all(&self, batch: Vec<(String, Vec<u8>)>) -> Vec<(String, Outcome)> {
        self.rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for (id, body) in batch {
                let (client, url, credential) =
                    (self.client.clone(), self.url.clone(), self.credential.clone());
                tasks.spawn(async move { (id, post_async(&client, &url, &credential, body).await) });
            }
            let mut outcomes = Vec::new();
            while let Some(done) = tasks.join_next().await {
                outcomes.push(done.unwrap());
            }
            outcomes
        })
    }
}

/// The one legal refusal of a full queue: 429 `too_many_requests` with `Retry-After` in
/// `base..=base + base / 2` (the collector's jitter).
fn assert_too_many_requests(id: &str, outcome: &Outcome, base: u64) {
    let Outcome::Answer {
        status: 429,
        retry_after,
        error,
    } = outcome
    else {
        panic!("{id}: expected 429, got {outcome:?}");
    };
    assert_eq!(error.as_deref(), Some("too_many_requests"), "{id}");
    let secs: u64 = retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("{id}: 429 without Retry-After"))
        .parse()
        .unwrap();
    assert!(
        (base..=base + base / 2).contains(&secs),
        "{id}: Retry-After {secs}"
    );
}

#[test]
fn a_full_ingest_queue_answers_429_with_retry_after_and_every_2xx_is_stored() {
    let setup = Setup::new(&format!(
        "[limits]\nmax_inflight_snapshots = 2\nretry_after_secs = 2\n{NO_RATE_LIMITS}"
    ));
    let poster = Poster::new(&setup);
    let mut first_answer: BTreeMap<String, u16> = BTreeMap::new();
    let mut refused = 0usize;

    // Two posts whose bodies have not arrived fill the queue (a permit is held from admission on).
    let mut held = Vec::new();
    for n in 1..=2 {
        let (id, body) = setup.fresh();
        let mut conn = RawHttps::connect(&setup.collector);
        conn.send(RawHttps::snapshot_head(&setup.credential, body.len()).as_bytes());
        conn.send(&body[..body.len() / 2]);
        setup.wait_for_log("snapshot post admitted", n);
        held.push((id, body, conn));
    }

    // Full: every post is refused before its body is read, each with a Retry-After.
    let burst: Vec<_> = (0..40).map(|_| setup.fresh()).collect();
    let mut pending: Vec<_> = burst.clone();
    for (id, outcome) in poster.post_all(burst) {
        assert_too_many_requests(&id, &outcome, 2);
        refused += 1;
    }
    assert_eq!(setup.stored(), 0);

    // The held posts complete and are stored.
    for (id, body, mut conn) in held {
        conn.send(&body[body.len() / 2..]);
        let reply = conn.read_reply();
        assert_eq!(reply.status, 201, "{reply:?}");
        first_answer.insert(id, 201);
    }

    // A storm: the refused ones and 40 new ones, all at once, again and again until all are in.
    // Only 201 and 429 are legal answers; never a 5xx, never a lost connection.
    pending.extend((0..40).map(|_| setup.fresh()));
    let total = pending.len() + first_answer.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut rounds = 0;
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} snapshots never admitted",
            pending.len()
        );
        rounds += 1;
        let bodies: BTreeMap<String, Vec<u8>> = pending.drain(..).collect();
        for (id, outcome) in poster.post_all(bodies.clone().into_iter().collect()) {
            match &outcome {
                Outcome::Answer { status: 201, .. } => {
                    assert!(
                        first_answer.insert(id.clone(), 201).is_none(),
                        "{id} stored twice"
                    );
                }
                Outcome::Answer { status: 429, .. } => {
                    assert_too_many_requests(&id, &outcome, 2);
                    refused += 1;
                    pending.push((id.clone(), bodies[&id].clone()));
                }
                other => panic!("{id}: only 201 or 429 may answer a post, got {other:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{total} snapshots stored in {rounds} rounds, {refused} posts refused with 429");

    // Every snapshot that got its 2xx is in the store, once.
    assert_eq!(first_answer.len(), total);
    assert_eq!(setup.stored(), i64::try_from(total).unwrap());
    // The refusals are in the log as a warning, summarised rather than one line each.
    let warnings = setup.log_count("shedding load");
    assert!(
        (1..=13).contains(&warnings),
        "{warnings} shedding-load warnings for {refused} refusals"
    );
}

#[test]
fn sigterm_drains_in_flight_posts_exits_0_and_every_2xx_is_stored() {
    let mut setup = Setup::new(&format!(
        "[limits]\nshutdown_drain_secs = 10\nretry_after_secs = 2\n{NO_RATE_LIMITS}"
    ));

    // In flight at SIGTERM: a post whose body is half sent.
    let (held_id, held_body) = setup.fresh();
    let mut held = RawHttps::connect(&setup.collector);
    held.send(RawHttps::snapshot_head(&setup.credential, held_body.len()).as_bytes());
    held.send(&held_body[..held_body.len() / 2]);
    setup.wait_for_log("snapshot post admitted", 1);
    // A burst of posts from 8 clients that keep sending until they get no 2xx.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let burst = {
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        let url = format!("{}{SNAPSHOTS}", setup.collector.url());
        let cert = setup.collector.cert_path();
        let credential = setup.credential.clone();
        let template = setup.template.clone();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let client = https_client(&cert);
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..8 {
                    let (client, url, credential) = (client.clone(), url.clone(), credential.clone());
                    let (stop, answered, template) =
                        (Arc::clone(&stop), Arc::clone(&answered), template.clone());
                    tasks.spawn(async move {
                        let mut outcomes = Vec::new();
                        while !stop.load(Ordering::SeqCst) {
                            let (id, body) = fresh(&template);
                            let outcome = post_async(&client, &url, &credential, body).await;
                            let go_on = outcome.is_2xx();
                            outcomes.push((id, outcome));
                            if !go_on {
                                break;
                            }
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        outcomes
                    });
                }
                let mut all = Vec::new();
                while let Some(done) = tasks.join_next().await {
                    all.extend(done.unwrap());
                }
                all
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < 20 {
        assert!(Instant::now() < deadline, "the burst got no 20 answers");
        std::thread::sleep(Duration::from_millis(10));
    }

    // Requests whose first bytes arrived before SIGTERM and the rest after. (A connection that is idle
    // at SIGTERM, or has not sent a byte yet, is closed at once: nothing of it was processed.)
    let (late_id, late_body) = setup.fresh();
    let late_head = RawHttps::snapshot_head(&setup.credential, late_body.len());
    let (late_head_start, late_head_rest) = late_head.split_at(20);
    let mut late_post = RawHttps::connect(&setup.collector);
    late_post.send(late_head_start.as_bytes());
    let mut late_ready = RawHttps::connect(&setup.collector);
    late_ready.send(b"GET /readyz HTTP/1.1\r\n");
    // Time for the collector to read those bytes.
    std::thread::sleep(Duration::from_millis(300));

    setup.collector.signal_term();
    let signalled = Instant::now();
    setup.wait_for_log("shutting down: no new connections", 1);
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = burst.join().unwrap();
    assert!(
        setup.collector.is_running(),
        "the collector must wait for the post in flight"
    );
    // New connections are refused; a request that had begun to arrive gets 503 `shutting_down`.
    let refused = std::net::TcpStream::connect(setup.collector.addr);
    assert!(refused.is_err(), "the listener must be closed while draining");
    late_post.send(late_head_rest.as_bytes());
    late_post.send(&late_body);
    let reply = late_post.read_reply();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.body["error"], "shutting_down");
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((2..=3).contains(&retry_after), "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"));
    late_ready.send(b"host: collector\r\n\r\n");
    let reply = late_ready.read_reply();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.body["error"], "shutting_down");
    outcomes.push((
        late_id,
        Outcome::Answer {
            status: 503,
            retry_after: Some(retry_after.to_string()),
            error: Some("shutting_down".into()),
        },
    ));

    // The post in flight completes with its 2xx, then the collector exits 0 by itself.
    held.send(&held_body[held_body.len() / 2..]);
    let reply = held.read_reply();
    assert_eq!(reply.status, 201, "{reply:?}");
    outcomes.push((
        held_id,
        Outcome::Answer {
            status: 201,
            retry_after: None,
            error: None,
        },
    ));
    let status = setup
        .collector
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no exit 5 s after the drain\n{}", setup.collector.log_text()));
    assert!(status.success(), "exit status {status}");
    let no_answer: Vec<&str> = outcomes
        .iter()
        .filter_map(|(_, o)| match o {
            Outcome::NoAnswer(why) => Some(why.as_str()),
            Outcome::Answer { .. } => None,
        })
        .collect();
    eprintln!(
        "exited {:?} after SIGTERM; {} posts, {} without an answer (first: {:?})",
        signalled.elapsed(),
        outcomes.len(),
        no_answer.len(),
        no_answer.first()
    );
    let log = setup.collector.log_text();
    assert!(log.contains("database closed"), "{log}");
    // Closed cleanly: SQLite folds the WAL back into the database and removes it on the last close.
    assert!(!setup.collector.dir.path().join("callhome.db-wal").exists());

    // During the burst: 2xx, 503 `shutting_down`, or no answer (connection refused or closed), never
    // another 5xx or a 4xx.
    for (id, outcome) in &outcomes {
        if let Outcome::Answer { status, error, .. } = outcome {
            let ok =
                (200..300).contains(status) || (*status == 503 && error.as_deref() == Some("shutting_down"));
            assert!(ok, "{id}: {outcome:?}");
        }
    }

    // After a restart, every snapshot that got a 2xx is there (a replay is a duplicate); the others are
    // stored by their replay, or were already (committed, but the answer was lost with the connection).
    setup.collector.spawn();
    let mut two_xx = 0i64;
    for (id, outcome) in &outcomes {
        let mut snapshot = setup.template.clone();
        snapshot["id"] = Value::String(id.clone());
        let reply = post(
            &setup.collector,
            SNAPSHOTS,
            Some(&setup.credential),
            None,
            serde_json::to_vec(&snapshot).unwrap(),
        );
        if outcome.is_2xx() {
            two_xx += 1;
            assert_eq!(reply.status, 200, "{id} got a 2xx but is not stored: {reply:?}");
            assert_eq!(reply.body["status"], "duplicate");
        } else {
            assert!([200, 201].contains(&reply.status), "{id}: {reply:?}");
        }
    }
    assert!(two_xx >= 21, "{two_xx} posts got a 2xx");
    assert_eq!(setup.stored(), i64::try_from(outcomes.len()).unwrap());
}
