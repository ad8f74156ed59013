//! The README's metric table and the code's catalogue cannot drift apart.

use steadfast::core::telemetry::{CATALOGUE, MetricKind};

mod common;

#[test]
fn every_catalogued_metric_is_documented_exactly() {
    let rows = common::readme_table("## Metrics");
    assert_eq!(rows.len(), CATALOGUE.len(), "README rows: {rows:?}");
    for metric in CATALOGUE {
        let row = rows
            .iter()
            .find(|row| row[0] == format!("`{}`", metric.name))
            .unwrap_or_else(|| panic!("{} is not in the README's metric table", metric.name));
        let kind = match metric.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        assert_eq!(row[1], format!("`{}`", metric.prometheus_name()));
        assert_eq!(row[2], kind, "{}", metric.name);
        let labels: Vec<String> = metric
            .labels
            .iter()
            .map(|label| format!("`{label}`"))
            .collect();
        assert_eq!(row[3], labels.join(", "), "{}", metric.name);
        assert_eq!(row[4], metric.description, "{}", metric.name);
    }
}
