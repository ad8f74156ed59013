//! The concepts every steadfast layer shares, defined once.
//!
//! - [`Deadline`]: the instant by which a request must be answered, published while the
//!   request is served (without an allocation) and passed on to outbound calls.
//! - [`classify`]: whether what an inner service produced is a success or a failure.
//! - [`Rejection`]: a layer's refusal, answered as a protocol response (HTTP problem+json or a
//!   gRPC trailers-only response) in [`ProtocolResponses`] mode, or as [`Error::Rejected`] in
//!   [`TypedErrors`] mode.
//! - [`clock`]: time from `tokio::time`, so tests run on paused time.
//! - [`telemetry`]: the catalogue of metric names.
//!
//! Layers meet only through these types: the load shedder reads the [`Deadline`] that the
//! timeout layer wrote, and the breaker reads the [`Rejection`] marker that other layers put on
//! their responses, without knowing about each other.

mod body;
pub mod classify;
pub mod clock;
mod config_error;
mod criticality;
pub(crate) mod deadline;
pub(crate) mod framing;
pub mod grpc;
pub mod keyed;
pub(crate) mod labels;
pub(crate) mod map;
pub(crate) mod panic;
mod rejection;
pub(crate) mod reload;
mod reply;
mod request_body;
pub(crate) mod route;
mod strict;
pub(crate) mod sync;
pub(crate) mod tally;
pub mod telemetry;

pub use body::{OnEndOfStream, ResponseBody, TrackedBody};
pub use classify::{
    Classified, Classify, ClassifyTrailers, DefaultClassifier, ErrorsAsFailures, FailureReason,
    Outcome, classify_fn,
};
pub use config_error::ConfigError;
pub use criticality::{Criticality, PerClass, UnknownCriticality};
pub use deadline::Deadline;
#[cfg(feature = "axum")]
pub use deadline::MissingDeadline;
pub use map::{Caller, CallerScope};
pub use panic::{CatchPanic, CatchPanicFuture};
pub use rejection::{Origin, Rejection, RejectionKind, Violation};
pub use reply::{Error, Protocol, ProtocolResponses, Reply, TypedErrors};
#[cfg(feature = "contract")]
pub(crate) use request_body::Overflow;
pub use request_body::RequestBody;
pub use strict::Strict;
