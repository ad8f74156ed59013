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
pub use crate::core::telemetry::{DURATION_BUCKETS, QUEUE_WAIT_BUCKETS};

/// Labels every series the exporter renders with the service's version (`service_version`,
/// OpenTelemetry's `service.version`), set once at start-up: the generated dashboard compares
/// versions side by side, and the `SteadfastReleaseRegression` alert pages when one version of
/// a route fails markedly more often than another serving it at the same time (a canary).
///
/// ```
/// use metrics_exporter_prometheus::PrometheusBuilder;
/// use steadfast::observe::prometheus::{with_recommended_buckets, with_service_version};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let builder = with_service_version(PrometheusBuilder::new(), env!("CARGO_PKG_VERSION"));
/// let recorder = with_recommended_buckets(builder)?.build_recorder();
/// # let _ = recorder; Ok(()) }
/// ```
pub fn with_service_version(builder: PrometheusBuilder, version: &str) -> PrometheusBuilder {
    builder.add_global_label(
        crate::core::telemetry::SERVICE_VERSION.replace('.', "_"),
        version,
    )
}

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
