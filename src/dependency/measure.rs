//! OpenTelemetry's client metrics and spans for each attempt of an outbound call.
//!
//! `http.client.request.duration` / `rpc.client.call.duration`, one measurement per attempt
//! (as the conventions count a resent request again), with bounded labels: the method as
//! OpenTelemetry names it, the first host the policy called (`_OTHER` for any other, so a
//! policy used for many hosts cannot mint series), the status, and at most 256 gRPC methods.
//! Histogram handles are cached, so a measurement costs no allocation once a label set has
//! been seen.

use std::sync::{Arc, OnceLock};

use http::{Request, StatusCode};
use metrics::SharedString;
use tracing::Span;

use std::time::Duration;

use crate::core::grpc::{self, Code};
use crate::core::keyed::CowMap;
use crate::core::labels::{self, Histograms};
use crate::core::{DefaultClassifier, telemetry};

/// gRPC methods with their own label per dependency; the rest share `_OTHER`.
const MAX_METHODS: usize = 256;
const OTHER: &str = "_OTHER";

/// Bits of an HTTP label set's cache key.
const OTHER_HOST: u32 = 1 << 31;
const TIMEOUT: u32 = 1 << 20;
const FAILED: u32 = 2 << 20;

pub(crate) struct ClientMetrics {
    dependency: SharedString,
    host: OnceLock<(String, SharedString)>,
    http: Histograms,
    grpc: CowMap<String, Arc<GrpcMethod>>,
    grpc_other: Arc<GrpcMethod>,
}

struct GrpcMethod {
    label: SharedString,
    histograms: Histograms,
}

impl GrpcMethod {
    fn new(label: SharedString) -> Arc<Self> {
        Arc::new(Self {
            label,
            histograms: Histograms::default(),
        })
    }
}

/// How an attempt ended, for its measurement.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ended {
    Http(StatusCode),
    Grpc(Code),
    Timeout,
    Failed,
}

/// An attempt being measured (from the start its guard keeps).
pub(crate) struct Measure {
    kind: Kind,
    pub(crate) span: Span,
}

enum Kind {
    Http { method: usize, other_host: bool },
    Grpc(Arc<GrpcMethod>),
}

impl ClientMetrics {
    pub(crate) fn new(dependency: SharedString) -> Self {
        Self {
            dependency,
            host: OnceLock::new(),
            http: Histograms::default(),
            grpc: CowMap::default(),
            grpc_other: GrpcMethod::new(SharedString::const_str(OTHER)),
        }
    }

    fn host_label(&self) -> SharedString {
        self.host
            .get()
            .map_or_else(|| self.dependency.clone(), |(_, label)| label.clone())
    }

    /// Starts measuring an attempt of `request`, numbered `resend` (0 for the first).
    pub(crate) fn start<B>(&self, request: &Request<B>, resend: u32) -> Measure {
        let is_grpc = grpc::is_grpc(request.headers());
        let host = request.uri().host();
        let other_host = match host {
            Some(host) => {
                let (first, _) = self.host.get_or_init(|| {
                    (
                        host.to_owned(),
                        SharedString::from_shared(Arc::<str>::from(host)),
                    )
                });
                first != host
            }
            None => false,
        };
        let kind = if is_grpc {
            let path = request.uri().path();
            let method = match grpc::method_key(path) {
                Some(key) => self
                    .grpc
                    .get_or_insert_with(
                        key,
                        || key.to_owned(),
                        |len| {
                            (len < MAX_METHODS).then(|| {
                                GrpcMethod::new(SharedString::from_shared(Arc::<str>::from(key)))
                            })
                        },
                    )
                    .unwrap_or_else(|| self.grpc_other.clone()),
                None => self.grpc_other.clone(),
            };
            Kind::Grpc(method)
        } else {
            Kind::Http {
                method: labels::method_index(request.method()),
                other_host,
            }
        };
        let address = host.unwrap_or(&*self.dependency);
        let span = self.span(address, &kind, resend);
        Measure { kind, span }
    }

    fn span(&self, host: &str, kind: &Kind, resend: u32) -> Span {
        // With no subscriber at all, no span: nothing would record it (and tracing's `log`
        // feature would otherwise format it for `log` on every enter and exit).
        if !tracing::dispatcher::has_been_set() {
            return Span::none();
        }
        match kind {
            Kind::Http { method, .. } => tracing::info_span!(
                target: "steadfast::dependency",
                "attempt",
                otel.name = labels::METHODS[*method],
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                steadfast.dependency = &*self.dependency,
                http.request.method = labels::METHODS[*method],
                server.address = host,
                http.request.resend_count = resend,
                http.response.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
            ),
            Kind::Grpc(method) => tracing::info_span!(
                target: "steadfast::dependency",
                "attempt",
                otel.name = &*method.label,
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                steadfast.dependency = &*self.dependency,
                rpc.system.name = "grpc",
                rpc.method = &*method.label,
                server.address = host,
                rpc.grpc.resend_count = resend,
                rpc.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
            ),
        }
    }

    /// Records how a measured attempt ended, after `took`.
    pub(crate) fn finish(&self, measure: &Measure, ended: Ended, took: Duration) {
        let seconds = took.as_secs_f64();
        let span = &measure.span;
        match &measure.kind {
            Kind::Http { method, other_host } => {
                let method_label = labels::METHODS[*method];
                let (status, error, bits): (&'static str, Option<&'static str>, u32) = match ended {
                    Ended::Http(status) => {
                        let label = labels::status(status);
                        let error = (status.as_u16() >= 400).then_some(label);
                        (label, error, u32::from(status.as_u16()))
                    }
                    Ended::Grpc(_) => ("", None, 0),
                    Ended::Timeout => ("", Some("timeout"), TIMEOUT),
                    Ended::Failed => ("", Some(OTHER), FAILED),
                };
                let key = bits | (*method as u32) << 16 | if *other_host { OTHER_HOST } else { 0 };
                self.http.record(key, seconds, || {
                    let host = if *other_host {
                        SharedString::const_str(OTHER)
                    } else {
                        self.host_label()
                    };
                    match error {
                        Some(error) => metrics::histogram!(
                            telemetry::HTTP_CLIENT_REQUEST_DURATION.name,
                            "http.request.method" => method_label,
                            "server.address" => host,
                            "http.response.status_code" => status,
                            "error.type" => error,
                            "steadfast.dependency" => self.dependency.clone(),
                        ),
                        None => metrics::histogram!(
                            telemetry::HTTP_CLIENT_REQUEST_DURATION.name,
                            "http.request.method" => method_label,
                            "server.address" => host,
                            "http.response.status_code" => status,
                            "steadfast.dependency" => self.dependency.clone(),
                        ),
                    }
                });
                if !span.is_disabled() {
                    if let Ended::Http(status) = ended {
                        span.record("http.response.status_code", status.as_u16());
                    }
                    if let Some(error) = error {
                        span.record("error.type", error);
                        span.record("otel.status_code", "ERROR");
                    }
                }
            }
            Kind::Grpc(method) => {
                let (code, error, bits) = match ended {
                    Ended::Grpc(code) => {
                        let failure = DefaultClassifier::new()
                            .classify_grpc_code(code)
                            .is_failure();
                        (
                            code,
                            failure.then(|| code.as_str()),
                            u32::from(code.as_u8()),
                        )
                    }
                    // A gRPC answer whose head is plain HTTP: a transport-level failure.
                    Ended::Http(_) => (Code::Unknown, Some(OTHER), FAILED),
                    Ended::Timeout => (Code::DeadlineExceeded, Some("timeout"), TIMEOUT),
                    Ended::Failed => (Code::Unavailable, Some(OTHER), FAILED),
                };
                method.histograms.record(bits, seconds, || match error {
                    Some(error) => metrics::histogram!(
                        telemetry::RPC_CLIENT_CALL_DURATION.name,
                        "rpc.system.name" => "grpc",
                        "rpc.method" => method.label.clone(),
                        "rpc.status_code" => code.as_str(),
                        "error.type" => error,
                        "steadfast.dependency" => self.dependency.clone(),
                    ),
                    None => metrics::histogram!(
                        telemetry::RPC_CLIENT_CALL_DURATION.name,
                        "rpc.system.name" => "grpc",
                        "rpc.method" => method.label.clone(),
                        "rpc.status_code" => code.as_str(),
                        "steadfast.dependency" => self.dependency.clone(),
                    ),
                });
                if !span.is_disabled() {
                    span.record("rpc.status_code", code.as_str());
                    if let Some(error) = error {
                        span.record("error.type", error);
                        span.record("otel.status_code", "ERROR");
                    }
                }
            }
        }
    }
}
