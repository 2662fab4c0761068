//! Findings lifecycle, queue, suppressions, scores and jobs, against a real SQLite file.

use callhome_shared::rules::testing::snapshot_with;
use callhome_shared::rules::{Finding, HOST_RULES, Hit, RuleInfo, rule_info};
use callhome_shared::sections::TimesyncSection;
use callhome_shared::{HostRole, Snapshot};
use time::Duration as TimeDuration;
use time::macros::datetime;

use super::jobs::JobSettings;
use super::risk::{FindingFilter, FindingState};
use super::tests::snapshot_judged;
use super::*;

const T0: OffsetDateTime = datetime!(2026-11-20 09:00:00 UTC);

fn info(id: &str) -> &'static RuleInfo {
    rule_info(id).unwrap_or_else(|| panic!("rule {id} not in the catalog"))
}

/// A critical host rule and a non-critical one from the catalog, whatever its content.
fn critical_rule() -> &'static RuleInfo {
    HOST_RULES
        .iter()
        .map(|r| &r.info)
        .find(|r| r.severity == Severity::Critical)
        .expect("the catalog has a critical host rule")
}

fn finding(info: &RuleInfo, subject: &str) -> Finding {
    let mut hit = Hit::about(subject);
    for key in info.evidence {
        hit = hit.with(key, 1);
    }
    Finding::new(info, hit)
}

fn low_finding() -> Finding {
    let mut f = finding(critical_rule(), "");
    f.rule = "TEST-LOW-001".to_owned();
    f.severity = Severity::Low;
    f
}

use callhome_shared::rules::Severity;

struct Org {
    _dir: tempfile::TempDir,
    store: Store,
    agent: AgentIdentity,
}

/// An org with the given active contracts, one environment and one enrolled host.
async fn org_with(tiers: &[Tier]) -> Org {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(dir.path());
    let now = OffsetDateTime::now_utc();
    let today = now.date();
    store
        .add_org("ORG-1", "Example Corp", &Actor::cli(), now)
        .unwrap();
    for (i, tier) in tiers.iter().enumerate() {
        store
            .add_contract(
                "ORG-1",
                &format!("line{i}"),
                *tier,
                today - TimeDuration::days(100),
                today + TimeDuration::days(600),
                &Actor::cli(),
                now,
            )
            .unwrap();
    }
    store.add_environment("ORG-1", "prod", now).unwrap();
    let token = store
        .issue_token("ORG-1", "prod", TimeDuration::days(30), &Actor::cli(), now)
        .unwrap();
    let host_id = Uuid::now_v7();
    let enrolled = store
        .enroll(
            EnrollRequest {
                token: token.token.expose().to_owned(),
                host_id,
                hostname: "vda01".to_owned(),
                role: HostRole::Vda,
                agent_version: "0.1.0".to_owned(),
            },
            now,
        )
        .await
        .unwrap();
    let agent = match store
        .authenticate_agent(enrolled.credential.expose().to_owned(), today)
        .await
        .unwrap()
    {
        Authentication::Agent(a) => a,
        other => panic!("{other:?}"),
    };
    Org {
        _dir: dir,
        store,
        agent,
    }
}

impl Org {
    async fn send(&self, at: OffsetDateTime, findings: Vec<Finding>, now: OffsetDateTime) {
        self.store
            .insert_snapshot(
                self.agent.clone(),
                snapshot_judged(Uuid::now_v7(), at, findings),
                now,
            )
            .await
            .unwrap();
    }

    fn open(&self, now: OffsetDateTime) -> Vec<risk::FindingRow> {
        self.store
            .list_findings("ORG-1", &FindingFilter::default(), now)
            .unwrap()
    }

    fn host_score(&self) -> Option<f64> {
        self.store
            .lock()
            .query_row(
                "SELECT score FROM hosts WHERE host_id = ?1",
                [self.agent.host_id.to_string()],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.store.lock().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

#[tokio::test]
async fn findings_open_update_and_resolve_with_the_snapshots() {
    let org = org_with(&[Tier::PriorityPlus]).await;
    let crit = finding(critical_rule(), "");
    let low = low_finding();
    let now = T0 + TimeDuration::minutes(1);
    org.send(T0, vec![crit.clone(), low.clone()], now).await;
    let open = org.open(now);
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].rule, crit.rule, "most severe first");
    assert_eq!(
        open[0].first_seen,
        ts(T0),
        "first seen: when observed on the host"
    );
    assert_eq!(
        open[0].detected_at,
        ts(now),
        "detected: when the collector learned it"
    );

    // Priority Plus: one queue entry, deadline 10 minutes after detection, 4 h restoration, one alert.
    let queue = org.store.list_queue(Some("ORG-1"), false, now).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].response_deadline, ts(now + TimeDuration::minutes(10)));
    assert_eq!(
        queue[0].restoration_deadline.as_deref(),
        Some(ts(now + TimeDuration::hours(4))).as_deref()
    );
    assert!(!queue[0].overdue);
    assert_eq!(org.count("SELECT COUNT(*) FROM webhook_outbox"), 1);
    let body: String = org
        .store
        .lock()
        .query_row("SELECT body FROM webhook_outbox", [], |r| r.get(0))
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["event"], "critical.opened");
    assert_eq!(body["rule"], crit.rule.as_str());
    assert_eq!(body["hostname"], "vda01");
    let scored = org.host_score().unwrap();
    assert!(scored > 0.0);

    // Later: the critical is gone, the low one stays.
    let later = now + TimeDuration::hours(1);
    org.send(T0 + TimeDuration::hours(1), vec![low.clone()], later)
        .await;
    let open = org.open(later);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].rule, low.rule);
    let all = org.store.list_queue(Some("ORG-1"), true, later).unwrap();
    assert_eq!(all[0].close_reason.as_deref(), Some("resolved"));
    assert!(org.host_score().unwrap() < scored);
    let resolved = org
        .store
        .list_findings(
            "ORG-1",
            &FindingFilter {
                state: FindingState::Resolved,
                ..Default::default()
            },
            later,
        )
        .unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].resolved_at, Some(ts(T0 + TimeDuration::hours(1))));

    // An older snapshot replayed from a spool does not reopen what a newer one resolved.
    org.send(T0 + TimeDuration::minutes(30), vec![crit.clone()], later)
        .await;
    assert_eq!(org.open(later).len(), 1);
    assert_eq!(
        org.count("SELECT COUNT(*) FROM trend_points"),
        3,
        "its trend point is kept"
    );

    // It comes back: a new finding, and a new queue entry.
    org.send(
        T0 + TimeDuration::hours(2),
        vec![crit.clone(), low.clone()],
        later,
    )
    .await;
    assert_eq!(org.open(later).len(), 2);
    assert_eq!(org.count("SELECT COUNT(*) FROM findings"), 3);
    assert_eq!(
        org.store.list_queue(Some("ORG-1"), false, later).unwrap().len(),
        1
    );
}

#[tokio::test]
async fn priority_deadline_is_fifteen_minutes_and_select_gets_no_queue_nor_score() {
    let org = org_with(&[Tier::Priority]).await;
    let now = T0 + TimeDuration::minutes(1);
    org.send(T0, vec![finding(critical_rule(), "")], now).await;
    let queue = org.store.list_queue(None, false, now).unwrap();
    assert_eq!(queue[0].response_deadline, ts(now + TimeDuration::minutes(15)));
    assert_eq!(
        queue[0].restoration_deadline,
        Some(ts(now + TimeDuration::hours(6)))
    );
    assert_eq!(
        org.count("SELECT COUNT(*) FROM webhook_outbox"),
        0,
        "alerts are for Priority Plus"
    );
    let overdue = org
        .store
        .list_queue(None, false, now + TimeDuration::minutes(16))
        .unwrap();
    assert!(overdue[0].overdue);

    // A mixed-tier org (Priority Plus and Select, both active) is served as Select.
    let mixed = org_with(&[Tier::PriorityPlus, Tier::Select]).await;
    assert_eq!(mixed.agent.tier, Some(Tier::Select));
    mixed.send(T0, vec![finding(critical_rule(), "")], now).await;
    assert_eq!(mixed.open(now).len(), 1, "Select orgs still get findings");
    assert!(mixed.store.list_queue(None, true, now).unwrap().is_empty());
    assert_eq!(mixed.host_score(), None);
    assert_eq!(mixed.count("SELECT COUNT(*) FROM score_history"), 0);
    let scores = mixed.store.org_scores("ORG-1", now).unwrap();
    assert!(!scores.scored);
}

#[tokio::test]
async fn suppression_silences_queue_and_score_and_its_end_requeues() {
    let org = org_with(&[Tier::PriorityPlus]).await;
    let crit = finding(critical_rule(), "");
    let now = OffsetDateTime::now_utc();
    org.send(now - TimeDuration::minutes(5), vec![crit.clone()], now)
        .await;
    assert!(org.host_score().unwrap() > 0.0);

    let s = org
        .store
        .add_suppression(
            &NewSuppression {
                org: "ORG-1".to_owned(),
                environment: Some("prod".to_owned()),
                host: Some(org.agent.host_id),
                rule: crit.rule.clone(),
                reason: "known, fix scheduled".to_owned(),
                author: "tam@example.com".to_owned(),
                expires_at: now + TimeDuration::days(7),
            },
            &Actor::cli(),
            now,
        )
        .unwrap();
    assert!(s.active);
    assert_eq!(
        org.host_score(),
        Some(0.0),
        "suppressed findings count in no score"
    );
    assert!(org.store.list_queue(None, false, now).unwrap().is_empty());
    let listed = org.open(now);
    assert!(listed[0].suppressed, "still visible, marked suppressed");

    // Still there in the next snapshot: no new entry while suppressed.
    org.send(now - TimeDuration::minutes(1), vec![crit.clone()], now)
        .await;
    assert!(org.store.list_queue(None, false, now).unwrap().is_empty());

    assert!(
        org.store
            .end_suppression(s.id, "tam@example.com", &Actor::cli(), now)
            .unwrap()
    );
    assert!(
        !org.store
            .end_suppression(s.id, "tam@example.com", &Actor::cli(), now)
            .unwrap()
    );
    assert!(org.host_score().unwrap() > 0.0);
    org.send(now, vec![crit.clone()], now).await;
    assert_eq!(
        org.store.list_queue(None, false, now).unwrap().len(),
        1,
        "requeued"
    );

    // Refusals name the problem.
    let bad = |rule: &str, reason: &str, expires: OffsetDateTime| NewSuppression {
        org: "ORG-1".to_owned(),
        environment: None,
        host: None,
        rule: rule.to_owned(),
        reason: reason.to_owned(),
        author: "a".to_owned(),
        expires_at: expires,
    };
    let e = org.store.add_suppression(
        &bad("NOPE-NOPE-001", "r", now + TimeDuration::days(1)),
        &Actor::cli(),
        now,
    );
    assert!(e.unwrap_err().to_string().contains("unknown rule"));
    let e = org.store.add_suppression(
        &bad(&crit.rule, " ", now + TimeDuration::days(1)),
        &Actor::cli(),
        now,
    );
    assert!(e.unwrap_err().is_usage());
    let e = org.store.add_suppression(
        &bad(&crit.rule, "r", now - TimeDuration::days(1)),
        &Actor::cli(),
        now,
    );
    assert!(e.unwrap_err().to_string().contains("future"));
}

#[tokio::test]
async fn acknowledging_records_who_and_when_once() {
    let org = org_with(&[Tier::PriorityPlus]).await;
    let now = T0 + TimeDuration::minutes(1);
    org.send(T0, vec![finding(critical_rule(), "")], now).await;
    let id = org.store.list_queue(None, false, now).unwrap()[0].id;
    assert!(
        org.store
            .acknowledge(id, "tam@example.com", &Actor::cli(), now)
            .unwrap()
    );
    assert!(
        !org.store
            .acknowledge(id, "other@example.com", &Actor::cli(), now)
            .unwrap()
    );
    let entry = &org
        .store
        .list_queue(None, false, now + TimeDuration::hours(1))
        .unwrap()[0];
    assert_eq!(entry.acknowledged_by.as_deref(), Some("tam@example.com"));
    assert_eq!(entry.acknowledged_at, Some(ts(now)));
    assert!(!entry.overdue, "acknowledged entries are not overdue");
    assert!(matches!(
        org.store.acknowledge(999, "x", &Actor::cli(), now),
        Err(StoreError::NotFound(_))
    ));
    assert!(
        org.store
            .acknowledge(id, " ", &Actor::cli(), now)
            .unwrap_err()
            .is_usage()
    );
}

/// A snapshot that repeats the last one takes ingest's short path (one read of the host's open
/// findings with their queue and suppression state): an expired suppression must count again there.
#[tokio::test]
async fn a_repeated_snapshot_after_a_suppression_expired_requeues_and_scores() {
    let org = org_with(&[Tier::Priority]).await;
    let crit = finding(critical_rule(), "");
    let now = OffsetDateTime::now_utc();
    org.store
        .add_suppression(
            &NewSuppression {
                org: "ORG-1".to_owned(),
                environment: None,
                host: None,
                rule: crit.rule.clone(),
                reason: "maintenance".to_owned(),
                author: "tam@example.com".to_owned(),
                expires_at: now + TimeDuration::hours(1),
            },
            &Actor::cli(),
            now,
        )
        .unwrap();
    org.send(now, vec![crit.clone(), low_finding()], now).await;
    let unsuppressed_low = org.host_score().unwrap();
    assert!(org.store.list_queue(None, false, now).unwrap().is_empty());
    // The same findings again, while suppressed: nothing queued, the same score.
    let soon = now + TimeDuration::minutes(30);
    org.send(soon, vec![crit.clone(), low_finding()], soon).await;
    assert!(org.store.list_queue(None, false, soon).unwrap().is_empty());
    assert_eq!(org.host_score(), Some(unsuppressed_low));
    // Past its expiry (nobody ended it), the same findings again.
    let later = now + TimeDuration::hours(2);
    org.send(later, vec![crit.clone(), low_finding()], later).await;
    let queue = org.store.list_queue(None, false, later).unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0].rule, crit.rule);
    assert!(
        org.host_score().unwrap() > unsuppressed_low,
        "the critical counts again"
    );
    // And once queued, a repeat queues nothing more.
    let after = later + TimeDuration::minutes(30);
    org.send(after, vec![crit.clone(), low_finding()], after).await;
    assert_eq!(org.store.list_queue(None, false, after).unwrap().len(), 1);
}

#[tokio::test]
async fn jobs_find_stale_hosts_and_score_environment_and_org() {
    let org = org_with(&[Tier::Priority]).await;
    // Noon: three hours later is the same day whenever the test runs (one history row).
    let sent = OffsetDateTime::now_utc().replace_time(time::macros::time!(12:00));
    org.send(sent, Vec::new(), sent).await;
    let settings = JobSettings::default();

    let report = org
        .store
        .run_jobs(sent + TimeDuration::minutes(5), &settings)
        .unwrap();
    assert_eq!((report.environments, report.hosts), (1, 1));
    assert!(org.open(sent).is_empty(), "fresh host: not stale");

    // Three hours of silence with an hourly schedule: stale.
    let later = sent + TimeDuration::hours(3);
    org.store.run_jobs(later, &settings).unwrap();
    let open = org.open(later);
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0].rule.starts_with("FLEET-STALE"), "{open:?}");
    assert!(org.host_score().unwrap() > 0.0, "stale hosts count as risk");
    let scores = org.store.org_scores("ORG-1", later).unwrap();
    assert!(scores.scored);
    assert!(scores.score.unwrap() > 0.0);
    assert!(scores.environments[0].score.unwrap() > 0.0);
    assert!(
        scores
            .explanation
            .unwrap()
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    let history = org.store.score_history("ORG-1", None, 30, later).unwrap();
    assert_eq!(history.len(), 1);

    // It calls home again: the staleness resolves at the next run.
    org.send(later, Vec::new(), later).await;
    org.store
        .run_jobs(later + TimeDuration::minutes(5), &settings)
        .unwrap();
    assert!(org.open(later).is_empty());
}

#[tokio::test]
async fn a_catalog_change_judges_the_latest_snapshots_again() {
    let org = org_with(&[Tier::Priority]).await;
    // Stored with no findings by an older catalog, but the body shows a clock 10 minutes off.
    let snapshot: Snapshot = {
        let mut s = snapshot_with(|s| {
            s.timesync = Some(TimesyncSection {
                offset_ms: Some(600_000.0),
                kerberos_clockskew_secs: Some(300),
                ..Default::default()
            })
        });
        s.host.host_id = org.agent.host_id;
        s.id = Uuid::now_v7();
        s
    };
    let mut new = snapshot_judged(snapshot.id, snapshot.collected_at, Vec::new());
    new.body = serde_json::to_vec(&snapshot).unwrap();
    new.judged.catalog_version = "2000.01.1".to_owned();
    let now = OffsetDateTime::now_utc();
    org.store
        .insert_snapshot(org.agent.clone(), new, now)
        .await
        .unwrap();
    assert!(org.open(now).is_empty());

    let report = org.store.run_jobs(now, &JobSettings::default()).unwrap();
    assert_eq!(report.rejudged, 1);
    let open = org.open(now);
    assert!(
        open.iter().any(|f| f.rule == info("TIME-SKEW-001").id),
        "{open:?}"
    );
    // Once per catalog version.
    assert_eq!(
        org.store.run_jobs(now, &JobSettings::default()).unwrap().rejudged,
        0
    );
}

#[tokio::test]
async fn capacity_is_assessed_from_the_stored_trend_points() {
    let org = org_with(&[Tier::Priority]).await;
    let now = OffsetDateTime::now_utc();
    for (hours_ago, sessions, load, memory) in [(3, 10, 0.3, 30.0), (2, 20, 0.5, 40.0), (1, 15, 0.45, 35.0)] {
        let at = now - TimeDuration::hours(hours_ago);
        let mut new = snapshot_judged(Uuid::now_v7(), at, Vec::new());
        new.judged.trend.sessions = Some(sessions);
        new.judged.trend.cpu_count = Some(4);
        new.judged.trend.load_per_cpu = Some(load);
        new.judged.trend.memory_used_percent = Some(memory);
        org.store
            .insert_snapshot(org.agent.clone(), new, now)
            .await
            .unwrap();
    }
    let envs = org
        .store
        .capacity("ORG-1", None, now, &JobSettings::default())
        .unwrap();
    assert_eq!(envs.len(), 1);
    let (name, c) = &envs[0];
    assert_eq!(name, "prod");
    let host = &c.hosts[0];
    assert_eq!(host.peak_sessions, Some(20));
    assert_eq!(host.cpu_percent_at_peak, Some(50.0));
    // CPU: 2.5 % a session, 35 points left under the 85 % ceiling: 14 more sessions; memory allows 22.
    assert_eq!(host.headroom_sessions, Some(14));
    assert_eq!((c.sessions_at_peak, c.spare_sessions), (20, 14));
    assert!(
        org.store
            .capacity("ORG-1", Some("nope"), now, &JobSettings::default())
            .is_err()
    );
}

#[tokio::test]
async fn alerts_for_findings_of_a_planned_change_wait_for_its_end() {
    let org = org_with(&[Tier::PriorityPlus]).await;
    let crit = finding(critical_rule(), "");
    let start = T0 - TimeDuration::hours(1);
    let end = T0 + TimeDuration::hours(2);
    let window = org
        .store
        .add_change_window(
            &NewChangeWindow {
                org: "ORG-1".to_owned(),
                environment: "prod".to_owned(),
                starts_at: start,
                ends_at: end,
                description: "VDA upgrade to 2411".to_owned(),
                author: "tam@example.com".to_owned(),
            },
            &Actor::cli(),
            T0,
        )
        .unwrap();

    // Seen during the change: queued at once (the deadline still runs), alert held until the end.
    let now = T0 + TimeDuration::minutes(1);
    org.send(T0, vec![crit.clone()], now).await;
    let open = org.open(now);
    assert_eq!(open[0].change_window, Some(window.id), "change-related");
    assert_eq!(org.store.list_queue(None, false, now).unwrap().len(), 1);
    let lease = TimeDuration::seconds(15);
    assert!(
        org.store.claim_webhook(now, lease).await.unwrap().is_none(),
        "held"
    );
    let after = end + TimeDuration::seconds(1);
    let item = org
        .store
        .claim_webhook(after, lease)
        .await
        .unwrap()
        .expect("due at the end");
    let body: serde_json::Value = serde_json::from_str(&item.body).unwrap();
    assert_eq!(body["change_window"]["description"], "VDA upgrade to 2411");
    assert_eq!(org.store.list_change_windows("ORG-1").unwrap()[0].findings, 1);

    // Another one appears and is fixed before the change ends: its alert is never sent.
    let other = finding(critical_rule(), "other");
    org.send(
        T0 + TimeDuration::minutes(10),
        vec![crit.clone(), other.clone()],
        now,
    )
    .await;
    org.send(T0 + TimeDuration::minutes(20), vec![crit.clone()], now)
        .await;
    assert!(org.store.claim_webhook(after, lease).await.unwrap().is_none());
    let last_error: String = org
        .store
        .lock()
        .query_row(
            "SELECT last_error FROM webhook_outbox WHERE gave_up_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(last_error.contains("resolved"), "{last_error}");

    // Cancelled: its findings are no longer change-related.
    assert!(
        org.store
            .cancel_change_window(window.id, &Actor::cli(), now)
            .unwrap()
    );
    assert!(
        !org.store
            .cancel_change_window(window.id, &Actor::cli(), now)
            .unwrap()
    );
    assert_eq!(org.open(now)[0].change_window, None);
    let bad = org.store.add_change_window(
        &NewChangeWindow {
            org: "ORG-1".to_owned(),
            environment: "prod".to_owned(),
            starts_at: end,
            ends_at: start,
            description: "x".to_owned(),
            author: "y".to_owned(),
        },
        &Actor::cli(),
        now,
    );
    assert!(bad.unwrap_err().is_usage());
}

#[tokio::test]
async fn environment_and_org_scores_follow_a_changed_host_within_a_pass() {
    let org = org_with(&[Tier::PriorityPlus]).await;
    let now = OffsetDateTime::now_utc();
    org.store.run_jobs(now, &JobSettings::default()).unwrap();
    assert_eq!(org.store.org_scores("ORG-1", now).unwrap().score, Some(0.0));

    org.send(
        now - TimeDuration::minutes(1),
        vec![finding(critical_rule(), "")],
        now,
    )
    .await;
    assert_eq!(
        org.count("SELECT COUNT(*) FROM dirty_scores"),
        1,
        "marked at ingest"
    );
    assert_eq!(org.store.rescore_dirty_async(now).await.unwrap(), 1);
    assert_eq!(org.count("SELECT COUNT(*) FROM dirty_scores"), 0);
    let scores = org.store.org_scores("ORG-1", now).unwrap();
    assert!(scores.score.unwrap() > 0.0, "{scores:?}");
    assert!(scores.environments[0].score.unwrap() > 0.0);

    // Nothing changed: nothing marked.
    org.send(now, vec![finding(critical_rule(), "")], now).await;
    assert_eq!(org.count("SELECT COUNT(*) FROM dirty_scores"), 0);
}

#[tokio::test]
async fn an_unchanged_score_is_not_rewritten_but_each_day_keeps_its_history_row() {
    let org = org_with(&[Tier::Priority]).await;
    let low = low_finding();
    let history = |org: &Org| {
        org.count(&format!(
            "SELECT COUNT(*) FROM score_history WHERE scope = 'host' AND scope_id = '{}'",
            org.agent.host_id
        ))
    };
    let updated_at = |org: &Org, day: &str| -> String {
        org.store
            .lock()
            .query_row(
                "SELECT updated_at FROM score_history WHERE scope = 'host' AND scope_id = ?1 AND day = ?2",
                params![org.agent.host_id.to_string(), day],
                |r| r.get(0),
            )
            .unwrap()
    };
    org.send(T0, vec![low.clone()], T0).await;
    let score = org.host_score();
    assert!(score.is_some_and(|s| s > 0.0), "{score:?}");
    assert_eq!(history(&org), 1);

    // The same finding an hour later: same score, the day's row left as it was.
    let later = T0 + TimeDuration::hours(1);
    org.send(later, vec![low.clone()], later).await;
    assert_eq!(org.host_score(), score);
    assert_eq!(history(&org), 1);
    assert_eq!(updated_at(&org, "2026-11-20"), ts(T0));

    // The next day, still unchanged: that day gets its own row.
    let next_day = T0 + TimeDuration::days(1);
    org.send(next_day, vec![low.clone()], next_day).await;
    assert_eq!(org.host_score(), score);
    assert_eq!(history(&org), 2);

    // A change the same day is written at once.
    let changed = next_day + TimeDuration::hours(1);
    org.send(changed, vec![low, finding(critical_rule(), "")], changed)
        .await;
    assert!(org.host_score() > score);
    assert_eq!(history(&org), 2);
    assert_eq!(updated_at(&org, "2026-11-21"), ts(changed));
}

/// The writer's group path (`ingest::store_group`): several hosts per round, a host twice in a
/// group, a replayed id and an older snapshot, in one transaction, leave what posting them one by
/// one would.
#[tokio::test]
async fn a_group_of_snapshots_is_judged_as_if_posted_one_by_one() {
    let org = org_with(&[Tier::Priority]).await;
    let (crit, low) = (finding(critical_rule(), ""), low_finding());
    let now = OffsetDateTime::now_utc();
    let token = org
        .store
        .issue_token("ORG-1", "prod", TimeDuration::days(30), &Actor::cli(), now)
        .unwrap();
    let enrolled = org
        .store
        .enroll(
            EnrollRequest {
                token: token.token.expose().to_owned(),
                host_id: Uuid::now_v7(),
                hostname: "vda02".to_owned(),
                role: HostRole::Vda,
                agent_version: "0.1.0".to_owned(),
            },
            now,
        )
        .await
        .unwrap();
    let (a, b) = match org
        .store
        .authenticate_agent(enrolled.credential.expose().to_owned(), now.date())
        .await
        .unwrap()
    {
        Authentication::Agent(b) => (org.agent.clone(), b),
        other => panic!("{other:?}"),
    };
    let t = |h: i64| T0 + TimeDuration::hours(h);
    for agent in [&a, &b] {
        let first = snapshot_judged(Uuid::now_v7(), t(0), vec![crit.clone(), low.clone()]);
        org.store
            .insert_snapshot(agent.clone(), first, now)
            .await
            .unwrap();
    }

    let a1 = snapshot_judged(Uuid::now_v7(), t(1), vec![crit.clone(), low.clone()]);
    let b1 = snapshot_judged(Uuid::now_v7(), t(1), vec![crit.clone()]);
    let a2 = snapshot_judged(Uuid::now_v7(), t(2), vec![crit.clone(), low.clone()]);
    let b_old = snapshot_judged(Uuid::now_v7(), T0 + TimeDuration::minutes(30), Vec::new());
    let received = |s: i64| now + TimeDuration::seconds(s);
    let item = |agent, snapshot, s| ingest::Item {
        agent,
        snapshot,
        compressed: b"not read back",
        now: received(s),
    };
    let items = [
        item(&a, &a1, 1),
        item(&b, &b1, 2),
        // The same host again, then a replay of a1: later rounds, as they came.
        item(&a, &a2, 3),
        item(&a, &a1, 4),
        // Older than b1: stored, but judges nothing.
        item(&b, &b_old, 5),
    ];
    let results = {
        let conn = org.store.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let results = ingest::store_group(&tx, &items).unwrap();
        tx.commit().unwrap();
        results
    };
    use Inserted::{Duplicate, Stored};
    assert_eq!(results, vec![Stored, Stored, Stored, Duplicate, Stored]);
    assert_eq!(org.count("SELECT COUNT(*) FROM snapshots"), 6);
    assert_eq!(org.count("SELECT COUNT(*) FROM trend_points"), 6);

    let host = |agent: &AgentIdentity| -> (Option<String>, Option<String>, Option<String>) {
        org.store
            .lock()
            .query_row(
                "SELECT latest_snapshot_id, latest_collected_at, last_seen FROM hosts WHERE host_id = ?1",
                [agent.host_id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    // a2 is a's newest; the replay of a1 only moved last_seen.
    assert_eq!(
        host(&a),
        (Some(a2.id.to_string()), Some(ts(t(2))), Some(ts(received(4))))
    );
    // b1 stays b's newest; the older snapshot moved last_seen only.
    assert_eq!(
        host(&b),
        (Some(b1.id.to_string()), Some(ts(t(1))), Some(ts(received(5))))
    );

    let of = |agent: &AgentIdentity| -> Vec<(String, String, Option<String>)> {
        org.store
            .lock()
            .prepare(
                "SELECT rule_id, last_seen, last_snapshot FROM findings
                 WHERE host_id = ?1 AND resolved_at IS NULL ORDER BY rule_id",
            )
            .unwrap()
            .query_map([agent.host_id.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let a2_id = Some(a2.id.to_string());
    let mut want_a = vec![
        (crit.rule.clone(), ts(t(2)), a2_id.clone()),
        (low.rule.clone(), ts(t(2)), a2_id),
    ];
    want_a.sort();
    assert_eq!(of(&a), want_a, "a's findings were seen again by a1, then a2");
    assert_eq!(
        of(&b),
        vec![(crit.rule.clone(), ts(t(1)), Some(b1.id.to_string()))],
        "b1 resolved b's low finding; the older snapshot changed nothing"
    );
    assert_eq!(
        org.count("SELECT COUNT(*) FROM findings WHERE resolved_at IS NOT NULL"),
        1
    );
}
