//! Issue 7, secrets: a whole scenario with debug logging everywhere (enrollment, delivery, a
//! Priority Plus alert, console users and API tokens), then every log and every stderr is searched
//! for each secret it used. Commands that hand a secret out print it on stdout, once, by design;
//! nothing else may show it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use callhome_e2e::{Agent, Collector, https_client, rpm_host, runtime, send_tree};

const PASSWORD: &str = "correct horse battery staple 42";
const WEBHOOK_SECRET: &str = "webhook-secret-never-logged-0123456789";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn no_secret_appears_in_any_log() {
    let collector = Collector::new(Some(
        // The receiver is not listening: failed deliveries are logged too, and must not leak.
        "[webhook]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"webhook.secret\"\n",
    ));
    std::fs::write(collector.dir.path().join("webhook.secret"), WEBHOOK_SECRET).unwrap();
    collector.seed_org("ACME", "2026-01-01", "2027-12-31");
    collector.env_add("ACME", "prod");
    let enrollment_token = collector.issue_token("ACME", "prod");
    let collector = collector.start();

    let mut logs = Vec::new();
    let agent = Agent::with_config("[probes.updates]\nenabled = false\n");
    let enroll = agent.run(&[
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &enrollment_token,
        "--ca",
        collector.cert_path().to_str().unwrap(),
    ]);
    assert!(enroll.status.success(), "{}", stderr(&enroll));
    logs.push(("agent enroll stderr", stderr(&enroll)));
    let credential = agent.credential();
    let send = agent.run(&["send"]);
    assert!(send.status.success(), "{}", stderr(&send));
    logs.push(("agent send stderr", stderr(&send)));
    logs.push((
        "agent send stdout",
        String::from_utf8_lossy(&send.stdout).into_owned(),
    ));

    // A critical on a Priority Plus org: an alert attempt, signed with the webhook secret.
    let trees = tempfile::tempdir().unwrap();
    // Captured after the live snapshot above, so that it is the host's newest and is judged.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let down = rpm_host(trees.path(), "down", &later, true);
    send_tree(&agent, &collector, &down);

    // Console users and an API token, used once.
    let add = collector.admin_output(&["user", "add", "ada", "--role", "admin", "--name", "Ada"]);
    assert!(!add.status.success(), "no password on stdin must be refused");
    collector.admin_with_stdin(
        &["user", "add", "ada", "--role", "admin", "--name", "Ada"],
        PASSWORD,
    );
    let api_token = collector
        .admin(&["api-token", "issue", "ada", "--name", "ci"])
        .trim()
        .to_owned();
    let me = runtime().block_on(async {
        https_client(&collector.cert_path())
            .get(format!("{}/v1/me", collector.url()))
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(me.as_u16(), 200);
    let wrong = runtime().block_on(async {
        https_client(&collector.cert_path())
            .get(format!("{}/v1/me", collector.url()))
            .bearer_auth(format!("{api_token}x"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(wrong.as_u16(), 401);
    // Give the webhook sender time to try (and fail) at least once.
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let log = collector.log_text();
    assert!(log.contains("DEBUG"), "the collector logged at debug level");
    assert!(log.contains("webhook failed"), "an alert was attempted: {log}");
    logs.push(("collector log", log));

    for (secret_name, secret) in [
        ("enrollment token", enrollment_token.as_str()),
        ("agent credential", credential.as_str()),
        ("password", PASSWORD),
        ("API token", api_token.as_str()),
        ("webhook secret", WEBHOOK_SECRET),
    ] {
        assert!(
            secret.len() >= 16,
            "{secret_name} looks too short to search for: {secret:?}"
        );
        for (where_, text) in &logs {
            assert!(
                !text.contains(secret),
                "the {secret_name} appears in the {where_}"
            );
        }
    }
}
