//! Guardrails: the generated rules and dashboard reference only what steadfast emits, the
//! dashboard is well formed, and the example's golden files are what the generator writes.
#![cfg(feature = "guardrails")]

use std::collections::BTreeSet;
use std::path::Path;

use steadfast::core::telemetry::CATALOGUE;
use steadfast::guardrails;
use steadfast::policy::PolicyFile;

const POLICIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/service/policies.toml"
);
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/service/guardrails");

/// The names of a dashboard's variables, in order.
fn variables(dashboard: &serde_json::Value) -> Vec<&str> {
    dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect()
}

fn catalogued() -> BTreeSet<String> {
    CATALOGUE.iter().map(guardrails::prometheus).collect()
}

#[test]
fn every_series_a_rule_reads_is_emitted_or_recorded() {
    let file = PolicyFile::load(POLICIES).unwrap();
    let rules = guardrails::file_rules(&file);
    let recorded: BTreeSet<String> = rules.recorded().into_iter().map(str::to_owned).collect();
    let known: BTreeSet<String> = catalogued().union(&recorded).cloned().collect();
    let mut read = BTreeSet::new();
    for expr in rules.expressions() {
        let series = guardrails::series_in(expr);
        assert!(!series.is_empty(), "reads nothing: {expr}");
        read.extend(series);
    }
    let unknown: Vec<_> = read.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "not emitted by steadfast nor recorded: {unknown:?}"
    );
    // The rules use the series the SLOs and protections need.
    for needed in [
        "http_server_request_duration_seconds",
        "rpc_server_call_duration_seconds",
        "steadfast_breaker_state",
        "steadfast_rejections_total",
        "steadfast_contract_violations_total",
        "http_client_request_duration_seconds",
        "rpc_client_call_duration_seconds",
        "steadfast_retry_budget_exhausted_total",
    ] {
        assert!(read.contains(needed), "{needed} is not used");
    }
}

#[test]
fn the_dashboard_is_well_formed_and_reads_only_known_series() {
    let file = PolicyFile::load(POLICIES).unwrap();
    let rules = guardrails::file_rules(&file);
    let recorded: BTreeSet<String> = rules.recorded().into_iter().map(str::to_owned).collect();
    let known: BTreeSet<String> = catalogued().union(&recorded).cloned().collect();
    let text = serde_json::to_string(&guardrails::file_dashboard(&file)).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();

    let variables = variables(&dashboard);
    assert_eq!(variables, ["datasource", "job", "route", "dependency"]);

    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"], "${datasource}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let series = guardrails::series_in(expr);
            assert!(!series.is_empty(), "{} reads nothing", panel["title"]);
            for name in series {
                assert!(
                    known.contains(&name),
                    "{}: {name} is not known",
                    panel["title"]
                );
            }
        }
    }
    // Every metric family a team needs on the dashboard is there.
    let all: BTreeSet<String> = panels
        .iter()
        .filter_map(|p| p["targets"].as_array())
        .flatten()
        .flat_map(|t| guardrails::series_in(t["expr"].as_str().unwrap()))
        .collect();
    for needed in [
        "steadfast_breaker_state",
        "steadfast_shed_limit",
        "steadfast_shed_in_flight",
        "steadfast_rejections_total",
        "steadfast_shed_rejected_total",
        "steadfast_contract_violations_total",
        "http_server_request_duration_seconds",
        "http_client_request_duration_seconds",
        "rpc_client_call_duration_seconds",
        "steadfast_dependency_calls_total",
        "steadfast_retries_total",
        "steadfast_hedges_total",
        "steadfast_retry_budget_exhausted_total",
        "steadfast_throttled_total",
        "steadfast_dependency_capped_total",
    ] {
        assert!(all.contains(needed), "{needed} has no panel");
    }
}

/// `UPDATE_GOLDEN=1 cargo test --all-features --test guardrails` rewrites the golden files.
#[test]
fn the_example_s_golden_files_are_what_the_generator_writes() {
    let file = PolicyFile::load(POLICIES).unwrap();
    let dir = std::env::temp_dir().join(format!("steadfast-golden-{}", std::process::id()));
    guardrails::write_file(&file, &dir).unwrap();
    for name in ["rules.yml", "dashboard.json"] {
        let generated = std::fs::read_to_string(dir.join(name)).unwrap();
        let golden_path = Path::new(GOLDEN).join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden_path, &generated).unwrap();
        }
        let golden = std::fs::read_to_string(&golden_path).unwrap();
        assert!(
            golden == generated,
            "{} is stale: run UPDATE_GOLDEN=1 cargo test --all-features --test guardrails",
            golden_path.display()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn series_are_read_from_expressions_not_from_strings() {
    let found = guardrails::series_in(
        r#"sum by (route) (rate(http_server_request_duration_seconds_bucket{le=~"steadfast_fake"}[5m])) / steadfast:route_requests:rate5m"#,
    );
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(
        found,
        [
            "http_server_request_duration_seconds",
            "steadfast:route_requests:rate5m"
        ]
    );
}

/// Every dashboard query parses as PromQL, checked by the real tool: the queries go into a
/// rules file as recording rules, which `promtool check rules` parses. Skipped where promtool
/// is missing, unless `STEADFAST_REQUIRE_PROMTOOL` is set (as `.ci/run` does).
#[test]
fn every_dashboard_query_parses_as_promql() {
    let promtool = std::process::Command::new("promtool")
        .arg("--version")
        .output();
    if promtool.is_err() {
        assert!(
            std::env::var_os("STEADFAST_REQUIRE_PROMTOOL").is_none(),
            "promtool is required here"
        );
        eprintln!("promtool not found: skipped");
        return;
    }
    for policies in [
        PolicyFile::load(POLICIES).unwrap(),
        // A route with an objective of its own, and a method-specific policy.
        PolicyFile::parse(
            r#"
            [defaults]
            objective.availability = 99.9
            [routes."/checkout"]
            objective.availability = 99.95
            [routes."GET /search"]
            criticality = "sheddable"
            [dependencies."pricing.v2"]
            objective.availability = 99.5
            [alerts]
            service_labels = ["namespace", "app"]
            "#,
        )
        .unwrap(),
    ] {
        let dashboard = guardrails::file_dashboard(&policies);
        let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
        let mut count = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap();
                assert!(!expr.contains("0000000"), "float noise: {expr}");
                count += 1;
                rules.push_str(&format!(
                    "      - record: dashboard:query{count}\n        expr: {}\n",
                    serde_json::to_string(expr).unwrap()
                ));
            }
        }
        let dir = std::env::temp_dir().join(format!("steadfast-promql-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dashboard-queries.yml");
        std::fs::write(&path, &rules).unwrap();
        let output = std::process::Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            output.status.success(),
            "{count} queries; promtool: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `steadfast-guardrails map`: renders a saved map, and `--check` fails on undeclared
/// dependencies.
#[test]
fn the_binary_renders_a_saved_map_and_checks_it() {
    let map = r#"{
      "schema": 1,
      "routes": [{"route": "/checkout", "criticality": "critical_plus", "availability_objective": 99.9, "requests": 10, "critical": true}],
      "dependencies": [
        {"name": "inventory", "declared": true, "breaker": "closed", "in_flight": 0, "calls": 10, "errors": 1, "error_ratio": 0.1, "critical": true, "impact": 880.0, "rank": 1},
        {"name": "ghost", "declared": false, "breaker": null, "in_flight": 0, "calls": 2, "errors": 0, "error_ratio": 0.0, "critical": true, "impact": 16.0, "rank": 2}
      ],
      "edges": [
        {"route": "/checkout", "dependency": "inventory", "calls": 10, "calls_per_request": 1.0, "errors": 1, "refused": 0, "error_ratio": 0.1, "retries": 1, "hedges": 0, "latency_ms": {"p50": 2.0, "p90": 4.0, "p99": 9.0}, "criticality": "critical_plus", "availability_objective": 99.9, "critical": true},
        {"route": "/checkout", "dependency": "ghost", "calls": 2, "calls_per_request": 0.2, "errors": 0, "refused": 0, "error_ratio": 0.0, "retries": 0, "hedges": 0, "latency_ms": {"p50": 1.0, "p90": 1.0, "p99": 1.0}, "criticality": "critical_plus", "availability_objective": 99.9, "critical": true}
      ],
      "dropped_edges": 0
    }"#;
    let dir = std::env::temp_dir().join(format!("steadfast-map-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("map.json");
    std::fs::write(&path, map).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_steadfast-guardrails"))
            .arg("map")
            .arg(&path)
            .args(args)
            .output()
            .unwrap()
    };
    let mermaid = run(&[]);
    assert!(mermaid.status.success());
    let text = String::from_utf8(mermaid.stdout).unwrap();
    assert!(text.starts_with("flowchart LR"), "{text}");
    assert!(text.contains("UNDECLARED"), "{text}");
    let dot = run(&["--format", "dot"]);
    assert!(
        String::from_utf8(dot.stdout)
            .unwrap()
            .starts_with("digraph steadfast")
    );
    let json = run(&["--format", "json"]);
    let parsed = steadfast::map::MapSnapshot::from_json(&String::from_utf8(json.stdout).unwrap());
    assert_eq!(parsed.unwrap().edges.len(), 2);

    let checked = run(&["--check"]);
    assert_eq!(checked.status.code(), Some(1));
    assert!(String::from_utf8(checked.stderr).unwrap().contains("ghost"));

    assert_eq!(run(&["--format", "svg"]).status.code(), Some(2));
    std::fs::write(&path, r#"{"schema": 7}"#).unwrap();
    let bad = run(&[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8(bad.stderr)
            .unwrap()
            .contains("not a steadfast map")
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Every generated alert has a runbook section, where its default `runbook_url` points.
#[test]
fn every_alert_has_a_runbook() {
    let runbooks = include_str!("../src/guardrails/runbooks.md");
    let file = PolicyFile::load(POLICIES).unwrap();
    let rules = guardrails::file_rules(&file);
    let alerts = rules.alerts();
    assert!(alerts.len() >= 15, "{alerts:?}");
    for alert in alerts {
        assert!(
            runbooks.contains(&format!("<a id=\"{alert}\"></a>\n## {alert}\n")),
            "{alert} has no runbook section"
        );
        assert!(
            rules.to_yaml().contains(&format!(
                "runbook_url: https://docs.rs/steadfast/latest/steadfast/guardrails/#{alert}"
            )),
            "{alert}'s runbook_url"
        );
    }
}

/// `alerts.service_labels`: every aggregation is per service, and the dashboard picks one.
#[test]
fn rules_and_dashboards_aggregate_per_service() {
    let file = PolicyFile::parse(
        r#"
        [alerts]
        service_labels = ["namespace", "app"]
        [dependencies.inventory]
        "#,
    )
    .unwrap();
    let rules = guardrails::file_rules(&file);
    for expr in rules.expressions() {
        for (at, _) in expr.match_indices("by (") {
            let rest = &expr[at..];
            assert!(
                rest.starts_with("by (namespace, app, ") || rest.starts_with("by (le, "),
                "not per service: {expr}"
            );
        }
    }
    let dashboard = guardrails::file_dashboard(&file);
    let variables = variables(&dashboard);
    assert_eq!(
        variables,
        ["datasource", "namespace", "app", "route", "dependency"]
    );
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains(r#"namespace=~"$namespace", app=~"$app""#),
                "{}: not scoped to the service: {expr}",
                panel["title"]
            );
        }
    }
}
