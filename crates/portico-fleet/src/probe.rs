//! Readiness probing: a replica is ready when it answers HTTP on its health path with any
//! status below 500 (redirects and 404s still prove the server is up and routing).

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone)]
pub struct Prober {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for Prober {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Prober { client }
    }
}

impl Prober {
    /// One probe; `true` when the replica answered below 500 within `timeout`.
    pub async fn ready(&self, endpoint: SocketAddr, path: &str, timeout: Duration) -> bool {
        let Ok(uri) = format!("http://{endpoint}{path}").parse::<hyper::Uri>() else {
            return false;
        };
        match tokio::time::timeout(timeout, self.client.get(uri)).await {
            Ok(Ok(response)) => response.status().as_u16() < 500,
            _ => false,
        }
    }
}
