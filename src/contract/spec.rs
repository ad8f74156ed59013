//! Contracts, from an OpenAPI document or from schemas attached in code, compiled once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use http::Method;
use jsonschema::{Draft, Registry, Validator};

use super::formats::{FormatDialect, Formats};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::grpc::GrpcMethod;
use super::params::{Param, ParamIn, Shape};
use super::path::{PathMatcher, Template};
use super::violation::Collector;

/// Where the OpenAPI document is registered for `$ref` resolution.
const DOCUMENT_URI: &str = "urn:steadfast:openapi";
/// Where schemas attached in code are registered, each under its own fragment-free URI.
const CODE_URI: &str = "urn:steadfast:code";
/// How many `$ref`s to parameters, request bodies or responses may follow each other.
const MAX_REF_HOPS: usize = 32;

/// A document or schema that cannot be compiled into a contract, with where the problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    pointer: String,
    reason: String,
}

impl SpecError {
    fn new(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
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
            item.operations.push((method, operation));
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
                media: vec![Media::json_any(Some(compile(schema, at("request"))?))],
            }),
            None => None,
        };
        let responses = if self.responses.is_empty() {
            None
        } else {
            let mut specs = ResponseSpecs::default();
            for (status, schema) in &self.responses {
                let media = match schema {
                    Some(schema) => vec![Media::json_any(Some(compile(
                        schema,
                        at(&format!("responses/{status}")),
                    )?))],
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

pub(crate) struct Compiled {
    pub(crate) routes: HashMap<Arc<str>, PathItem>,
    pub(crate) matcher: PathMatcher,
    pub(crate) grpc: HashMap<String, GrpcMethod>,
}

pub(crate) struct PathItem {
    pub(crate) template: Template,
    pub(crate) operations: Vec<(Method, Operation)>,
}

impl PathItem {
    fn new(template: Arc<str>) -> Self {
        Self {
            template: Template::parse(template),
            operations: Vec::new(),
        }
    }

    pub(crate) fn operation(&self, method: &Method) -> Option<&Operation> {
        let found = self.operations.iter().find(|(m, _)| m == method);
        // A HEAD request is served by the GET handler in most routers.
        let found = found.or_else(|| {
            (*method == Method::HEAD)
                .then(|| self.operations.iter().find(|(m, _)| *m == Method::GET))
                .flatten()
        });
        found.map(|(_, operation)| operation)
    }

    pub(crate) fn allowed(&self) -> String {
        let methods: Vec<&str> = self.operations.iter().map(|(m, _)| m.as_str()).collect();
        methods.join(", ")
    }
}

pub(crate) struct Operation {
    pub(crate) params: Vec<Param>,
    pub(crate) body: Option<BodySpec>,
    /// `None`: responses are not checked (a route attached in code without responses).
    pub(crate) responses: Option<ResponseSpecs>,
}

pub(crate) struct BodySpec {
    pub(crate) required: bool,
    pub(crate) media: Vec<Media>,
}

/// One documented media type, with its compiled schema if it has one that the layer can apply
/// (JSON, text and form bodies).
pub(crate) struct Media {
    range: String,
    pub(crate) json: bool,
    /// Attached in code: any JSON media type is accepted.
    any_json: bool,
    pub(crate) schema: Option<Validator>,
    /// How a form body's fields are typed: each documented property's shape.
    form_fields: Vec<(String, Shape)>,
}

/// How a request body of a given content type is read for validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// Parsed as JSON.
    Json,
    /// `text/*`: the body is a string, which must be UTF-8.
    Text,
    /// `application/x-www-form-urlencoded`: an object of its fields.
    Form,
}

impl BodyKind {
    /// The reading for a `Content-Type` essence (lower case), if the layer reads it at all.
    pub(crate) fn of(content_type: &str) -> Option<Self> {
        if is_json(content_type) {
            Some(Self::Json)
        } else if content_type.starts_with("text/") {
            Some(Self::Text)
        } else if content_type == FORM {
            Some(Self::Form)
        } else {
            None
        }
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

impl Media {
    fn new(range: &str, schema: Option<Validator>, form_fields: Vec<(String, Shape)>) -> Self {
        let range = essence(range).to_ascii_lowercase();
        let json = is_json(&range);
        Self {
            range,
            json,
            any_json: false,
            schema,
            form_fields,
        }
    }

    /// Whether a body of this content type is read and checked against this media type.
    pub(crate) fn reads(&self, kind: Option<BodyKind>) -> bool {
        match kind {
            Some(BodyKind::Json) => true,
            Some(BodyKind::Text | BodyKind::Form) => self.schema.is_some(),
            None => false,
        }
    }

    /// Checks a body read whole, as `kind` says it is read, adding what is wrong to
    /// `violations` under `/body`; its value, if it could be read at all (`None` is a syntax
    /// error: invalid JSON, or text that is not UTF-8).
    pub(crate) fn check(
        &self,
        kind: BodyKind,
        data: &[u8],
        violations: &mut Collector,
    ) -> Option<Value> {
        let value = match kind {
            BodyKind::Json => return self.check_json(data, violations),
            BodyKind::Text => match std::str::from_utf8(data) {
                Ok(text) => Value::String(text.to_owned()),
                Err(error) => {
                    violations.push("/body", "syntax", format!("the text is not UTF-8: {error}"));
                    return None;
                }
            },
            BodyKind::Form => self.form_value(data),
        };
        if let Some(schema) = self.schema.as_ref().filter(|s| !s.is_valid(&value)) {
            violations.schema_errors("/body", schema.iter_errors(&value));
        }
        Some(value)
    }

    /// A form body as an object: each field typed as its property's schema says (the text
    /// kept where it is not of that type, for the schema to reject); a field given more than
    /// once is an array, and a field whose schema is an array is one even when given once.
    fn form_value(&self, data: &[u8]) -> Value {
        // By name, so that a body of many fields costs a lookup per field, not a scan.
        let mut fields: HashMap<String, (bool, Vec<Value>)> = HashMap::new();
        for (key, text) in form_urlencoded::parse(data) {
            let shape = self
                .form_fields
                .iter()
                .find(|(name, _)| *name == key)
                .map_or(Shape::Any, |(_, shape)| *shape);
            let (value, array) = match shape {
                Shape::Array(item) => (item.read(&text), true),
                Shape::Scalar(scalar) => (scalar.read(&text), false),
                Shape::Any => (super::params::Scalar::Any.read(&text), false),
            };
            fields
                .entry(key.into_owned())
                .or_insert_with(|| (array, Vec::new()))
                .1
                .push(value);
        }
        let object = fields
            .into_iter()
            .map(|(key, (array, mut values))| {
                let value = if array || values.len() > 1 {
                    Value::Array(values)
                } else {
                    values.pop().unwrap_or(Value::Null)
                };
                (key, value)
            })
            .collect();
        Value::Object(object)
    }

    /// Parses a JSON body and checks it against this media type's schema, adding what is
    /// wrong to `violations` under `/body`; the value, if the body is JSON at all.
    pub(crate) fn check_json(&self, data: &[u8], violations: &mut Collector) -> Option<Value> {
        match super::json::parse(data) {
            Err(error) => {
                violations.push("/body", "syntax", format!("invalid JSON: {error}"));
                None
            }
            Ok(value) => {
                // Valid bodies, the common case, take the fast path that collects no errors.
                if let Some(schema) = self.schema.as_ref().filter(|s| !s.is_valid(&value)) {
                    violations.schema_errors("/body", schema.iter_errors(&value));
                }
                Some(value)
            }
        }
    }

    fn json_any(schema: Option<Validator>) -> Self {
        Self {
            range: "application/json".into(),
            json: true,
            any_json: true,
            schema,
            form_fields: Vec::new(),
        }
    }

    fn matches(&self, content_type: &str) -> bool {
        let range = self.range.as_str();
        if range == "*/*" || range.eq_ignore_ascii_case(content_type) {
            return true;
        }
        if self.any_json && is_json(content_type) {
            return true;
        }
        match range.strip_suffix("/*") {
            Some(kind) => content_type
                .split_once('/')
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case(kind)),
            None => false,
        }
    }
}

/// The media type of a `Content-Type` value, without its parameters.
pub(crate) fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// `application/json`, `application/problem+json`, `text/json`...
pub(crate) fn is_json(media_type: &str) -> bool {
    let Some((_, subtype)) = media_type.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    subtype == "json" || subtype.ends_with("+json")
}

/// The media type among `media` that a `Content-Type` essence matches, the most specific
/// first, with its index (by which a later step finds it again).
pub(crate) fn find_media<'a>(media: &'a [Media], content_type: &str) -> Option<(usize, &'a Media)> {
    let specificity = |m: &Media| match m.range.as_str() {
        "*/*" => 0,
        r if r.ends_with("/*") => 1,
        _ => 2,
    };
    media
        .iter()
        .enumerate()
        .filter(|(_, m)| m.matches(content_type))
        .max_by_key(|(_, m)| specificity(m))
}

#[derive(Default)]
pub(crate) struct ResponseSpecs {
    exact: HashMap<u16, Vec<Media>>,
    ranges: [Option<Vec<Media>>; 5],
    default: Option<Vec<Media>>,
}

impl ResponseSpecs {
    /// The documented media types for `status`, or `None` if the status is not documented.
    pub(crate) fn for_status(&self, status: u16) -> Option<&[Media]> {
        if let Some(media) = self.exact.get(&status) {
            return Some(media);
        }
        let range = usize::from(status / 100).wrapping_sub(1);
        if let Some(Some(media)) = self.ranges.get(range) {
            return Some(media);
        }
        self.default.as_deref()
    }
}

fn schema_error(error: &jsonschema::ValidationError<'_>) -> String {
    let at = error.instance_path().as_str();
    let message = super::violation::short(&error.to_string(), 300);
    if at.is_empty() {
        message
    } else {
        format!("{message} (at schema location {at})")
    }
}

/// RFC 6901 escaping of one pointer segment.
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// OpenAPI 3.0: a JSON Schema draft 4 superset with `nullable`.
    OpenApi30,
    /// OpenAPI 3.1: JSON Schema 2020-12.
    OpenApi31,
}

fn parse_document(text: &str) -> Result<Value, SpecError> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map_err(|error| SpecError::new("", format!("not valid JSON: {error}")));
    }
    let yaml: yaml_serde::Value = yaml_serde::from_str(text)
        .map_err(|error| SpecError::new("", format!("not valid YAML: {error}")))?;
    yaml_to_json(yaml, "")
}

/// YAML to JSON, with mapping keys such as `200:` (numbers in YAML) turned into strings.
fn yaml_to_json(yaml: yaml_serde::Value, at: &str) -> Result<Value, SpecError> {
    use yaml_serde::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| SpecError::new(at, "a number JSON cannot hold"))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{at}/{i}")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut object = serde_json::Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return Err(SpecError::new(at, "a mapping key that is not a scalar")),
                };
                let value = yaml_to_json(value, &format!("{at}/{}", escape(&key)))?;
                object.insert(key, value);
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value, at)?,
    })
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema: `null` added to `type` and `enum`, or the
/// schema made an `anyOf` with `{"type": "null"}` when it has no `type`.
fn rewrite_nullable(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                // Examples are data, not schemas.
                if key != "example" && key != "examples" && key != "enum" && key != "default" {
                    rewrite_nullable(child);
                }
            }
            if object.get("nullable") != Some(&Value::Bool(true)) || object.contains_key("$ref") {
                return;
            }
            object.remove("nullable");
            if let Some(Value::Array(values)) = object.get_mut("enum") {
                if !values.contains(&Value::Null) {
                    values.push(Value::Null);
                }
            }
            match object.get_mut("type") {
                Some(Value::String(kind)) => {
                    let kind = std::mem::take(kind);
                    object.insert("type".into(), Value::from(vec![kind, "null".into()]));
                }
                Some(_) => {}
                None => {
                    let rest = std::mem::take(object);
                    object.insert(
                        "anyOf".into(),
                        Value::Array(vec![
                            Value::Object(rest),
                            serde_json::json!({"type": "null"}),
                        ]),
                    );
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_nullable),
        _ => {}
    }
}

/// Follows local `$ref`s (`#/components/parameters/...`) from `value`, found at `pointer`.
fn resolve<'a>(
    document: &'a Value,
    mut value: &'a Value,
    mut pointer: String,
) -> Result<(&'a Value, String), SpecError> {
    for _ in 0..MAX_REF_HOPS {
        let Some(reference) = value.get("$ref") else {
            return Ok((value, pointer));
        };
        let Some(target) = reference.as_str().and_then(|r| r.strip_prefix('#')) else {
            return Err(SpecError::new(
                format!("{pointer}/$ref"),
                "only references within the document (`#/...`) are supported here",
            ));
        };
        let target = percent_encoding::percent_decode_str(target)
            .decode_utf8_lossy()
            .into_owned();
        value = document.pointer(&target).ok_or_else(|| {
            SpecError::new(
                format!("{pointer}/$ref"),
                format!("`#{target}` does not exist"),
            )
        })?;
        pointer = target;
    }
    Err(SpecError::new(pointer, "too many `$ref` hops (a cycle?)"))
}

struct DocumentCompiler<'a> {
    document: &'a Value,
    registry: Registry<'a>,
    draft: Draft,
    formats: &'a Formats,
    format_dialect: FormatDialect,
}

impl DocumentCompiler<'_> {
    /// The schema at `pointer` in the document, compiled through a reference so that its own
    /// `$ref`s resolve against the document.
    fn schema(&self, pointer: &str) -> Result<Validator, SpecError> {
        const FRAGMENT: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'~')
            .remove(b'-')
            .remove(b'.')
            .remove(b'_');
        let reference = format!("{DOCUMENT_URI}#{}", utf8_percent_encode(pointer, FRAGMENT));
        let options = jsonschema::options()
            .with_draft(self.draft)
            .with_registry(&self.registry);
        self.formats
            .install(options, self.format_dialect)
            .build(&serde_json::json!({ "$ref": reference }))
            .map_err(|error| {
                // The error's location is a pointer into the document: the broken schema
                // itself, which may be a component the operation only refers to.
                let at = error.instance_path().as_str();
                let place = if at.is_empty() { pointer } else { at };
                SpecError::new(place, super::violation::short(&error.to_string(), 300))
            })
    }

    fn media(&self, content: Option<&Value>, pointer: &str) -> Result<Vec<Media>, SpecError> {
        let Some(content) = content else {
            return Ok(Vec::new());
        };
        let Some(content) = content.as_object() else {
            return Err(SpecError::new(pointer, "`content` must be an object"));
        };
        let mut media = Vec::with_capacity(content.len());
        for (range, object) in content {
            let at = format!("{pointer}/{}", escape(range));
            let lower = essence(range).to_ascii_lowercase();
            // Only media types whose bodies the layer reads: JSON, text, forms, and ranges
            // that take them in (`*/*`, `text/*`, `application/*`).
            let readable = is_json(&lower)
                || lower == "*/*"
                || lower == "application/*"
                || lower == FORM
                || lower.starts_with("text/");
            let (schema, form_fields) = match object.get("schema") {
                Some(schema) if readable => {
                    let compiled = self.schema(&format!("{at}/schema"))?;
                    let fields = if lower == FORM || lower == "*/*" || lower == "application/*" {
                        self.form_fields(schema)
                    } else {
                        Vec::new()
                    };
                    (Some(compiled), fields)
                }
                _ => (None, Vec::new()),
            };
            media.push(Media::new(range, schema, form_fields));
        }
        Ok(media)
    }

    /// The documented properties of a form body's schema and their shapes (the shapes its
    /// fields' text is read as).
    fn form_fields(&self, schema: &Value) -> Vec<(String, Shape)> {
        let (schema, _) = resolve_schema(self.document, schema);
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        properties
            .iter()
            .map(|(name, property)| {
                let (property, _) = resolve_schema(self.document, property);
                (name.clone(), Shape::of(property, self.document))
            })
            .collect()
    }

    fn parameter(&self, value: &Value, pointer: String) -> Result<Param, SpecError> {
        let (value, pointer) = resolve(self.document, value, pointer)?;
        let name = value
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SpecError::new(format!("{pointer}/name"), "a parameter needs a name"))?;
        let location = match value.get("in").and_then(Value::as_str) {
            Some("path") => ParamIn::Path,
            Some("query") => ParamIn::Query,
            Some("header") => ParamIn::Header,
            Some("cookie") => ParamIn::Cookie,
            _ => {
                return Err(SpecError::new(
                    format!("{pointer}/in"),
                    "`in` must be path, query, header or cookie",
                ));
            }
        };
        let required = value
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || location == ParamIn::Path;
        let style_form = matches!(location, ParamIn::Query | ParamIn::Cookie);
        let explode = value
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style_form);
        let (validator, shape) = match value.get("schema") {
            Some(schema) => {
                let at = format!("{pointer}/schema");
                let (resolved, _) = resolve_schema(self.document, schema);
                (Some(self.schema(&at)?), Shape::of(resolved, self.document))
            }
            None => (None, Shape::Any),
        };
        Param::new(name, location, required, explode, shape, validator)
            .map_err(|reason| SpecError::new(format!("{pointer}/name"), reason))
    }

    fn operation(
        &self,
        path_params: &[Param],
        operation: &Value,
        pointer: &str,
    ) -> Result<Operation, SpecError> {
        let mut params: Vec<Param> = Vec::new();
        if let Some(list) = operation.get("parameters").and_then(Value::as_array) {
            for (i, param) in list.iter().enumerate() {
                params.push(self.parameter(param, format!("{pointer}/parameters/{i}"))?);
            }
        }
        for inherited in path_params {
            if !params.iter().any(|p| p.same_as(inherited)) {
                params.push(inherited.clone());
            }
        }
        let body = match operation.get("requestBody") {
            Some(body) => {
                let (body, at) = resolve(self.document, body, format!("{pointer}/requestBody"))?;
                Some(BodySpec {
                    required: body
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    media: self.media(body.get("content"), &format!("{at}/content"))?,
                })
            }
            None => None,
        };
        let mut responses = ResponseSpecs::default();
        if let Some(list) = operation.get("responses").and_then(Value::as_object) {
            for (status, response) in list {
                let at = format!("{pointer}/responses/{}", escape(status));
                let (response, at) = resolve(self.document, response, at)?;
                let media = self.media(response.get("content"), &format!("{at}/content"))?;
                match status.as_str() {
                    "default" => responses.default = Some(media),
                    range if range.len() == 3 && range[1..].eq_ignore_ascii_case("xx") => {
                        let class = range.as_bytes()[0].wrapping_sub(b'1');
                        let slot =
                            responses
                                .ranges
                                .get_mut(usize::from(class))
                                .ok_or_else(|| {
                                    SpecError::new(at.clone(), "a status range is 1XX to 5XX")
                                })?;
                        *slot = Some(media);
                    }
                    code => {
                        let code: u16 = code
                            .parse()
                            .ok()
                            .filter(|code| (100..600).contains(code))
                            .ok_or_else(|| {
                                SpecError::new(
                                    at.clone(),
                                    "a response key is a status, a range such as 2XX, or default",
                                )
                            })?;
                        responses.exact.insert(code, media);
                    }
                }
            }
        }
        Ok(Operation {
            params,
            body,
            responses: Some(responses),
        })
    }
}

/// A parameter's schema with one local `$ref` followed, for reading its `type`.
fn resolve_schema<'a>(document: &'a Value, schema: &'a Value) -> (&'a Value, String) {
    resolve(document, schema, String::new()).unwrap_or((schema, String::new()))
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn compile_openapi(
    text: &str,
    routes: &mut HashMap<Arc<str>, PathItem>,
    formats: &Formats,
) -> Result<(), SpecError> {
    let mut document = parse_document(text)?;
    let dialect = match document.get("openapi").and_then(Value::as_str) {
        Some(version) if version.starts_with("3.0.") => Dialect::OpenApi30,
        Some(version) if version.starts_with("3.1.") => Dialect::OpenApi31,
        Some(version) => {
            return Err(SpecError::new(
                "/openapi",
                format!("OpenAPI {version} is not supported; 3.0.x and 3.1.x are"),
            ));
        }
        None => {
            return Err(SpecError::new(
                "/openapi",
                "missing: not an OpenAPI 3 document (Swagger 2.0 is not supported)",
            ));
        }
    };
    let draft = match dialect {
        Dialect::OpenApi30 => {
            rewrite_nullable(&mut document);
            Draft::Draft4
        }
        Dialect::OpenApi31 => Draft::Draft202012,
    };
    let registry = Registry::new()
        .draft(draft)
        .retrieve_known_draft_meta_schemas(false)
        .add(DOCUMENT_URI, draft.create_resource_ref(&document))
        .and_then(|builder| builder.prepare())
        .map_err(|error| SpecError::new("", format!("cannot index the document: {error}")))?;
    let compiler = DocumentCompiler {
        document: &document,
        registry,
        draft,
        formats,
        format_dialect: match dialect {
            Dialect::OpenApi30 => FormatDialect::OpenApi30,
            Dialect::OpenApi31 => FormatDialect::OpenApi31,
        },
    };
    let Some(paths) = document.get("paths") else {
        return Ok(());
    };
    let paths = paths
        .as_object()
        .ok_or_else(|| SpecError::new("/paths", "`paths` must be an object"))?;
    for (template, item) in paths {
        let pointer = format!("/paths/{}", escape(template));
        if !template.starts_with('/') {
            return Err(SpecError::new(pointer, "a path starts with `/`"));
        }
        let (item, item_pointer) = resolve(&document, item, pointer)?;
        let mut path_params = Vec::new();
        if let Some(list) = item.get("parameters").and_then(Value::as_array) {
            for (i, param) in list.iter().enumerate() {
                path_params
                    .push(compiler.parameter(param, format!("{item_pointer}/parameters/{i}"))?);
            }
        }
        let template: Arc<str> = template.as_str().into();
        let path_item = routes
            .entry(template.clone())
            .or_insert_with(|| PathItem::new(template.clone()));
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let at = format!("{item_pointer}/{method}");
            let operation = compiler.operation(&path_params, operation, &at)?;
            check_path_params(&path_item.template, &operation.params, &at)?;
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .expect("the eight OpenAPI methods are valid HTTP methods");
            path_item.operations.push((method, operation));
        }
    }
    Ok(())
}

/// Every `{name}` in the template is a documented path parameter, and the other way round.
fn check_path_params(template: &Template, params: &[Param], at: &str) -> Result<(), SpecError> {
    for name in template.param_names() {
        if !params
            .iter()
            .any(|p| p.location == ParamIn::Path && p.name() == name)
        {
            return Err(SpecError::new(
                format!("{at}/parameters"),
                format!("the path parameter `{name}` is not documented"),
            ));
        }
    }
    for param in params.iter().filter(|p| p.location == ParamIn::Path) {
        if !template.param_names().any(|name| name == param.name()) {
            return Err(SpecError::new(
                format!("{at}/parameters"),
                format!("the path parameter `{}` is not in the path", param.name()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_becomes_a_null_type() {
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"type": "string", "enum": ["x"], "nullable": true},
                "c": {"allOf": [{"type": "integer"}], "nullable": true},
                "nullable": {"type": "boolean"}
            },
            "example": {"nullable": true}
        });
        rewrite_nullable(&mut schema);
        let properties = &schema["properties"];
        assert_eq!(
            properties["a"]["type"],
            serde_json::json!(["string", "null"])
        );
        assert_eq!(properties["b"]["enum"], serde_json::json!(["x", null]));
        assert_eq!(
            properties["c"]["anyOf"][1],
            serde_json::json!({"type": "null"})
        );
        assert_eq!(
            properties["nullable"],
            serde_json::json!({"type": "boolean"})
        );
        assert_eq!(schema["example"], serde_json::json!({"nullable": true}));
    }

    #[test]
    fn yaml_status_keys_become_strings() {
        let json = parse_document("responses:\n  200:\n    description: ok\n").unwrap();
        assert_eq!(json["responses"]["200"]["description"], "ok");
    }

    #[test]
    fn status_lookup_prefers_exact_then_range_then_default() {
        let mut specs = ResponseSpecs::default();
        specs.exact.insert(201, vec![Media::json_any(None)]);
        specs.ranges[1] = Some(Vec::new());
        assert_eq!(specs.for_status(201).map(<[_]>::len), Some(1));
        assert_eq!(specs.for_status(204).map(<[_]>::len), Some(0));
        assert!(specs.for_status(500).is_none());
        specs.default = Some(Vec::new());
        assert!(specs.for_status(500).is_some());
        assert!(specs.for_status(0).is_some());
    }
}
