//! One keep-alive HTTPS/1.1 connection per worker: TCP (no Nagle), rustls on ring trusting exactly the
//! given CA file, hyper's connection-level client. Nothing is pooled behind the worker's back, so the
//! number of connections is the number asked for.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where requests go: the address, the name the certificate is checked against, the `Host` header.
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    pub authority: String,
    tls: TlsConnector,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// `url` is `https://HOST:PORT` (a path, if any, is ignored); `ca` a PEM file of trusted
    /// certificates (the collector's self-signed `DATA/tls/cert.pem` works as is).
    pub fn new(url: &str, ca: &Path) -> Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
        if uri.scheme_str() != Some("https") {
            bail!("{url}: only https:// URLs (the collector speaks TLS only)");
        }
        let host = uri.host().context("URL without a host")?;
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(bare, port))
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let server_name =
            ServerName::try_from(bare.to_owned()).with_context(|| format!("server name {host}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))? {
            roots
                .add(cert.with_context(|| format!("a certificate in {}", ca.display()))?)
                .with_context(|| format!("a certificate in {}", ca.display()))?;
        }
        if roots.is_empty() {
            bail!("no certificate in {}", ca.display());
        }
        let config =
            rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
                .with_safe_default_protocol_versions()
                .context("TLS versions")?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Target {
            addr,
            server_name,
            authority: uri
                .authority()
                .map_or_else(|| host.to_owned(), ToString::to_string),
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    pub async fn connect(&self) -> Result<Conn, ConnectError> {
        let tcp = TcpStream::connect(self.addr).await.map_err(ConnectError::Tcp)?;
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(ConnectError::Tls)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(ConnectError::Http)?;
        // Ends when the sender is dropped or the server closes the connection.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }
}

/// Why a connection could not be opened; the report counts them by kind.
#[derive(Debug)]
pub enum ConnectError {
    Tcp(std::io::Error),
    Tls(std::io::Error),
    Http(hyper::Error),
}

impl ConnectError {
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectError::Tcp(_) => "connect",
            ConnectError::Tls(_) => "tls_handshake",
            ConnectError::Http(_) => "http_handshake",
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Tcp(e) => write!(f, "TCP connect: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS handshake: {e}"),
            ConnectError::Http(e) => write!(f, "HTTP handshake: {e}"),
        }
    }
}

#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Sends one request and reads the whole answer (the body must be read for the connection to
    /// be reused).
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), hyper::Error> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Whether the server closed the connection (after a `Connection: close`, or on error).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}
