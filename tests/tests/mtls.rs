//! Mutual TLS end to end (issue 7 item 1): the real collector with `[tls] client_auth = "required"`
//! and the real agent. The agent makes its key, gets a certificate at enrollment, presents it, and
//! renews it before it runs low; the collector refuses a request without a certificate, with one
//! bound to another host, from another CA, or expired.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use callhome_e2e::{Agent, Collector, FakeCollector, post, runtime};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const SNAPSHOTS: &str = "/v1/snapshots";
const CERTIFICATE: &str = "/v1/agents/certificate";

fn collector(tls: &str) -> Collector {
    let c = Collector::new(Some(&format!("[tls]\n{tls}")));
    c.seed_org("ACME", "2026-01-01", "2027-12-31");
    c.env_add("ACME", "prod");
    c.start()
}

fn enrolled(collector: &Collector) -> Agent {
    let agent = Agent::new();
    let token = collector.issue_token("ACME", "prod");
    agent.enroll(collector, &token);
    agent
}

fn identity_path(agent: &Agent) -> std::path::PathBuf {
    agent.state_dir().join("client-identity.pem")
}

/// The certificate and key an agent keeps.
fn identity_of(agent: &Agent) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let path = identity_path(agent);
    let chain = CertificateDer::pem_file_iter(&path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (chain, PrivateKeyDer::from_pem_file(&path).unwrap())
}

fn host_id_of(agent: &Agent) -> String {
    let text = std::fs::read_to_string(agent.state_dir().join("enrollment.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["host_id"].as_str().unwrap().to_owned()
}

/// An HTTPS client trusting the collector's certificate and presenting `identity`.
fn client_with(
    collector: &Collector,
    identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(collector.cert_path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.0, identity.1)
        .unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POSTs `body` as JSON with a bearer credential; the status and the JSON answer, or the transport
/// error.
fn post_with(
    client: &reqwest::Client,
    collector: &Collector,
    path: &str,
    credential: &str,
    body: &str,
) -> Result<(u16, serde_json::Value), String> {
    let url = format!("{}{path}", collector.url());
    runtime().block_on(async {
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .bearer_auth(credential)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| format!("{e:?}"))?;
        let body = serde_json::from_slice(&bytes).map_err(|e| format!("{e}: {bytes:?}"))?;
        Ok((status, body))
    })
}

/// A client certificate for `host_id` in ACME/prod, signed with the key in `ca_dir` (`ca.pem`,
/// `ca.key`), valid from `not_before` to `not_after`.
fn forged(
    ca_dir: &Path,
    host_id: &str,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).unwrap()).unwrap();
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, &ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = [
        format!("urn:callhome:host:{host_id}"),
        "urn:callhome:org:ACME".to_owned(),
        "urn:callhome:env:prod".to_owned(),
    ]
    .into_iter()
    .map(|uri| rcgen::SanType::URI(uri.try_into().unwrap()))
    .collect();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        vec![cert.der().clone()],
        PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
    )
}

/// The TLS handshakes the collector refused for a client certificate (logged at debug).
fn refused_handshakes(collector: &Collector, reason: &str) -> usize {
    collector
        .log_text()
        .lines()
        .filter(|l| l.contains("TLS handshake failed") && l.contains(reason))
        .count()
}

#[test]
fn a_required_client_certificate_binds_the_credential_to_its_host() {
    let collector = collector("client_auth = \"required\"\n");
    assert!(
        collector.log_text().contains("client certificates required"),
        "{}",
        collector.log_text()
    );
    // `tls agent-ca` shows the CA the collector made at start.
    let shown = collector.admin(&["tls", "agent-ca"]);
    let ca_pem = collector.dir.path().join("agent-ca/ca.pem");
    assert!(shown.contains(&ca_pem.display().to_string()), "{shown}");
    assert!(shown.contains("SHA-256 fingerprint "), "{shown}");

    // Enrollment: the agent's key stays on the host (0600), its certificate binds host, org, env.
    let a = enrolled(&collector);
    let b = enrolled(&collector);
    let path = identity_path(&a);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&path).unwrap();
    let sent = a.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");
    assert_eq!(collector.stored_ids().len(), 1);
    // 90 days left: no renewal.
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A valid credential without a certificate: refused, and says why.
    let (cred_a, cred_b) = (a.credential(), b.credential());
    for route in [SNAPSHOTS, CERTIFICATE] {
        let reply = post(&collector, route, Some(&cred_a), None, b"{}".to_vec());
        assert_eq!(reply.status, 401, "{route}: {:?}", reply.body);
        assert_eq!(reply.body["error"], "client_certificate_required", "{route}");
    }

    // Host B's credential over host A's certificate: refused, naming both hosts.
    let with_a = client_with(&collector, identity_of(&a));
    let (status, body) = post_with(&with_a, &collector, SNAPSHOTS, &cred_b, "{}").unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "client_certificate_mismatch");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "is for host {} but the credential belongs to host {}",
            host_id_of(&a),
            host_id_of(&b)
        )),
        "{message}"
    );
    // A's own credential passes the certificate check (and fails on the empty body).
    let (status, body) = post_with(&with_a, &collector, SNAPSHOTS, &cred_a, "{}").unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(collector.stored_ids().len(), 1);

    // A certificate for A from another CA, and an expired one from the right CA: the handshake fails.
    let now = time::OffsetDateTime::now_utc();
    let other_ca = tempfile::tempdir().unwrap();
    make_ca(other_ca.path());
    let strange = forged(
        other_ca.path(),
        &host_id_of(&a),
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
    );
    let err = post_with(
        &client_with(&collector, strange),
        &collector,
        SNAPSHOTS,
        &cred_a,
        "{}",
    )
    .unwrap_err();
    assert!(!err.is_empty());
    let expired = forged(
        &collector.dir.path().join("agent-ca"),
        &host_id_of(&a),
        now - time::Duration::days(2),
        now - time::Duration::days(1),
    );
    let err = post_with(
        &client_with(&collector, expired),
        &collector,
        SNAPSHOTS,
        &cred_a,
        "{}",
    )
    .unwrap_err();
    assert!(!err.is_empty());
    wait_for(
        || refused_handshakes(&collector, "invalid peer certificate") >= 2,
        &collector,
    );
    assert_eq!(
        refused_handshakes(&collector, "UnknownIssuer"),
        1,
        "{}",
        collector.log_text()
    );
    assert_eq!(
        refused_handshakes(&collector, "expired"),
        1,
        "{}",
        collector.log_text()
    );

    // An agent that sends no CSR (an older one) cannot enroll with a collector that requires them.
    let token = collector.issue_token("ACME", "prod");
    let old = serde_json::json!({
        "token": token, "host_id": "0190f5a8-3c4d-7e5f-8a9b-0c1d2e3f4a5b", "hostname": "old01",
        "role": "vda", "agent_version": "0.0.1"
    });
    let reply = post(
        &collector,
        "/v1/enroll",
        None,
        None,
        serde_json::to_vec(&old).unwrap(),
    );
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert!(
        reply.body["message"].as_str().unwrap().contains("carries no CSR"),
        "{:?}",
        reply.body
    );
    assert_eq!(collector.hosts().len(), 2);
}

/// A stand-alone CA like the collector's (for a certificate it did not sign).
fn make_ca(dir: &Path) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "callhome agent CA (another)");
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("ca.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
}

fn wait_for(mut done: impl FnMut() -> bool, collector: &Collector) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "not logged within 10 s\n{}",
            collector.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_agent_renews_its_certificate_before_a_delivery_when_it_runs_low() {
    // Two minutes of validity (plus the hour of clock slack before issue): less than a third is left
    // at once, so every delivery renews first.
    let collector = collector("client_auth = \"required\"\nclient_cert_validity_secs = 120\n");
    let agent = enrolled(&collector);
    let path = identity_path(&agent);
    let first = std::fs::read_to_string(&path).unwrap();
    let out = agent.run(&["send"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("client certificate renewed"), "{stderr}");
    let second = std::fs::read_to_string(&path).unwrap();
    assert_ne!(first, second, "a new certificate and a new key");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(collector.stored_ids().len(), 1);
    let issued = collector
        .log_text()
        .lines()
        .filter(|l| l.contains("client certificate issued"))
        .count();
    assert_eq!(issued, 2, "{}", collector.log_text());
    // Neither side logged a private key (debug logging on both).
    for pem in [&first, &second] {
        let key_line = pem
            .lines()
            .skip_while(|l| !l.contains("BEGIN PRIVATE KEY"))
            .nth(1)
            .unwrap();
        assert!(!stderr.contains(key_line) && !collector.log_text().contains(key_line));
    }
    // The renewed certificate is the one presented now.
    let sent = agent.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");
    assert_eq!(collector.stored_ids().len(), 2);
}

#[test]
fn with_client_auth_off_certificates_are_issued_but_not_asked_for() {
    let collector = collector("client_auth = \"off\"\n");
    let agent = enrolled(&collector);
    let path = identity_path(&agent);
    assert!(
        path.exists(),
        "issued at enrollment, so that `required` can be turned on later"
    );
    let sent = agent.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");
    // Nothing asks for it: a client without a certificate is served (and fails on the empty body).
    let reply = post(
        &collector,
        SNAPSHOTS,
        Some(&agent.credential()),
        None,
        b"{}".to_vec(),
    );
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    // An agent without one (enrolled before the collector issued them) delivers as before, and asks
    // for none: only renewals go to the certificate route.
    std::fs::remove_file(&path).unwrap();
    let sent = agent.run_ok(&["send"]);
    assert!(sent.starts_with("stored "), "{sent}");
    assert!(!path.exists());
    assert!(!collector.log_text().contains(&format!("path={CERTIFICATE} ")));
    assert_eq!(collector.stored_ids().len(), 2);
}

#[test]
fn a_failed_renewal_is_logged_and_the_delivery_goes_on_with_the_current_certificate() {
    // The renewal (the first request) fails with a 503; the snapshot post that follows is stored.
    let fake = FakeCollector::start(|n| match n {
        0 => (
            503,
            vec![],
            r#"{"error":"unavailable","message":"try later"}"#.into(),
        ),
        _ => (
            201,
            vec![],
            format!(
                r#"{{"id":"{}","status":"stored"}}"#,
                "00000000-0000-0000-0000-000000000000"
            ),
        ),
    });
    let agent = Agent::new();
    agent.write_enrollment(&fake.url(), &fake.ca_path);
    // A certificate with an hour left of 25: renewal is due, the certificate still valid.
    let now = time::OffsetDateTime::now_utc();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::hours(1);
    let cert = params.self_signed(&key).unwrap();
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let path = identity_path(&agent);
    std::fs::write(&path, &pem).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let out = agent.run(&["send"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let paths: Vec<String> = fake.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [CERTIFICATE, SNAPSHOTS], "{stderr}");
    assert!(stderr.contains("cannot renew the client certificate"), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
    // The snapshot was stored all the same, and the current certificate is kept.
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("stored "),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
}
