//! WebSocket load through a proxy: many connections held open idle (to measure what each one
//! costs the proxy), or many connections each echoing at a steady pace (to measure round
//! trips under load).
//!
//! Usage:
//!   ws-load URL --connections N --hold [--header "Cookie: a=b"]
//!       opens N connections, prints `open N`, and keeps them (sending nothing) until stdin
//!       closes; then closes them and prints `closed`.
//!   ws-load URL --connections N --interval-ms MS --seconds S [--header ...]
//!       opens N connections; each sends a 64-byte message every MS milliseconds (phases
//!       spread evenly) and waits for its echo; prints round-trip percentiles.
//!
//! It always connects to 127.0.0.1 on the URL's port, whatever the host, so that
//! `ws://app.localhost:8080/` works without DNS.

use anyhow::{bail, Context};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How many handshakes are in flight at once while opening: enough to open 10,000 in a few
/// seconds, few enough not to overflow a proxy's accept queue.
const OPENING_AT_ONCE: usize = 64;
/// Every step against the proxy is bounded, so that a proxy that stops answering ends the
/// bench with a message instead of hanging it.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
struct Args {
    url: String,
    #[arg(long)]
    connections: usize,
    /// Keep the connections idle until stdin closes.
    #[arg(long)]
    hold: bool,
    /// Each connection's pace when echoing.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Extra request headers for the handshake ("Name: value"), e.g. a session cookie.
    #[arg(long)]
    header: Vec<String>,
}

type Socket = WebSocketStream<TcpStream>;

async fn open(args: &Args) -> anyhow::Result<Vec<Socket>> {
    let mut request = args.url.as_str().into_client_request()?;
    for header in &args.header {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header:?} is not \"Name: value\""))?;
        request.headers_mut().append(
            HeaderName::from_bytes(name.trim().as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        );
    }
    let port = request.uri().port_u16().unwrap_or(80);
    let request = Arc::new(request);
    let mut sockets = Vec::with_capacity(args.connections);
    let mut pending = futures_util::stream::iter(0..args.connections)
        .map(|_| {
            let request = (*request).clone();
            async move {
                let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
                tcp.set_nodelay(true)?;
                let (socket, _) = tokio_tungstenite::client_async(request, tcp).await?;
                anyhow::Ok(socket)
            }
        })
        .buffer_unordered(OPENING_AT_ONCE);
    while let Some(opened) = tokio::time::timeout(STEP_TIMEOUT, pending.next())
        .await
        .with_context(|| format!("opening stalled after {} connections", sockets.len()))?
    {
        sockets
            .push(opened.with_context(|| {
                format!("connection {} could not be opened", sockets.len() + 1)
            })?);
    }
    Ok(sockets)
}

async fn hold(sockets: Vec<Socket>) -> anyhow::Result<()> {
    println!("open {}", sockets.len());
    // Until whoever started us closes our stdin: the proxy's memory is read meanwhile.
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    let closing = sockets.into_iter().map(|mut s| async move {
        let _ = tokio::time::timeout(STEP_TIMEOUT, s.close(None)).await;
    });
    futures_util::future::join_all(closing).await;
    println!("closed");
    Ok(())
}

/// One connection's share of the echo load: a message every `interval`, each round trip timed
/// from its send. (The pace is far longer than a round trip, so nothing queues behind a slow
/// answer; timing from the due time instead would add the timer's millisecond granularity.)
async fn echo(
    mut socket: Socket,
    phase: Duration,
    interval: Duration,
    until: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let payload = "x".repeat(64);
    let mut samples = Vec::new();
    let mut due = Instant::now() + phase;
    while due < until {
        tokio::time::sleep_until(due).await;
        let sent = Instant::now();
        socket.send(Message::text(payload.clone())).await?;
        match tokio::time::timeout(STEP_TIMEOUT, socket.next()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("the proxy closed the connection"),
            Err(_) => bail!("no echo within {STEP_TIMEOUT:?}"),
        }
        samples.push(sent.elapsed());
        due += interval;
    }
    let _ = socket.close(None).await;
    Ok(samples)
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 || args.interval_ms == 0 {
        bail!("--connections and --interval-ms must be at least 1");
    }
    let sockets = open(&args).await?;
    if args.hold {
        return hold(sockets).await;
    }
    let interval = Duration::from_millis(args.interval_ms);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let n = sockets.len() as u32;
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let phase = interval * i as u32 / n;
            tokio::spawn(echo(socket, phase, interval, until))
        })
        .collect();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    if samples.is_empty() {
        bail!("no round trips completed");
    }
    samples.sort_unstable();
    println!(
        "RESULT echoes={} per_s={:.0} p50_us={:.0} p99_us={:.0} p999_us={:.0}",
        samples.len(),
        samples.len() as f64 / args.seconds as f64,
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
    );
    Ok(())
}
