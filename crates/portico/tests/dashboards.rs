//! Each framework's demo dashboard, started by Portico through the process runtime, works
//! through the gateway at its host address and at its path address, live channel included.

use portico_testkit::{open_websocket, AppConfig, Browser, Portico, PorticoConfig, ShinySession};

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

/// Speaks Shiny's own protocol: the `init` message carries the inputs, and the server
/// answers with the computed outputs.
async fn shiny_round_trip(portico: &Portico, url: &str, expected: &str) {
    ShinySession::open(portico.port, url)
        .await
        .greet("Ada", expected)
        .await;
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
        let mut socket = open_websocket(portico.port, &url).await;
        // Streamlit's first frames are protobuf; a clean close proves the channel is live.
        socket.close(None).await.unwrap();
    }
}
