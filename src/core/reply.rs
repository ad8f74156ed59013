//! How a layer answers: in the protocol (HTTP and gRPC responses) or with typed errors.

use std::fmt;

use http::Response;

use super::body::ResponseBody;
use super::rejection::Rejection;

/// The protocol of a request, as far as a rejection's shape is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Plain HTTP: rejections are problem+json responses.
    Http,
    /// gRPC (`content-type: application/grpc*`): rejections are trailers-only responses.
    Grpc,
}

impl Protocol {
    /// The protocol of a request, read from its `content-type`.
    pub fn of(headers: &http::HeaderMap) -> Protocol {
        if super::grpc::is_grpc(headers) {
            Protocol::Grpc
        } else {
            Protocol::Http
        }
    }
}

/// Turns the inner service's results and a layer's rejections into what the layer returns.
///
/// Two modes are provided: [`ProtocolResponses`] (the default of every layer) and
/// [`TypedErrors`]. Layers are generic over the mode, so one response future serves both.
pub trait Reply<Res, E> {
    /// The layer's response type.
    type Response;
    /// The layer's error type.
    type Error;

    /// What the inner service produced, passed on.
    ///
    /// # Errors
    ///
    /// The inner service's error, in this mode's error type.
    fn forward(result: Result<Res, E>) -> Result<Self::Response, Self::Error>;

    /// A rejection, answered in this mode.
    ///
    /// # Errors
    ///
    /// The rejection itself, in modes that answer rejections as errors.
    fn reject(protocol: Protocol, rejection: Rejection) -> Result<Self::Response, Self::Error>;
}

/// Rejections become protocol responses: HTTP status + problem+json, or gRPC trailers-only.
///
/// The response body becomes [`ResponseBody<B>`]; the inner service's errors pass unchanged,
/// so an Axum route (whose error is `Infallible`) stays infallible and needs no
/// `HandleErrorLayer`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtocolResponses;

impl<B, E> Reply<Response<B>, E> for ProtocolResponses {
    type Response = Response<ResponseBody<B>>;
    type Error = E;

    #[inline]
    fn forward(result: Result<Response<B>, E>) -> Result<Self::Response, E> {
        result.map(|response| response.map(ResponseBody::new))
    }

    fn reject(protocol: Protocol, rejection: Rejection) -> Result<Self::Response, E> {
        Ok(rejection.to_response(protocol))
    }
}

/// Rejections become the `Rejected` variant of [`Error`]; responses pass unchanged.
///
/// For plain `tower::Service`s whose requests are not HTTP, and for callers that prefer to
/// `match` on an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct TypedErrors;

impl<Res, E> Reply<Res, E> for TypedErrors {
    type Response = Res;
    type Error = Error<E>;

    #[inline]
    fn forward(result: Result<Res, E>) -> Result<Res, Error<E>> {
        result.map_err(Error::Inner)
    }

    fn reject(_: Protocol, rejection: Rejection) -> Result<Res, Error<E>> {
        Err(Error::Rejected(rejection))
    }
}

/// The error of a layer in [`TypedErrors`] mode.
#[derive(Debug)]
pub enum Error<E> {
    /// A steadfast layer rejected the request.
    Rejected(Rejection),
    /// The inner service failed.
    Inner(E),
}

impl<E> Error<E> {
    /// The rejection, if a steadfast layer made one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Error::Rejected(rejection) => Some(rejection),
            Error::Inner(_) => None,
        }
    }

    /// The inner service's error, if that is what happened.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Rejected(_) => None,
            Error::Inner(error) => Some(error),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rejected(rejection) => rejection.fmt(f),
            Error::Inner(error) => error.fmt(f),
        }
    }
}

// Bounded on `Debug + Display` rather than `std::error::Error` so that `Error<BoxError>`
// (the usual tower error) is an error too; the inner error is reached with `into_inner`.
impl<E: fmt::Debug + fmt::Display> std::error::Error for Error<E> {}
