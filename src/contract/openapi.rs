//! The OpenAPI loader: a 3.0 or 3.1 document (JSON or YAML) read, its `$ref`s resolved and
//! 3.0's `nullable` rewritten, and compiled into the model.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;
use jsonschema::{Draft, Registry, Validator};

use super::formats::{FormatDialect, Formats};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::model::{
    BodySpec, FORM, Media, Operation, PathItem, ResponseSpecs, is_json, media_type,
};
use super::params::{Param, ParamIn, Shape};
use super::path::Template;
use super::spec::SpecError;
use super::violation::escape;

/// Where the OpenAPI document is registered for `$ref` resolution.
const DOCUMENT_URI: &str = "urn:steadfast:openapi";
/// How many `$ref`s to parameters, request bodies or responses may follow each other.
const MAX_REF_HOPS: usize = 32;

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

    fn media(&self, content: Option<&Value>, pointer: &str) -> Result<Vec<Arc<Media>>, SpecError> {
        let Some(content) = content else {
            return Ok(Vec::new());
        };
        let Some(content) = content.as_object() else {
            return Err(SpecError::new(pointer, "`content` must be an object"));
        };
        let mut media = Vec::with_capacity(content.len());
        for (range, object) in content {
            let at = format!("{pointer}/{}", escape(range));
            let lower = media_type(range);
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
            media.push(Arc::new(Media::new(range, schema, form_fields)));
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

pub(crate) fn compile_openapi(
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
            path_item.operations.push((method, Arc::new(operation)));
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
}
