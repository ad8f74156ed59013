//! The map read at once, and served.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};

use crate::core::Criticality;
use crate::core::map::{self, EdgeCounts};

/// The reality map at one moment: see the [module docs](super) for its JSON form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MapSnapshot {
    /// The document's schema version: 1.
    pub schema: u32,
    /// The routes seen, by name.
    pub routes: Vec<RouteEntry>,
    /// The dependency policies, by rank (most impact first).
    pub dependencies: Vec<DependencyEntry>,
    /// Route → dependency, by route then dependency.
    pub edges: Vec<EdgeEntry>,
    /// Calls not counted because their edge would have gone past the map's bounds (64 edges a
    /// route, about 4,096 in all).
    pub dropped_edges: u64,
}

/// An inbound route of the map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RouteEntry {
    /// Its template, gRPC method, `unmatched`, `overflow`, or `(none)` for calls made outside
    /// any request.
    pub route: String,
    /// The class of its policy.
    pub criticality: Criticality,
    /// Its policy's availability objective, in percent.
    pub availability_objective: Option<f64>,
    /// Requests served.
    pub requests: u64,
    /// Whether it is on the critical path (class `critical` or above; never `(none)`).
    pub critical: bool,
}

/// An outbound dependency of the map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DependencyEntry {
    /// The dependency policy's name.
    pub name: String,
    /// Whether its policy was declared; `false` for a policy that strict mode made up for a
    /// name the policy file does not have.
    pub declared: bool,
    /// Its breaker's state now (`closed`, `open`, `half_open`, ...), if it has one.
    pub breaker: Option<String>,
    /// Attempts in flight now.
    pub in_flight: usize,
    /// Calls, over all routes.
    pub calls: u64,
    /// Calls that failed or were refused, over all routes.
    pub errors: u64,
    /// `errors / calls` (0 without calls).
    pub error_ratio: f64,
    /// Whether a critical route calls it.
    pub critical: bool,
    /// Traffic × criticality × error-budget burn: see the [module docs](super).
    pub impact: f64,
    /// Its place by impact, 1 for the most.
    pub rank: usize,
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Latencies {
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
}

/// The calls of one route to one dependency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EdgeEntry {
    /// The calling route.
    pub route: String,
    /// The dependency called.
    pub dependency: String,
    /// Calls made (a call and its retries and hedges count once).
    pub calls: u64,
    /// `calls` over the route's requests, all of them (those its policy shed or refused, which
    /// never reached the handler, included); for calls outside requests, the calls themselves.
    pub calls_per_request: f64,
    /// Calls that failed (error, timeout, server error) or were refused.
    pub errors: u64,
    /// Calls refused in this process before they were sent.
    pub refused: u64,
    /// `errors / calls`.
    pub error_ratio: f64,
    /// Retries sent.
    pub retries: u64,
    /// Hedges sent.
    pub hedges: u64,
    /// Whole calls' latency, retries and backoff included.
    pub latency_ms: Latencies,
    /// The route's class.
    pub criticality: Criticality,
    /// The route's availability objective, in percent.
    pub availability_objective: Option<f64>,
    /// Whether the route is critical.
    pub critical: bool,
}

/// The weight of a class in a dependency's impact.
fn weight(criticality: Criticality) -> f64 {
    match criticality {
        Criticality::Sheddable => 1.0,
        Criticality::SheddablePlus => 2.0,
        Criticality::Critical => 4.0,
        Criticality::CriticalPlus => 8.0,
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The reality map now.
pub fn snapshot() -> MapSnapshot {
    let mut routes = Vec::new();
    let mut edges = Vec::new();
    for node in map::routes() {
        let requests = node.requests();
        let criticality = node.criticality();
        let availability = node.availability();
        // Calls outside requests serve no route: they put nothing on the critical path.
        let outside = &*node.label == map::NO_REQUEST;
        let critical = criticality >= Criticality::Critical && !outside;
        let mut any = false;
        for edge in node.edges() {
            let EdgeCounts {
                calls,
                failed,
                refused,
                retries,
                hedges,
                percentiles,
            } = edge.counts();
            if calls == 0 {
                continue;
            }
            any = true;
            let errors = failed + refused;
            edges.push(EdgeEntry {
                route: node.label.to_string(),
                dependency: edge.dependency.name.to_string(),
                calls,
                calls_per_request: if requests == 0 {
                    calls as f64
                } else {
                    ratio(calls, requests)
                },
                errors,
                refused,
                error_ratio: ratio(errors, calls),
                retries,
                hedges,
                latency_ms: Latencies {
                    p50: millis(percentiles[0]),
                    p90: millis(percentiles[1]),
                    p99: millis(percentiles[2]),
                },
                criticality,
                availability_objective: availability,
                critical,
            });
        }
        if requests > 0 || any {
            routes.push(RouteEntry {
                route: node.label.to_string(),
                criticality,
                availability_objective: availability,
                requests,
                critical,
            });
        }
    }
    routes.sort_by(|a, b| a.route.cmp(&b.route));
    edges.sort_by(|a, b| (&a.route, &a.dependency).cmp(&(&b.route, &b.dependency)));
    let mut dependencies: Vec<DependencyEntry> = map::dependencies()
        .into_iter()
        .map(|node| {
            let probed = node.probe().unwrap_or_default();
            DependencyEntry {
                name: node.name.to_string(),
                declared: node.declared(),
                breaker: probed.breaker.map(str::to_owned),
                in_flight: probed.in_flight,
                calls: 0,
                errors: 0,
                error_ratio: 0.0,
                critical: false,
                impact: 0.0,
                rank: 0,
            }
        })
        .collect();
    let index: HashMap<String, usize> = dependencies
        .iter()
        .enumerate()
        .map(|(i, dependency)| (dependency.name.clone(), i))
        .collect();
    for edge in &edges {
        let Some(&i) = index.get(&edge.dependency) else {
            continue;
        };
        let dependency = &mut dependencies[i];
        dependency.calls += edge.calls;
        dependency.errors += edge.errors;
        dependency.critical |= edge.critical;
        let allowed = 1.0 - edge.availability_objective.unwrap_or(99.9) / 100.0;
        let burn = edge.error_ratio / allowed.max(1e-9);
        let weight = if edge.route == map::NO_REQUEST {
            1.0
        } else {
            weight(edge.criticality)
        };
        dependency.impact += edge.calls as f64 * weight * (1.0 + burn);
    }
    for dependency in &mut dependencies {
        dependency.error_ratio = ratio(dependency.errors, dependency.calls);
    }
    dependencies.sort_by(|a, b| {
        b.impact
            .total_cmp(&a.impact)
            .then_with(|| a.name.cmp(&b.name))
    });
    for (i, dependency) in dependencies.iter_mut().enumerate() {
        dependency.rank = i + 1;
    }
    MapSnapshot {
        schema: 1,
        routes,
        dependencies,
        edges,
        dropped_edges: map::dropped_edges(),
    }
}

/// The dependencies called in this process through a policy that strict mode made up for a
/// name the policy file does not declare: what a test run touched without a policy. A CI job
/// can fail on a non-empty list (or run `steadfast-guardrails map --check` on a saved map).
pub fn undeclared() -> Vec<String> {
    snapshot()
        .undeclared()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

impl MapSnapshot {
    /// The edge from `route` to `dependency`, if calls were made on it.
    pub fn edge(&self, route: &str, dependency: &str) -> Option<&EdgeEntry> {
        self.edges
            .iter()
            .find(|edge| edge.route == route && edge.dependency == dependency)
    }

    /// The dependency `name`, if a policy of that name exists.
    pub fn dependency(&self, name: &str) -> Option<&DependencyEntry> {
        self.dependencies
            .iter()
            .find(|dependency| dependency.name == name)
    }

    /// The route `route`, if requests were served on it or it called a dependency.
    pub fn route(&self, route: &str) -> Option<&RouteEntry> {
        self.routes.iter().find(|entry| entry.route == route)
    }

    /// The undeclared dependencies that were called, by name.
    pub fn undeclared(&self) -> Vec<&str> {
        self.dependencies
            .iter()
            .filter(|dependency| !dependency.declared && dependency.calls > 0)
            .map(|dependency| dependency.name.as_str())
            .collect()
    }

    /// The map with only the edges `keep` accepts, and the routes and dependencies they name:
    /// for a diagram of one part of a service.
    pub fn filter(&self, mut keep: impl FnMut(&EdgeEntry) -> bool) -> MapSnapshot {
        let edges: Vec<EdgeEntry> = self.edges.iter().filter(|e| keep(e)).cloned().collect();
        let routes = self
            .routes
            .iter()
            .filter(|route| edges.iter().any(|edge| edge.route == route.route))
            .cloned()
            .collect();
        let dependencies = self
            .dependencies
            .iter()
            .filter(|dependency| edges.iter().any(|edge| edge.dependency == dependency.name))
            .cloned()
            .collect();
        MapSnapshot {
            schema: self.schema,
            routes,
            dependencies,
            edges,
            dropped_edges: self.dropped_edges,
        }
    }

    /// The map as a JSON document (see the [module docs](super)).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the map always serializes")
    }

    /// Reads a map saved with [`to_json`](Self::to_json).
    ///
    /// # Errors
    /// The document is not JSON or not a map of a schema this version reads.
    pub fn from_json(text: &str) -> Result<MapSnapshot, serde_json::Error> {
        let map: MapSnapshot = serde_json::from_str(text)?;
        if map.schema != 1 {
            return Err(serde::de::Error::custom(format!(
                "map schema {} is not one this version reads (1)",
                map.schema
            )));
        }
        Ok(map)
    }
}

/// Serves the map: JSON by default, `?format=mermaid` or `?format=dot` for a diagram. An Axum
/// handler (`.route("/steadfast/map", get(steadfast::map::handler))`), and a plain async
/// function for any other server. Opt in by routing to it; it exposes route and dependency
/// names, so keep it off public listeners.
pub async fn handler(uri: Uri) -> Response<String> {
    render(uri.query())
}

fn render(query: Option<&str>) -> Response<String> {
    let format = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("format="))
        .unwrap_or("json");
    let (body, content_type) = match format {
        "json" => (snapshot().to_json(), "application/json"),
        "mermaid" => (snapshot().to_mermaid(), "text/plain; charset=utf-8"),
        "dot" => (snapshot().to_dot(), "text/vnd.graphviz; charset=utf-8"),
        _ => {
            let mut response =
                Response::new(format!("unknown format `{format}`: json, mermaid or dot\n"));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
