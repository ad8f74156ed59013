//! Recommended buckets for steadfast's histograms, for users of `metrics-exporter-prometheus`.
//!
//! Without buckets, that exporter renders histograms as summaries, which cannot be aggregated
//! across instances nor turned into SLO ratios. One call sets OpenTelemetry's recommended
//! boundaries on every histogram in the [catalogue](crate::core::telemetry::CATALOGUE):
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use metrics_exporter_prometheus::PrometheusBuilder;
//! use steadfast::observe::{ObserveLayer, prometheus::with_recommended_buckets};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = with_recommended_buckets(PrometheusBuilder::new())?.install_recorder()?;
//! let app: Router = Router::new()
//!     .route("/checkout", get(|| async { "ordered" }))
//!     .route_layer(ObserveLayer::new())
//!     .route("/metrics", get(move || std::future::ready(metrics.render())));
//! # Ok(()) }
//! ```

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::core::telemetry::{CATALOGUE, MetricKind, SHED_QUEUE_WAIT};

/// OpenTelemetry's recommended boundaries for request durations, in seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Boundaries for time spent waiting in a queue, in seconds: 1 ms to 1 s.
pub const QUEUE_WAIT_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Sets the recommended buckets on every steadfast histogram.
pub fn with_recommended_buckets(
    builder: PrometheusBuilder,
) -> Result<PrometheusBuilder, BuildError> {
    CATALOGUE
        .iter()
        .filter(|metric| metric.kind == MetricKind::Histogram)
        .try_fold(builder, |builder, metric| {
            let buckets = if metric.name == SHED_QUEUE_WAIT.name {
                QUEUE_WAIT_BUCKETS
            } else {
                DURATION_BUCKETS
            };
            builder.set_buckets_for_metric(Matcher::Full(metric.name.to_owned()), buckets)
        })
}
