//! Fixed-rate HTTP load: requests sent on a schedule whatever the answers do, with latency
//! measured from when each request was due whenever a slow answer delayed it. wrk finds the peak; this measures the latency a
//! proxy adds at a chosen fraction of it, which a closed-loop tool cannot (it slows down with
//! the server and so hides the queue: "coordinated omission").
//!
//! Usage: http-rate URL --rate R [--connections 64] [--seconds 10] [--header "Cookie: a=b"]
//! Connects to 127.0.0.1 on the URL's port; sends the URL's host as Host. Prints one
//! `RESULT …` line.

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A request that has not been answered by then counts as an error and ends its connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
struct Args {
    url: Uri,
    /// Requests per second, over all connections.
    #[arg(long)]
    rate: u64,
    #[arg(long, default_value_t = 64)]
    connections: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Extra request headers ("Name: value"), e.g. a session cookie.
    #[arg(long)]
    header: Vec<String>,
}

struct Outcome {
    samples: Vec<Duration>,
    errors: u64,
}

fn template(args: &Args) -> anyhow::Result<Request<Empty<Bytes>>> {
    let host = args
        .url
        .authority()
        .context("the URL needs a host")?
        .as_str();
    let path = args.url.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::get(path).header(HOST, host);
    for header in &args.header {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header:?} is not \"Name: value\""))?;
        request = request.header(
            HeaderName::from_bytes(name.trim().as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        );
    }
    Ok(request.body(Empty::new())?)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(port: u16) -> anyhow::Result<Sender> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One connection's share of the schedule. A server may end a kept-alive connection between
/// requests (nginx does after 1,000); the next request then goes on a new one, as a browser
/// would send it. A request that fails counts as an error.
async fn connection(
    port: u16,
    template: Request<Empty<Bytes>>,
    phase: Duration,
    interval: Duration,
    until: Instant,
) -> anyhow::Result<Outcome> {
    let mut sender = connect(port).await?;
    let mut outcome = Outcome {
        samples: Vec::new(),
        errors: 0,
    };
    let mut due = Instant::now() + phase;
    let mut previous_answered = Instant::now();
    while due < until {
        tokio::time::sleep_until(due).await;
        // Timed from when it was due if the server's previous answer made it late (the
        // queue the server caused counts), else from now (the timer's own millisecond
        // granularity is not the server's).
        let start = if previous_answered > due {
            due
        } else {
            Instant::now()
        };
        let mut request = Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = template.uri().clone();
        *request.headers_mut() = template.headers().clone();
        let answered = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if sender.ready().await.is_err() {
                sender = connect(port).await?;
            }
            let response = sender.send_request(request).await?;
            let ok = response.status().is_success();
            response.into_body().collect().await?;
            anyhow::Ok(ok)
        })
        .await;
        match answered {
            Ok(Ok(true)) => outcome.samples.push(start.elapsed()),
            Ok(Ok(false)) | Ok(Err(_)) => outcome.errors += 1,
            Err(_) => {
                outcome.errors += 1;
                sender = connect(port).await?;
            }
        }
        previous_answered = Instant::now();
        due += interval;
    }
    Ok(outcome)
}

fn millis(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rate == 0 || args.connections == 0 || args.seconds == 0 {
        bail!("--rate, --connections and --seconds must be at least 1");
    }
    let port = args.url.port_u16().unwrap_or(80);
    // Each connection sends every `interval`, the connections' phases spread evenly over it.
    let interval = Duration::from_nanos(1_000_000_000 * args.connections / args.rate);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let template = template(&args)?;
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            let phase = interval * i as u32 / args.connections as u32;
            let mut copy = Request::new(Empty::new());
            *copy.uri_mut() = template.uri().clone();
            *copy.headers_mut() = template.headers().clone();
            tokio::spawn(connection(port, copy, phase, interval, until))
        })
        .collect();
    let (mut samples, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let outcome = task.await??;
        samples.extend(outcome.samples);
        errors += outcome.errors;
    }
    if samples.is_empty() {
        bail!("no request succeeded ({errors} failed)");
    }
    samples.sort_unstable();
    println!(
        "RESULT rate={:.0} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} errors={errors}",
        samples.len() as f64 / args.seconds as f64,
        millis(&samples, 0.50),
        millis(&samples, 0.99),
        millis(&samples, 0.999),
    );
    Ok(())
}
