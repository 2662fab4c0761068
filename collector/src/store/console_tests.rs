//! The console's read models against a seeded database (checked against the store's other read
//! paths) and against snapshots ingested through the real path.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use callhome_shared::HostRole;
use callhome_shared::api::EnrollRequest;
use callhome_shared::rules::Severity;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::*;
use crate::csv_export;
use crate::seed_cmd::{self, SeedOptions, fixture};
use crate::store::audit::Actor;
use crate::store::{Authentication, Judged, NewSnapshot};

struct Seeded {
    _dir: tempfile::TempDir,
    store: Store,
    now: OffsetDateTime,
}

/// One seeded database for all tests here (seeding takes a moment in a debug build).
fn seeded() -> &'static Seeded {
    static SEEDED: OnceLock<Seeded> = OnceLock::new();
    SEEDED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(dir.path());
        let now = OffsetDateTime::now_utc();
        let options = SeedOptions {
            orgs: 12,
            hosts: 400,
            days: 40,
            seed: 42,
            force: false,
        };
        let report = seed_cmd::seed(&store, &options, now).unwrap();
        assert_eq!((report.orgs, report.hosts, report.snapshots), (12, 400, 800));
        // Seeded snapshots go through ingest's own path: each has its trend point.
        let points: i64 = store
            .lock()
            .query_row("SELECT COUNT(*) FROM trend_points", [], |r| r.get(0))
            .unwrap();
        assert_eq!(points, 800);
        Seeded {
            _dir: dir,
            store,
            now,
        }
    })
}

fn open_findings(store: &Store, org: &str, now: OffsetDateTime) -> Vec<FindingRow> {
    store.list_findings(org, &FindingFilter::default(), now).unwrap()
}

#[tokio::test]
async fn orgs_ranked_agrees_with_the_other_read_paths() {
    let Seeded { store, now, .. } = seeded();
    let ranked = store.orgs_ranked(None, *now).await.unwrap();
    assert_eq!(ranked.len(), 12);
    let today = now.date();
    for r in &ranked {
        let hosts = store.list_hosts(Some(&r.org), None).unwrap();
        assert_eq!(r.hosts, hosts.len() as i64, "{}", r.org);
        assert_eq!(
            r.last_seen,
            hosts.iter().filter_map(|h| h.last_seen.clone()).max()
        );
        let open = open_findings(store, &r.org, *now);
        let criticals = open
            .iter()
            .filter(|f| f.severity == Severity::Critical && !f.suppressed)
            .count();
        assert_eq!(r.open_criticals, criticals as i64, "{}", r.org);
        let stale: BTreeSet<_> = open
            .iter()
            .filter(|f| f.rule.starts_with("FLEET-STALE-"))
            .map(|f| f.host_id.clone())
            .collect();
        assert_eq!(r.stale_hosts, stale.len() as i64, "{}", r.org);
        let tier = store.org_tier(&r.org, today).unwrap();
        assert_eq!(r.tier, tier.map(|t| t.as_str().to_owned()));
        let scores = store.org_scores(&r.org, *now).unwrap();
        assert_eq!(r.score, scores.score, "{}", r.org);
        assert_eq!(r.scored, scores.scored);
        if let Some(score) = r.score {
            // Seeded history has every day, so the value 7 days ago is that day's.
            let history = store.score_history(&r.org, None, 40, *now).unwrap();
            let day7 = (today - Duration::days(7)).to_string();
            let then = history.iter().find(|(d, _)| *d == day7).unwrap().1;
            let expected = ((score - then) * 10.0).round() / 10.0;
            assert_eq!(r.change_7d, Some(expected), "{}", r.org);
            assert!(r.change_30d.is_some());
        } else {
            assert_eq!((r.change_7d, r.change_30d), (None, None));
        }
    }
    // Scored first, by score; unscored after; ties by criticals.
    for pair in ranked.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        match (a.score, b.score) {
            (Some(x), Some(y)) => assert!(x > y || (x == y && a.open_criticals >= b.open_criticals)),
            (None, Some(_)) => panic!("unscored {} before scored {}", a.org, b.org),
            (_, None) => {}
        }
    }
    assert!(ranked.iter().any(|r| r.score.is_some()) && ranked.iter().any(|r| r.score.is_none()));
}

#[tokio::test]
async fn a_tam_sees_only_their_orgs() {
    let Seeded { store, now, .. } = seeded();
    let all = store.orgs_ranked(None, *now).await.unwrap();
    let mine = vec![
        "ORG-00003".to_owned(),
        "ORG-00007".to_owned(),
        "NOT-AN-ORG".to_owned(),
    ];
    let ranked = store.orgs_ranked(Some(&mine), *now).await.unwrap();
    let ids: BTreeSet<&str> = ranked.iter().map(|r| r.org.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["ORG-00003", "ORG-00007"]));
    for r in &ranked {
        assert_eq!(Some(r), all.iter().find(|a| a.org == r.org));
    }
    assert!(store.orgs_ranked(Some(&[]), *now).await.unwrap().is_empty());
}

#[tokio::test]
async fn org_detail_of_the_largest_org() {
    let Seeded { store, now, .. } = seeded();
    let d = store.org_detail("ORG-00001", *now).await.unwrap();
    let hosts = store.list_hosts(Some("ORG-00001"), None).unwrap();
    assert_eq!(d.hosts, hosts.len() as i64);
    let envs = store.list_environments("ORG-00001").unwrap();
    assert_eq!(d.environments.len(), envs.len());
    for (e, listed) in d.environments.iter().zip(&envs) {
        assert_eq!(e.name, listed.name);
        assert_eq!(e.hosts, listed.hosts);
        assert_eq!(e.vda_versions.values().sum::<i64>(), e.hosts);
        if d.scored {
            assert!(e.score.is_some());
            assert_eq!(e.trend.len(), 40, "{}", e.name);
        }
    }
    let open = open_findings(store, "ORG-00001", *now);
    let mut by_rule: HashMap<&str, (BTreeSet<Option<String>>, usize, Severity)> = HashMap::new();
    for f in &open {
        let e = by_rule.entry(&f.rule).or_insert((BTreeSet::new(), 0, f.severity));
        if f.host_id.is_some() {
            e.0.insert(f.host_id.clone());
        }
        e.1 += 1;
        e.2 = e.2.max(f.severity);
    }
    assert_eq!(d.findings_by_rule.len(), by_rule.len());
    for g in &d.findings_by_rule {
        let (hosts, count, worst) = &by_rule[g.rule.as_str()];
        assert_eq!(
            (g.hosts, g.findings, g.worst_severity),
            (hosts.len() as i64, *count as i64, *worst),
            "{}",
            g.rule
        );
        assert!(g.remediation.is_some(), "{}", g.rule);
    }
    assert!(
        d.findings_by_rule
            .windows(2)
            .all(|w| w[0].worst_severity >= w[1].worst_severity)
    );
    let stale = open.iter().filter(|f| f.rule.starts_with("FLEET-STALE-")).count();
    assert_eq!(d.stale_hosts.len(), stale);
    assert_eq!(
        d.environments.iter().map(|e| e.stale_hosts).sum::<i64>(),
        stale as i64
    );
    assert!(matches!(
        store.org_detail("NOPE", *now).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn host_detail_and_what_changed_for_a_queue_entry() {
    let Seeded { store, now, .. } = seeded();
    let queue = store.list_queue(None, false, *now).unwrap();
    let entry = queue
        .iter()
        .find(|q| q.rule.starts_with("DISK-") || q.rule.starts_with("TIME-"))
        .expect("the seeded queue has a host finding");
    let host: Uuid = entry.host_id.as_deref().unwrap().parse().unwrap();
    let detail = store.host_detail(host, *now).await.unwrap();
    assert_eq!(detail.org, entry.org);
    assert!(detail.findings.iter().any(|f| f.finding.rule == entry.rule));
    assert!(
        detail
            .findings
            .iter()
            .all(|f| f.finding.resolved_at.is_none() && f.remediation.is_some())
    );
    assert!(detail.history.iter().all(|f| f.finding.resolved_at.is_some()));
    let latest = detail.latest_snapshot.as_ref().unwrap();
    assert!(latest.sections.contains_key("disks") && latest.probes.contains_key("disks"));
    assert_eq!(detail.snapshots.len(), 2);
    assert_eq!(latest.meta, detail.snapshots[0]);

    let diff = store.queue_entry_diff(entry.id).await.unwrap();
    assert_eq!(diff.note, None);
    assert_eq!(diff.from.as_ref(), Some(&detail.snapshots[1]));
    assert_eq!(diff.to.as_ref(), Some(&detail.snapshots[0]));
    let section = if entry.rule.starts_with("DISK-") {
        "disks"
    } else {
        "timesync"
    };
    assert!(
        diff.changes.iter().any(|c| c.section == section),
        "{:?}",
        diff.changes
    );

    let from: Uuid = detail.snapshots[1].id.parse().unwrap();
    let to: Uuid = detail.snapshots[0].id.parse().unwrap();
    let same = store.snapshot_diff(host, from, to).await.unwrap();
    assert_eq!(same.changes, diff.changes);
    assert!(
        store
            .snapshot_diff(host, to, to)
            .await
            .unwrap()
            .changes
            .is_empty()
    );

    let other = queue
        .iter()
        .find(|q| q.host_id != entry.host_id && q.host_id.is_some())
        .unwrap();
    let other_host: Uuid = other.host_id.as_deref().unwrap().parse().unwrap();
    assert!(matches!(
        store.snapshot_diff(other_host, from, to).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.host_detail(Uuid::nil(), *now).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.queue_entry_diff(-1).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn fleet_findings_in_the_queue_have_no_snapshot_diff() {
    let Seeded { store, now, .. } = seeded();
    let queue = store.list_queue(None, false, *now).unwrap();
    let stale = queue
        .iter()
        .find(|q| q.rule == "FLEET-STALE-002")
        .expect("seed 42 makes long-silent hosts in scored orgs");
    let diff = store.queue_entry_diff(stale.id).await.unwrap();
    assert!(diff.from.is_none() && diff.to.is_none() && diff.changes.is_empty());
    assert!(diff.note.unwrap().contains("periodic judgement"));
}

#[tokio::test]
async fn findings_filter_and_csv_exports() {
    let Seeded { store, now, .. } = seeded();
    let all = store
        .findings_filtered("ORG-00001", FindingQuery::default(), *now)
        .await
        .unwrap();
    let high = store
        .findings_filtered(
            "ORG-00001",
            FindingQuery {
                severity: Some(Severity::High),
                ..FindingQuery::default()
            },
            *now,
        )
        .await
        .unwrap();
    assert!(!high.is_empty() && high.iter().all(|f| f.severity == Severity::High));
    assert_eq!(
        high.len(),
        all.iter().filter(|f| f.severity == Severity::High).count()
    );
    let env = &all[0].environment;
    let in_env = store
        .findings_filtered(
            "ORG-00001",
            FindingQuery {
                environment: Some(env.clone()),
                state: FindingState::All,
                ..FindingQuery::default()
            },
            *now,
        )
        .await
        .unwrap();
    assert!(in_env.iter().all(|f| &f.environment == env));
    assert!(in_env.iter().any(|f| f.resolved_at.is_some()));

    let csv = csv_export::parse(
        &store
            .findings_csv("ORG-00001", FindingQuery::default(), *now)
            .await
            .unwrap(),
    );
    assert_eq!(csv.len(), all.len() + 1);
    assert_eq!(csv[0][0..3], ["id", "org", "environment"]);
    assert_eq!(csv[1][0], all[0].id.to_string());
    let evidence: serde_json::Value = serde_json::from_str(&csv[1][10]).unwrap();
    assert_eq!(evidence, all[0].evidence);

    let hosts = store.org_hosts("ORG-00001", None).await.unwrap();
    let csv = csv_export::parse(&store.hosts_csv("ORG-00001").await.unwrap());
    assert_eq!(csv.len(), hosts.len() + 1);
    assert_eq!(csv[0][0], "host_id");
    // Riskiest first; the CSV keeps the order.
    assert_eq!(csv[1][0], hosts[0].host_id);
    assert!(
        hosts
            .windows(2)
            .all(|w| w[0].score.unwrap_or(-1.0) >= w[1].score.unwrap_or(-1.0))
    );
    let open_by_host = all
        .iter()
        .filter(|f| f.host_id.as_deref() == Some(hosts[0].host_id.as_str()))
        .count();
    assert_eq!(hosts[0].open_findings, open_by_host as i64);
}

/// A Priority org with one environment, through the real admin and ingest paths.
async fn real_org(dir: &std::path::Path, now: OffsetDateTime) -> Store {
    let store = crate::store::testing::open(dir);
    store.add_org("ACME", "Acme", &Actor::cli(), now).unwrap();
    let today = now.date();
    store
        .add_contract(
            "ACME",
            "cvad",
            Tier::Priority,
            today - Duration::days(10),
            today + Duration::days(400),
            &Actor::cli(),
            now,
        )
        .unwrap();
    store.add_environment("ACME", "prod", now).unwrap();
    store
}

async fn enroll(store: &Store, hostname: &str, now: OffsetDateTime) -> super::super::AgentIdentity {
    let token = store
        .issue_token("ACME", "prod", Duration::days(1), &Actor::cli(), now)
        .unwrap();
    let enrolled = store
        .enroll(
            EnrollRequest {
                token: token.token.expose().to_owned(),
                host_id: Uuid::new_v4(),
                hostname: hostname.to_owned(),
                role: HostRole::Vda,
                agent_version: "0.1.0".to_owned(),
            },
            now,
        )
        .await
        .unwrap();
    match store
        .authenticate_agent(enrolled.credential.expose().to_owned(), now.date())
        .await
        .unwrap()
    {
        Authentication::Agent(a) => a,
        other => panic!("{other:?}"),
    }
}

async fn send(
    store: &Store,
    agent: &super::super::AgentIdentity,
    name: &str,
    at: OffsetDateTime,
    now: OffsetDateTime,
) {
    let mut s = fixture(name, Duration::ZERO).unwrap();
    let shift = at - s.collected_at;
    s = fixture(name, shift).unwrap();
    s.host.host_id = agent.host_id;
    let body = serde_json::to_vec(&s).unwrap();
    let snapshot = NewSnapshot {
        id: s.id,
        schema_version: s.schema_version,
        collected_at: s.collected_at,
        judged: Judged::of(&s, None),
        body,
    };
    store.insert_snapshot(agent.clone(), snapshot, now).await.unwrap();
}

#[tokio::test]
async fn queue_diff_through_real_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let store = real_org(dir.path(), now).await;
    let agent = enroll(&store, "=HYPERLINK(\"http://evil\")", now).await;
    send(&store, &agent, "rpm-healthy", now - Duration::hours(2), now).await;
    send(&store, &agent, "disk-full", now - Duration::hours(1), now).await;
    let queue = store.list_queue(Some("ACME"), false, now).unwrap();
    let entry = queue
        .iter()
        .find(|q| q.rule == "DISK-FREE-002")
        .expect("a critical disk finding");
    let diff = store.queue_entry_diff(entry.id).await.unwrap();
    assert_eq!(diff.note, None);
    assert!(diff.from.is_some() && diff.to.is_some());
    let free: Vec<_> = diff
        .changes
        .iter()
        .filter(|c| c.section == "disks" && c.field == "free")
        .collect();
    assert!(!free.is_empty(), "{:?}", diff.changes);

    // A host whose very first snapshot shows the finding has nothing to compare with.
    let second = enroll(&store, "vda02", now).await;
    send(&store, &second, "disk-full", now - Duration::minutes(30), now).await;
    let queue = store.list_queue(Some("ACME"), false, now).unwrap();
    let entry = queue
        .iter()
        .find(|q| q.host_id.as_deref() == Some(second.host_id.to_string().as_str()))
        .unwrap();
    let diff = store.queue_entry_diff(entry.id).await.unwrap();
    assert!(diff.from.is_none() && diff.to.is_some() && diff.changes.is_empty());
    assert!(diff.note.unwrap().contains("no earlier snapshot"));

    // The customer-controlled host name cannot become a formula in the TAM's spreadsheet.
    let csv = store.hosts_csv("ACME").await.unwrap();
    let rows = csv_export::parse(&csv);
    assert!(
        rows.iter().any(|r| r[1] == "'=HYPERLINK(\"http://evil\")"),
        "{csv}"
    );
}
