//! Path, query, header and cookie parameters: read from the request, typed as their schema
//! says, and validated.

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{COOKIE, HeaderName};
use jsonschema::Validator;
use serde_json::Value;

use super::violation::Collector;
use super::violation::escape;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamIn {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParamIn {
    fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
            Self::Cookie => "cookie",
        }
    }
}

/// The JSON type a parameter's text is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Integer,
    Number,
    Boolean,
    /// No (single) type: numbers and booleans are read as such, the rest as strings.
    Any,
}

impl Scalar {
    pub(crate) fn of(schema: &Value) -> Scalar {
        let kind = match schema.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            // OpenAPI 3.1 `["integer", "null"]`: the non-null one.
            Some(Value::Array(kinds)) => kinds
                .iter()
                .filter_map(Value::as_str)
                .find(|kind| *kind != "null")
                .unwrap_or(""),
            _ => "",
        };
        match kind {
            "string" => Scalar::String,
            "integer" => Scalar::Integer,
            "number" => Scalar::Number,
            "boolean" => Scalar::Boolean,
            _ => Scalar::Any,
        }
    }

    /// The value of `text` for the schema: a number, a boolean, or the text itself, which the
    /// schema then rejects with a useful message if it was meant to be something else.
    pub(crate) fn read(self, text: &str) -> Value {
        let as_number = || {
            integer(text).or_else(|| {
                // JSON's number grammar (no `inf`, `nan`, hex, leading `+` or `.5`).
                serde_json::from_str::<serde_json::Number>(text)
                    .ok()
                    .map(Value::Number)
            })
        };
        let as_bool = || match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        };
        let typed = match self {
            Scalar::String => None,
            // Only an integer's digits are read as an integer: `1.0` or `1e3` stays text, which
            // the schema then rejects as not an integer.
            Scalar::Integer => integer(text),
            Scalar::Number => as_number(),
            Scalar::Boolean => as_bool(),
            Scalar::Any => as_number().or_else(as_bool),
        };
        typed.unwrap_or_else(|| Value::String(text.to_owned()))
    }
}

/// An integer written as an optional `-` and digits, exactly: as `i64` or `u64` when it fits
/// (no detour through `f64`, which rounds beyond 2^53), as the nearest float beyond (where no
/// integer format can hold it anyway).
fn integer(text: &str) -> Option<Value> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    if let Ok(value) = text.parse::<i64>() {
        return Some(Value::from(value));
    }
    if let Ok(value) = text.parse::<u64>() {
        return Some(Value::from(value));
    }
    // Beyond both: below i64::MIN or above u64::MAX. The nearest float may round onto
    // -2^63 itself; step one float further out, so that it stays outside every range it is
    // outside of.
    let mut value = text.parse::<f64>().ok().filter(|value| value.is_finite())?;
    if value == i64::MIN as f64 {
        value = f64::from_bits(value.to_bits() + 1);
    }
    serde_json::Number::from_f64(value).map(Value::Number)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Scalar(Scalar),
    Array(Scalar),
    Any,
}

impl Shape {
    pub(crate) fn of(schema: &Value, document: &Value) -> Shape {
        let is_array = match schema.get("type") {
            Some(Value::String(kind)) => kind == "array",
            Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "array"),
            _ => false,
        };
        if !is_array {
            return match Scalar::of(schema) {
                Scalar::Any => Shape::Any,
                scalar => Shape::Scalar(scalar),
            };
        }
        let items = schema.get("items").unwrap_or(&Value::Null);
        let items = items
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| document.pointer(pointer))
            .unwrap_or(items);
        Shape::Array(Scalar::of(items))
    }
}

/// One documented parameter, compiled.
#[derive(Clone)]
pub(crate) struct Param {
    name: String,
    pub(crate) location: ParamIn,
    required: bool,
    explode: bool,
    shape: Shape,
    validator: Option<Arc<Validator>>,
    header: Option<HeaderName>,
    pointer: String,
}

impl Param {
    pub(crate) fn new(
        name: &str,
        location: ParamIn,
        required: bool,
        explode: bool,
        shape: Shape,
        validator: Option<Validator>,
    ) -> Result<Self, String> {
        let header = match location {
            ParamIn::Header => Some(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("`{name}` is not a valid header name"))?,
            ),
            _ => None,
        };
        let pointer = match &header {
            Some(header) => format!("/header/{}", escape(header.as_str())),
            None => format!("/{}/{}", location.as_str(), escape(name)),
        };
        Ok(Self {
            name: name.to_owned(),
            location,
            required,
            // Only the form style (query, cookie) spells arrays differently when exploded.
            explode: explode && matches!(location, ParamIn::Query | ParamIn::Cookie),
            shape,
            validator: validator.map(Arc::new),
            header,
            pointer,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The same parameter (an operation's own overrides the path item's).
    pub(crate) fn same_as(&self, other: &Param) -> bool {
        self.location == other.location
            && match self.location {
                ParamIn::Header => self.name.eq_ignore_ascii_case(&other.name),
                _ => self.name == other.name,
            }
    }

    fn check(&self, raw: Option<Vec<Cow<'_, str>>>, violations: &mut Collector) {
        let Some(raw) = raw.filter(|values| !values.is_empty()) else {
            if self.required {
                violations.push(
                    &self.pointer,
                    "required",
                    format!(
                        "the {} parameter `{}` is required",
                        self.location.as_str(),
                        self.name
                    ),
                );
            }
            return;
        };
        let Some(validator) = &self.validator else {
            return;
        };
        let value = match self.shape {
            Shape::Array(scalar) => {
                let items: Vec<Value> = if self.explode {
                    raw.iter().map(|text| scalar.read(text)).collect()
                } else {
                    raw[0].split(',').map(|text| scalar.read(text)).collect()
                };
                Value::Array(items)
            }
            Shape::Scalar(scalar) => scalar.read(&raw[0]),
            Shape::Any => Scalar::Any.read(&raw[0]),
        };
        if !validator.is_valid(&value) {
            violations.schema_errors(&self.pointer, validator.iter_errors(&value));
        }
    }
}

/// Checks every parameter of an operation against the request.
pub(crate) fn check_all(
    params: &[Param],
    path_captures: &[(&str, String)],
    query: Option<&str>,
    headers: &HeaderMap,
    violations: &mut Collector,
) {
    let mut query_pairs: Option<Vec<(Cow<'_, str>, Cow<'_, str>)>> = None;
    let mut cookies: Option<Vec<(String, String)>> = None;
    for param in params {
        let raw: Option<Vec<Cow<'_, str>>> = match param.location {
            ParamIn::Path => path_captures
                .iter()
                .find(|(name, _)| *name == param.name)
                .map(|(_, value)| vec![Cow::Borrowed(value.as_str())]),
            ParamIn::Query => {
                let pairs = query_pairs.get_or_insert_with(|| {
                    query.map_or_else(Vec::new, |q| form_urlencoded::parse(q.as_bytes()).collect())
                });
                Some(
                    pairs
                        .iter()
                        .filter(|(key, _)| *key == param.name)
                        .map(|(_, value)| value.clone())
                        .collect(),
                )
            }
            ParamIn::Header => {
                let name = param
                    .header
                    .as_ref()
                    .expect("header parameters have a name");
                let mut values = Vec::new();
                for value in headers.get_all(name) {
                    match value.to_str() {
                        Ok(text) => match param.shape {
                            Shape::Array(_) => {
                                values.extend(text.split(',').map(|v| Cow::Borrowed(v.trim())))
                            }
                            _ => values.push(Cow::Borrowed(text)),
                        },
                        Err(_) => {
                            violations.push(
                                &param.pointer,
                                "type",
                                "the header value is not visible ASCII",
                            );
                            return;
                        }
                    }
                }
                // A header array is one comma-separated list, already split.
                if matches!(param.shape, Shape::Array(_)) && !values.is_empty() {
                    let joined = values.join(",");
                    values = vec![Cow::Owned(joined)];
                }
                Some(values)
            }
            ParamIn::Cookie => {
                // RFC 6265 `Cookie` headers, read by the `cookie` crate: pairs split on `;`,
                // whitespace and a value's surrounding quotes dropped, malformed pairs skipped.
                let jar = cookies.get_or_insert_with(|| {
                    headers
                        .get_all(COOKIE)
                        .iter()
                        .filter_map(|value| value.to_str().ok())
                        .flat_map(cookie::Cookie::split_parse)
                        .filter_map(Result::ok)
                        .map(|c| (c.name().to_owned(), c.value_trimmed().to_owned()))
                        .collect()
                });
                Some(
                    jar.iter()
                        .filter(|(key, _)| *key == param.name)
                        .map(|(_, value)| Cow::Borrowed(value.as_str()))
                        .collect(),
                )
            }
        };
        param.check(raw, violations);
    }
}
