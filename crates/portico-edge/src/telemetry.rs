//! Prometheus metrics. Per-app handles are registered once and cached, so that recording a
//! request costs atomic increments, not a registry lookup and label allocation.

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder; call once, at start-up, inside the tokio runtime.
///
/// The exporter keeps every histogram sample until upkeep folds it into the buckets, and
/// `install_recorder` (unlike the exporter's own HTTP listener) does not schedule upkeep:
/// without this task, memory would grow with traffic whenever nobody scrapes `/metrics`.
pub fn install_metrics_recorder() -> anyhow::Result<PrometheusHandle> {
    let buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("portico_request_duration_seconds".into()),
            &buckets,
        )?
        .install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The label used for requests that are not for an app (portal, error pages).
pub const PORTAL_LABEL: &str = "_portal";

pub struct AppMetrics {
    /// By status class: 1xx … 5xx.
    requests: [Counter; 5],
    duration: Histogram,
    pub upstream_errors: Counter,
}

impl AppMetrics {
    fn new(app: &str) -> AppMetrics {
        let class = |c: &'static str| metrics::counter!("portico_requests_total", "app" => app.to_owned(), "class" => c);
        AppMetrics {
            requests: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ],
            duration: metrics::histogram!("portico_request_duration_seconds", "app" => app.to_owned()),
            upstream_errors: metrics::counter!("portico_upstream_errors_total", "app" => app.to_owned()),
        }
    }

    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class].increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }
}

#[derive(Default)]
pub struct Telemetry {
    apps: RwLock<HashMap<Arc<str>, Arc<AppMetrics>>>,
}

impl Telemetry {
    pub fn app(&self, name: &str) -> Arc<AppMetrics> {
        if let Some(found) = self
            .apps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return found.clone();
        }
        let mut apps = self.apps.write().unwrap_or_else(|e| e.into_inner());
        apps.entry(Arc::from(name))
            .or_insert_with(|| Arc::new(AppMetrics::new(name)))
            .clone()
    }
}
