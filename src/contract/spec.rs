//! Contracts, from an OpenAPI document or from schemas attached in code, compiled once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use http::Method;
use jsonschema::Validator;

use super::formats::{FormatDialect, Formats};
use serde_json::Value;

use super::grpc::GrpcMethod;
use super::model::{BodySpec, Compiled, Media, Operation, PathItem, ResponseSpecs, schema_error};
use super::openapi::compile_openapi;
use super::path::PathMatcher;

/// Where schemas attached in code are registered, each under its own fragment-free URI.
const CODE_URI: &str = "urn:steadfast:code";

/// A document or schema that cannot be compiled into a contract, with where the problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    pointer: String,
    reason: String,
}

impl SpecError {
    pub(crate) fn new(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            reason: reason.into(),
        }
    }

    /// Where the problem is: a JSON pointer into the OpenAPI document (`/paths/~1pets/post/...`),
    /// or `code:METHOD /template/...` for a schema attached in code.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// What is wrong there.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid contract at `{}`: {}", self.pointer, self.reason)
    }
}

impl std::error::Error for SpecError {}

/// The compiled contract of a service: every operation's checks, built once at start-up.
///
/// Cheap to clone (one `Arc`). Build it with [`Contract::from_openapi`] or
/// [`Contract::builder`], then hand it to a [`ContractLayer`](super::ContractLayer).
#[derive(Clone)]
pub struct Contract {
    pub(crate) compiled: Arc<Compiled>,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("routes", &self.compiled.routes.len())
            .field("grpc_methods", &self.compiled.grpc.len())
            .finish()
    }
}

impl Contract {
    /// Compiles an OpenAPI 3.0 or 3.1 document, JSON or YAML.
    ///
    /// # Errors
    ///
    /// A [`SpecError`] naming the place of the first problem: unreadable text, an unsupported
    /// `openapi` version, a `$ref` that leads nowhere, a schema that does not compile.
    pub fn from_openapi(document: &str) -> Result<Contract, SpecError> {
        Contract::builder().openapi(document).build()
    }

    /// A builder that combines an OpenAPI document, schemas attached in code and gRPC methods.
    pub fn builder() -> ContractBuilder {
        ContractBuilder::default()
    }

    /// The route templates this contract documents.
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        self.compiled.routes.keys().map(|template| &**template)
    }
}

/// Builds a [`Contract`].
#[derive(Default)]
pub struct ContractBuilder {
    openapi: Option<String>,
    routes: Vec<(Method, String, RouteSchemas)>,
    grpc: Vec<(String, GrpcMethod)>,
    formats: Formats,
}

impl fmt::Debug for ContractBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractBuilder")
            .field("openapi", &self.openapi.is_some())
            .field("routes", &self.routes.len())
            .field("grpc", &self.grpc.len())
            .field("formats", &self.formats)
            .finish()
    }
}

impl ContractBuilder {
    /// Start from an OpenAPI 3.0 or 3.1 document (JSON or YAML).
    pub fn openapi(mut self, document: impl Into<String>) -> Self {
        self.openapi = Some(document.into());
        self
    }

    /// Attach JSON Schemas to a route in code (draft 2020-12 unless the schema's `$schema`
    /// says otherwise). An operation the OpenAPI document also has is replaced.
    pub fn route(
        mut self,
        method: Method,
        template: impl Into<String>,
        schemas: RouteSchemas,
    ) -> Self {
        self.routes.push((method, template.into(), schemas));
        self
    }

    /// Registers a format for strings: a schema's `format: name` then asserts `check`, under
    /// OpenAPI 3.0 and 3.1 alike, for documents and schemas attached in code. A name the
    /// validator knows (`email`, `uuid`, …) is replaced by `check`.
    ///
    /// ```
    /// use steadfast::contract::Contract;
    ///
    /// let contract = Contract::builder()
    ///     .format("sku", |text| text.len() == 8 && text.bytes().all(|b| b.is_ascii_alphanumeric()))
    ///     .openapi(r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}}"#)
    ///     .build()
    ///     .unwrap();
    /// # drop(contract);
    /// ```
    pub fn format(
        mut self,
        name: impl Into<String>,
        check: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.formats.custom.insert(name.into(), Arc::new(check));
        self
    }

    /// Whether `format` asserts (default `true`): with `false`, formats are annotations only,
    /// as JSON Schema 2020-12 has them by default; `int32`/`int64` ranges and custom formats
    /// are then not checked either.
    pub fn assert_formats(mut self, assert: bool) -> Self {
        self.formats.assert = assert;
        self
    }

    /// The contract of a gRPC method, by its path `/package.Service/Method`.
    pub fn grpc_method(mut self, path: impl Into<String>, method: GrpcMethod) -> Self {
        self.grpc.push((path.into(), method));
        self
    }

    /// Compiles everything.
    ///
    /// # Errors
    ///
    /// The first [`SpecError`] found.
    pub fn build(self) -> Result<Contract, SpecError> {
        let mut routes: HashMap<Arc<str>, PathItem> = HashMap::new();
        if let Some(text) = &self.openapi {
            compile_openapi(text, &mut routes, &self.formats)?;
        }
        for (method, template, schemas) in self.routes {
            let operation = schemas.compile(&method, &template, &self.formats)?;
            let template: Arc<str> = template.into();
            let item = routes
                .entry(template.clone())
                .or_insert_with(|| PathItem::new(template.clone()));
            item.operations.retain(|(m, _)| *m != method);
            item.operations.push((method, Arc::new(operation)));
        }
        let matcher = PathMatcher::new(routes.keys().cloned());
        let mut grpc = HashMap::new();
        for (path, method) in self.grpc {
            if !path.starts_with('/') || path[1..].split('/').count() != 2 {
                return Err(SpecError::new(
                    format!("grpc:{path}"),
                    "a gRPC method path has the form /package.Service/Method",
                ));
            }
            grpc.insert(path, method);
        }
        Ok(Contract {
            compiled: Arc::new(Compiled {
                routes,
                matcher,
                grpc,
            }),
        })
    }
}

/// JSON Schemas attached to one route in code: the request body's and the responses'.
#[derive(Clone, Debug, Default)]
pub struct RouteSchemas {
    request: Option<Value>,
    request_optional: bool,
    responses: Vec<(u16, Option<Value>)>,
}

impl RouteSchemas {
    /// No schemas yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The request body must be JSON (`application/json` or `+json`) matching `schema`.
    pub fn request_body(mut self, schema: Value) -> Self {
        self.request = Some(schema);
        self
    }

    /// An empty request body is accepted too.
    pub fn request_body_optional(mut self) -> Self {
        self.request_optional = true;
        self
    }

    /// A response with `status` and a JSON body matching `schema`. Once any response is given,
    /// statuses not given are violations.
    pub fn response_body(mut self, status: u16, schema: Value) -> Self {
        self.responses.push((status, Some(schema)));
        self
    }

    /// A response with `status` and no body.
    pub fn response_empty(mut self, status: u16) -> Self {
        self.responses.push((status, None));
        self
    }

    fn compile(
        self,
        method: &Method,
        template: &str,
        formats: &Formats,
    ) -> Result<Operation, SpecError> {
        let at = |what: &str| format!("code:{method} {template}/{what}");
        let compile = |schema: &Value, place: String| -> Result<Validator, SpecError> {
            let options = jsonschema::options().with_base_uri(CODE_URI);
            formats
                .install(options, FormatDialect::OpenApi31)
                .build(schema)
                .map_err(|error| SpecError::new(place, schema_error(&error)))
        };
        let body = match &self.request {
            Some(schema) => Some(BodySpec {
                required: !self.request_optional,
                media: vec![Arc::new(Media::json_any(Some(compile(
                    schema,
                    at("request"),
                )?)))],
            }),
            None => None,
        };
        let responses = if self.responses.is_empty() {
            None
        } else {
            let mut specs = ResponseSpecs::default();
            for (status, schema) in &self.responses {
                let media = match schema {
                    Some(schema) => vec![Arc::new(Media::json_any(Some(compile(
                        schema,
                        at(&format!("responses/{status}")),
                    )?)))],
                    None => Vec::new(),
                };
                specs.exact.insert(*status, media);
            }
            Some(specs)
        };
        Ok(Operation {
            params: Vec::new(),
            body,
            responses,
        })
    }
}
