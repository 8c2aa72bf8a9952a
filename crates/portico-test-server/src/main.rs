//! A stand-in dashboard for runtime tests, small enough to run in a `FROM scratch` image.
//! Every answer is plain text, so a test reads what a user would.
//!
//! - any path: `replica=<PORTICO_REPLICA>`, `path=<path>` and `user=<X-Forwarded-Email>`;
//! - a WebSocket upgrade on any path: echoes each message;
//! - `/exit?code=N`: answers, then exits with status N (a crash);
//! - `/alloc?mb=N`: allocates and touches N MiB and keeps it (to meet a memory limit);
//! - `/connect?to=HOST:PORT`: tries a TCP connection for 3 s and says what happened;
//! - `/write?path=P&text=T`, `/read?path=P`: writes and reads a file (volumes, read-only
//!   root file systems);
//! - `/env?name=N`: an environment variable; `/uid`: the user id it runs as.
//!
//! Usage: `portico-test-server --listen ADDRESS:PORT` (default `0.0.0.0:$PORT`).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::Duration;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

/// Memory handed out by `/alloc`, kept so that it stays in use.
static HELD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

type Answer = Response<Full<Bytes>>;

fn text(status: StatusCode, body: String) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

fn ok(body: String) -> Answer {
    text(StatusCode::OK, body)
}

async fn handle(mut req: Request<Incoming>) -> Result<Answer, Infallible> {
    if let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).cloned() {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(echo(upgrade));
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, "websocket")
            .header(SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()))
            .body(Full::new(Bytes::new()))
            .expect("static response parts");
        return Ok(response);
    }
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let arg = |name: &str| query.get(name).cloned().unwrap_or_default();
    let path = req.uri().path().to_owned();
    let answer = match path.rsplit('/').next().unwrap_or("") {
        "exit" => {
            let code: i32 = arg("code").parse().unwrap_or(1);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::process::exit(code);
            });
            ok(format!("exiting with status {code}\n"))
        }
        "alloc" => {
            let mb: usize = arg("mb").parse().unwrap_or(0);
            for _ in 0..mb {
                // Written, not just reserved, so the pages count against the limit.
                HELD.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(vec![1u8; 1 << 20]);
            }
            ok(format!("allocated {mb} MiB\n"))
        }
        "connect" => {
            let to = arg("to");
            let attempt = tokio::time::timeout(
                Duration::from_secs(3),
                tokio::net::TcpStream::connect(to.as_str()),
            )
            .await;
            ok(match attempt {
                Ok(Ok(_)) => format!("connected to {to}\n"),
                Ok(Err(e)) => format!("cannot connect to {to}: {e}\n"),
                Err(_) => format!("cannot connect to {to}: timed out\n"),
            })
        }
        "write" => match std::fs::write(arg("path"), arg("text")) {
            Ok(()) => ok(format!("wrote {}\n", arg("path"))),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot write {}: {e}\n", arg("path")),
            ),
        },
        "read" => match std::fs::read_to_string(arg("path")) {
            Ok(content) => ok(content),
            Err(e) => text(
                StatusCode::NOT_FOUND,
                format!("cannot read {}: {e}\n", arg("path")),
            ),
        },
        "env" => ok(std::env::var(arg("name")).unwrap_or_default()),
        "uid" => ok(std::fs::metadata("/proc/self")
            .map(|m| m.uid().to_string())
            .unwrap_or_else(|e| format!("unknown: {e}"))),
        _ => {
            let user = req
                .headers()
                .get("x-forwarded-email")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            ok(format!(
                "replica={}\npath={path}\nuser={user}\n",
                std::env::var("PORTICO_REPLICA").unwrap_or_default()
            ))
        }
    };
    Ok(answer)
}

async fn echo(upgrade: hyper::upgrade::OnUpgrade) {
    let Ok(upgraded) = upgrade.await else { return };
    let mut socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    while let Some(Ok(message)) = socket.next().await {
        if message.is_text() || message.is_binary() {
            if socket.send(message).await.is_err() {
                break;
            }
        } else if message.is_close() {
            break;
        }
    }
}

fn listen_address() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(address)) => Ok(address),
        (None, _) => std::env::var("PORT")
            .map(|port| format!("0.0.0.0:{port}"))
            .map_err(|_| "set PORT or pass --listen ADDRESS:PORT".to_owned()),
        _ => Err("usage: portico-test-server [--listen ADDRESS:PORT]".to_owned()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let address = match listen_address() {
        Ok(address) => address,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {address}: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {address}");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(handle))
                        .with_upgrades()
                        .await;
                });
            }
            _ = terminate.recv() => {
                println!("SIGTERM: stopping");
                return;
            }
        }
    }
}
