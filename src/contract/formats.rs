//! OpenAPI formats, asserted the same way under OpenAPI 3.0 (draft 4) and 3.1 (2020-12).
//!
//! The validator knows formats by JSON Schema draft (under draft 4 it has no `uuid`, no
//! `duration`, no `uri-reference`…) and only for strings, while OpenAPI's `int32` and `int64`
//! are ranges of numbers. So the `format` keyword is ours: one implementation for every
//! dialect, which
//!
//! - checks `int32` and `int64` as integer ranges (an integer outside is a violation; a
//!   non-integer number and a non-number are not the format's business, as in
//!   openapi-schema-validator);
//! - checks `byte` as canonical, padded base64 under OpenAPI 3.0 (3.1 spells that
//!   `contentEncoding`, and leaves `byte` unasserted);
//! - leaves `float`, `double`, `password` and `binary` unasserted (every JSON number is a
//!   double; the others are hints);
//! - checks every format JSON Schema 2020-12 defines (`date`, `date-time`, `time`, `duration`,
//!   `email`, `hostname`, `ipv4`, `ipv6`, `uri`, `uri-reference`, `iri`, `uuid`, `regex`,
//!   `json-pointer`…) with the validator's own 2020-12 check, whatever the dialect;
//! - checks strings against the formats registered with [`ContractBuilder::format`]
//!   (which may replace a built-in one);
//! - ignores unknown formats, as JSON Schema says (they are annotations).
//!
//! [`ContractBuilder::format`]: super::ContractBuilder::format

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use jsonschema::{Draft, Keyword, ValidationError, ValidationOptions, Validator};
use serde_json::Value;

/// A custom format's check, applied to strings.
pub(crate) type FormatCheck = dyn Fn(&str) -> bool + Send + Sync;

/// The formats of one contract: whether they assert, and those registered in code.
#[derive(Clone)]
pub(crate) struct Formats {
    pub(crate) assert: bool,
    pub(crate) custom: HashMap<String, Arc<FormatCheck>>,
}

impl Default for Formats {
    fn default() -> Self {
        Self {
            assert: true,
            custom: HashMap::new(),
        }
    }
}

impl fmt::Debug for Formats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut custom: Vec<&str> = self.custom.keys().map(String::as_str).collect();
        custom.sort_unstable();
        f.debug_struct("Formats")
            .field("assert", &self.assert)
            .field("custom", &custom)
            .finish()
    }
}

/// Which OpenAPI version's format list applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormatDialect {
    OpenApi30,
    /// OpenAPI 3.1, and JSON Schemas attached in code.
    OpenApi31,
}

/// The formats JSON Schema 2020-12 defines and the validator checks.
const STANDARD: [&str; 19] = [
    "date",
    "date-time",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "uuid",
    "regex",
    "json-pointer",
    "relative-json-pointer",
];

/// One validator a standard format, compiled once per process under 2020-12.
fn standard(name: &str) -> Option<&'static Validator> {
    static STANDARD_VALIDATORS: OnceLock<HashMap<&'static str, Validator>> = OnceLock::new();
    STANDARD_VALIDATORS
        .get_or_init(|| {
            STANDARD
                .iter()
                .filter_map(|&name| {
                    let validator = jsonschema::options()
                        .with_draft(Draft::Draft202012)
                        .should_validate_formats(true)
                        .build(&serde_json::json!({ "format": name }))
                        .ok()?;
                    Some((name, validator))
                })
                .collect()
        })
        .get(name)
}

impl Formats {
    /// `options` with this contract's `format` keyword.
    pub(crate) fn install<'i>(
        &self,
        options: ValidationOptions<'i>,
        dialect: FormatDialect,
    ) -> ValidationOptions<'i> {
        let formats = self.clone();
        options.with_keyword("format", move |_, value, _| {
            Ok(Box::new(formats.check(value, dialect)) as Box<dyn for<'a> Keyword<'a>>)
        })
    }

    fn check(&self, format: &Value, dialect: FormatDialect) -> FormatKeyword {
        let Some(name) = format.as_str().filter(|_| self.assert) else {
            return FormatKeyword::Unasserted;
        };
        if let Some(check) = self.custom.get(name) {
            return FormatKeyword::Custom {
                name: name.into(),
                check: check.clone(),
            };
        }
        match name {
            "int32" => FormatKeyword::Integer {
                name: "int32",
                min: i64::from(i32::MIN),
                max: i64::from(i32::MAX),
            },
            "int64" => FormatKeyword::Integer {
                name: "int64",
                min: i64::MIN,
                max: i64::MAX,
            },
            "byte" if dialect == FormatDialect::OpenApi30 => FormatKeyword::Base64,
            _ => match standard(name) {
                Some(validator) => FormatKeyword::Standard {
                    name: name.into(),
                    validator,
                },
                None => FormatKeyword::Unasserted,
            },
        }
    }
}

enum FormatKeyword {
    Unasserted,
    Integer {
        name: &'static str,
        min: i64,
        max: i64,
    },
    Base64,
    Standard {
        name: Box<str>,
        validator: &'static Validator,
    },
    Custom {
        name: Box<str>,
        check: Arc<FormatCheck>,
    },
}

impl<'i> Keyword<'i> for FormatKeyword {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            return Ok(());
        }
        // The message names no value: neither a huge input nor a secret is echoed back.
        Err(ValidationError::custom(match self {
            FormatKeyword::Integer { name, .. } => {
                format!("value is outside the range of {name}")
            }
            FormatKeyword::Base64 => "value is not a \"byte\" (canonical base64)".to_owned(),
            FormatKeyword::Standard { name, .. } | FormatKeyword::Custom { name, .. } => {
                format!("value is not a \"{name}\"")
            }
            FormatKeyword::Unasserted => String::new(),
        }))
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        match self {
            FormatKeyword::Unasserted => true,
            FormatKeyword::Integer { min, max, .. } => match instance {
                Value::Number(number) => integer_within(number, *min, *max),
                _ => true,
            },
            FormatKeyword::Base64 => instance.as_str().is_none_or(is_canonical_base64),
            FormatKeyword::Standard { validator, .. } => validator.is_valid(instance),
            FormatKeyword::Custom { check, .. } => instance.as_str().is_none_or(|text| check(text)),
        }
    }
}

/// Whether `number`, if it is an integer, lies in `min..=max`. Integers beyond `u64` parse as
/// floats; an integral float outside the range is outside it too (a fractional one is not an
/// integer, so not the format's business).
fn integer_within(number: &serde_json::Number, min: i64, max: i64) -> bool {
    if let Some(value) = number.as_i64() {
        return (min..=max).contains(&value);
    }
    if let Some(value) = number.as_u64() {
        return u64::try_from(max).is_ok_and(|max| value <= max);
    }
    match number.as_f64() {
        Some(value) if value.fract() == 0.0 => {
            // Both bounds are exact as floats but i64::MAX, which rounds up to 2^63.
            let below_max = if max == i64::MAX {
                value < 9_223_372_036_854_775_808.0
            } else {
                value <= max as f64
            };
            value >= min as f64 && below_max
        }
        _ => true,
    }
}

/// Standard base64 with padding, in its canonical form (what decoding and encoding again gives
/// back unchanged): no whitespace, no stray characters, unused bits zero.
fn is_canonical_base64(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return false;
    }
    let value = |byte: u8| -> Option<u8> {
        match byte {
            b'A'..=b'Z' => Some(byte - b'A'),
            b'a'..=b'z' => Some(byte - b'a' + 26),
            b'0'..=b'9' => Some(byte - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let padding = bytes.iter().rev().take_while(|&&byte| byte == b'=').count();
    if padding > 2 {
        return false;
    }
    let data = &bytes[..bytes.len() - padding];
    let Some(last) = data.iter().try_fold(0u8, |_, &byte| value(byte)) else {
        return false;
    };
    // With one `=`, the last character carries 2 unused bits; with two, 4.
    match padding {
        1 => last & 0b11 == 0,
        2 => last & 0b1111 == 0,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_canonical_and_padded() {
        for valid in ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "+/+/"] {
            assert!(is_canonical_base64(valid), "{valid}");
        }
        for invalid in [
            "Zg", "Zg=", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "Z===", "Zg==Zg==", "Zm9v_-==",
        ] {
            assert!(!is_canonical_base64(invalid), "{invalid}");
        }
    }

    #[test]
    fn integer_ranges_are_exact_at_the_edges() {
        let within = |text: &str, min, max| {
            let number: serde_json::Number = serde_json::from_str(text).unwrap();
            integer_within(&number, min, max)
        };
        let (i32_min, i32_max) = (i64::from(i32::MIN), i64::from(i32::MAX));
        assert!(within("2147483647", i32_min, i32_max));
        assert!(!within("2147483648", i32_min, i32_max));
        assert!(within("-2147483648", i32_min, i32_max));
        assert!(!within("-2147483649", i32_min, i32_max));
        assert!(!within("2147483648.0", i32_min, i32_max));
        assert!(within("2147483648.5", i32_min, i32_max), "not an integer");
        assert!(within("9223372036854775807", i64::MIN, i64::MAX));
        assert!(!within("9223372036854775808", i64::MIN, i64::MAX));
        assert!(within("-9223372036854775808", i64::MIN, i64::MAX));
        // -2^63 - 1 parses (as a float) to -2^63 exactly: a departure documented in the
        // module docs; parameters avoid it (see `params::integer`).
        assert!(!within("-9223372036854777856", i64::MIN, i64::MAX));
        assert!(!within("99999999999999999999", i64::MIN, i64::MAX));
    }
}
