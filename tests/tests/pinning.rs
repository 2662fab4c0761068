//! Public-key pinning end to end (issue 7 item 2) and the agent's refusal of a credential file others
//! can read (item 6): the real binaries, the collector's real key, its pin from `tls pin`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use callhome_e2e::{Agent, Collector, describe};

/// sysexits: the agent's "fix the config" and "try later" (the snapshot waits in the spool).
const EX_CONFIG: i32 = 78;
const EX_TEMPFAIL: i32 = 75;

/// A well-formed pin of no real key.
const WRONG_PIN: &str = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The collector's pin as `callhome-collector tls pin` prints it: alone on stdout.
fn pin_of(collector: &Collector) -> String {
    let out = collector.admin(&["tls", "pin"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "tls pin must print the pin alone: {out:?}");
    let pin = lines[0].to_string();
    assert!(pin.starts_with("sha256//") && pin.len() == 8 + 44, "{pin}");
    pin
}

/// The requests the collector logged for `path` (one `request` line each, at info).
fn requests_to(collector: &Collector, path: &str) -> usize {
    collector
        .log_text()
        .lines()
        .filter(|l| l.contains(" request ") && l.contains(&format!("path={path} ")))
        .count()
}

/// Rewrites the agent's config: its state directory plus `extra`.
fn set_agent_config(agent: &Agent, extra: &str) {
    let config = format!(
        "state_dir = {:?}\n{extra}",
        agent.state_dir().display().to_string()
    );
    std::fs::write(agent.dir.path().join("agent.toml"), config).unwrap();
}

#[test]
fn a_pin_alone_trusts_the_collectors_self_signed_key() {
    let collector = Collector::start_with_demo_org();
    let pin = pin_of(&collector);
    // The collector logged the same pin at start, beside its certificate's fingerprint.
    assert!(
        collector.log_text().contains(&format!("public key pin {pin}")),
        "{}",
        collector.log_text()
    );

    let agent = Agent::new();
    let token = collector.issue_token("ACME", "prod");
    let enrolled = agent.run_ok(&[
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &token,
        "--pin",
        WRONG_PIN,
        "--pin",
        &pin,
    ]);
    assert!(enrolled.contains("ACME"), "{enrolled}");
    // Kept for `send`: the pins, and no CA copy.
    let saved = std::fs::read_to_string(agent.state_dir().join("collector-pins")).unwrap();
    assert_eq!(saved, format!("{WRONG_PIN}\n{pin}\n"));
    assert!(!agent.state_dir().join("collector-ca.pem").exists());

    let sent = agent.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");
    assert_eq!(collector.stored_ids().len(), 1);
}

#[test]
fn a_wrong_pin_refuses_the_collector_and_sends_nothing() {
    let collector = Collector::start_with_demo_org();
    let pin = pin_of(&collector);
    let token = collector.issue_token("ACME", "prod");

    // Enrollment with a wrong pin: refused before the token is sent.
    let agent = Agent::new();
    let args = [
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &token,
        "--pin",
        WRONG_PIN,
    ];
    let out = agent.run(&args);
    let shown = describe(&agent.command(&args), &out);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{shown}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("collector public key {pin} is not one of the pinned keys (collector.pin_sha256)");
    assert!(stderr.contains(&expected), "{shown}");
    assert!(!agent.state_dir().join("enrollment.json").exists());
    assert_eq!(requests_to(&collector, "/v1/enroll"), 0);
    assert!(collector.hosts().is_empty());

    // Enrolled with the right pin, then the config pins another key: the config wins, and `send`
    // keeps the snapshot in the spool without a byte of it reaching the collector.
    agent.run_ok(&[
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &token,
        "--pin",
        &pin,
    ]);
    assert_eq!(requests_to(&collector, "/v1/enroll"), 1);
    set_agent_config(&agent, &format!("[collector]\npin_sha256 = [{WRONG_PIN:?}]\n"));
    let out = agent.run(&["send"]);
    let shown = describe(&agent.command(&["send"]), &out);
    assert_eq!(out.status.code(), Some(EX_TEMPFAIL), "{shown}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("spooled "),
        "{shown}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&expected),
        "{shown}"
    );
    assert_eq!(agent.spool_files().len(), 1, "{shown}");
    assert_eq!(requests_to(&collector, "/v1/snapshots"), 0);
    assert!(collector.stored_ids().is_empty());
    // The attempt did reach the collector, and ended in the handshake.
    assert!(
        collector.log_text().contains("TLS handshake failed"),
        "{}",
        collector.log_text()
    );

    // Back to the saved pin: the spooled snapshot and a new one are delivered.
    set_agent_config(&agent, "");
    let sent = agent.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");
    assert_eq!(collector.stored_ids().len(), 2);
}

#[test]
fn a_pin_and_a_ca_must_both_pass() {
    let collector = Collector::start_with_demo_org();
    let pin = pin_of(&collector);
    let cert = collector.cert_path();

    let agent = Agent::new();
    let token = collector.issue_token("ACME", "prod");
    agent.run_ok(&[
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &token,
        "--ca",
        cert.to_str().unwrap(),
        "--pin",
        &pin,
    ]);
    let sent = agent.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");

    // The right pin with a CA that did not sign the collector's certificate: refused for the chain.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other_ca = agent.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let stranger = Agent::new();
    let args = [
        "enroll",
        "--collector",
        &collector.url(),
        "--token",
        &collector.issue_token("ACME", "prod"),
        "--ca",
        other_ca.to_str().unwrap(),
        "--pin",
        &pin,
    ];
    let out = stranger.run(&args);
    let shown = describe(&stranger.command(&args), &out);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{shown}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate was not trusted"), "{shown}");
    assert!(!stderr.contains("pinned keys"), "{shown}");

    // The right CA with a wrong pin: refused for the pin.
    set_agent_config(&agent, &format!("[collector]\npin_sha256 = [{WRONG_PIN:?}]\n"));
    let out = agent.run(&["send"]);
    let shown = describe(&agent.command(&["send"]), &out);
    assert_eq!(out.status.code(), Some(EX_TEMPFAIL), "{shown}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not one of the pinned keys"),
        "{shown}"
    );
    assert_eq!(collector.stored_ids().len(), 1);
    assert_eq!(collector.hosts().len(), 1);
}

#[test]
fn a_bad_pin_in_the_config_is_named_with_its_line() {
    let agent = Agent::with_config("[collector]\npin_sha256 = [\n  \"sha256//not-a-key\",\n]\n");
    let out = agent.run(&["validate"]);
    let shown = describe(&agent.command(&["validate"]), &out);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{shown}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Line 4: the harness writes `state_dir` first.
    assert!(
        stderr.contains("line 4: `collector.pin_sha256`") && stderr.contains("sha256//not-a-key"),
        "{shown}"
    );
}

#[test]
fn send_refuses_a_credential_file_others_can_read() {
    let collector = Collector::start_with_demo_org();
    let agent = Agent::new();
    agent.enroll(&collector, &collector.issue_token("ACME", "prod"));
    let path = agent.state_dir().join("enrollment.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "enrollment.json is written 0600");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = agent.run(&["send"]);
    let shown = describe(&agent.command(&["send"]), &out);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{shown}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&path.display().to_string())
            && stderr.contains("mode 0644")
            && stderr.contains(&format!("chmod 600 {}", path.display())),
        "{shown}"
    );
    assert_eq!(requests_to(&collector, "/v1/snapshots"), 0);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sent = agent.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");
}
