//! Guardrails generated from the policies: Prometheus SLO and protection alerts, a Grafana
//! dashboard, and checks a team runs in CI (feature `guardrails`).
//!
//! Everything is derived from two sources, so nothing drifts from what the code emits: the
//! [metric catalogue](crate::core::telemetry::CATALOGUE) (names as
//! `metrics-exporter-prometheus` renders them) and the [`Policies`] with their
//! [`Objective`](crate::policy::Objective)s.
//!
//! - [`rules`]: recording rules per route (requests, server errors — not those of callers whose
//!   deadline was spent on arrival —, their ratio, requests within
//!   each latency threshold, over 5m to 3d); multi-window, multi-burn-rate alerts for
//!   availability and latency (page: 14.4x over 1h and 5m, 6x over 6h and 30m; ticket: 3x over
//!   1d and 2h, 1x over 3d and 6h) that stay silent below the objective's minimum request rate;
//!   protection alerts: a breaker open too long, heavy shedding, many timeouts, response
//!   contract violations; release risk: `SteadfastReleaseRegression` pages when one version of
//!   a route (`service_version`, see
//!   [`with_service_version`](crate::observe::prometheus::with_service_version)) fails more than
//!   twice as often as another version serving it over the same 30 minutes, and faster than
//!   its objective allows (a canary at 5x pages, equal ratios do not). Each alert has
//!   `severity`, `route` (or `breaker`) labels, a summary and a runbook link.
//! - [`dashboard`]: per route rate, errors, latency percentiles, burn rate and budget left;
//!   breaker states, adaptive limits against requests in flight, rejections by reason and
//!   class, contract violations; requests and error ratio by version, side by side; the
//!   datasource and routes are variables.
//!
//! - For a policy file's dependencies (`[dependencies.<name>]`), [`file_rules`] and
//!   [`file_dashboard`] add per dependency: recording rules (attempts, failures, latency),
//!   burn-rate alerts on its error ratio and latency against its objective (page at 14.4x over
//!   1h and 5m, ticket at 6x over 6h and 30m), its breaker open too long, its retry budget
//!   spent; and a dashboard row (attempts, errors, latency, breaker, retries / hedges / budget,
//!   throttling and the cap, and the [reality map](crate::map)'s edges as a table).
//!
//! - Per service: every rule aggregates `by (job, ...)` and the dashboard has a `job` variable
//!   ([`AlertSettings::service_labels`] names other labels), so several services share one
//!   Prometheus.
//! - Strict mode ([`PolicyLayer::strict`](crate::policy::PolicyLayer::strict)): a request on a
//!   route without a policy of its own is reported (log + `steadfast.policy.unmatched`) or
//!   refused; [`routes_without_policy`] sends one request to each route a team lists and
//!   returns those that were refused, for a CI test.
//!
//! The `steadfast-guardrails` binary writes both from a policy file (routes and dependencies),
//! and renders a saved reality map (`--check` fails on dependencies called without a declared
//! policy):
//!
//! ```sh
//! cargo run --features guardrails --bin steadfast-guardrails -- policies.toml guardrails/
//! promtool check rules guardrails/rules.yml
//! cargo run --features guardrails --bin steadfast-guardrails -- map map.json --format dot --check
//! ```
//!
//! ```
//! use steadfast::guardrails;
//! use steadfast::policy::{AlertSettings, Policies, Policy};
//!
//! let policies = Policies::new(Policy::new()).route("/checkout", Policy::new());
//! let rules = guardrails::rules(&policies, &AlertSettings::default());
//! assert!(rules.alerts().contains("SteadfastAvailabilityBurnPage"));
//! let dashboard = guardrails::dashboard(&policies);
//! assert_eq!(dashboard["panels"].as_array().unwrap().len(), 12);
//! ```

#![doc = include_str!("runbooks.md")]

mod check;
mod dashboard;
mod dependencies;
mod names;
mod rules;

use std::collections::BTreeSet;
use std::path::Path;

pub use check::routes_without_policy;
pub use dashboard::dashboard;
pub use dependencies::{file_dashboard, file_rules};
pub use names::{label, prometheus};
pub use rules::{RuleFile, rules};

use crate::policy::{AlertSettings, Policies, PolicyFile};

/// Writes `rules.yml` and `dashboard.json` for `policies` into `dir`.
///
/// # Errors
///
/// Any error creating the directory or writing the files.
pub fn write(policies: &Policies, alerts: &AlertSettings, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("rules.yml"), rules(policies, alerts).to_yaml())?;
    let dashboard = serde_json::to_string_pretty(&dashboard(policies)).expect("JSON serializes");
    std::fs::write(dir.join("dashboard.json"), dashboard + "\n")
}

/// Writes `rules.yml` and `dashboard.json` for a policy file into `dir`: its routes' and its
/// dependencies' ([`file_rules`], [`file_dashboard`]).
///
/// # Errors
///
/// Any error creating the directory or writing the files.
pub fn write_file(file: &PolicyFile, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("rules.yml"), file_rules(file).to_yaml())?;
    let dashboard = serde_json::to_string_pretty(&file_dashboard(file)).expect("JSON serializes");
    std::fs::write(dir.join("dashboard.json"), dashboard + "\n")
}

/// The series names a PromQL expression reads: metric names and recorded series, without the
/// `_bucket`/`_count`/`_sum` suffixes of histograms.
pub fn series_in(expr: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = expr;
    // Skip quoted strings (label values, regexes) so their contents are not taken for names.
    let mut unquoted = String::new();
    let mut in_quote = false;
    let mut escaped = false;
    for c in rest.chars() {
        match (in_quote, escaped, c) {
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_quote = false,
            (true, ..) => escaped = false,
            (false, _, '"') => in_quote = true,
            (false, ..) => unquoted.push(c),
        }
    }
    rest = &unquoted;
    for token in rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        let is_series = token.starts_with("steadfast")
            || token.starts_with("http_server_")
            || token.starts_with("rpc_server_")
            || token.starts_with("http_client_")
            || token.starts_with("rpc_client_");
        // `steadfast_dependency` is a label (of the client metrics), not a series.
        if !is_series || token == "steadfast_dependency" {
            continue;
        }
        let name = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| token.strip_suffix(suffix))
            .unwrap_or(token);
        found.insert(name.to_owned());
    }
    found
}
