//! A Grafana dashboard, generated from the catalogue and the recording rules.

use serde_json::{Value, json};

use super::names;
use crate::core::telemetry::{
    BREAKER_STATE, CONTRACT_VIOLATIONS, HTTP_SERVER_REQUEST_DURATION, REJECTIONS, SHED_IN_FLIGHT,
    SHED_LIMIT, SHED_REJECTED,
};
use crate::policy::{AlertSettings, Policies};

/// A dashboard variable of the values `label` takes on `series`, all selected by default.
pub(super) fn variable(label: &str, title: &str, series: &str) -> Value {
    let query = format!("label_values({series}, {label})");
    json!({
        "name": label,
        "label": title,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": format!("{label}_values")},
        "definition": query,
        "multi": true,
        "includeAll": true,
        "current": {"text": "All", "value": "$__all"},
        // "All" matches series without the label too (a single service needs none).
        "allValue": ".*",
        "refresh": 2,
    })
}

/// One panel: a title, its queries (expression and legend) and its unit.
pub(super) fn panel(
    id: u32,
    title: &str,
    unit: &str,
    targets: &[(String, &str)],
    x: u32,
    y: u32,
) -> Value {
    let targets: Vec<Value> = targets
        .iter()
        .zip('A'..)
        .map(|((expr, legend), ref_id)| {
            json!({
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": expr,
                "legendFormat": legend,
                "refId": ref_id.to_string(),
            })
        })
        .collect();
    json!({
        "id": id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": targets,
    })
}

/// The dashboard for `policies`: per route rate, errors, latency percentiles, SLO burn rate and
/// budget left; breaker states, adaptive limits against requests in flight, rejections by
/// reason and class, contract violations. The datasource and the routes are variables.
pub fn dashboard(policies: &Policies) -> Value {
    dashboard_for(policies, &AlertSettings::default().service_labels)
}

/// `series` with the service variables' matchers.
pub(super) fn scoped(series: &str, service: &str) -> String {
    if service.is_empty() {
        series.to_owned()
    } else {
        format!("{series}{{{service}}}")
    }
}

/// `matchers` after the service variables' matchers.
pub(super) fn and_service(matchers: &str, service: &str) -> String {
    if service.is_empty() {
        matchers.to_owned()
    } else {
        format!("{service}, {matchers}")
    }
}

/// The dashboard, with a variable for each of `service_labels`.
pub(super) fn dashboard_for(policies: &Policies, service_labels: &[String]) -> Value {
    let service = names::service_matchers(service_labels);
    let route = &and_service(r#"route=~"$route""#, &service);
    let http = names::prometheus(&HTTP_SERVER_REQUEST_DURATION);
    let http_route = names::label("http.route");
    let breaker_state = names::prometheus(&BREAKER_STATE);
    let limit = names::prometheus(&SHED_LIMIT);
    let in_flight = names::prometheus(&SHED_IN_FLIGHT);
    let rejections = names::prometheus(&REJECTIONS);
    let shed_rejected = names::prometheus(&SHED_REJECTED);
    let violations = names::prometheus(&CONTRACT_VIOLATIONS);

    // The availability budget of each route: its own objective, else the defaults'; printed
    // as the decimal it is (0.001 for 99.9 %, not 0.0009999999999998899).
    let budget = |availability: f64| super::rules::number(1.0 - availability / 100.0);
    let default_budget = budget(policies.defaults().objective_settings().availability);
    // `series` gets the selector to put where it belongs (inside a range function's argument).
    let budget_of = |series: &dyn Fn(&str) -> String| {
        let mut expr = String::new();
        for (matched, policy) in policies.routes() {
            let budget = budget(policy.objective_settings().availability);
            let selector = format!(r#"route="{}", {route}"#, matched.template());
            expr.push_str(&format!("{} / {budget} or ", series(&selector)));
        }
        expr.push_str(&format!("{} / {default_budget}", series(route)));
        expr
    };
    let quantile = |q: f64| {
        format!(
            r#"histogram_quantile({q}, sum by (le, {http_route}) (rate({http}_bucket{{{}}}[5m])))"#,
            and_service(&format!(r#"{http_route}=~"$route""#), &service)
        )
    };
    let panels = vec![
        panel(
            1,
            "Requests per second",
            "reqps",
            &[(
                format!("steadfast:route_requests:rate5m{{{route}}}"),
                "{{route}}",
            )],
            0,
            0,
        ),
        panel(
            2,
            "Server error ratio",
            "percentunit",
            &[(
                format!("steadfast:route_error_ratio:rate5m{{{route}}}"),
                "{{route}}",
            )],
            12,
            0,
        ),
        panel(
            3,
            "Latency (HTTP)",
            "s",
            &[
                (quantile(0.5), "p50 {{http_route}}"),
                (quantile(0.95), "p95 {{http_route}}"),
                (quantile(0.99), "p99 {{http_route}}"),
            ],
            0,
            8,
        ),
        panel(
            4,
            "Error budget burn rate (1h)",
            "none",
            &[(
                budget_of(&|selector| format!("steadfast:route_error_ratio:rate1h{{{selector}}}")),
                "{{route}}",
            )],
            12,
            8,
        ),
        panel(
            5,
            "Error budget left (30 days)",
            "percentunit",
            &[(
                format!(
                    "1 - ({})",
                    budget_of(&|selector| format!(
                        "avg_over_time(steadfast:route_error_ratio:rate1h{{{selector}}}[30d])"
                    ))
                ),
                "{{route}}",
            )],
            0,
            16,
        ),
        panel(
            6,
            "Breaker state (0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open, 5 metrics only)",
            "none",
            &[(scoped(&breaker_state, &service), "{{breaker}}")],
            12,
            16,
        ),
        panel(
            7,
            "Adaptive limit and requests in flight",
            "none",
            &[
                (scoped(&limit, &service), "limit {{limiter}}"),
                (scoped(&in_flight, &service), "in flight {{limiter}}"),
            ],
            0,
            24,
        ),
        panel(
            8,
            "Rejections by reason",
            "reqps",
            &[(
                format!("sum by (layer, reason) (rate({rejections}{{{route}}}[5m]))"),
                "{{layer}} {{reason}}",
            )],
            12,
            24,
        ),
        panel(
            9,
            "Shed requests by class",
            "reqps",
            &[(
                format!(
                    "sum by (class, reason) (rate({}[5m]))",
                    scoped(&shed_rejected, &service)
                ),
                "{{class}} {{reason}}",
            )],
            0,
            32,
        ),
        panel(
            11,
            "Requests by version (service_version)",
            "reqps",
            &[(
                format!("steadfast:route_version_requests:rate30m{{{route}}}"),
                "{{route}} {{service_version}}",
            )],
            0,
            40,
        ),
        panel(
            12,
            "Server error ratio by version, side by side",
            "percentunit",
            &[(
                format!("steadfast:route_version_error_ratio:rate30m{{{route}}}"),
                "{{route}} {{service_version}}",
            )],
            12,
            40,
        ),
        panel(
            10,
            "Contract violations",
            "none",
            &[(
                format!("sum by (route, direction, keyword) (rate({violations}{{{route}}}[5m]))"),
                "{{route}} {{direction}} {{keyword}}",
            )],
            12,
            32,
        ),
    ];
    let mut dashboard = json!({
        "title": "steadfast: routes, objectives and protections",
        "uid": "steadfast-routes",
        "schemaVersion": 39,
        "editable": true,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["steadfast", "generated"],
        "templating": {"list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
            },
        ]},
        "panels": panels,
    });
    let variables = dashboard["templating"]["list"]
        .as_array_mut()
        .expect("variables");
    for label in service_labels {
        variables.push(variable(label, label, "steadfast:route_requests:rate5m"));
    }
    variables.push(variable(
        "route",
        "Route",
        &scoped("steadfast:route_requests:rate5m", &service),
    ));
    dashboard
}
