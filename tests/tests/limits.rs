//! Issue 7 limits, end to end: one credential's flood gets 429s while another agent is still
//! served; a slowloris client is cut off within the header read timeout; too many connections from
//! one address are closed at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callhome_e2e::{Agent, Collector, post, tls_client_config};

const SNAPSHOTS: &str = callhome_shared::api::SNAPSHOTS_PATH;

fn collector(limits: &str) -> Collector {
    let c = Collector::new(Some(&format!("[limits]\n{limits}")));
    c.seed_org("ACME", "2026-01-01", "2027-12-31");
    c.env_add("ACME", "prod");
    c.start()
}

fn tls(collector: &Collector) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let mut tcp = std::net::TcpStream::connect(collector.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let config = Arc::new(tls_client_config(&collector.cert_path()));
    let name = rustls::pki_types::ServerName::from(collector.addr.ip());
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    rustls::StreamOwned::new(conn, tcp)
}

/// Whether the server has closed the connection (EOF or an error other than a read timeout).
fn closed(stream: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>) -> bool {
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn one_credentials_flood_gets_429_while_another_is_served() {
    let collector = collector("agent_posts_per_minute = 6\nagent_posts_burst = 3\n");
    let token = collector.issue_token("ACME", "prod");
    let (a, b) = (Agent::new(), Agent::new());
    a.enroll(&collector, &token);
    b.enroll(&collector, &token);
    let body = serde_json::to_vec(&a.collect()).unwrap();

    let mut statuses = Vec::new();
    for _ in 0..10 {
        let reply = post(&collector, SNAPSHOTS, Some(&a.credential()), None, body.clone());
        if reply.status == 429 {
            let after: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(
                (1..=10).contains(&after),
                "Retry-After {after}: a token comes back every 10 s"
            );
            assert_eq!(reply.body["error"], "too_many_requests");
        }
        statuses.push(reply.status);
    }
    assert_eq!(
        &statuses[..3],
        &[201, 200, 200],
        "the burst is served: {statuses:?}"
    );
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 6, "the flood is refused: {statuses:?}");

    // Another agent of the same org, at the same time, is not affected.
    let b_body = serde_json::to_vec(&b.collect()).unwrap();
    let reply = post(&collector, SNAPSHOTS, Some(&b.credential()), None, b_body);
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(collector.stored_ids().len(), 2);
}

#[test]
fn a_slowloris_client_is_cut_off_within_the_header_read_timeout() {
    let collector = collector("header_read_timeout_secs = 2\n");
    let mut stream = tls(&collector);
    stream
        .write_all(b"POST /v1/snapshots HTTP/1.1\r\nhost: collector\r\nx-slow: ")
        .unwrap();
    stream.flush().unwrap();
    let started = Instant::now();
    // One header byte every 300 ms: a connection kept alive by trickling, never completing.
    let cut_after = loop {
        if started.elapsed() > Duration::from_secs(15) {
            panic!("still connected after 15 s");
        }
        let wrote = stream.write_all(b"a").and_then(|()| stream.flush());
        if wrote.is_err() || closed(&mut stream) {
            break started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        cut_after >= Duration::from_millis(1500) && cut_after < Duration::from_secs(5),
        "cut off after {cut_after:?} (header_read_timeout_secs = 2)"
    );
    // The server still answers others.
    let reply = post(&collector, "/healthz", None, None, Vec::new());
    assert!(reply.status == 200 || reply.status == 405, "{reply:?}");
}

#[test]
fn connections_past_the_per_address_cap_are_closed_at_once() {
    let collector = collector("max_connections_per_ip = 3\n");
    let held: Vec<_> = (0..3).map(|_| tls(&collector)).collect();
    // The fourth is closed before its handshake completes.
    let mut tcp = std::net::TcpStream::connect(collector.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let config = Arc::new(tls_client_config(&collector.cert_path()));
    let name = rustls::pki_types::ServerName::from(collector.addr.ip());
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut failed = false;
    for _ in 0..20 {
        if !conn.is_handshaking() {
            break;
        }
        if conn.complete_io(&mut tcp).is_err() {
            failed = true;
            break;
        }
    }
    assert!(
        failed,
        "a fourth connection from the same address completed its handshake"
    );
    drop(held);
    // Places come back when connections close.
    std::thread::sleep(Duration::from_millis(200));
    let _again = tls(&collector);
}
