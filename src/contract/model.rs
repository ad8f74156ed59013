//! The compiled contract as the request and response checks use it: routes and their
//! operations, the media types of each body with its validator, the documented responses.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;
use jsonschema::Validator;

use serde_json::Value;

use super::grpc::GrpcMethod;
use super::params::{Param, Shape};
use super::path::{PathMatcher, Template};
use super::violation::Collector;

pub(crate) struct Compiled {
    pub(crate) routes: HashMap<Arc<str>, PathItem>,
    pub(crate) matcher: PathMatcher,
    pub(crate) grpc: HashMap<String, GrpcMethod>,
}

pub(crate) struct PathItem {
    pub(crate) template: Template,
    pub(crate) operations: Vec<(Method, Arc<Operation>)>,
}

impl PathItem {
    pub(crate) fn new(template: Arc<str>) -> Self {
        Self {
            template: Template::parse(template),
            operations: Vec::new(),
        }
    }

    pub(crate) fn operation(&self, method: &Method) -> Option<&Arc<Operation>> {
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
    pub(crate) media: Vec<Arc<Media>>,
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

pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

impl Media {
    pub(crate) fn new(
        range: &str,
        schema: Option<Validator>,
        form_fields: Vec<(String, Shape)>,
    ) -> Self {
        let range = media_type(range);
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

    pub(crate) fn json_any(schema: Option<Validator>) -> Self {
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

/// The media type of a `Content-Type` value (or a media range), lowercased, without its
/// parameters: `mime`'s reading (RFC 9110 syntax, quoted parameters included); a value it
/// cannot read is taken up to its first `;`, as browsers do, so a sloppy header still finds
/// its documented media type.
pub(crate) fn media_type(content_type: &str) -> String {
    match content_type.parse::<mime::Mime>() {
        Ok(parsed) => parsed.essence_str().to_ascii_lowercase(),
        Err(_) => content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    }
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
/// first; a later step holds on to it.
pub(crate) fn find_media<'a>(
    media: &'a [Arc<Media>],
    content_type: &str,
) -> Option<&'a Arc<Media>> {
    let specificity = |m: &Media| match m.range.as_str() {
        "*/*" => 0,
        r if r.ends_with("/*") => 1,
        _ => 2,
    };
    media
        .iter()
        .filter(|m| m.matches(content_type))
        .max_by_key(|m| specificity(m))
}

#[derive(Default)]
pub(crate) struct ResponseSpecs {
    pub(crate) exact: HashMap<u16, Vec<Arc<Media>>>,
    pub(crate) ranges: [Option<Vec<Arc<Media>>>; 5],
    pub(crate) default: Option<Vec<Arc<Media>>>,
}

impl ResponseSpecs {
    /// The documented media types for `status`, or `None` if the status is not documented.
    pub(crate) fn for_status(&self, status: u16) -> Option<&[Arc<Media>]> {
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

pub(crate) fn schema_error(error: &jsonschema::ValidationError<'_>) -> String {
    let at = error.instance_path().as_str();
    let message = super::violation::short(&error.to_string(), 300);
    if at.is_empty() {
        message
    } else {
        format!("{message} (at schema location {at})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_read_without_their_parameters() {
        for (header, media) in [
            ("application/json", "application/json"),
            ("Application/JSON; charset=UTF-8", "application/json"),
            (
                "multipart/form-data; boundary=\"a;b\"",
                "multipart/form-data",
            ),
            ("text/*", "text/*"),
            ("*/*", "*/*"),
            // Not a media type by the grammar: read up to its first `;`.
            ("application/json;;", "application/json"),
            ("  ", ""),
        ] {
            assert_eq!(media_type(header), media, "{header}");
        }
    }

    #[test]
    fn status_lookup_prefers_exact_then_range_then_default() {
        let mut specs = ResponseSpecs::default();
        specs
            .exact
            .insert(201, vec![Arc::new(Media::json_any(None))]);
        specs.ranges[1] = Some(Vec::new());
        assert_eq!(specs.for_status(201).map(<[_]>::len), Some(1));
        assert_eq!(specs.for_status(204).map(<[_]>::len), Some(0));
        assert!(specs.for_status(500).is_none());
        specs.default = Some(Vec::new());
        assert!(specs.for_status(500).is_some());
        assert!(specs.for_status(0).is_some());
    }
}
