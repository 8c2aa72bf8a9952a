//! WebSocket round-trip meter: sends N messages one at a time over one connection and prints
//! latency percentiles of the echo.
//!
//! Usage: ws-rtt URL [COUNT]   (connects to 127.0.0.1 on the URL's port, whatever its host,
//! so `ws://app.localhost:8080/ws` works without DNS)

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: ws-rtt URL [COUNT]"))?;
    let count: usize = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "5000".into())
        .parse()?;
    let request = url.as_str().into_client_request()?;
    let port = request.uri().port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let (mut socket, _) = tokio_tungstenite::client_async(request, tcp).await?;
    let payload = "x".repeat(64);
    let mut samples = Vec::with_capacity(count);
    // Warm-up, not measured.
    for _ in 0..100 {
        socket.send(Message::text(payload.clone())).await?;
        socket
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("closed"))??;
    }
    for _ in 0..count {
        let start = Instant::now();
        socket.send(Message::text(payload.clone())).await?;
        socket
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("closed"))??;
        samples.push(start.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let mean: Duration = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{count} round trips of 64 B: mean {:.1} µs, p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
        mean.as_secs_f64() * 1e6,
        at(0.50).as_secs_f64() * 1e6,
        at(0.90).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    );
    Ok(())
}
