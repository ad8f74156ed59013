//! The exporter settings steadfast's metrics and guardrails expect, for users of
//! `metrics-exporter-prometheus`.
//!
//! [`recommended`] makes two settings in one call:
//! - **names by the OpenTelemetry-to-Prometheus rules** (the exporter's recommended naming):
//!   counters end in `_total` and durations in `_seconds`
//!   (`steadfast_rejections_total`, `http_server_request_duration_seconds_bucket`), the names
//!   [`Metric::prometheus_name`](crate::core::telemetry::Metric::prometheus_name) gives and the
//!   generated rules and dashboard read. `promtool check metrics` finds nothing to report;
//! - **buckets** on every histogram of the [catalogue](crate::core::telemetry::CATALOGUE):
//!   without them the exporter renders histograms as summaries, which cannot be aggregated
//!   across instances nor turned into SLO ratios.
//!
//! Every catalogued metric is described (`# HELP`, and the unit) as steadfast's layers are made
//! ([`describe`](crate::core::telemetry::describe)).
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use metrics_exporter_prometheus::PrometheusBuilder;
//! use steadfast::observe::{ObserveLayer, prometheus};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = prometheus::recommended(PrometheusBuilder::new())?.install_recorder()?;
//! let app: Router = Router::new()
//!     .route("/checkout", get(|| async { "ordered" }))
//!     .route_layer(ObserveLayer::new())
//!     .route("/metrics", get(move || std::future::ready(metrics.render())));
//! # Ok(()) }
//! ```

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::core::telemetry::{CATALOGUE, MetricKind, SHED_QUEUE_WAIT};
pub use crate::core::telemetry::{DURATION_BUCKETS, QUEUE_WAIT_BUCKETS};

/// Labels every series the exporter renders with the service's version (`service_version`,
/// OpenTelemetry's `service.version`), set once at start-up: the generated dashboard compares
/// versions side by side, and the `SteadfastReleaseRegression` alert pages when one version of
/// a route fails markedly more often than another serving it at the same time (a canary).
///
/// ```
/// use metrics_exporter_prometheus::PrometheusBuilder;
/// use steadfast::observe::prometheus::{recommended, with_service_version};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let builder = with_service_version(PrometheusBuilder::new(), env!("CARGO_PKG_VERSION"));
/// let recorder = recommended(builder)?.build_recorder();
/// # let _ = recorder; Ok(()) }
/// ```
pub fn with_service_version(builder: PrometheusBuilder, version: &str) -> PrometheusBuilder {
    builder.add_global_label(
        crate::core::telemetry::SERVICE_VERSION.replace('.', "_"),
        version,
    )
}

/// Sets the names and buckets steadfast's guardrails expect: the exporter's recommended naming
/// (`_total` on counters, unit suffixes such as `_seconds`) and [`with_recommended_buckets`].
///
/// # Errors
///
/// The exporter's [`BuildError`] if a bucket list is refused (never for steadfast's own lists).
pub fn recommended(builder: PrometheusBuilder) -> Result<PrometheusBuilder, BuildError> {
    with_recommended_buckets(builder.with_recommended_naming(true))
}

/// Sets the recommended buckets on every steadfast histogram, and nothing else: the names stay
/// the exporter's default (no `_total`, no unit suffix), which the generated guardrails do not
/// read; prefer [`recommended`].
///
/// # Errors
///
/// The exporter's [`BuildError`] if a bucket list is refused (never for steadfast's own lists).
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
