//! `[limits]`: per-client request rates, request sizes and the header timeout at the edge.

use super::Problem;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub requests_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub sign_in_per_minute: Option<u32>,
    pub max_body_bytes: Option<u64>,
    pub max_url_bytes: Option<usize>,
    pub header_read_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub upstream_connect_timeout_secs: Option<u64>,
    pub upstream_response_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Sustained requests a second per client address; `0`: no limit.
    pub requests_per_second: u32,
    /// How many requests beyond the rate a client may make at once (a page load's assets).
    pub burst: u32,
    /// Sign-in attempts (POSTs to Portico's own pages) a minute per client; `0`: no limit.
    pub sign_in_per_minute: u32,
    /// Request bodies larger than this get 413 (apps may set their own `max_body_bytes`).
    pub max_body_bytes: u64,
    /// URLs (path and query) longer than this get 414.
    pub max_url_bytes: usize,
    /// A client that has not sent its whole request header by then is disconnected.
    pub header_read_timeout: Duration,
    /// Open client connections on the main listener at most; beyond, new ones are closed.
    pub max_connections: usize,
    /// How long connecting to a replica may take before the client gets 502.
    pub upstream_connect_timeout: Duration,
    /// How long a replica may take to start its response (long callbacks need headroom)
    /// before the client gets 504. Streaming and WebSockets are not bounded once started.
    pub upstream_response_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            // Off: a whole office behind one NAT address would share it. Internet-facing
            // deployments set it (and trusted_proxies behind a load balancer).
            requests_per_second: 0,
            burst: 0,
            sign_in_per_minute: 60,
            max_body_bytes: 32 * 1024 * 1024,
            max_url_bytes: 8192,
            header_read_timeout: Duration::from_secs(30),
            max_connections: 50_000,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(300),
        }
    }
}

pub(super) fn limits(raw: RawLimits, problems: &mut Vec<Problem>) -> LimitsConfig {
    let default = LimitsConfig::default();
    let requests_per_second = raw
        .requests_per_second
        .unwrap_or(default.requests_per_second);
    let burst = raw
        .burst
        .unwrap_or(default.burst.max(requests_per_second * 2));
    if requests_per_second > 0 && burst < requests_per_second {
        problems.push(Problem::new(
            "limits.burst",
            format!("= {burst} is below requests_per_second ({requests_per_second}); a page load requests many files at once, so allow at least that many, e.g. {}", requests_per_second * 2),
        ));
    }
    let max_url_bytes = raw.max_url_bytes.unwrap_or(default.max_url_bytes);
    if max_url_bytes < 1024 {
        problems.push(Problem::new(
            "limits.max_url_bytes",
            format!("= {max_url_bytes} is too small for dashboards' URLs; write at least 1024, e.g. 8192"),
        ));
    }
    let header_timeout = seconds(
        "limits.header_read_timeout_secs",
        raw.header_read_timeout_secs,
        default.header_read_timeout,
        1..=300,
        problems,
    );
    let upstream_connect = seconds(
        "limits.upstream_connect_timeout_secs",
        raw.upstream_connect_timeout_secs,
        default.upstream_connect_timeout,
        1..=60,
        problems,
    );
    let upstream_response = seconds(
        "limits.upstream_response_timeout_secs",
        raw.upstream_response_timeout_secs,
        default.upstream_response_timeout,
        1..=86_400,
        problems,
    );
    LimitsConfig {
        requests_per_second,
        burst: burst.max(1),
        sign_in_per_minute: raw.sign_in_per_minute.unwrap_or(default.sign_in_per_minute),
        max_body_bytes: raw.max_body_bytes.unwrap_or(default.max_body_bytes),
        max_url_bytes,
        header_read_timeout: header_timeout,
        max_connections: raw
            .max_connections
            .unwrap_or(default.max_connections)
            .max(1),
        upstream_connect_timeout: upstream_connect,
        upstream_response_timeout: upstream_response,
    }
}

/// A duration key in whole seconds: its value (or the default), with a problem naming the
/// range and the default when it is outside the range (then the nearest end is used).
pub(super) fn seconds(
    key: &str,
    value: Option<u64>,
    default: Duration,
    range: std::ops::RangeInclusive<u64>,
    problems: &mut Vec<Problem>,
) -> Duration {
    let secs = value.unwrap_or(default.as_secs());
    if !range.contains(&secs) {
        problems.push(Problem::new(
            key,
            format!(
                "= {secs} is out of range; write {} to {}, e.g. {}",
                range.start(),
                range.end(),
                default.as_secs()
            ),
        ));
    }
    Duration::from_secs(secs.clamp(*range.start(), *range.end()))
}
