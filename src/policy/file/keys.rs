//! The reference of every key of the policy file: default and meaning, as the README's
//! configuration reference shows them (a test keeps the two equal, and another keeps this list
//! equal to the keys the parser accepts).
//!
//! Long because it is one table: a row per key (about a hundred), kept in the parser's order.

/// One key of the policy file, for the reference table (a test keeps the README's equal).
#[derive(Clone, Copy, Debug)]
pub struct ConfigKey {
    /// The key; those of a policy go in `[defaults]` or `[routes."<route>"]`.
    pub key: &'static str,
    /// Its default.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

const fn key(key: &'static str, default: &'static str, meaning: &'static str) -> ConfigKey {
    ConfigKey {
        key,
        default,
        meaning,
    }
}

/// Every key of the policy file.
pub const CONFIG_KEYS: &[ConfigKey] = &[
    key(
        "timeout",
        "\"15s\"",
        "The budget of each request; a caller's `grpc-timeout` may shorten it.",
    ),
    key(
        "deadline.cap",
        "none",
        "An upper bound on the budget, whatever else says (`TimeoutConfig::cap`).",
    ),
    key(
        "deadline.grpc_timeout",
        "true",
        "Whether a caller's `grpc-timeout` header may shorten the budget.",
    ),
    key(
        "deadline.http_header",
        "none",
        "An HTTP request header carrying the caller's time left, which may shorten the budget (e.g. `x-envoy-expected-rq-timeout-ms`).",
    ),
    key(
        "deadline.http_format",
        "\"millis\"",
        "That header's form: `millis` (whole milliseconds, `250`) or `grpc_timeout` (`250m`).",
    ),
    key(
        "deadline.on_invalid",
        "\"ignore\"",
        "A deadline header that cannot be read: `ignore` it (serve within the budget) or `reject` the request (400).",
    ),
    key(
        "deadline.timeout_status",
        "504",
        "The status of a timed-out request (a 4xx or 5xx).",
    ),
    key(
        "deadline.publish",
        "true",
        "Whether the request's `Deadline` is published (as `Deadline::current`, without an allocation) to handlers and the outbound calls they make.",
    ),
    key(
        "criticality",
        "\"critical\"",
        "The class of the route's requests unless they carry one: `critical_plus`, `critical`, `sheddable_plus`, `sheddable`.",
    ),
    key(
        "breaker.enabled",
        "false",
        "Whether the route has a circuit breaker; setting any other `breaker` key turns it on too. Off by default: a route's own 5xx answers should not cut it off (put breakers around dependencies).",
    ),
    key(
        "breaker.failure_rate_threshold",
        "50",
        "Percentage of failed calls in the window that opens the breaker.",
    ),
    key(
        "breaker.slow_call_rate_threshold",
        "100",
        "Percentage of slow calls in the window that opens the breaker.",
    ),
    key(
        "breaker.slow_call_duration",
        "none",
        "Calls slower than this count as slow (must be shorter than `timeout`).",
    ),
    key(
        "breaker.window_calls",
        "100",
        "A count window: the last N calls.",
    ),
    key(
        "breaker.window_duration",
        "none",
        "A time window instead (at least twice `timeout`).",
    ),
    key(
        "breaker.minimum_calls",
        "100",
        "Calls the window needs before the breaker may open.",
    ),
    key(
        "breaker.open_duration",
        "\"60s\"",
        "How long the breaker stays open before probing.",
    ),
    key(
        "breaker.open_backoff",
        "1",
        "Each consecutive trip multiplies the open duration by this factor (1: a fixed duration).",
    ),
    key(
        "breaker.open_max",
        "\"300s\"",
        "The longest open duration the backoff reaches.",
    ),
    key(
        "breaker.open_jitter",
        "0",
        "Spread each open duration by up to ± this fraction (0.1 = ±10 %), so that instances do not probe at once.",
    ),
    key(
        "breaker.half_open_permits",
        "10",
        "Probe calls let through while half-open.",
    ),
    key(
        "breaker.half_open_max_wait",
        "\"60s\"",
        "A half-open breaker whose probes have not all completed within this long opens again.",
    ),
    key(
        "breaker.automatic_half_open",
        "false",
        "Move from open to half-open by a timer instead of at the next call.",
    ),
    key(
        "shed.enabled",
        "true",
        "Whether the route has a load shedder.",
    ),
    key(
        "shed.algorithm",
        "\"knee\"",
        "`knee` (adaptive, needs no capacity setting), `gradient2` or `aimd` (adaptive, Netflix's), or `fixed`.",
    ),
    key(
        "shed.limit",
        "none",
        "The concurrency limit with `algorithm = \"fixed\"` (required then).",
    ),
    key(
        "shed.initial_limit",
        "10000",
        "The adaptive limit's starting point (gradient2 and aimd: 20).",
    ),
    key(
        "shed.min_limit",
        "2",
        "The adaptive limit's floor (gradient2 and aimd: 20).",
    ),
    key(
        "shed.max_limit",
        "10000",
        "The adaptive limit's ceiling (gradient2 and aimd: 200).",
    ),
    key(
        "shed.retry_after",
        "\"1s\"",
        "The `Retry-After` sent with shed requests.",
    ),
    key(
        "shed.criticality_header",
        "none",
        "A request header that may lower (never raise) a request's class.",
    ),
    key(
        "shed.sample_window",
        "\"1s\"",
        "The adaptive limit's window: gradient2 and aimd use it as is; knee sizes its windows from the service's latency and uses it as their longest.",
    ),
    key(
        "shed.min_samples",
        "10",
        "Completed requests a window needs before the adaptive limit is reconsidered (knee: its first window; later ones need 25, or 4 after three windows' time).",
    ),
    key(
        "shed.grpc_code",
        "\"unavailable\"",
        "The gRPC status of a shed call: `unavailable` (clients may retry it elsewhere) or `resource_exhausted`.",
    ),
    key(
        "shed.admit_below.critical_plus",
        "1.0",
        "Admit critical-plus requests only while fewer than this fraction of the limit is in flight; likewise `critical` 1.0, `sheddable_plus` 0.95, `sheddable` 0.9 (lower classes are shed first).",
    ),
    key(
        "shed.admit_below.critical",
        "1.0",
        "See `shed.admit_below.critical_plus`.",
    ),
    key(
        "shed.admit_below.sheddable_plus",
        "0.95",
        "See `shed.admit_below.critical_plus`.",
    ),
    key(
        "shed.admit_below.sheddable",
        "0.9",
        "See `shed.admit_below.critical_plus`.",
    ),
    key(
        "shed.guaranteed_share.critical_plus",
        "0",
        "A fraction of the limit kept for critical-plus requests once the limit is reached (borrowed by others while idle); likewise `critical`, `sheddable_plus`, `sheddable`. Together at most 1.",
    ),
    key(
        "shed.guaranteed_share.critical",
        "0",
        "See `shed.guaranteed_share.critical_plus`.",
    ),
    key(
        "shed.guaranteed_share.sheddable_plus",
        "0",
        "See `shed.guaranteed_share.critical_plus`.",
    ),
    key(
        "shed.guaranteed_share.sheddable",
        "0",
        "See `shed.guaranteed_share.critical_plus`.",
    ),
    key(
        "shed.queue.enabled",
        "false",
        "Whether requests over the limit wait in a queue (adaptive LIFO with CoDel's standing-queue rule) instead of being shed at once; on when any queue key is set.",
    ),
    key(
        "shed.queue.max_len",
        "100",
        "The most requests waiting at once.",
    ),
    key(
        "shed.queue.max_wait",
        "\"100ms\"",
        "How long a request may wait while the queue keeps draining.",
    ),
    key(
        "shed.queue.target_wait",
        "\"5ms\"",
        "How long a request may wait once a standing queue has formed.",
    ),
    key(
        "shed.queue.interval",
        "\"100ms\"",
        "A queue not empty for this long is a standing queue.",
    ),
    key(
        "fault.delay",
        "none",
        "A delay injected before requests are served, for a drill (see `fault.delay_percent`).",
    ),
    key(
        "fault.delay_percent",
        "100",
        "The percentage of requests delayed by `fault.delay`.",
    ),
    key(
        "fault.abort_status",
        "none",
        "A status (4xx or 5xx) answered in the service's place, for a drill (gRPC: the matching code).",
    ),
    key(
        "fault.abort_percent",
        "100",
        "The percentage of requests answered with `fault.abort_status`.",
    ),
    key(
        "fault.header",
        "none",
        "Inject faults only into requests that carry this header.",
    ),
    key(
        "contract.requests",
        "\"enforce\"",
        "How the route's requests are checked against the contract: `enforce`, `report`, `off`.",
    ),
    key(
        "contract.responses",
        "\"report\"",
        "How its responses are checked: `enforce`, `report`, `off`.",
    ),
    key(
        "contract.response_sample_rate",
        "1.0",
        "The share of responses checked.",
    ),
    key(
        "objective.availability",
        "99.9",
        "The percentage of requests that must not fail with a server error, for the generated SLO alerts.",
    ),
    key(
        "objective.latency_percent",
        "95",
        "The percentage of requests that must be answered within `objective.latency_threshold`.",
    ),
    key(
        "objective.latency_threshold",
        "\"500ms\"",
        "The latency objective's threshold: a bucket boundary of the duration histograms (5ms ... 10s).",
    ),
    key(
        "objective.window",
        "\"30d\"",
        "The period the objectives are measured over (at least 3 days).",
    ),
    key(
        "objective.min_request_rate",
        "0.05",
        "Requests per second below which burn-rate alerts stay silent (the low-traffic guard).",
    ),
    key(
        "openapi.document",
        "none",
        "Top level: the OpenAPI 3.0/3.1 document (JSON or YAML) to check requests and responses against, relative to the policy file.",
    ),
    key(
        "openapi.max_body_bytes",
        "2097152",
        "Top level: the largest request body.",
    ),
    key(
        "openapi.undocumented",
        "\"pass\"",
        "Top level: routes the document lacks: `pass`, or `reject` (404/405).",
    ),
    key(
        "alerts.breaker_open_for",
        "\"5m\"",
        "Top level: a breaker open this long pages.",
    ),
    key(
        "alerts.shed_percent",
        "5",
        "Top level: shedding more than this percentage of a route's requests...",
    ),
    key(
        "alerts.shed_for",
        "\"10m\"",
        "Top level: ...for this long opens a ticket.",
    ),
    key(
        "alerts.timeout_percent",
        "5",
        "Top level: timeouts above this percentage of a route's requests...",
    ),
    key(
        "alerts.timeout_for",
        "\"10m\"",
        "Top level: ...for this long opens a ticket.",
    ),
    key(
        "alerts.runbook_url",
        "docs.rs guardrails page",
        "Top level: each alert's runbook link; `{alert}` becomes the alert's name.",
    ),
    key(
        "alerts.service_labels",
        "[\"job\"]",
        "Top level: the labels that tell services apart in one Prometheus; the rules aggregate per service and the dashboard picks one.",
    ),
    key(
        "dependency.attempt_timeout",
        "none",
        "In `[dependencies.<name>]`, a dependency policy (`steadfast::dependency`): each attempt's own time limit (the caller's deadline applies too).",
    ),
    key(
        "dependency.deadline_header",
        "none",
        "A header carrying each attempt's time left in milliseconds on plain HTTP calls (gRPC calls always get `grpc-timeout`).",
    ),
    key(
        "dependency.max_concurrency",
        "none",
        "At most this many attempts in flight (a bulkhead); those beyond fail fast as `overloaded`.",
    ),
    key(
        "dependency.breaker.enabled",
        "true",
        "Whether the dependency has a circuit breaker (on by default here); overload refusals (503, 429, `UNAVAILABLE`) do not count for it.",
    ),
    key(
        "dependency.breaker.failure_rate_threshold",
        "50",
        "As for routes: percentage of failed calls that opens the breaker.",
    ),
    key(
        "dependency.breaker.slow_call_rate_threshold",
        "100",
        "As for routes.",
    ),
    key(
        "dependency.breaker.slow_call_duration",
        "none",
        "As for routes.",
    ),
    key("dependency.breaker.window_calls", "100", "As for routes."),
    key(
        "dependency.breaker.window_duration",
        "none",
        "As for routes.",
    ),
    key("dependency.breaker.minimum_calls", "100", "As for routes."),
    key(
        "dependency.breaker.open_duration",
        "\"60s\"",
        "As for routes.",
    ),
    key("dependency.breaker.open_backoff", "1", "As for routes."),
    key("dependency.breaker.open_max", "\"300s\"", "As for routes."),
    key("dependency.breaker.open_jitter", "0", "As for routes."),
    key(
        "dependency.breaker.half_open_permits",
        "10",
        "As for routes.",
    ),
    key(
        "dependency.breaker.half_open_max_wait",
        "\"60s\"",
        "As for routes.",
    ),
    key(
        "dependency.breaker.automatic_half_open",
        "false",
        "As for routes.",
    ),
    key(
        "dependency.retry.enabled",
        "true",
        "Whether idempotent calls (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, listed gRPC methods) are retried on 503, 429, `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, transport errors and attempt timeouts.",
    ),
    key(
        "dependency.retry.max_retries",
        "2",
        "Retries after the first attempt (0 to 10).",
    ),
    key(
        "dependency.retry.backoff_base",
        "\"25ms\"",
        "The first retry's backoff ceiling; it doubles per retry, with full jitter.",
    ),
    key(
        "dependency.retry.backoff_max",
        "\"250ms\"",
        "The backoff's cap.",
    ),
    key(
        "dependency.retry.budget_ratio",
        "0.1",
        "Retries (and hedges) allowed per call made over the last 10 s, shared by the dependency's callers.",
    ),
    key(
        "dependency.retry.budget_min_per_second",
        "10",
        "Retries allowed per second whatever the traffic.",
    ),
    key(
        "dependency.retry.max_replay_bytes",
        "65536",
        "The largest request body kept to send again; larger ones are sent once.",
    ),
    key(
        "dependency.retry.idempotent_grpc_methods",
        "[]",
        "gRPC methods (`\"/pkg.Service/Method\"`) safe to retry.",
    ),
    key(
        "dependency.throttle.enabled",
        "true",
        "Client-side adaptive throttling: drop attempts locally while the dependency refuses most of them.",
    ),
    key(
        "dependency.throttle.k",
        "2",
        "The throttle's K: nothing is dropped while the dependency accepts more than 1/K of the attempts.",
    ),
    key(
        "dependency.hedge.enabled",
        "false",
        "Hedging of idempotent calls: a second attempt when the first is slow; setting another `hedge` key turns it on.",
    ),
    key(
        "dependency.hedge.percentile",
        "95",
        "Hedge after this percentile of the dependency's recent latencies.",
    ),
    key(
        "dependency.hedge.delay",
        "none",
        "Hedge after this fixed delay instead.",
    ),
    key(
        "dependency.objective.availability",
        "99.9",
        "The share of attempts (percent) that must not fail (5xx, gRPC server errors, timeouts, transport errors), for the generated dependency alerts.",
    ),
    key(
        "dependency.objective.latency_percent",
        "95",
        "The share of attempts that must be answered within `dependency.objective.latency_threshold`.",
    ),
    key(
        "dependency.objective.latency_threshold",
        "\"500ms\"",
        "As for routes: a bucket boundary of the duration histograms.",
    ),
    key("dependency.objective.window", "\"30d\"", "As for routes."),
    key(
        "dependency.objective.min_request_rate",
        "0.05",
        "Attempts per second below which the dependency's burn-rate alerts stay silent.",
    ),
];
