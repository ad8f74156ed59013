//! The map as diagrams: Mermaid (for Markdown, GitHub and Grafana text panels) and Graphviz DOT.

use std::fmt::Write;

use super::snapshot::{DependencyEntry, EdgeEntry, MapSnapshot, RouteEntry};

/// Text for a quoted Mermaid label: quotes and angle brackets as entities (Mermaid reads
/// `#quot;`, `#lt;`, `#gt;`), so that no route or dependency name can end the label.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text for a quoted DOT string.
fn dot_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn percent(ratio: f64) -> String {
    let percent = ratio * 100.0;
    if percent == 0.0 {
        "0%".to_owned()
    } else if percent < 0.1 {
        "<0.1%".to_owned()
    } else {
        format!("{percent:.1}%")
    }
}

fn route_label(route: &RouteEntry) -> [String; 2] {
    [
        route.route.clone(),
        format!("{} · {} req", route.criticality, route.requests),
    ]
}

fn dependency_label(dependency: &DependencyEntry) -> [String; 2] {
    let mut detail = format!("#{} · {} calls", dependency.rank, dependency.calls);
    if let Some(breaker) = &dependency.breaker {
        let _ = write!(detail, " · breaker {breaker}");
    }
    if !dependency.declared {
        detail.push_str(" · UNDECLARED");
    }
    [dependency.name.clone(), detail]
}

fn edge_label(edge: &EdgeEntry) -> String {
    let mut label = format!(
        "{:.2}/req · p99 {:.0} ms · {} err",
        edge.calls_per_request,
        edge.latency_ms.p99,
        percent(edge.error_ratio)
    );
    if edge.retries > 0 {
        let _ = write!(label, " · {} retries", edge.retries);
    }
    if edge.hedges > 0 {
        let _ = write!(label, " · {} hedges", edge.hedges);
    }
    label
}

/// The DOT attributes of a critical node or edge: thick and red.
fn critical_style(critical: bool) -> &'static str {
    if critical {
        ", color=\"#c62828\", penwidth=3"
    } else {
        ""
    }
}

impl MapSnapshot {
    /// The map as a Mermaid flowchart, routes on the left: critical routes, dependencies and
    /// edges drawn thick and red, each dependency with its impact rank.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        let route_id = |name: &str| self.routes.iter().position(|r| r.route == name);
        let dependency_id = |name: &str| self.dependencies.iter().position(|d| d.name == name);
        let mut critical = Vec::new();
        for (i, route) in self.routes.iter().enumerate() {
            if !self.edges.iter().any(|edge| edge.route == route.route) {
                continue;
            }
            let [name, detail] = route_label(route);
            let _ = writeln!(
                out,
                "  r{i}[\"{}<br/>{}\"]",
                mermaid_text(&name),
                mermaid_text(&detail)
            );
            if route.critical {
                critical.push(format!("r{i}"));
            }
        }
        for (i, dependency) in self.dependencies.iter().enumerate() {
            if dependency.calls == 0 {
                continue;
            }
            let [name, detail] = dependency_label(dependency);
            let _ = writeln!(
                out,
                "  d{i}[(\"{}<br/>{}\")]",
                mermaid_text(&name),
                mermaid_text(&detail)
            );
            if dependency.critical {
                critical.push(format!("d{i}"));
            }
        }
        for edge in &self.edges {
            let (Some(r), Some(d)) = (route_id(&edge.route), dependency_id(&edge.dependency))
            else {
                continue;
            };
            let arrow = if edge.critical { "==>" } else { "-->" };
            let _ = writeln!(
                out,
                "  r{r} {arrow}|\"{}\"| d{d}",
                mermaid_text(&edge_label(edge))
            );
        }
        if !critical.is_empty() {
            out.push_str("  classDef critical stroke:#c62828,stroke-width:3px\n");
            let _ = writeln!(out, "  class {} critical", critical.join(","));
        }
        out
    }

    /// The map as a Graphviz digraph (`dot -Tsvg`), routes on the left: critical routes,
    /// dependencies and edges drawn thick and red, each dependency with its impact rank.
    pub fn to_dot(&self) -> String {
        let mut out = String::from(
            "digraph steadfast {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n  \
             edge [fontname=\"Helvetica\", fontsize=9];\n",
        );
        for route in &self.routes {
            if !self.edges.iter().any(|edge| edge.route == route.route) {
                continue;
            }
            let [name, detail] = route_label(route);
            let _ = writeln!(
                out,
                "  \"route:{}\" [shape=box, label=\"{}\\n{}\"{}];",
                dot_text(&route.route),
                dot_text(&name),
                dot_text(&detail),
                critical_style(route.critical)
            );
        }
        for dependency in &self.dependencies {
            if dependency.calls == 0 {
                continue;
            }
            let [name, detail] = dependency_label(dependency);
            let _ = writeln!(
                out,
                "  \"dependency:{}\" [shape=cylinder, label=\"{}\\n{}\"{}];",
                dot_text(&dependency.name),
                dot_text(&name),
                dot_text(&detail),
                critical_style(dependency.critical)
            );
        }
        for edge in &self.edges {
            let _ = writeln!(
                out,
                "  \"route:{}\" -> \"dependency:{}\" [label=\"{}\"{}];",
                dot_text(&edge.route),
                dot_text(&edge.dependency),
                dot_text(&edge_label(edge)),
                critical_style(edge.critical)
            );
        }
        out.push_str("}\n");
        out
    }
}
