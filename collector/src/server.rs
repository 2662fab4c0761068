//! `serve`: the TCP listener, the TLS handshake and the HTTP/1.1 connection per client, and graceful
//! shutdown on SIGTERM/SIGINT (stop accepting, let in-flight requests finish for a bounded time).

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

use crate::config::{Config, Limits};
use crate::http::{AppState, app};
use crate::store::Store;
use crate::tls;

/// How long in-flight requests may run after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the collector until SIGTERM or SIGINT.
pub async fn serve(config: Config, data_dir: &Path) -> anyhow::Result<()> {
    let store = Store::open_in(data_dir).context("cannot open the database")?;
    let identity = tls::load_or_generate(&config.tls, data_dir).context("cannot set up TLS")?;
    let tls_config = tls::server_config(&identity).context("cannot set up TLS")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;

    let data_dir_shown = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    tracing::info!("data directory {}", data_dir_shown.display());
    let db_shown = std::path::absolute(store.path()).unwrap_or_else(|_| store.path().to_owned());
    tracing::info!("embedded SQLite at {}", db_shown.display());
    tracing::info!("{}", identity.describe());
    let state = AppState::new(store, config.limits);
    let shutdown = shutdown_signal()?;
    tracing::info!("listening on https://{addr}");
    run(listener, TlsAcceptor::from(tls_config), state, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// The accept loop: one task per connection; returns after `shutdown` completes and in-flight
/// connections have finished (or the grace period ran out).
pub async fn run(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limits = state.limits;
    let router = app(state);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(stream, peer, acceptor.clone(), router.clone(), limits, stop_rx.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down: no new connections, finishing requests in flight"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "grace period over: closing the remaining connections"
        );
        connections.shutdown().await;
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
    let service = TowerToHyperService::new(router);
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
