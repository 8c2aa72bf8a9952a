//! Graceful shutdown: on SIGTERM Portico stops accepting, lets requests in flight finish up to
//! `server.shutdown_timeout_secs`, and only then stops the replicas answering them.

use nix::sys::signal::Signal;
use portico_testkit::{eventually, fixtures_dir, AppConfig, Portico, PorticoConfig};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

async fn start(shutdown_timeout_secs: u64) -> Portico {
    let config = PorticoConfig {
        server_extra: format!("shutdown_timeout_secs = {shutdown_timeout_secs}"),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::new("sales", fixtures_dir().join("echo")));
    Portico::start(BIN, config).await
}

/// Sends a request that the app answers after `secs`, and waits until the app has it.
async fn slow_request(
    portico: &Portico,
    secs: u32,
) -> tokio::task::JoinHandle<Result<String, reqwest::Error>> {
    let client = portico.client();
    let started = portico.dir.path().join(format!("started-{secs}"));
    let url = format!(
        "{}?sleep={secs}&started={}",
        portico.app_host_url("sales"),
        started.display()
    );
    let request = tokio::spawn(async move { client.get(url).send().await?.text().await });
    eventually(
        "the app to receive the request",
        Duration::from_secs(10),
        || async { started.exists().then_some(()) },
    )
    .await;
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_finishes_before_portico_stops() {
    let mut portico = start(30).await;
    let request = slow_request(&portico, 2).await;
    assert!(!request.is_finished(), "the request is still in flight");
    portico.signal(Signal::SIGTERM);
    // New connections are refused at once while the old request drains.
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", portico.port))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "Portico stopped accepting");
    let body = request
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert!(body.contains("\"query\":\"sleep=2&started="), "{body}");
    let status = portico.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}\n{}", portico.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_still_running_at_the_deadline_are_cut_off() {
    let mut portico = start(1).await;
    let request = slow_request(&portico, 20).await;
    let stopping = Instant::now();
    portico.signal(Signal::SIGTERM);
    let status = portico.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "stopped after the 1 s deadline and the replica's grace, not after the request's 20 s"
    );
    assert!(request.await.unwrap().is_err(), "the request was cut off");
    assert!(
        portico.log().contains("server.shutdown_timeout_secs"),
        "{}",
        portico.log()
    );
}
