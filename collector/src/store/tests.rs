use super::*;
use callhome_shared::HostRole;
use time::Duration as TimeDuration;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::testing::open(dir.path());
    (dir, store)
}

/// An org with an active contract and one environment; returns a fresh token for it.
fn org_with_token(store: &Store, org: &str, env: &str) -> String {
    let today = now().date();
    store.add_org(org, "Example Corp", &Actor::cli(), now()).unwrap();
    store
        .add_contract(
            org,
            "cvad",
            Tier::Priority,
            today - TimeDuration::days(100),
            today + TimeDuration::days(600),
            &Actor::cli(),
            now(),
        )
        .unwrap();
    store.add_environment(org, env, now()).unwrap();
    store
        .issue_token(org, env, TimeDuration::days(30), &Actor::cli(), now())
        .unwrap()
        .token
        .expose()
        .to_owned()
}

fn request(token: &str, host_id: Uuid) -> EnrollRequest {
    EnrollRequest {
        token: token.to_owned(),
        host_id,
        hostname: "vda01".to_owned(),
        role: HostRole::Vda,
        agent_version: "0.1.0".to_owned(),
    }
}

fn snapshot(id: Uuid) -> NewSnapshot {
    snapshot_judged(id, now(), Vec::new())
}

/// A stored body is opaque to the store; the judgement is what ingest would have made of it.
pub(super) fn snapshot_judged(id: Uuid, collected_at: OffsetDateTime, findings: Vec<Finding>) -> NewSnapshot {
    let trend: TrendPoint = serde_json::from_value(serde_json::json!({
        "at": collected_at.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "mounts": [],
    }))
    .unwrap();
    NewSnapshot {
        id,
        schema_version: 1,
        collected_at,
        body: br#"{"hello":"world"}"#.to_vec(),
        judged: Judged {
            findings,
            catalog_version: rules::CATALOG_VERSION.to_owned(),
            trend,
            schedule_interval_secs: Some(3600),
            vda_version: None,
            controllers: None,
            clock_skew_secs: None,
        },
    }
}

async fn identity(store: &Store, credential: &Secret) -> AgentIdentity {
    match store
        .authenticate_agent(credential.expose().to_owned(), now().date())
        .await
        .unwrap()
    {
        Authentication::Agent(a) => a,
        other => panic!("expected an agent, got {other:?}"),
    }
}

#[test]
fn migrations_are_idempotent_on_reopen() {
    let (dir, store) = store();
    store.add_org("ORG-1", "Example", &Actor::cli(), now()).unwrap();
    let location = store.location().clone();
    drop(store);
    let store = Store::open_location(&location).unwrap();
    assert_eq!(store.list_orgs().unwrap().len(), 1);
    let version = migrations::current_version(&store.lock()).unwrap();
    assert_eq!(version, migrations::supported_version());
    if let Some(sqlite) = store.lock().sqlite() {
        let mode: String = sqlite
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
    drop(dir);
}

#[test]
fn newer_schema_is_refused() {
    let (_dir, store) = store();
    migrations::set_version(&store.lock(), 99).unwrap();
    let location = store.location().clone();
    drop(store);
    let err = Store::open_location(&location).unwrap_err();
    let supported = migrations::supported_version();
    assert_eq!(
        err.to_string(),
        format!(
            "database schema version 99 is newer than this collector supports ({supported}): upgrade the collector"
        )
    );
}

#[test]
fn admin_errors_name_what_is_wrong() {
    let (_dir, store) = store();
    let today = now().date();
    let err = store
        .add_contract(
            "NOPE",
            "cvad",
            Tier::Select,
            today,
            today + TimeDuration::days(400),
            &Actor::cli(),
            now(),
        )
        .unwrap_err();
    assert!(
        err.is_usage() && err.to_string().contains("unknown org `NOPE`"),
        "{err}"
    );
    store.add_org("ORG-1", "Example", &Actor::cli(), now()).unwrap();
    let err = store.add_org("ORG-1", "Again", &Actor::cli(), now()).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = store
        .add_contract(
            "ORG-1",
            "cvad",
            Tier::Select,
            today,
            today - TimeDuration::days(1),
            &Actor::cli(),
            now(),
        )
        .unwrap_err();
    assert!(
        err.is_usage() && err.to_string().contains("not after its start"),
        "{err}"
    );
    let err = store
        .issue_token("ORG-1", "prod", TimeDuration::days(1), &Actor::cli(), now())
        .unwrap_err();
    assert!(err.to_string().contains("unknown environment `prod`"), "{err}");
    assert!(
        store
            .add_org("bad id", "x", &Actor::cli(), now())
            .unwrap_err()
            .is_usage()
    );
}

#[tokio::test]
async fn enroll_happy_path() {
    let (_dir, store) = store();
    let token = org_with_token(&store, "ORG-1", "prod-eu");
    let host = Uuid::new_v4();
    let enrolled = store.enroll(request(&token, host), now()).await.unwrap();
    assert!(enrolled.credential.expose().starts_with("chac_"));
    assert_eq!(enrolled.org, "ORG-1");
    assert_eq!(enrolled.environment, "prod-eu");
    assert_eq!(enrolled.tier, Tier::Priority);
    let agent = identity(&store, &enrolled.credential).await;
    assert_eq!(agent.host_id, host);
    assert_eq!(agent.tier, Some(Tier::Priority));
    let tokens = store.list_tokens("ORG-1").unwrap();
    assert_eq!(tokens[0].uses, 1);
    let hosts = store.list_hosts(None, None).unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].hostname, "vda01");
    assert_eq!(hosts[0].last_seen, None);
    assert_eq!(hosts[0].snapshots, 0);
}

#[tokio::test]
async fn unknown_token_is_refused() {
    let (_dir, store) = store();
    org_with_token(&store, "ORG-1", "prod");
    let err = store
        .enroll(request("chet_0000", Uuid::new_v4()), now())
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::UnknownToken), "{err}");
}

#[tokio::test]
async fn expired_token_is_refused() {
    let (_dir, store) = store();
    let token = org_with_token(&store, "ORG-1", "prod");
    let err = store
        .enroll(request(&token, Uuid::new_v4()), now() + TimeDuration::days(31))
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::TokenExpired { .. }), "{err}");
}

#[tokio::test]
async fn revoked_token_is_refused() {
    let (_dir, store) = store();
    let token = org_with_token(&store, "ORG-1", "prod");
    let id = store.list_tokens("ORG-1").unwrap()[0].id.clone();
    assert_eq!(
        store.revoke_token(&id, &Actor::cli(), now()).unwrap(),
        Revoked::Now
    );
    assert_eq!(
        store.revoke_token(&id, &Actor::cli(), now()).unwrap(),
        Revoked::Already
    );
    let err = store
        .enroll(request(&token, Uuid::new_v4()), now())
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::TokenRevoked { .. }), "{err}");
    assert!(
        store
            .revoke_token("tok_nope", &Actor::cli(), now())
            .unwrap_err()
            .is_usage()
    );
}

#[tokio::test]
async fn lapsed_org_cannot_enroll_or_is_reported_lapsed() {
    let (_dir, store) = store();
    let today = now().date();
    store
        .add_org("ORG-OLD", "Old Corp", &Actor::cli(), now())
        .unwrap();
    store
        .add_contract(
            "ORG-OLD",
            "cvad",
            Tier::PriorityPlus,
            today - TimeDuration::days(800),
            today - TimeDuration::days(35),
            &Actor::cli(),
            now(),
        )
        .unwrap();
    store.add_environment("ORG-OLD", "prod", now()).unwrap();
    let token = store
        .issue_token("ORG-OLD", "prod", TimeDuration::days(30), &Actor::cli(), now())
        .unwrap();
    let err = store
        .enroll(request(token.token.expose(), Uuid::new_v4()), now())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EnrollError::ContractLapsed { org } if org == "ORG-OLD"),
        "{err}"
    );
    assert_eq!(store.org_tier("ORG-OLD", today).unwrap(), None);
}

#[tokio::test]
async fn host_enrolled_in_another_org_is_a_conflict() {
    let (_dir, store) = store();
    let token_a = org_with_token(&store, "ORG-A", "prod");
    let token_b = org_with_token(&store, "ORG-B", "prod");
    let host = Uuid::new_v4();
    store.enroll(request(&token_a, host), now()).await.unwrap();
    let err = store.enroll(request(&token_b, host), now()).await.unwrap_err();
    assert!(
        matches!(&err, EnrollError::HostEnrolledElsewhere { org, .. } if org == "ORG-A"),
        "{err}"
    );
    // Another environment of the same org is "elsewhere" too.
    store.add_environment("ORG-A", "test", now()).unwrap();
    let token_test = store
        .issue_token("ORG-A", "test", TimeDuration::days(1), &Actor::cli(), now())
        .unwrap();
    let err = store
        .enroll(request(token_test.token.expose(), host), now())
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::HostEnrolledElsewhere { .. }), "{err}");
}

#[tokio::test]
async fn re_enroll_revokes_the_old_credential() {
    let (_dir, store) = store();
    let token = org_with_token(&store, "ORG-1", "prod");
    let host = Uuid::new_v4();
    let first = store.enroll(request(&token, host), now()).await.unwrap();
    let mut again = request(&token, host);
    again.hostname = "vda01-renamed".to_owned();
    let second = store.enroll(again, now()).await.unwrap();
    assert_ne!(first.credential, second.credential);
    assert_eq!(
        store
            .authenticate_agent(first.credential.expose().to_owned(), now().date())
            .await
            .unwrap(),
        Authentication::Revoked
    );
    identity(&store, &second.credential).await;
    let hosts = store.list_hosts(Some("ORG-1"), None).unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].hostname, "vda01-renamed");
    assert_eq!(store.list_tokens("ORG-1").unwrap()[0].uses, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_share_commits_and_a_bad_one_fails_alone() {
    let (_dir, store) = store();
    let token = org_with_token(&store, "ORG-1", "prod");
    let mut agents = Vec::new();
    for _ in 0..8 {
        let enrolled = store
            .enroll(request(&token, Uuid::new_v4()), now())
            .await
            .unwrap();
        agents.push(identity(&store, &enrolled.credential).await);
    }
    // A host the database does not know: its insert breaks a foreign key inside the group.
    let mut stranger = agents[0].clone();
    stranger.host_id = Uuid::new_v4();
    let mut tasks = tokio::task::JoinSet::new();
    let duplicate = Uuid::now_v7();
    for i in 0..200usize {
        let store = store.clone();
        let agent = if i == 77 {
            stranger.clone()
        } else {
            agents[i % agents.len()].clone()
        };
        // Posts 10 and 11 carry the same id (a retry racing its original): one row.
        let id = if i == 10 || i == 11 {
            duplicate
        } else {
            Uuid::now_v7()
        };
        tasks.spawn(async move { (i, store.insert_snapshot(agent, snapshot(id), now()).await) });
    }
    let mut stored = 0;
    let mut duplicates = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.unwrap();
        match result {
            Ok(Inserted::Stored) => stored += 1,
            Ok(Inserted::Duplicate) => duplicates += 1,
            Err(e) => assert_eq!(i, 77, "only the stranger fails: {e}"),
        }
    }
    assert_eq!((stored, duplicates), (198, 1));
    assert_eq!(store.count_snapshots().unwrap(), 198);
    let stats = store.group_stats();
    assert_eq!(stats.snapshots, 200);
    assert!(
        stats.groups < 200,
        "some commits carried several snapshots: {stats:?}"
    );
}

#[tokio::test]
async fn insert_snapshot_is_idempotent() {
    let (_dir, store) = store();
    let token = org_with_token(&store, "ORG-1", "prod");
    let enrolled = store
        .enroll(request(&token, Uuid::new_v4()), now())
        .await
        .unwrap();
    let agent = identity(&store, &enrolled.credential).await;
    let id = Uuid::now_v7();
    let first = store
        .insert_snapshot(agent.clone(), snapshot(id), now())
        .await
        .unwrap();
    assert_eq!(first, Inserted::Stored);
    let second = store
        .insert_snapshot(agent.clone(), snapshot(id), now())
        .await
        .unwrap();
    assert_eq!(second, Inserted::Duplicate);
    assert_eq!(store.count_snapshots().unwrap(), 1);
    assert_eq!(
        store.snapshot_body(id).unwrap().unwrap(),
        br#"{"hello":"world"}"#.to_vec()
    );
}

#[tokio::test]
async fn list_hosts_counts_snapshots_and_last_seen() {
    let (_dir, store) = store();
    let token = org_with_token(&store, "ORG-1", "prod");
    let a = store
        .enroll(request(&token, Uuid::new_v4()), now())
        .await
        .unwrap();
    let mut req_b = request(&token, Uuid::new_v4());
    req_b.hostname = "vda02".to_owned();
    let b = store.enroll(req_b, now()).await.unwrap();
    let agent_a = identity(&store, &a.credential).await;
    let seen = now();
    for _ in 0..3 {
        store
            .insert_snapshot(agent_a.clone(), snapshot(Uuid::now_v7()), seen)
            .await
            .unwrap();
    }
    let hosts = store.list_hosts(None, None).unwrap();
    assert_eq!(hosts.len(), 2);
    let host_a = hosts.iter().find(|h| h.host_id == a.host_id).unwrap();
    let host_b = hosts.iter().find(|h| h.host_id == b.host_id).unwrap();
    assert_eq!(host_a.snapshots, 3);
    assert_eq!(host_a.last_seen.as_deref(), Some(ts(seen).as_str()));
    assert_eq!(host_b.snapshots, 0);
    assert_eq!(host_b.last_seen, None);
    assert_eq!(host_a.environment, "prod");
    assert_eq!(store.list_environments("ORG-1").unwrap()[0].hosts, 2);
    assert!(store.list_hosts(Some("ORG-1"), Some("other")).unwrap().is_empty());
}

#[test]
fn timestamps_sort_as_text_and_parse_as_rfc3339() {
    let a = ts(OffsetDateTime::UNIX_EPOCH + TimeDuration::milliseconds(1500));
    assert_eq!(a, "1970-01-01T00:00:01.500000Z");
    OffsetDateTime::parse(&a, &time::format_description::well_known::Rfc3339).unwrap();
}

#[tokio::test]
async fn close_waits_for_other_handles_and_removes_the_wal() {
    if crate::store::testing::postgres_url().is_some() {
        return; // SQLite's WAL file
    }
    let (dir, store) = store();
    store.add_org("ORG-1", "Example", &Actor::cli(), now()).unwrap();
    let wal = dir.path().join(format!("{DB_FILE_NAME}-wal"));
    assert!(
        wal.exists(),
        "WAL mode keeps a -wal file while the database is open"
    );
    // Another handle (a commit still running) keeps it open past the wait.
    let other = store.clone();
    assert!(!store.clone().close(Duration::from_millis(50)).await.unwrap());
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(other);
    });
    drop(store.clone());
    assert!(store.close(Duration::from_secs(5)).await.unwrap());
    release.await.unwrap();
    assert!(!wal.exists(), "the last close checkpoints and deletes the WAL");
    // What was committed is in the database file.
    let reopened = crate::store::testing::open(dir.path());
    assert_eq!(reopened.list_orgs().unwrap().len(), 1);
}

#[tokio::test]
async fn retention_prunes_old_snapshots_in_batches_but_keeps_each_hosts_latest() {
    let (_dir, store) = store();
    let token = org_with_token(&store, "ORG-1", "prod");
    let t = now();
    let mut agents = Vec::new();
    for _ in 0..2 {
        let enrolled = store.enroll(request(&token, Uuid::new_v4()), t).await.unwrap();
        agents.push(identity(&store, &enrolled.credential).await);
    }
    let days = |n: i64| t - TimeDuration::days(n);
    // Host A: two old snapshots and a recent one; host B: only an old one (its latest).
    for (agent, age) in [(0, 40), (0, 35), (0, 1), (1, 60)] {
        let at = days(age);
        store
            .insert_snapshot(
                agents[agent].clone(),
                snapshot_judged(Uuid::now_v7(), at, Vec::new()),
                at,
            )
            .await
            .unwrap();
    }
    store
        .lock()
        .execute(
            "INSERT INTO score_history (scope, scope_id, day, score, findings, updated_at)
             VALUES ('org', 'ORG-1', ?1, 10.0, 1, ?2), ('org', 'ORG-1', ?3, 20.0, 2, ?2)",
            params![days(800).date().to_string(), ts(t), days(10).date().to_string()],
        )
        .unwrap();
    let settings = retention::RetentionSettings {
        batch: 1,
        ..retention::RetentionSettings::default()
    };
    let report = store.prune(t, settings).await.unwrap();
    assert_eq!((report.snapshots, report.score_history), (2, 1));
    assert!(report.batches >= 4, "one row per batch: {report:?}");
    assert_eq!(store.count_snapshots().unwrap(), 2);
    let trend_points: i64 = store
        .lock()
        .query_row("SELECT COUNT(*) FROM trend_points", [], |r| r.get(0))
        .unwrap();
    assert_eq!(trend_points, 2, "trend points go with their snapshots");
    // Nothing more to do the second time.
    let again = store.prune(t, settings).await.unwrap();
    assert_eq!((again.snapshots, again.score_history), (0, 0));
}
