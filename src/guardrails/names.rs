//! Names as `metrics-exporter-prometheus` renders them, derived from the catalogue: never typed
//! by hand.

use crate::core::telemetry::Metric;

/// The exposition name of a catalogued metric: [`Metric::prometheus_name`].
pub fn prometheus(metric: &Metric) -> String {
    metric.prometheus_name()
}

/// The exposition name of a label.
pub fn label(name: &str) -> String {
    name.replace('.', "_")
}

/// Which routes a rule is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Selector<'a> {
    /// One route template.
    Route(&'a str),
    /// Every route but these (those with a policy of their own).
    Others(&'a [&'a str]),
}

impl Selector<'_> {
    /// The label matcher, `{route="/a"}`, with `le` when given.
    pub(crate) fn matcher(&self, le: Option<&str>) -> String {
        let mut matchers = Vec::new();
        match self {
            Selector::Route(route) => matchers.push(format!(r#"route="{}""#, quoted(route))),
            Selector::Others([]) => {}
            Selector::Others(routes) => {
                let alternatives: Vec<String> = routes.iter().map(|r| regex_escaped(r)).collect();
                matchers.push(format!(r#"route!~"{}""#, quoted(&alternatives.join("|"))));
            }
        }
        if let Some(le) = le {
            matchers.push(format!(r#"le="{le}""#));
        }
        if matchers.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", matchers.join(", "))
        }
    }
}

/// The service labels as the start of a `by (...)` list: `job, `.
pub(crate) fn service_by(labels: &[String]) -> String {
    labels.iter().map(|label| format!("{label}, ")).collect()
}

/// The dashboard's matchers of the service variables: `job=~"$job"`.
pub(crate) fn service_matchers(labels: &[String]) -> String {
    labels
        .iter()
        .map(|label| format!(r#"{label}=~"${label}""#))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An RE2 alternation of literals, escaped and quoted for a PromQL string: `a|b\\.c`.
pub(crate) fn alternatives(literals: &[&str]) -> String {
    let escaped: Vec<String> = literals.iter().map(|l| regex_escaped(l)).collect();
    quoted(&escaped.join("|"))
}

/// RE2 escaping of a literal: regex-syntax escapes the regex meta characters with a
/// backslash, and RE2 (Prometheus's regex engine) reads a backslash before any punctuation as
/// that character.
fn regex_escaped(text: &str) -> String {
    regex_syntax::escape(text)
}

/// Escaping for a PromQL double-quoted string.
fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_escape_templates() {
        assert_eq!(
            Selector::Route("/a/{id}").matcher(Some("0.5")),
            r#"{route="/a/{id}", le="0.5"}"#
        );
        assert_eq!(
            Selector::Others(&["/a/{id}", "/b.c"]).matcher(None),
            r#"{route!~"/a/\\{id\\}|/b\\.c"}"#
        );
        assert_eq!(Selector::Others(&[]).matcher(None), "");
    }
}
