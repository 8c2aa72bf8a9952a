//! WebSockets through Portico, and a Shiny session spoken in Shiny's own protocol (the same
//! messages the browser's shiny.js sends), for tests that need a live channel to stay open.

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long a dashboard may take to answer a message.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a WebSocket to `url` through Portico's plain-HTTP listener on `port` (connecting to
/// loopback whatever the host in `url`), and checks the upgrade was accepted.
pub async fn open_websocket(port: u16, url: &str) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = url.into_client_request().unwrap();
    let (socket, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .unwrap_or_else(|e| panic!("websocket handshake through Portico to {url}: {e}"));
    assert_eq!(response.status(), 101);
    socket
}

/// A Shiny app's session: the first message is `init` with the inputs, later ones `update`.
/// Works with the demo dashboards, whose `greeting` output echoes the `name` input.
pub struct ShinySession {
    socket: WebSocketStream<TcpStream>,
    url: String,
    started: bool,
}

impl ShinySession {
    pub async fn open(port: u16, url: &str) -> ShinySession {
        ShinySession {
            socket: open_websocket(port, url).await,
            url: url.to_owned(),
            started: false,
        }
    }

    /// Sets the `name` input and waits for a message containing `expected`.
    pub async fn greet(&mut self, name: &str, expected: &str) {
        let message = if self.started {
            serde_json::json!({"method": "update", "data": {"name": name}})
        } else {
            serde_json::json!({"method": "init", "data": {"name": name, ".clientdata_output_greeting_hidden": false}})
        };
        self.started = true;
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap_or_else(|e| panic!("sending on {}: {e}", self.url));
        let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {expected:?} over {} within {ANSWER_TIMEOUT:?}",
                        self.url
                    )
                });
            let received = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => panic!("{} failed: {e}", self.url),
                None => panic!("{} closed before answering", self.url),
            };
            if received.to_text().unwrap_or_default().contains(expected) {
                return;
            }
        }
    }
}
