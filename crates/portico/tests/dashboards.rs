//! Each framework's demo dashboard, started by Portico through the process runtime, works
//! through the gateway at its host address and at its path address, live channel included.

use futures_util::{SinkExt, StreamExt};
use portico_testkit::{AppConfig, Browser, Portico, PorticoConfig};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

async fn serve_example(app: &str) -> Portico {
    Portico::start(
        BIN,
        PorticoConfig::default().with_app(AppConfig::example(app)),
    )
    .await
}

/// Opens the dashboard at both addresses in Chromium, types a name, and waits for the
/// greeting, which only arrives if the framework's live channel works through Portico.
async fn a_person_gets_an_answer_at_both_addresses(
    app: &str,
    heading: &str,
    input: &str,
    framework: &str,
) {
    let portico = serve_example(app).await;
    let browser = Browser::start().await;
    for url in [portico.app_host_url(app), portico.app_path_url(app)] {
        browser.open_and_wait_for(&url, heading).await;
        browser.type_into(input, "Ada\n").await;
        browser
            .wait_for_text(&format!("Hello, Ada, from {framework}!"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streamlit_dashboard_answers_at_host_and_path_addresses() {
    a_person_gets_an_answer_at_both_addresses(
        "streamlit",
        "Hello from Streamlit",
        "input[aria-label='Your name']",
        "Streamlit",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dash_dashboard_answers_at_host_and_path_addresses() {
    a_person_gets_an_answer_at_both_addresses("dash", "Hello from Dash", "#name", "Dash").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn flask_dashboard_answers_at_host_and_path_addresses() {
    a_person_gets_an_answer_at_both_addresses("flask", "Hello from Flask", "#name", "Flask").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shiny_for_python_dashboard_answers_at_host_and_path_addresses() {
    a_person_gets_an_answer_at_both_addresses(
        "shiny",
        "Hello from Shiny for Python",
        "#name",
        "Shiny for Python",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn r_shiny_dashboard_answers_at_host_and_path_addresses() {
    a_person_gets_an_answer_at_both_addresses("r-shiny", "Hello from R-Shiny", "#name", "R-Shiny")
        .await;
}

/// Opens a WebSocket through Portico to `url` (connecting to loopback whatever the host).
async fn websocket(
    portico: &Portico,
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", portico.port))
        .await
        .unwrap();
    let request = url.into_client_request().unwrap();
    let (socket, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("websocket handshake through Portico");
    assert_eq!(response.status(), 101);
    socket
}

/// Speaks Shiny's own protocol: the `init` message carries the inputs, and the server
/// answers with the computed outputs.
async fn shiny_round_trip(portico: &Portico, url: &str, expected: &str) {
    let mut socket = websocket(portico, url).await;
    let init = serde_json::json!({"method": "init", "data": {"name": "Ada", ".clientdata_output_greeting_hidden": false}});
    socket.send(Message::text(init.to_string())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {expected:?} over {url} within 30s"))
            .expect("socket open")
            .unwrap();
        if message.to_text().unwrap_or_default().contains(expected) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn r_shiny_websocket_round_trip_in_both_modes() {
    let portico = serve_example("r-shiny").await;
    let host = format!("ws://r-shiny.localhost:{}/websocket/", portico.port);
    let path = format!("ws://localhost:{}/apps/r-shiny/websocket/", portico.port);
    for url in [host, path] {
        shiny_round_trip(&portico, &url, "Hello, Ada, from R-Shiny!").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shiny_for_python_websocket_round_trip_in_both_modes() {
    let portico = serve_example("shiny").await;
    let host = format!("ws://shiny.localhost:{}/websocket/", portico.port);
    let path = format!("ws://localhost:{}/apps/shiny/websocket/", portico.port);
    for url in [host, path] {
        shiny_round_trip(&portico, &url, "Hello, Ada, from Shiny for Python!").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streamlit_stream_websocket_upgrades_in_both_modes() {
    let portico = serve_example("streamlit").await;
    let host = format!("ws://streamlit.localhost:{}/_stcore/stream", portico.port);
    let path = format!(
        "ws://localhost:{}/apps/streamlit/_stcore/stream",
        portico.port
    );
    for url in [host, path] {
        let mut socket = websocket(&portico, &url).await;
        // Streamlit's first frames are protobuf; a clean close proves the channel is live.
        socket.close(None).await.unwrap();
    }
}
