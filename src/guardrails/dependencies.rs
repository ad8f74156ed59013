//! Guardrails for the outbound dependencies of a policy file: recording rules and alerts per
//! dependency, and the dashboard's dependency row.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::names;
use super::rules::{self, Group, Rule, RuleFile, number};
use crate::core::telemetry::{
    BREAKER_STATE, DEPENDENCY_CALLS, DEPENDENCY_CAPPED, HEDGES, HTTP_CLIENT_REQUEST_DURATION,
    RETRIES, RETRY_BUDGET_EXHAUSTED, RPC_CLIENT_CALL_DURATION, THROTTLED,
};
use crate::policy::{AlertSettings, Objective, PolicyFile};

/// The windows of the dependency rules: those of the two burn-rate alerts.
const WINDOWS: [&str; 4] = ["5m", "30m", "1h", "6h"];

/// The dependencies' burn-rate alerts: rate, long and short window, severity.
const BURN_ALERTS: [(f64, &str, &str, &str); 2] =
    [(14.4, "1h", "5m", "page"), (6.0, "6h", "30m", "ticket")];

/// Per dependency over each window: attempts, failed attempts (5xx, gRPC server errors,
/// timeouts, transport errors), their ratio, and attempts answered within each threshold.
fn recording(objectives: &BTreeMap<String, Objective>, alerts: &AlertSettings) -> Group {
    let service = names::service_by(&alerts.service_labels);
    let http = names::prometheus(&HTTP_CLIENT_REQUEST_DURATION);
    let rpc = names::prometheus(&RPC_CLIENT_CALL_DURATION);
    let dependency = names::label("steadfast.dependency");
    let status = names::label("http.response.status_code");
    let error = names::label("error.type");
    let rpc_status = names::label("rpc.status_code");
    let grpc_errors = rules::GRPC_SERVER_ERRORS;
    let by_dependency = |series: &[String], window: &str, extra: &str| {
        let parts: Vec<String> = series
            .iter()
            .map(|series| {
                format!(
                    r#"label_replace(rate({series}[{window}]), "dependency", "$1", "{dependency}", "(.*)")"#
                )
            })
            .collect();
        format!(
            "sum by ({service}dependency{extra}) ({})",
            parts.join(" or ")
        )
    };
    let mut thresholds: Vec<String> = objectives.values().map(rules::le).collect();
    thresholds.sort();
    thresholds.dedup();
    let mut group = Vec::new();
    for window in WINDOWS {
        group.push(Rule::Record {
            record: format!("steadfast:dependency_attempts:rate{window}"),
            expr: by_dependency(
                &[format!("{http}_count"), format!("{rpc}_count")],
                window,
                "",
            ),
            labels: BTreeMap::new(),
        });
        group.push(Rule::Record {
            record: format!("steadfast:dependency_errors:rate{window}"),
            expr: by_dependency(
                &[
                    format!(r#"{http}_count{{{status}=~"5.."}}"#),
                    // Timeouts and transport errors have no status.
                    format!(r#"{http}_count{{{error}=~"timeout|_OTHER"}}"#),
                    format!(r#"{rpc}_count{{{rpc_status}=~"{grpc_errors}"}}"#),
                ],
                window,
                "",
            ),
            labels: BTreeMap::new(),
        });
        group.push(Rule::Record {
            record: format!("steadfast:dependency_error_ratio:rate{window}"),
            expr: format!(
                "steadfast:dependency_errors:rate{window} / steadfast:dependency_attempts:rate{window}"
            ),
            labels: BTreeMap::new(),
        });
        if !thresholds.is_empty() {
            let le = thresholds.join("|");
            group.push(Rule::Record {
                record: format!("steadfast:dependency_attempts_within:rate{window}"),
                expr: by_dependency(
                    &[
                        format!(r#"{http}_bucket{{le=~"{le}"}}"#),
                        format!(r#"{rpc}_bucket{{le=~"{le}"}}"#),
                    ],
                    window,
                    ", le",
                ),
                labels: BTreeMap::new(),
            });
            group.push(Rule::Record {
                record: format!("steadfast:dependency_slow_ratio:rate{window}"),
                expr: format!(
                    "1 - steadfast:dependency_attempts_within:rate{window} / ignoring(le) group_left steadfast:dependency_attempts:rate{window}"
                ),
                labels: BTreeMap::new(),
            });
        }
    }
    Group {
        name: "steadfast-dependency-recording".into(),
        rules: group,
    }
}

/// The alerts on dependencies: error and latency burn against each one's objective, its breaker
/// open, its retry budget spent.
fn alerting(objectives: &BTreeMap<String, Objective>, alerts: &AlertSettings) -> Group {
    let service = names::service_by(&alerts.service_labels);
    let mut group = Vec::new();
    for (name, objective) in objectives {
        let selector = format!(r#"{{dependency="{}"}}"#, name.replace('"', "\\\""));
        let with_le = format!(
            r#"{{dependency="{}", le="{}"}}"#,
            name.replace('"', "\\\""),
            rules::le(objective)
        );
        let availability_budget = 1.0 - objective.availability / 100.0;
        let latency_budget = 1.0 - objective.latency_percent / 100.0;
        let guard = |window: &str| {
            format!(
                "steadfast:dependency_attempts:rate{window}{selector} > {}",
                number(objective.min_request_rate)
            )
        };
        for (rate, long, short, severity) in BURN_ALERTS {
            let labels = BTreeMap::from([
                ("severity".to_owned(), severity.to_owned()),
                ("slo".to_owned(), format!("dependency:{name}")),
            ]);
            let threshold = number(rate * availability_budget);
            let alert = format!(
                "SteadfastDependencyErrorBurn{}",
                rules::capitalized(severity)
            );
            group.push(Rule::Alert {
                alert: alert.clone(),
                expr: format!(
                    "steadfast:dependency_error_ratio:rate{long}{selector} > {threshold} and steadfast:dependency_error_ratio:rate{short}{selector} > {threshold} and {}",
                    guard(long)
                ),
                for_: None,
                labels: labels.clone(),
                annotations: rules::annotations(
                    alerts,
                    &alert,
                    format!(
                        "dependency {{{{ $labels.dependency }}}} fails more than its {}% availability objective allows",
                        objective.availability
                    ),
                ),
            });
            let threshold = number(rate * latency_budget);
            let alert = format!(
                "SteadfastDependencyLatencyBurn{}",
                rules::capitalized(severity)
            );
            group.push(Rule::Alert {
                alert: alert.clone(),
                expr: format!(
                    "steadfast:dependency_slow_ratio:rate{long}{with_le} > {threshold} and steadfast:dependency_slow_ratio:rate{short}{with_le} > {threshold} and ignoring(le) {}",
                    guard(long)
                ),
                for_: None,
                labels,
                annotations: rules::annotations(
                    alerts,
                    &alert,
                    format!(
                        "dependency {{{{ $labels.dependency }}}} is slower than its objective ({}% within {} ms)",
                        objective.latency_percent,
                        objective.latency_threshold.as_millis()
                    ),
                ),
            });
        }
    }
    let protection =
        |name: &str, expr: String, for_: String, severity: &str, summary: &str| Rule::Alert {
            alert: name.to_owned(),
            expr,
            for_: Some(for_),
            labels: BTreeMap::from([("severity".to_owned(), severity.to_owned())]),
            annotations: rules::annotations(alerts, name, summary.to_owned()),
        };
    if !objectives.is_empty() {
        let names: Vec<&str> = objectives.keys().map(String::as_str).collect();
        let breakers = format!(
            r#"{}{{breaker=~"{}"}}"#,
            names::prometheus(&BREAKER_STATE),
            names::alternatives(&names)
        );
        group.push(protection(
            "SteadfastDependencyBreakerOpen",
            format!(
                r#"label_replace(max by ({service}breaker) ({breakers}) == 1 or max by ({service}breaker) ({breakers}) == 4, "dependency", "$1", "breaker", "(.*)")"#
            ),
            rules::seconds(alerts.breaker_open_for),
            "page",
            "the breaker around dependency {{ $labels.dependency }} has been open too long: its calls fail fast",
        ));
    }
    group.push(protection(
        "SteadfastRetryBudgetExhausted",
        format!(
            "sum by ({service}dependency) (rate({}[5m])) > 0",
            names::prometheus(&RETRY_BUDGET_EXHAUSTED)
        ),
        "10m".into(),
        "ticket",
        "retries to dependency {{ $labels.dependency }} are refused by its budget: it fails often enough that retrying would amplify the outage",
    ));
    Group {
        name: "steadfast-dependency-alerts".into(),
        rules: group,
    }
}

/// The rules for a policy file: those of [`rules`](super::rules) for its routes, and per
/// dependency (`[dependencies.<name>]`, with its objective): recording rules for attempts,
/// failures and latency over 5m to 6h; burn-rate alerts on its error ratio and latency (page
/// at 14.4x over 1h and 5m, ticket at 6x over 6h and 30m); its breaker open too long (the
/// generic breaker alert leaves dependency breakers to this one); its retry budget spent.
pub fn file_rules(file: &PolicyFile) -> RuleFile {
    let objectives = file.dependency_objectives();
    let names: Vec<&str> = objectives.keys().map(String::as_str).collect();
    let mut rules = rules::route_rules(file.policies(), file.alerts(), &names);
    if !objectives.is_empty() {
        rules.groups.push(recording(objectives, file.alerts()));
    }
    rules.groups.push(alerting(objectives, file.alerts()));
    rules
}

/// The dashboard for a policy file: [`dashboard`](super::dashboard)'s panels, then a row for the
/// dependencies (attempts, error ratio, latency, breaker state, retries / hedges / budget,
/// throttling and the cap) and the reality map's edges as a table (calls per second and error
/// ratio from each route to each dependency). A `dependency` variable picks them.
pub fn file_dashboard(file: &PolicyFile) -> Value {
    let labels = &file.alerts().service_labels;
    let mut dashboard = super::dashboard::dashboard_for(file.policies(), labels);
    let service = names::service_matchers(labels);
    let dependency = &super::dashboard::and_service(r#"dependency=~"$dependency""#, &service);
    let http = names::prometheus(&HTTP_CLIENT_REQUEST_DURATION);
    let rpc = names::prometheus(&RPC_CLIENT_CALL_DURATION);
    let label = names::label("steadfast.dependency");
    let client = super::dashboard::and_service(&format!(r#"{label}=~"$dependency""#), &service);
    let calls = names::prometheus(&DEPENDENCY_CALLS);
    let by = names::service_by(labels);
    let quantile = |q: f64| {
        format!(
            r#"histogram_quantile({q}, sum by (le, {label}) (rate({http}_bucket{{{client}}}[5m]) or rate({rpc}_bucket{{{client}}}[5m])))"#
        )
    };
    let y = 48;
    let mut panels = vec![
        json!({
            "id": 100,
            "type": "row",
            "title": "Dependencies",
            "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            "panels": [],
        }),
        super::dashboard::panel(
            101,
            "Dependency attempts per second",
            "reqps",
            &[(
                format!("steadfast:dependency_attempts:rate5m{{{dependency}}}"),
                "{{dependency}}",
            )],
            0,
            y + 1,
        ),
        super::dashboard::panel(
            102,
            "Dependency error ratio (5xx, timeouts, transport errors)",
            "percentunit",
            &[(
                format!("steadfast:dependency_error_ratio:rate5m{{{dependency}}}"),
                "{{dependency}}",
            )],
            12,
            y + 1,
        ),
        super::dashboard::panel(
            103,
            "Dependency latency per attempt",
            "s",
            &[
                (quantile(0.5), "p50 {{steadfast_dependency}}"),
                (quantile(0.99), "p99 {{steadfast_dependency}}"),
            ],
            0,
            y + 9,
        ),
        super::dashboard::panel(
            104,
            "Dependency breaker state (0 closed, 1 open, 2 half-open, 4 forced open)",
            "none",
            &[(
                format!(
                    "{}{{{}}}",
                    names::prometheus(&BREAKER_STATE),
                    super::dashboard::and_service(r#"breaker=~"$dependency""#, &service)
                ),
                "{{breaker}}",
            )],
            12,
            y + 9,
        ),
        super::dashboard::panel(
            105,
            "Retries, hedges and retries refused by the budget",
            "reqps",
            &[
                (
                    format!(
                        "sum by (dependency) (rate({}{{{dependency}}}[5m]))",
                        names::prometheus(&RETRIES)
                    ),
                    "retries {{dependency}}",
                ),
                (
                    format!(
                        "sum by (dependency) (rate({}{{{dependency}}}[5m]))",
                        names::prometheus(&HEDGES)
                    ),
                    "hedges {{dependency}}",
                ),
                (
                    format!(
                        "sum by (dependency) (rate({}{{{dependency}}}[5m]))",
                        names::prometheus(&RETRY_BUDGET_EXHAUSTED)
                    ),
                    "budget exhausted {{dependency}}",
                ),
            ],
            0,
            y + 17,
        ),
        super::dashboard::panel(
            106,
            "Attempts dropped by the adaptive throttle and the cap",
            "reqps",
            &[
                (
                    format!(
                        "sum by (dependency) (rate({}{{{dependency}}}[5m]))",
                        names::prometheus(&THROTTLED)
                    ),
                    "throttled {{dependency}}",
                ),
                (
                    format!(
                        "sum by (dependency) (rate({}{{{dependency}}}[5m]))",
                        names::prometheus(&DEPENDENCY_CAPPED)
                    ),
                    "capped {{dependency}}",
                ),
            ],
            12,
            y + 17,
        ),
    ];
    let mut edges = super::dashboard::panel(
        107,
        "The reality map: calls from each route to each dependency",
        "none",
        &[
            (
                format!("sum by ({by}route, dependency) (rate({calls}{{{dependency}}}[5m]))"),
                "",
            ),
            (
                format!(
                    r#"sum by ({by}route, dependency) (rate({calls}{{outcome!="ok", {dependency}}}[5m])) / sum by ({by}route, dependency) (rate({calls}{{{dependency}}}[5m]))"#
                ),
                "",
            ),
        ],
        0,
        y + 25,
    );
    edges["type"] = json!("table");
    edges["gridPos"]["w"] = json!(24);
    for target in edges["targets"].as_array_mut().expect("targets") {
        target["format"] = json!("table");
        target["instant"] = json!(true);
    }
    edges["transformations"] = json!([
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {"Time": true},
            "renameByName": {"Value #A": "calls/s", "Value #B": "error ratio"},
        }},
    ]);
    panels.push(edges);
    dashboard["panels"]
        .as_array_mut()
        .expect("panels")
        .extend(panels);
    dashboard["templating"]["list"]
        .as_array_mut()
        .expect("variables")
        .push(super::dashboard::variable(
            "dependency",
            "Dependency",
            &super::dashboard::scoped("steadfast:dependency_attempts:rate5m", &service),
        ));
    dashboard["title"] = json!("steadfast: routes, dependencies, objectives and protections");
    dashboard
}
