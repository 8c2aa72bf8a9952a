//! Accepting connections: plain or TLS, HTTP/1.1 (with upgrades) and HTTP/2, a bound on
//! header size and header read time, and a graceful stop that lets in-flight requests finish.

use crate::lifecycle::{Edge, ListenerKind};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The connection cap of the metrics and redirect listeners.
const MAX_SIDE_CONNECTIONS: usize = 1024;
/// How often an idle HTTP/2 connection is pinged, and how long the answer may take: a
/// client that vanished without closing (a laptop lid shut) is noticed and its slot freed.
const H2_PING_INTERVAL: Duration = Duration::from_secs(60);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// How a listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings {
    /// Requests whose header section is larger get 431.
    pub max_header_bytes: usize,
    /// A client must send a request's whole header within this, and the next request of a
    /// kept-alive HTTP/1.1 connection must begin (hyper restarts the timer on idle); so it is
    /// also the keep-alive idle timeout, and what closes a slowloris connection.
    pub header_read_timeout: Duration,
    /// How long in-flight requests get to finish once Portico stops accepting.
    pub drain_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{addr} is already in use by another program. Stop that program, or set {key} to a free address (e.g. \"127.0.0.1:8081\").")]
    InUse { addr: SocketAddr, key: &'static str },
    #[error("cannot listen on {addr} ({key}): {source}")]
    Other {
        addr: SocketAddr,
        key: &'static str,
        source: std::io::Error,
    },
}

/// Binds a listener, explaining the usual failures. `key` is the config key it came from.
pub async fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => BindError::InUse { addr, key },
            _ => BindError::Other { addr, key, source },
        })
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves connections until `stop` turns true, then drains. With `tls`, each connection is
/// a TLS handshake first (done in the connection's own task, so a slow client delays nobody).
pub async fn serve(
    listener: TcpListener,
    edge: Arc<Edge>,
    kind: ListenerKind,
    settings: ListenerSettings,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // Each connection holds a permit until it ends; none left means the cap is reached.
    let slots = Arc::new(tokio::sync::Semaphore::new(match kind {
        ListenerKind::Main => edge.max_connections(),
        _ => MAX_SIDE_CONNECTIONS,
    }));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_header_list_size(settings.max_header_bytes as u32);
    let graceful = GracefulShutdown::new();
    // Every connection's task, so that those still running at the drain deadline can be
    // ended; finished ones are reaped as connections arrive.
    let mut connections = tokio::task::JoinSet::new();

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed at once: cheaper for everyone than queueing it unanswered.
            edge.refuse_connection(peer);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let edge = edge.clone();
        let service = service_fn(move |req| {
            let edge = edge.clone();
            async move { Ok::<_, Infallible>(edge.handle(req, peer, kind).await) }
        });
        let Some(acceptor) = acceptor.clone() else {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let connection = graceful.watch(connection.into_owned());
            connections.spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                drop(slot);
            });
            continue;
        };
        let builder = builder.clone();
        // Registered before the handshake so a stop waits for it too.
        let watcher = graceful.watcher();
        connections.spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            if stream.get_ref().1.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) {
                // A CA's TLS-ALPN-01 validation: the handshake was the answer (RFC 8737).
                return;
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    let deadline = settings.drain_timeout;
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} connection(s) still had requests running after {}s (server.shutdown_timeout_secs); they were cut off",
            connections.len(),
            deadline.as_secs()
        );
        connections.shutdown().await;
    }
}
