//! Kept-alive HTTP/1.1 connections to replicas, each driven by the request that uses it.
//!
//! hyper's pooled client runs every upstream connection as a task of its own: a request is
//! handed to that task over a channel, and its answer and every piece of the body come back
//! over more channels, each a wake-up and a scheduling round. Here the request's own task
//! polls the connection while it waits for the answer, and the response body polls it while
//! it is read, so a proxied request is one task doing its own I/O, as in nginx's event loop.
//! A connection goes back to the pool once its response has ended, and is checked at
//! checkout (a poll notices a replica that closed it while it was idle). Idle connections are
//! closed after a while by a sweep, so that replicas that went away leave no sockets behind.

use crate::body::{BoxError, ProxyBody};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use portico_core::errors::error_chain;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long a connection may sit unused before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often idle connections past their time are closed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(15);
/// The most idle connections kept per replica; more are closed once their response ends.
const MAX_IDLE_PER_REPLICA: usize = 256;

type Driver = Connection<TokioIo<TcpStream>, ProxyBody>;

/// One HTTP/1.1 connection to a replica: the handle requests are sent on, and the state
/// machine that does its reading and writing whenever it is polled.
pub struct Conn {
    send: SendRequest<ProxyBody>,
    driver: Driver,
    /// Taken from the pool rather than just opened: a request on it may find it closed.
    reused: bool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("the connection attempt took longer than {0:?}")]
    ConnectTimeout(Duration),
    #[error("{0}")]
    Http(String),
}

pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    connect_timeout: Duration,
}

impl Pool {
    /// A pool whose idle connections a background task sweeps (when made inside a runtime).
    pub fn new(connect_timeout: Duration) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            idle: Mutex::default(),
            connect_timeout,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    /// Sends `request` (in origin form) to `addr` and returns the response head; its body
    /// drives the connection and hands it back to the pool when it ends. A pooled connection
    /// that turns out to be closed before the request was written to it is replaced by a new
    /// one, once; a request already written is not sent again (it may not be idempotent).
    pub async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        request: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, SendError> {
        let mut conn = self.checkout(addr).await?;
        let mut request = request;
        loop {
            let sent = conn.send.try_send_request(request);
            let (answer, ended) = drive(&mut conn.driver, sent).await;
            match answer {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = Driven {
                        body,
                        conn: matches!(ended, Ended::No).then_some(conn),
                        pool: Arc::downgrade(self),
                        addr,
                    };
                    return Ok(Response::from_parts(parts, body.boxed_unsync()));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if conn.reused => {
                        request = unsent;
                        conn = self.connect(addr).await?;
                    }
                    // The connection's own failure says more than "closed before completed".
                    _ => {
                        let cause = match ended {
                            Ended::Failed(cause) => cause,
                            _ => error.into_error(),
                        };
                        return Err(SendError::Http(error_chain(&cause)));
                    }
                },
            }
        }
    }

    /// Sends an upgrade request (a WebSocket handshake). The connection becomes the
    /// WebSocket's, so it runs as a task of its own and never returns to the pool.
    pub async fn send_upgrade(
        self: &Arc<Self>,
        addr: SocketAddr,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let Conn {
            mut send, driver, ..
        } = self.connect(addr).await?;
        tokio::spawn(async move {
            if let Err(e) = driver.with_upgrades().await {
                tracing::debug!("upstream upgrade connection ended: {e}");
            }
        });
        send.send_request(request)
            .await
            .map_err(|e| SendError::Http(error_chain(&e)))
    }

    async fn checkout(&self, addr: SocketAddr) -> Result<Conn, SendError> {
        loop {
            let idle = {
                let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                pool.get_mut(&addr).and_then(Vec::pop)
            };
            let Some(Idle { mut conn, since }) = idle else {
                return self.connect(addr).await;
            };
            if since.elapsed() < IDLE_TIMEOUT && usable(&mut conn).await {
                conn.reused = true;
                return Ok(conn);
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Conn, SendError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| SendError::ConnectTimeout(self.connect_timeout))?
            .map_err(SendError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (send, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Http(error_chain(&e)))?;
        Ok(Conn {
            send,
            driver,
            reused: false,
        })
    }

    fn checkin(&self, addr: SocketAddr, conn: Conn) {
        let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let idle = pool.entry(addr).or_default();
        if idle.len() < MAX_IDLE_PER_REPLICA {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections past their time, and forgets replicas with none left.
    fn sweep(&self) {
        let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        pool.retain(|_, idle| {
            idle.retain(|i| i.since.elapsed() < IDLE_TIMEOUT);
            !idle.is_empty()
        });
    }

    #[cfg(test)]
    fn idle_count(&self, addr: SocketAddr) -> usize {
        let pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        pool.get(&addr).map_or(0, Vec::len)
    }
}

async fn sweep(pool: Weak<Pool>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.sweep();
    }
}

/// Polls the connection once (which reads an end of stream the replica sent while it was
/// idle) and asks whether it takes a request.
async fn usable(conn: &mut Conn) -> bool {
    poll_fn(|cx| {
        if conn.driver.poll_without_shutdown(cx).is_ready() {
            return Poll::Ready(false);
        }
        Poll::Ready(matches!(conn.send.poll_ready(cx), Poll::Ready(Ok(()))))
    })
    .await
}

/// How the connection fared while an answer was awaited.
enum Ended {
    /// Still open: it may serve another request once this response has ended.
    No,
    /// The replica closed it (after answering, or before): not to be reused.
    Closed,
    Failed(hyper::Error),
}

/// Awaits `answer` while polling the connection that produces it.
async fn drive<F: Future>(driver: &mut Driver, answer: F) -> (F::Output, Ended) {
    let mut answer = pin!(answer);
    let mut ended = Ended::No;
    let output = poll_fn(|cx| {
        if matches!(ended, Ended::No) {
            match driver.poll_without_shutdown(cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => ended = Ended::Closed,
                Poll::Ready(Err(e)) => ended = Ended::Failed(e),
            }
        }
        answer.as_mut().poll(cx)
    })
    .await;
    (output, ended)
}

/// A response body that keeps its connection going while it is read, and returns the
/// connection to the pool at its end.
struct Driven {
    body: Incoming,
    /// `None` once the connection ended (or must not be reused).
    conn: Option<Conn>,
    pool: Weak<Pool>,
    addr: SocketAddr,
}

impl Driven {
    /// The response has ended: its connection is free (checkout polls it before reuse,
    /// which also lets it finish with the message).
    fn ended(&mut self) {
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.upgrade()) {
            pool.checkin(self.addr, conn);
        }
    }
}

impl Body for Driven {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // The body first (registering that it wants data), then the connection (which reads
        // the data into it), then the body again: one pass delivers what has arrived.
        let mut frame = Pin::new(&mut this.body).poll_frame(cx);
        if frame.is_pending() {
            if let Some(conn) = &mut this.conn {
                if conn.driver.poll_without_shutdown(cx).is_ready() {
                    this.conn = None;
                }
            }
            frame = Pin::new(&mut this.body).poll_frame(cx);
        }
        match frame {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.ended();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.conn = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.body.is_end_stream() {
                    this.ended();
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Driven {
    /// A body with nothing to read (a 204, a HEAD's answer) may never be polled: its
    /// connection is idle already and goes back. Any other body dropped before its end was
    /// abandoned mid-message (the client went away), and its connection is closed.
    fn drop(&mut self) {
        if self.conn.is_some() && self.body.is_end_stream() {
            self.ended();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const BOUND: Duration = Duration::from_secs(10);

    /// A real hyper server on loopback answering `body` (with `keep_alive` as given), and
    /// the number of connections it has accepted.
    async fn server(body: &'static str, keep_alive: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (addr, accepted)
    }

    fn get(path: &str) -> Request<ProxyBody> {
        Request::get(path).body(crate::body::empty()).unwrap()
    }

    async fn text(pool: &Arc<Pool>, addr: SocketAddr) -> String {
        let response = tokio::time::timeout(BOUND, pool.send(addr, get("/")))
            .await
            .expect("an answer in time")
            .expect("an answer");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn one_connection_serves_request_after_request() {
        let (addr, accepted) = server("hello", true).await;
        let pool = Pool::new(BOUND);
        for _ in 0..5 {
            assert_eq!(text(&pool, addr).await, "hello");
            assert_eq!(pool.idle_count(addr), 1, "back in the pool once read");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_empty_answer_nobody_reads_frees_its_connection() {
        let (addr, accepted) = server("", true).await;
        let pool = Pool::new(BOUND);
        for _ in 0..3 {
            let response = pool.send(addr, get("/")).await.unwrap();
            drop(response);
            assert_eq!(pool.idle_count(addr), 1);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_replica_closes_is_not_reused() {
        let (addr, accepted) = server("bye", false).await;
        let pool = Pool::new(BOUND);
        for _ in 0..3 {
            assert_eq!(text(&pool, addr).await, "bye");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_noticed_at_checkout() {
        // A replica that answers one request per connection as kept-alive, then closes it
        // while it sits in the pool (as uvicorn does after its keep-alive timeout).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let (close_tx, mut close_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                let _ = stream.write_all(answer).await;
                let _ = close_rx.recv().await;
                drop(stream);
                let _ = closed_tx.send(());
            }
        });
        let pool = Pool::new(BOUND);
        assert_eq!(text(&pool, addr).await, "ok");
        assert_eq!(pool.idle_count(addr), 1);
        close_tx.send(()).unwrap();
        tokio::time::timeout(BOUND, closed_rx.recv()).await.unwrap();
        assert_eq!(
            text(&pool, addr).await,
            "ok",
            "a fresh connection, no error"
        );
    }

    #[tokio::test]
    async fn a_body_abandoned_halfway_closes_its_connection() {
        let big: &'static str = Box::leak("x".repeat(4 << 20).into_boxed_str());
        let (addr, accepted) = server(big, true).await;
        let pool = Pool::new(BOUND);
        let response = pool.send(addr, get("/")).await.unwrap();
        let mut body = response.into_body();
        let first = tokio::time::timeout(BOUND, body.frame()).await.unwrap();
        assert!(first.is_some_and(|f| f.is_ok()));
        drop(body);
        assert_eq!(pool.idle_count(addr), 0, "mid-message: not reusable");
        assert_eq!(text(&pool, addr).await.len(), big.len());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_that_says_so() {
        let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = unused.local_addr().unwrap();
        drop(unused);
        let pool = Pool::new(BOUND);
        let error = pool.send(addr, get("/")).await.unwrap_err();
        assert!(error.to_string().starts_with("cannot connect"), "{error}");
    }
}
