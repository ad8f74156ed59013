//! Contract validation at the edge: requests and responses checked against an OpenAPI 3.0 or
//! 3.1 document, or JSON Schemas attached in code (feature `contract`).
//!
//! The [`Contract`] is compiled once at start-up (a broken document is a [`SpecError`] naming
//! the place); the [`ContractLayer`] then checks, per route template and method:
//!
//! - path, query, header and cookie parameters: required, type, enum, pattern, every schema
//!   keyword (`400`);
//! - the content type (`415`), the body size while streaming, never holding more than the
//!   limit, with or without `Content-Length` (`413`), the JSON syntax (`400`, duplicate keys
//!   included) and the body schema (`422`);
//! - responses: a documented status, the content type, the body schema; in [`Mode::Report`]
//!   (the default) violations are logged and counted and the response passes unchanged, in
//!   [`Mode::Enforce`] the caller gets a `500` problem and the original is logged;
//! - gRPC calls ([`GrpcMethod`]): required metadata, the message size read from the frames'
//!   length prefixes (`RESOURCE_EXHAUSTED`), and a hook for the first message
//!   (`INVALID_ARGUMENT`).
//!
//! Rejections are RFC 9457 problems listing the violations, each with a JSON pointer, the
//! failed keyword and a short message that never quotes the schema or the input:
//!
//! ```
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use steadfast::contract::{Contract, ContractConfig, ContractLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let contract = Contract::from_openapi(r##"
//! openapi: 3.1.0
//! info: { title: pets, version: "1" }
//! paths:
//!   /pets:
//!     post:
//!       requestBody:
//!         required: true
//!         content:
//!           application/json:
//!             schema: { $ref: "#/components/schemas/Pet" }
//!       responses:
//!         "201": { description: created }
//! components:
//!   schemas:
//!     Pet:
//!       type: object
//!       required: [name]
//!       properties:
//!         name: { type: string, maxLength: 40 }
//! "##)?;
//! let layer = ContractLayer::new(contract, ContractConfig::default())?;
//! let service = ServiceBuilder::new().layer(layer).service_fn(|_request| async {
//!     Ok::<_, std::convert::Infallible>(Response::builder().status(201).body(Full::new(bytes::Bytes::new())).unwrap())
//! });
//!
//! let request = Request::post("/pets")
//!     .header("content-type", "application/json")
//!     .body(Full::new(bytes::Bytes::from(r#"{"name": 7}"#)))?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), 422);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! let problem: serde_json::Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
//! assert_eq!(problem["violations"][0]["pointer"], "/body/name");
//! assert_eq!(problem["violations"][0]["keyword"], "type");
//! # Ok(()) }
//! ```
//!
//! # Where it goes
//!
//! With Axum, add it with `Router::layer`: it reads the route template from `MatchedPath`
//! (Axum's `{id}` templates are OpenAPI's). Elsewhere it matches the request path against the
//! documented templates, literal segments first. A validated body is handed on as the same
//! bytes (no copy), and its value is in the request extensions as [`ValidatedJson`].
//!
//! # Bodies
//!
//! - JSON bodies (`application/json`, `*+json`) are read whole, parsed and validated.
//! - `text/*` bodies with a schema are read as one JSON string (they must be UTF-8: else
//!   `400`, keyword `syntax`) and validated.
//! - `application/x-www-form-urlencoded` bodies with a schema are read as an object of their
//!   fields, each typed as its property's schema says (`count=3` is the integer 3 for an
//!   `integer` property; text that is not of the type stays text, for the schema to reject); a
//!   field is an array when its property is one, and when it is given more than once.
//!   Encoding objects (`style`, `explode` per field) are not interpreted.
//! - Every other body (and a text or form body without a schema) streams on unread. In
//!   enforce mode it is limited while it streams: the handler's reading fails past
//!   `max_body_bytes`, and whatever the handler answers then (Axum's plain-text `413`, a
//!   `400`, an error), the caller gets the layer's `413` problem. Multipart bodies are
//!   limited, not validated.
//! - A declared `Content-Length` past the limit is refused before the handler is called; a
//!   body read by the layer is never held past the limit either.
//!
//! The layer needs `S: Clone`, because it may read the body before it calls the inner service.
//! Rejections are always protocol responses (this layer is for HTTP and gRPC services).
//!
//! # Choices
//!
//! - OpenAPI 3.0 schemas are JSON Schema draft 4 with `nullable` rewritten as a `null` type;
//!   3.1 schemas are JSON Schema 2020-12. `$ref`s point within the document.
//! - Formats assert, the same way under 3.0 and 3.1: `int32`/`int64` as integer ranges,
//!   every JSON Schema 2020-12 format (`date`, `date-time`, `email`, `uuid`, `uri`,
//!   `hostname`, `ipv4`, `duration`, …) with one implementation for both dialects, `byte` as
//!   canonical base64 under 3.0 only (3.1 has `contentEncoding` for it); `float`, `double`,
//!   `password` and `binary` are hints, and unknown formats are ignored, as JSON Schema says.
//!   [`ContractBuilder::format`] registers a format (or replaces a built-in one);
//!   [`ContractBuilder::assert_formats`] turns assertion off for a contract.
//! - Integer parameters are read exactly (`i64`/`u64`, never through a float); only digits
//!   with an optional `-` are an integer, so `1.0` and `1e3` are not.
//! - Path items, operations, parameters, request bodies and responses may be `$ref`s too.
//! - `readOnly`/`writeOnly`, `discriminator`, `style: deepObject` and object-valued
//!   parameters are not interpreted; their schemas apply as written.
//! - `servers` base paths are not stripped: document the paths as the router sees them.
//! - `HEAD` requests use the `GET` operation's contract.

mod config;
mod formats;
mod future;
mod grpc;
mod json;
mod layer;
mod model;
mod openapi;
mod params;
mod path;
mod request;
mod response;
mod service;
mod spec;
mod violation;

use std::sync::Arc;

/// The request body behind the contract layer: steadfast's [`RequestBody`](crate::core::RequestBody),
/// by the name this module has always given it.
pub type ContractBody<B> = crate::core::RequestBody<B>;
pub use config::{ContractConfig, Mode, ResponseViolations, RouteModes, Undocumented};
pub use future::ResponseFuture;
pub use grpc::{GrpcMethod, MessageTooLarge};
pub use layer::ContractLayer;
pub use service::ContractService;
pub use spec::{Contract, ContractBuilder, RouteSchemas, SpecError};

/// The value of a request body that passed its contract, in the request extensions: the parsed
/// JSON, a text body as a string, a form body as the typed object it was validated as.
///
/// Handlers that want the value rather than the bytes can take it with Axum's
/// `Extension<ValidatedJson>` instead of parsing the body again.
#[derive(Clone, Debug)]
pub struct ValidatedJson(pub Arc<serde_json::Value>);

/// Which message broke the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}
