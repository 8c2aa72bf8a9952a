//! Request limits at the edge: per-client rates (429 with Retry-After), a stricter one on
//! sign-in, body size per app (413), URL length (414), and a slow-loris client disconnected by
//! the header timeout.

use portico_testkit::{fixtures_dir, AppConfig, Portico, PorticoConfig};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

#[tokio::test(flavor = "multi_thread")]
async fn rates_sizes_and_url_lengths_are_limited_with_clear_answers() {
    let config = PorticoConfig {
        sections: "[limits]\nrequests_per_second = 2\nburst = 4\nsign_in_per_minute = 3\nmax_body_bytes = 1024\nmax_url_bytes = 2048\n".into(),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::new("sales", fixtures_dir().join("echo")))
    .with_app(AppConfig::new("uploads", fixtures_dir().join("echo")).with("max_body_bytes = 4096"));
    let portico = Portico::start(BIN, config).await;
    let health = format!("{}healthz", portico.portal_url());

    // One address sending faster than 2/s beyond a burst of 4 is told to wait...
    let eager = portico.client_from("127.0.0.6");
    let mut refused = None;
    for _ in 0..20 {
        let response = eager.get(&health).send().await.unwrap();
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("a 429 within 20 quick requests");
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    // ...while another address is served.
    let other = portico.client_from("127.0.0.7");
    assert_eq!(other.get(&health).send().await.unwrap().status(), 200);

    // Sign-in attempts: three a minute from one address, then 429.
    let guesser = portico.client_from("127.0.0.8");
    let sign_in = format!("{}_portico/sign-in", portico.portal_url());
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = guesser
            .post(&sign_in)
            .form(&[("email", "ada@example.com"), ("password", "guess")])
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert!(statuses[..3].iter().all(|s| *s != 429), "{statuses:?}");
    assert_eq!(statuses[3], 429, "{statuses:?}");

    // Bodies: 1 KiB by default, 4 KiB for the app that takes uploads.
    let poster = portico.client_from("127.0.0.9");
    let body = vec![b'x'; 2048];
    let too_big = poster
        .post(portico.app_host_url("sales"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    let accepted = poster
        .post(portico.app_host_url("uploads"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let echoed: serde_json::Value = accepted.json().await.unwrap();
    assert_eq!(echoed["body_length"], 2048);

    // URLs over 2 KiB.
    let long = format!("{}?q={}", portico.app_host_url("sales"), "a".repeat(3000));
    assert_eq!(poster.get(&long).send().await.unwrap().status(), 414);

    let metrics = portico.metrics(&other).await;
    for reason in ["rate", "sign_in_rate", "size"] {
        assert!(
            metrics.contains(&format!("portico_refused_total{{reason=\"{reason}\"}}")),
            "{reason}:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_loris_is_disconnected_by_the_header_timeout() {
    let config = PorticoConfig {
        sections: "[limits]\nheader_read_timeout_secs = 2\n".into(),
        ..PorticoConfig::default()
    };
    let portico = Portico::start(BIN, config).await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", portico.port))
        .await
        .unwrap();
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One header byte every half second, as a slow-loris client does, never finishing.
    let closed_after = loop {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still connected after 15 s"
        );
        if socket.write_all(b"X").await.is_err() {
            break started.elapsed();
        }
        let mut buffer = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            // hyper may answer 408 before closing.
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&buffer[..n]).into_owned();
                assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            }
            Err(_) => {}
        }
    };
    assert!(
        closed_after >= Duration::from_millis(1500) && closed_after < Duration::from_secs(6),
        "closed after {closed_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_are_closed_and_a_freed_slot_serves_again() {
    let config = PorticoConfig {
        sections: "[limits]\nmax_connections = 2\n".into(),
        ..PorticoConfig::default()
    };
    let portico = Portico::start(BIN, config).await;
    // Readiness polling may have left keep-alive connections open for a moment; these two
    // idle connections take the slots once those are gone.
    let connect = || tokio::net::TcpStream::connect(("127.0.0.1", portico.port));
    let deadline = Instant::now() + Duration::from_secs(10);
    let (first, _second, mut third) = loop {
        let first = connect().await.unwrap();
        let second = connect().await.unwrap();
        let mut third = connect().await.unwrap();
        let mut buffer = [0u8; 16];
        // The third is closed by Portico at once: reading ends.
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_secs(1), third.read(&mut buffer)).await
        {
            break (first, second, third);
        }
        assert!(
            Instant::now() < deadline,
            "a third connection was never refused"
        );
    };
    let _ = third.shutdown().await;
    drop(first);
    // A freed slot serves requests again.
    let client = reqwest::Client::new();
    let health = format!("{}healthz", portico.portal_url());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = client.get(&health).send().await {
            assert_eq!(response.status(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "no slot came free");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(portico.log().contains("max_connections reached"));
}
