//! Two collector replicas on one PostgreSQL database behave as one: a snapshot posted to both at
//! once is stored once, and each background job runs once per period across the two.

use std::collections::BTreeMap;
use std::time::Duration;

use callhome_e2e::{Agent, Collector, PgDatabase, post};

#[test]
fn two_replicas_store_a_racing_duplicate_once_and_run_each_job_once_per_period() {
    let db = PgDatabase::create();
    let config = format!(
        "database_url = \"{}\"\n[jobs]\ninterval_secs = 1\n[limits]\nagent_posts_per_minute = 1000\nagent_posts_burst = 1000\n",
        db.url
    );
    let a = Collector::new(Some(&config));
    a.seed_org("ACME", "2026-01-01", "2027-12-31");
    a.env_add("ACME", "prod");
    let token = a.issue_token("ACME", "prod");
    let a = a.start();
    let b = Collector::new(Some(&config)).start();

    // Enrolled through replica a; its credential works on b: the state is the database's.
    let agent = Agent::new();
    agent.enroll(&a, &token);
    let credential = agent.credential();
    let mut snapshot = agent.collect();

    const RACES: usize = 10;
    for _ in 0..RACES {
        snapshot["id"] = serde_json::Value::String(uuid::Uuid::now_v7().to_string());
        let body = serde_json::to_vec(&snapshot).unwrap();
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let posts: Vec<_> = [&a, &b]
                .into_iter()
                .map(|replica| {
                    let (body, credential) = (body.clone(), credential.clone());
                    s.spawn(move || post(replica, "/v1/snapshots", Some(&credential), None, body).status)
                })
                .collect();
            posts.into_iter().map(|p| p.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![200, 201], "one stored, one duplicate: {statuses:?}");
    }
    let stored = db.query("SELECT COUNT(*) FROM snapshots");
    assert_eq!(stored.trim(), RACES.to_string());

    // Jobs every second on both replicas for a few seconds.
    std::thread::sleep(Duration::from_secs(5));
    let runs = db.query("SELECT name, period, holder FROM job_runs ORDER BY id");
    let mut per_period: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in runs.lines() {
        let mut cols = line.split('|');
        let (name, period, holder) = (cols.next().unwrap(), cols.next().unwrap(), cols.next().unwrap());
        per_period
            .entry((name.to_owned(), period.to_owned()))
            .or_default()
            .push(holder.to_owned());
    }
    for ((name, period), holders) in &per_period {
        assert_eq!(
            holders.len(),
            1,
            "{name} ran more than once in period {period}: {holders:?}"
        );
    }
    let judgement_periods = per_period.keys().filter(|(name, _)| name == "judgements").count();
    assert!(judgement_periods >= 3, "judgements ran every second: {runs}");
    // The same runs, as an operator sees them.
    let listed: serde_json::Value =
        serde_json::from_str(&b.admin(&["jobs", "runs", "--name", "judgements"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), judgement_periods.min(50));
}
