//! Every metric steadfast emits, named in one place.
//!
//! [`CATALOGUE`] lists each metric with its kind, unit, labels and meaning; a test keeps the
//! README's table and this list in step. Layers record through the functions here, never with
//! their own names.
//!
//! Long because it is the catalogue: one documented constant per metric.

use super::rejection::Rejection;

/// The kind of a metric, as the `metrics` facade records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observed values.
    Histogram,
}

/// One metric steadfast emits.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The name, with dots; Prometheus exporters render dots as underscores.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The unit (UCUM, as OpenTelemetry writes it), `"1"` for counts.
    pub unit: &'static str,
    /// The label keys, all of bounded cardinality.
    pub labels: &'static [&'static str],
    /// What it measures.
    pub description: &'static str,
}

/// The duration of HTTP requests, as OpenTelemetry's HTTP semantic conventions name it.
pub const HTTP_SERVER_REQUEST_DURATION: Metric = Metric {
    name: "http.server.request.duration",
    kind: MetricKind::Histogram,
    unit: "s",
    labels: &[
        "http.request.method",
        "url.scheme",
        "http.route",
        "network.protocol.version",
        "http.response.status_code",
        "error.type",
    ],
    description: "Duration of HTTP requests, until the response head (OpenTelemetry HTTP semantic conventions); `error.type` only on errors.",
};

/// HTTP requests being served.
pub const HTTP_SERVER_ACTIVE_REQUESTS: Metric = Metric {
    name: "http.server.active_requests",
    kind: MetricKind::Gauge,
    unit: "{request}",
    labels: &["http.request.method", "url.scheme"],
    description: "HTTP requests being served (an up-down counter).",
};

/// The duration of gRPC calls, as OpenTelemetry's RPC semantic conventions name it.
pub const RPC_SERVER_CALL_DURATION: Metric = Metric {
    name: "rpc.server.call.duration",
    kind: MetricKind::Histogram,
    unit: "s",
    labels: &[
        "rpc.system.name",
        "rpc.method",
        "rpc.status_code",
        "error.type",
    ],
    description: "Duration of gRPC calls, until the status is known (OpenTelemetry RPC semantic conventions); `error.type` only on server errors.",
};

/// Requests a steadfast layer rejected or gave up on.
pub const REJECTIONS: Metric = Metric {
    name: "steadfast.rejections",
    kind: MetricKind::Counter,
    unit: "1",
    labels: &["layer", "reason", "route", "method"],
    description: "Requests answered by a steadfast layer instead of the inner service (timeouts, expired deadlines, ...).",
};

/// Incoming deadline headers that could not be read.
pub const INVALID_DEADLINES: Metric = Metric {
    name: "steadfast.deadline.invalid",
    kind: MetricKind::Counter,
    unit: "1",
    labels: &["header", "action", "route", "method"],
    description: "Incoming deadline headers (grpc-timeout or the configured HTTP header) that could not be parsed; action is `ignored` or `rejected`.",
};

/// A circuit breaker's state.
pub const BREAKER_STATE: Metric = Metric {
    name: "steadfast.breaker.state",
    kind: MetricKind::Gauge,
    unit: "{state}",
    labels: &["breaker"],
    description: "The state of each breaker: 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open, 5 metrics only.",
};

/// A circuit breaker's state changes.
pub const BREAKER_TRANSITIONS: Metric = Metric {
    name: "steadfast.breaker.transitions",
    kind: MetricKind::Counter,
    unit: "1",
    labels: &["breaker", "from", "to"],
    description: "State changes of each breaker.",
};

/// Calls a circuit breaker let through, by outcome.
pub const BREAKER_CALLS: Metric = Metric {
    name: "steadfast.breaker.calls",
    kind: MetricKind::Counter,
    unit: "1",
    labels: &["breaker", "outcome"],
    description: "Calls a breaker let through, by outcome: `success`, `failure`, `ignored` (another layer's rejection) or `cancelled` (dropped before it finished).",
};

/// Calls a circuit breaker rejected.
pub const BREAKER_NOT_PERMITTED: Metric = Metric {
    name: "steadfast.breaker.not_permitted",
    kind: MetricKind::Counter,
    unit: "1",
    labels: &["breaker"],
    description: "Calls a breaker rejected because it was open, forced open, or out of half-open probes.",
};

/// A load shedder's concurrency limit.
pub const SHED_LIMIT: Metric = Metric {
    name: "steadfast.shed.limit",
    kind: MetricKind::Gauge,
    unit: "{request}",
    labels: &["limiter"],
    description: "The current concurrency limit of each limiter (adaptive limits move with latency and drops).",
};

/// Requests in flight under a load shedder, sampled when its limit is updated.
pub const SHED_IN_FLIGHT: Metric = Metric {
    name: "steadfast.shed.in_flight",
    kind: MetricKind::Gauge,
    unit: "{request}",
    labels: &["limiter"],
    description: "Requests in flight under each limiter, sampled at every limit update.",
};

/// The latencies an adaptive limit works from.
pub const SHED_RTT: Metric = Metric {
    name: "steadfast.shed.rtt",
    kind: MetricKind::Gauge,
    unit: "s",
    labels: &["limiter", "window"],
    description: "The latencies an adaptive limit is computed from: `short` (the last window's average) and `long` (Gradient2's long-term average, or the knee limit's no-load latency).",
};

/// Requests a load shedder rejected, by class.
pub const SHED_REJECTED: Metric = Metric {
    name: "steadfast.shed.rejected",
    kind: MetricKind::Counter,
    unit: "{request}",
    labels: &["limiter", "class", "reason"],
    description: "Requests each limiter shed, by criticality class and reason: `limit`, `queue_full`, `queue_timeout` or `deadline`.",
};

/// Requests waiting in a load shedder's queue.
pub const SHED_QUEUE_LENGTH: Metric = Metric {
    name: "steadfast.shed.queue.length",
    kind: MetricKind::Gauge,
    unit: "{request}",
    labels: &["limiter"],
    description: "Requests waiting for a slot in each limiter's queue.",
};

/// How long requests waited in a load shedder's queue.
pub const SHED_QUEUE_WAIT: Metric = Metric {
    name: "steadfast.shed.queue.wait",
    kind: MetricKind::Histogram,
    unit: "s",
    labels: &["limiter"],
    description: "How long requests waited for a slot, whether they got one or not.",
};

/// Contract violations found by the contract layer.
pub const CONTRACT_VIOLATIONS: Metric = Metric {
    name: "steadfast.contract.violations",
    kind: MetricKind::Counter,
    unit: "{violation}",
    labels: &["route", "method", "direction", "keyword"],
    description: "Contract violations, by route, direction (`request` or `response`) and failed keyword (`type`, `required`, `contentType`, `maxBodySize`, ...; `unlisted` for those past `max_violations`).",
};

/// Requests served by a policy layer in strict mode under the default policy.
pub const POLICY_UNMATCHED: Metric = Metric {
    name: "steadfast.policy.unmatched",
    kind: MetricKind::Counter,
    unit: "{request}",
    labels: &["route", "method", "action"],
    description: "Requests to a route without a policy of its own, seen by a policy layer in strict mode; action is `reported` or `refused`.",
};

/// The attribute that carries the service's version on every metric (`service_version` in
/// Prometheus): set once, by the exporter (`observe::prometheus::with_service_version`, or an
/// OpenTelemetry resource attribute), so that releases can be compared.
pub const SERVICE_VERSION: &str = "service.version";

/// Calls from each route to each dependency: the reality map's edges.
pub const DEPENDENCY_CALLS: Metric = Metric {
    name: "steadfast.dependency.calls",
    kind: MetricKind::Counter,
    unit: "{call}",
    labels: &["route", "dependency", "outcome"],
    description: "Calls to each dependency by the route being served (`(none)` outside requests): the reality map's edges; outcome is `ok`, `failed` (error, timeout, server error) or `refused` (not sent).",
};

/// Calls to dependencies without a declared policy, in strict mode.
pub const DEPENDENCY_UNDECLARED: Metric = Metric {
    name: "steadfast.dependency.undeclared",
    kind: MetricKind::Counter,
    unit: "{call}",
    labels: &["dependency", "action"],
    description: "Calls to a dependency whose policy strict mode made up for a name the policy file does not declare; action is `reported` or `refused`.",
};

/// Faults injected by the fault layer (drills).
pub const FAULT_INJECTED: Metric = Metric {
    name: "steadfast.fault.injected",
    kind: MetricKind::Counter,
    unit: "{fault}",
    labels: &["route", "method", "fault"],
    description: "Faults injected by the fault layer for a drill, by route and kind: `delay` or `abort`.",
};

/// The duration of outbound HTTP requests (each attempt), as OpenTelemetry's HTTP semantic
/// conventions name it.
pub const HTTP_CLIENT_REQUEST_DURATION: Metric = Metric {
    name: "http.client.request.duration",
    kind: MetricKind::Histogram,
    unit: "s",
    labels: &[
        "http.request.method",
        "server.address",
        "http.response.status_code",
        "error.type",
        "steadfast.dependency",
    ],
    description: "Duration of outbound HTTP requests under a dependency policy, one per attempt, until the response head (OpenTelemetry HTTP semantic conventions); `server.address` is the first host the policy called (`_OTHER` for others), `error.type` the status (4xx/5xx), `timeout` or `_OTHER` (a client error).",
};

/// The duration of outbound gRPC calls (each attempt), as OpenTelemetry's RPC semantic
/// conventions name it.
pub const RPC_CLIENT_CALL_DURATION: Metric = Metric {
    name: "rpc.client.call.duration",
    kind: MetricKind::Histogram,
    unit: "s",
    labels: &[
        "rpc.system.name",
        "rpc.method",
        "rpc.status_code",
        "error.type",
        "steadfast.dependency",
    ],
    description: "Duration of outbound gRPC calls under a dependency policy, one per attempt, until the response head (OpenTelemetry RPC semantic conventions); a streamed answer's status is `OK` at its head; at most 256 methods per dependency, then `_OTHER`.",
};

/// Retries of outbound calls.
pub const RETRIES: Metric = Metric {
    name: "steadfast.retries",
    kind: MetricKind::Counter,
    unit: "{retry}",
    labels: &["dependency", "reason"],
    description: "Retries of outbound calls, by dependency and reason: `status` (503, 429, ...), `grpc_status` (`UNAVAILABLE`, ...), `error` (a transport error) or `timeout` (an attempt's own).",
};

/// Outbound calls that needed a retry the budget could not pay for.
pub const RETRY_BUDGET_EXHAUSTED: Metric = Metric {
    name: "steadfast.retry.budget_exhausted",
    kind: MetricKind::Counter,
    unit: "{call}",
    labels: &["dependency"],
    description: "Outbound calls that needed a retry when the dependency's retry budget was spent; they fail fast with `retry_budget_exhausted`.",
};

/// Second attempts sent by hedging.
pub const HEDGES: Metric = Metric {
    name: "steadfast.hedges",
    kind: MetricKind::Counter,
    unit: "{attempt}",
    labels: &["dependency"],
    description: "Second attempts of slow idempotent outbound calls (hedging), by dependency.",
};

/// Outbound calls dropped by the client-side adaptive throttle.
pub const THROTTLED: Metric = Metric {
    name: "steadfast.throttled",
    kind: MetricKind::Counter,
    unit: "{call}",
    labels: &["dependency"],
    description: "Outbound calls (attempts) not sent because the dependency refused many recent calls (client-side adaptive throttling).",
};

/// Outbound calls refused because the dependency's concurrency cap was reached.
pub const DEPENDENCY_CAPPED: Metric = Metric {
    name: "steadfast.dependency.capped",
    kind: MetricKind::Counter,
    unit: "{call}",
    labels: &["dependency"],
    description: "Outbound calls (attempts) not sent because as many calls to the dependency as its policy allows were in flight (the bulkhead).",
};

/// OpenTelemetry's recommended boundaries for request durations, in seconds: the buckets the
/// Prometheus setup puts on the duration histograms, and so the thresholds a latency objective
/// can use.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Boundaries for time spent waiting in a queue, in seconds: 1 ms to 1 s.
pub const QUEUE_WAIT_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Every metric steadfast emits.
pub const CATALOGUE: &[Metric] = &[
    HTTP_SERVER_REQUEST_DURATION,
    HTTP_SERVER_ACTIVE_REQUESTS,
    RPC_SERVER_CALL_DURATION,
    REJECTIONS,
    INVALID_DEADLINES,
    BREAKER_STATE,
    BREAKER_TRANSITIONS,
    BREAKER_CALLS,
    BREAKER_NOT_PERMITTED,
    SHED_LIMIT,
    SHED_IN_FLIGHT,
    SHED_RTT,
    SHED_REJECTED,
    SHED_QUEUE_LENGTH,
    SHED_QUEUE_WAIT,
    CONTRACT_VIOLATIONS,
    POLICY_UNMATCHED,
    DEPENDENCY_UNDECLARED,
    DEPENDENCY_CALLS,
    FAULT_INJECTED,
    HTTP_CLIENT_REQUEST_DURATION,
    RPC_CLIENT_CALL_DURATION,
    RETRIES,
    RETRY_BUDGET_EXHAUSTED,
    HEDGES,
    THROTTLED,
    DEPENDENCY_CAPPED,
];

/// The route of a layer instance's name: the instance of a method-specific policy is named
/// `GET /search`, and rejects on the route `/search` (the request metrics' `http.route`
/// carries no method, and the alerts join the two on the route).
pub(crate) fn route_of_instance(name: &str) -> &str {
    match name.split_once(' ') {
        Some((method, rest))
            if rest.starts_with('/')
                && !method.is_empty()
                && method.bytes().all(|byte| byte.is_ascii_uppercase()) =>
        {
            rest
        }
        _ => name,
    }
}

impl Metric {
    /// The name Prometheus shows, by the OpenTelemetry-to-Prometheus rules that
    /// `metrics-exporter-prometheus` applies with recommended naming (`observe::prometheus::recommended`,
    /// feature `prometheus`) and the OpenTelemetry Collector's Prometheus exporter alike: dots
    /// become underscores, the unit is appended when Prometheus names it (`s` becomes
    /// `_seconds`; annotations such as `{request}` add nothing), and counters end in `_total`.
    /// The generated rules and dashboard read these names.
    ///
    /// ```
    /// use steadfast::core::telemetry::{HTTP_SERVER_REQUEST_DURATION, REJECTIONS};
    ///
    /// assert_eq!(
    ///     HTTP_SERVER_REQUEST_DURATION.prometheus_name(),
    ///     "http_server_request_duration_seconds"
    /// );
    /// assert_eq!(REJECTIONS.prometheus_name(), "steadfast_rejections_total");
    /// ```
    pub fn prometheus_name(&self) -> String {
        let mut name = self.name.replace('.', "_");
        if let Some(unit) = self.prometheus_unit() {
            if !name.ends_with(unit) {
                name.push('_');
                name.push_str(unit);
            }
        }
        if self.kind == MetricKind::Counter && !name.ends_with("_total") {
            name.push_str("_total");
        }
        name
    }

    /// The unit as a Prometheus name suffix, when the unit is one Prometheus names (`s` is
    /// `seconds`); counts and annotations such as `{request}` have none.
    pub fn prometheus_unit(&self) -> Option<&'static str> {
        match self.unit {
            "s" => Some("seconds"),
            _ => None,
        }
    }

    /// The unit the `metrics` facade is told, the same units as
    /// [`prometheus_unit`](Self::prometheus_unit).
    fn metrics_unit(&self) -> Option<metrics::Unit> {
        match self.unit {
            "s" => Some(metrics::Unit::Seconds),
            _ => None,
        }
    }
}

/// Describes every metric of the [`CATALOGUE`] to the installed `metrics` recorder: its help
/// text and, for durations, its unit (a Prometheus exporter renders them as `# HELP` lines).
/// Steadfast's layers call it when they are made; call it again after installing a recorder
/// later than that.
pub fn describe() {
    for metric in CATALOGUE {
        match (metric.kind, metric.metrics_unit()) {
            (MetricKind::Counter, Some(unit)) => {
                metrics::describe_counter!(metric.name, unit, metric.description)
            }
            (MetricKind::Counter, None) => {
                metrics::describe_counter!(metric.name, metric.description)
            }
            (MetricKind::Gauge, Some(unit)) => {
                metrics::describe_gauge!(metric.name, unit, metric.description)
            }
            (MetricKind::Gauge, None) => metrics::describe_gauge!(metric.name, metric.description),
            (MetricKind::Histogram, Some(unit)) => {
                metrics::describe_histogram!(metric.name, unit, metric.description)
            }
            (MetricKind::Histogram, None) => {
                metrics::describe_histogram!(metric.name, metric.description)
            }
        }
    }
}

/// Records a rejection: one `tracing` event and one count of [`REJECTIONS`] (its `route` the
/// template, without a method-specific policy's method, which is the `method` label: a label
/// value of [`labels::method`](super::labels::method), `""` where there is no HTTP request).
pub(crate) fn record_rejection(rejection: &Rejection, route: &str, method: &'static str) {
    let route = route_of_instance(route);
    if rejection.counts_as_failure() {
        tracing::warn!(
            layer = rejection.origin().as_str(),
            reason = rejection.kind().as_str(),
            route,
            method,
            detail = rejection.detail(),
            "request rejected"
        );
    } else {
        tracing::debug!(
            layer = rejection.origin().as_str(),
            reason = rejection.kind().as_str(),
            route,
            method,
            detail = rejection.detail(),
            "request rejected"
        );
    }
    metrics::counter!(
        REJECTIONS.name,
        "layer" => rejection.origin().as_str(),
        "reason" => rejection.kind().as_str(),
        "route" => route.to_owned(),
        "method" => method,
    )
    .increment(1);
}

/// Records an incoming deadline header that could not be read.
pub(crate) fn record_invalid_deadline(
    header: &str,
    rejected: bool,
    route: &str,
    method: &'static str,
    error: &dyn std::fmt::Display,
) {
    let action = if rejected { "rejected" } else { "ignored" };
    tracing::debug!(header, action, route, method, %error, "invalid deadline header");
    metrics::counter!(
        INVALID_DEADLINES.name,
        "header" => header.to_owned(),
        "action" => action,
        "route" => route.to_owned(),
        "method" => method,
    )
    .increment(1);
}

/// Counts the violations of one request or response, by keyword.
#[cfg(feature = "contract")]
pub(crate) fn record_contract_violations(
    route: &str,
    method: &'static str,
    direction: &'static str,
    listed: &[super::Violation],
    omitted: usize,
) {
    let count = |keyword: &str, n: u64| {
        metrics::counter!(
            CONTRACT_VIOLATIONS.name,
            "route" => route.to_owned(),
            "method" => method,
            "direction" => direction,
            "keyword" => keyword.to_owned(),
        )
        .increment(n);
    };
    for violation in listed {
        count(violation.keyword(), 1);
    }
    if omitted > 0 {
        count("unlisted", omitted as u64);
    }
}

/// A fault injected by the fault layer.
pub(crate) fn record_fault(fault: &'static str, route: &str, method: &'static str) {
    metrics::counter!(
        FAULT_INJECTED.name,
        "route" => route.to_owned(),
        "method" => method,
        "fault" => fault,
    )
    .increment(1);
}

/// A call to a dependency whose policy strict mode made up (`refused` or `reported`).
pub(crate) fn record_undeclared_dependency(dependency: &metrics::SharedString, refused: bool) {
    let action = if refused { "refused" } else { "reported" };
    tracing::warn!(
        target: "steadfast::dependency",
        dependency = &**dependency,
        action,
        "dependency called without a declared policy (strict mode)"
    );
    metrics::counter!(
        DEPENDENCY_UNDECLARED.name,
        "dependency" => dependency.clone(),
        "action" => action,
    )
    .increment(1);
}

/// A request the policy layer's strict mode saw without an explicit policy.
pub(crate) fn record_unmatched_policy(route: &str, method: &'static str, action: &'static str) {
    tracing::warn!(
        target: "steadfast::policy",
        route,
        method,
        action,
        "route served without a policy of its own (strict mode)"
    );
    metrics::counter!(
        POLICY_UNMATCHED.name,
        "route" => route.to_owned(),
        "method" => method,
        "action" => action,
    )
    .increment(1);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_method_specific_instance_rejects_on_its_route() {
        assert_eq!(route_of_instance("GET /search"), "/search");
        assert_eq!(route_of_instance("POST /orders/{id}"), "/orders/{id}");
        assert_eq!(route_of_instance("/search"), "/search");
        assert_eq!(
            route_of_instance("/pkg.Service/Method"),
            "/pkg.Service/Method"
        );
        assert_eq!(route_of_instance("my limiter"), "my limiter");
        assert_eq!(route_of_instance("shared"), "shared");
    }

    #[test]
    fn names_follow_the_opentelemetry_rules() {
        assert_eq!(
            HTTP_SERVER_REQUEST_DURATION.prometheus_name(),
            "http_server_request_duration_seconds"
        );
        assert_eq!(REJECTIONS.prometheus_name(), "steadfast_rejections_total");
        assert_eq!(SHED_RTT.prometheus_name(), "steadfast_shed_rtt_seconds");
        assert_eq!(SHED_LIMIT.prometheus_name(), "steadfast_shed_limit");
        assert_eq!(BREAKER_STATE.prometheus_name(), "steadfast_breaker_state");
        assert_eq!(
            SHED_QUEUE_WAIT.prometheus_name(),
            "steadfast_shed_queue_wait_seconds"
        );
        for metric in CATALOGUE {
            let name = metric.prometheus_name();
            assert_eq!(
                name.ends_with("_total"),
                metric.kind == MetricKind::Counter,
                "{name}"
            );
            // The unit the recorder is told is the unit the name carries.
            assert_eq!(
                metric.metrics_unit().map(|unit| unit.as_str()),
                metric.prometheus_unit(),
                "{name}"
            );
            // A gauge of unit `1` would get `_ratio` from the OpenTelemetry Collector.
            assert!(
                !(metric.kind == MetricKind::Gauge && metric.unit == "1"),
                "{name}"
            );
        }
    }
}
