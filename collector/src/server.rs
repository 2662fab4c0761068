//! `serve`: the TCP listener, the TLS handshake and the HTTP/1.1 connection per client, and graceful
//! shutdown on SIGTERM/SIGINT.
//!
//! Shutdown, in order: the router starts answering 503 `shutting_down` (`/readyz` included); the
//! listener closes (new connections are refused); every connection is told to finish (hyper's
//! `graceful_shutdown`): one that is idle between requests, or has not sent a byte yet, closes at once
//! (nothing of it was processed, so the client can simply retry); one whose request is in flight, or
//! has begun to arrive, gets its answer (the 503 if it had not reached a handler yet) with
//! `Connection: close`, and then closes. After at most `limits.shutdown_drain_secs` the remaining
//! connections are closed, the last commits are waited for and the database is closed cleanly. A 2xx
//! is only ever sent after its commit, so every 2xx the collector sent is in the store, whenever the
//! process stops.
//!
//! A request written on an idle keep-alive connection just as it closes gets no answer: that race is
//! HTTP/1.1's own (RFC 9112 §9.6), no server can close it; the agent retries, and the snapshot id makes
//! the retry harmless.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::agent_ca::{AgentCa, PeerCertificate};
use crate::config::{ClientAuth, Config, Limits};
use crate::http::{AppState, app};
use crate::store::Store;
use crate::tls;

/// After the drain: how long the database may wait for commits whose requests were cut, before it is
/// left to close when they end. A commit waits at most for SQLite's busy timeout (5 s).
const CLOSE_WAIT: Duration = Duration::from_secs(6);

/// Runs the collector until SIGTERM or SIGINT.
pub async fn serve(config: Config, data_dir: &Path) -> anyhow::Result<()> {
    let store = Store::open_configured(data_dir, config.database_url.as_deref())
        .context("cannot open the database")?;
    let identity = tls::load_or_generate(&config.tls, data_dir).context("cannot set up TLS")?;
    let (agent_ca, ca_created) =
        AgentCa::load_or_create(data_dir).context("cannot set up the agent CA (mutual TLS)")?;
    let mutual = config.tls.client_auth == ClientAuth::Required;
    let tls_config =
        tls::server_config(&identity, mutual.then_some(&agent_ca)).context("cannot set up TLS")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;

    let data_dir_shown = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    tracing::info!("data directory {}", data_dir_shown.display());
    match store.location() {
        crate::store::Location::Sqlite(path) => {
            let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            tracing::info!("embedded SQLite at {}", shown.display());
        }
        location => tracing::info!("PostgreSQL at {location}"),
    }
    tracing::info!("{}", identity.describe());
    tracing::info!(
        "{} agent CA {} (SHA-256 fingerprint {}); client certificates {}",
        if ca_created { "made" } else { "using" },
        agent_ca.cert_path().display(),
        agent_ca.fingerprint(),
        if mutual {
            "required"
        } else {
            "issued, not required"
        }
    );
    let state = AppState::new(store.clone(), config.limits)
        .with_console(config.console)
        .with_agent_ca(std::sync::Arc::new(agent_ca), &config.tls)
        .with_metrics(&config.metrics)?;
    let shutdown = shutdown_signal()?;
    let (background_stop, background_stop_rx) = watch::channel(false);
    let mut background = JoinSet::new();
    background.spawn(crate::jobs::run(
        store.clone(),
        config.jobs,
        background_stop_rx.clone(),
    ));
    match crate::webhook::Sender::from_config(&config.webhook)? {
        Some(sender) => {
            background.spawn(sender.run(store.clone(), background_stop_rx));
        }
        None => tracing::info!("no webhook.url: Priority Plus alerts are queued but not sent"),
    }
    tracing::info!("listening on https://{addr}");
    run(listener, TlsAcceptor::from(tls_config), state, shutdown).await;
    let _ = background_stop.send(true);
    if tokio::time::timeout(CLOSE_WAIT, async {
        while background.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        background.shutdown().await;
    }
    match store.close(CLOSE_WAIT).await {
        Ok(true) => tracing::info!("database closed"),
        Ok(false) => {
            tracing::warn!("database still in use after the drain: it closes when the last commit ends")
        }
        Err(e) => {
            tracing::warn!(error = %e, "closing the database failed; SQLite recovers the WAL on the next start")
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The accept loop: one task per connection; returns after `shutdown` completes and in-flight
/// connections and commits have finished (or `limits.shutdown_drain_secs` ran out).
pub async fn run(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limits = state.limits;
    let admission = std::sync::Arc::clone(&state.admission);
    let router = app(state);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let open = OpenConnections::new(limits.max_connections, limits.max_connections_per_ip);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match open.admit(peer.ip()) {
                    Some(slot) => {
                        let conn = connection(stream, peer, acceptor.clone(), router.clone(), limits, stop_rx.clone());
                        connections.spawn(async move {
                            conn.await;
                            drop(slot);
                        });
                    }
                    None => {
                        // Closed before the handshake: a flood of connections costs no TLS work.
                        tracing::debug!(%peer, "connection refused: too many open connections");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // From here on a request that reaches the router is answered 503; those past it finish.
    admission.start_draining();
    drop(listener);
    let drain = limits.shutdown_drain();
    let deadline = tokio::time::Instant::now() + drain;
    tracing::info!(
        connections = connections.len(),
        snapshots_in_flight = admission.in_flight(),
        drain_secs = drain.as_secs(),
        "shutting down: no new connections, finishing requests in flight"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "drain time over: closing the remaining connections (their requests got no answer)"
        );
        connections.shutdown().await;
    }
    // Commits of requests that were cut (or whose client left) run on in their own tasks.
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !admission.wait_idle(remaining.max(Duration::from_secs(1))).await {
        tracing::warn!(
            snapshots_in_flight = admission.in_flight(),
            "drain time over with commits still running"
        );
    }
    let refused = admission.refused_total();
    if refused > 0 {
        tracing::info!(refused, "snapshot posts refused with 429 since start");
    }
}

/// Counts open connections, in all and per client address, against `limits.max_connections` and
/// `limits.max_connections_per_ip`.
#[derive(Debug, Clone)]
struct OpenConnections {
    max: u32,
    max_per_ip: u32,
    counts: std::sync::Arc<std::sync::Mutex<(u32, std::collections::HashMap<std::net::IpAddr, u32>)>>,
}

/// One open connection's place; dropping it frees the place.
#[derive(Debug)]
struct ConnectionSlot {
    ip: std::net::IpAddr,
    open: OpenConnections,
}

impl OpenConnections {
    fn new(max: u32, max_per_ip: u32) -> OpenConnections {
        OpenConnections {
            max,
            max_per_ip,
            counts: Default::default(),
        }
    }

    fn admit(&self, ip: std::net::IpAddr) -> Option<ConnectionSlot> {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *guard;
        let mine = per_ip.entry(ip).or_insert(0);
        if *total >= self.max || *mine >= self.max_per_ip {
            if *mine == 0 {
                per_ip.remove(&ip);
            }
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(ConnectionSlot {
            ip,
            open: self.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut guard = self.open.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: axum::Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(limits.tls_handshake_timeout(), acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    // The client certificate, verified by rustls against the agent CA, read once per connection.
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(<[_]>::first)
        .map(|leaf| std::sync::Arc::new(PeerCertificate::parse(leaf)));
    if let Some(cert) = &client_cert {
        tracing::debug!(%peer, binding = ?cert.binding, "client certificate presented");
    }
    // The peer's address, for the sign-in lock-out per address (`http::auth::client_ip`), and its
    // certificate, for the agent routes (`http::agent_cert`).
    let service = TowerToHyperService::new(tower::ServiceExt::map_request(
        router,
        move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            if let Some(cert) = &client_cert {
                request.extensions_mut().insert(std::sync::Arc::clone(cert));
            }
            request
        },
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout());
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        () = stopped(&mut stop) => {
            // Finish the request in flight, if any, then close.
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error during shutdown");
            }
        }
    }
}

/// Completes when the accept loop asks connections to stop (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// A future that completes on the first SIGTERM or SIGINT. The handlers are installed now, before the
/// collector says it listens, so a signal sent right after that line is never missed.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_connections_are_capped_in_all_and_per_address() {
        let open = OpenConnections::new(3, 2);
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let b: std::net::IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = open.admit(a).unwrap();
        let _a2 = open.admit(a).unwrap();
        assert!(open.admit(a).is_none(), "per address");
        let b1 = open.admit(b).unwrap();
        assert!(open.admit(b).is_none(), "in all");
        drop(b1);
        let _b2 = open.admit(b).unwrap();
        drop(a1);
        assert!(open.admit(a).is_some(), "a closed connection frees its place");
    }
}
