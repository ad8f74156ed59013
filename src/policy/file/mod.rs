//! Policies from a TOML file (feature `config`).
//!
//! ```toml
//! [defaults]
//! timeout = "2s"
//!
//! [defaults.breaker]
//! failure_rate_threshold = 50
//! minimum_calls = 20
//!
//! [routes."/checkout"]
//! timeout = "300ms"
//! criticality = "critical_plus"
//!
//! [routes."GET /search"]
//! criticality = "sheddable"
//! shed.algorithm = "aimd"
//! ```
//!
//! A route's table overrides the defaults key by key. Durations are strings (`"250ms"`,
//! `"2s"`, `"1m 30s"`); unknown keys are errors.

//!
//! The module reads in three steps: [`keys`] is the reference of every key, `spec` the file
//! as serde reads it and its conversion into policies (with `dependencies` for
//! `[dependencies.*]`), and this file the loader.

mod dependencies;
mod keys;
mod spec;

use std::collections::BTreeMap;
use std::path::Path;

use super::spec::{AlertSettings, Objective, Policies, PolicyError, RouteMatch};
use crate::core::Strict;
pub use keys::{CONFIG_KEYS, ConfigKey};
use spec::{AlertsSpec, FileSpec};

/// Policies read from a TOML file, and the contract it names (feature `contract`).
pub struct PolicyFile {
    policies: Policies,
    alerts: AlertSettings,
    #[cfg(feature = "contract")]
    contract: Option<(crate::contract::Contract, crate::contract::ContractConfig)>,
    dependencies: BTreeMap<String, crate::dependency::DependencyConfig>,
    dependency_objectives: BTreeMap<String, Objective>,
}

impl std::fmt::Debug for PolicyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyFile")
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl PolicyFile {
    /// Reads and checks the policy file at `path`; `openapi.document` is relative to it.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the key path (`file` if the file cannot be read).
    pub fn load(path: impl AsRef<Path>) -> Result<PolicyFile, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| {
            PolicyError::at("file", format!("cannot read {}: {error}", path.display()))
        })?;
        Self::parse_in(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Reads and checks policy text; `openapi.document` is relative to the working directory.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the key path.
    pub fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
        Self::parse_in(text, Path::new("."))
    }

    fn parse_in(text: &str, _base: &Path) -> Result<PolicyFile, PolicyError> {
        let spec = read(text)?;
        let mut policies = Policies::new(spec.defaults.build("defaults")?);
        for (key, route_spec) in &spec.routes {
            let at = format!("routes.\"{key}\"");
            let route = RouteMatch::parse(key)?;
            let policy = route_spec.clone().over(&spec.defaults).build(&at)?;
            policies.set(route, policy);
        }
        policies.validate()?;
        #[cfg(feature = "contract")]
        let contract = match &spec.openapi {
            Some(openapi) => Some(openapi.load(_base)?),
            None => None,
        };
        #[cfg(not(feature = "contract"))]
        if spec.openapi.is_some() {
            return Err(PolicyError::at(
                "openapi",
                "contract validation needs steadfast's `contract` feature",
            ));
        }
        let alerts = spec
            .alerts
            .as_ref()
            .map_or_else(|| Ok(AlertSettings::default()), AlertsSpec::build)?;
        let mut dependencies = BTreeMap::new();
        let mut dependency_objectives = BTreeMap::new();
        for (name, dependency) in &spec.dependencies {
            let at = format!("dependencies.{name}");
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"_-.".contains(&byte));
            if !valid {
                return Err(PolicyError::at(
                    &at,
                    "a dependency's name is 1 to 64 letters, digits, `_`, `-` or `.` (it becomes a metric label)",
                ));
            }
            let config = dependency
                .build(name)
                .map_err(|(key, reason)| PolicyError::at(format!("{at}.{key}"), reason))?;
            let objective = dependency.objective();
            objective.validate(&at)?;
            dependencies.insert(name.clone(), config);
            dependency_objectives.insert(name.clone(), objective);
        }
        Ok(PolicyFile {
            policies,
            alerts,
            dependencies,
            dependency_objectives,
            #[cfg(feature = "contract")]
            contract,
        })
    }

    /// The thresholds of the generated protection alerts (`[alerts]`).
    pub fn alerts(&self) -> &AlertSettings {
        &self.alerts
    }

    /// The dependency policies (`[dependencies.<name>]`), by name.
    pub fn dependencies(&self) -> &BTreeMap<String, crate::dependency::DependencyConfig> {
        &self.dependencies
    }

    /// The service level of each dependency (`[dependencies.<name>.objective]`, else the
    /// defaults of [`Objective`]), for the alerts `steadfast::guardrails` generates.
    pub fn dependency_objectives(&self) -> &BTreeMap<String, Objective> {
        &self.dependency_objectives
    }

    /// The layer for the dependency `name`, if the file has a policy for it.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] at `dependencies.<name>` when the file has no such dependency.
    pub fn dependency_layer(
        &self,
        name: &str,
    ) -> Result<crate::dependency::DependencyLayer, PolicyError> {
        let config = self.dependencies.get(name).ok_or_else(|| {
            PolicyError::at(
                format!("dependencies.{name}"),
                "the policy file has no such dependency",
            )
        })?;
        crate::dependency::DependencyLayer::new(config.clone())
            .map_err(|error| PolicyError::at(format!("dependencies.{name}"), error.to_string()))
    }

    /// The layer for the dependency `name`: the file's policy if it has one, else the default
    /// dependency policy marked undeclared, whose calls `strict` serves silently, reports or
    /// refuses (see [`DependencyConfig::undeclared`](crate::dependency::DependencyConfig::undeclared)).
    /// The [reality map](crate::map) lists undeclared dependencies that were called;
    /// [`map::undeclared`](crate::map::undeclared) is the list a test run can fail on.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] at `dependencies.<name>` when the file's policy for it is invalid, or
    /// the name is empty.
    pub fn dependency_layer_or_default(
        &self,
        name: &str,
        strict: Strict,
    ) -> Result<crate::dependency::DependencyLayer, PolicyError> {
        if self.dependencies.contains_key(name) {
            return self.dependency_layer(name);
        }
        crate::dependency::DependencyLayer::new(
            crate::dependency::DependencyConfig::new(name).undeclared(strict),
        )
        .map_err(|error| PolicyError::at(format!("dependencies.{name}"), error.to_string()))
    }

    /// The policies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The policies alone, for [`PolicyHandle::reload`](super::PolicyHandle::reload), which
    /// leaves the contract as it is; [`PolicyHandle::reload_file`](super::PolicyHandle::reload_file)
    /// applies the file's `[openapi]` too.
    pub fn into_policies(self) -> Policies {
        self.policies
    }

    #[cfg(feature = "contract")]
    pub(crate) fn into_parts(
        self,
    ) -> (
        Policies,
        Option<(crate::contract::Contract, crate::contract::ContractConfig)>,
    ) {
        (self.policies, self.contract)
    }

    /// The layer applying these policies (and checking the contract, if the file names one).
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] from the contract settings.
    pub fn into_layer(self) -> Result<super::PolicyLayer, PolicyError> {
        #[cfg(feature = "contract")]
        if let Some((contract, config)) = self.contract {
            return super::PolicyLayer::with_file_contract(self.policies, contract, config);
        }
        super::PolicyLayer::new(self.policies)
    }
}

/// The file as serde reads it, a refusal naming the key it is about: the path serde took to it
/// (through tables, inline tables and arrays alike), and for an unknown key that key.
fn read(text: &str) -> Result<FileSpec, PolicyError> {
    let refused = |path: String, message: &str| PolicyError::at(path, message.trim().to_owned());
    // Not TOML at all: no key to name, so the file and the place in it.
    let deserializer = toml::Deserializer::parse(text).map_err(|error| {
        let place = error.span().map_or_else(String::new, |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" (line {line}, column {column})")
        });
        refused(
            "file".to_owned(),
            &format!("{}{place}", error.message().trim()),
        )
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let mut path = key_path(error.path());
        let message = error.inner().message().to_owned();
        // serde names the table of an unknown key; the key itself is in the message.
        if let Some(unknown) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            // Inside an inline table, the path has reached the key already.
            let key = quoted_key(unknown);
            let reached = path == key || path.ends_with(&format!(".{key}"));
            if !reached {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key);
            }
        }
        refused(path, &message)
    })
}

/// A key path as TOML writes it: `routes."/a".breaker.minimum_calls`.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        let key = match segment {
            Segment::Map { key } | Segment::Enum { variant: key } => quoted_key(key),
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Unknown => continue,
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&key);
    }
    out
}

/// A key, quoted unless TOML allows it bare.
fn quoted_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::spec::*;
    use super::*;
    use serde::Deserialize;
    use serde::de::{self, Deserializer, Visitor};

    /// The field names a `Deserialize` struct accepts, captured from `deserialize_struct`.
    pub(super) fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        struct Capture(Option<&'static [&'static str]>);
        #[derive(Debug)]
        struct Captured;
        impl std::fmt::Display for Captured {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("captured")
            }
        }
        impl std::error::Error for Captured {}
        impl de::Error for Captured {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Captured
            }
        }
        impl<'de> Deserializer<'de> for &mut Capture {
            type Error = Captured;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
                Err(Captured)
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Captured> {
                self.0 = Some(fields);
                Err(Captured)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut capture = Capture(None);
        let _ = T::deserialize(&mut capture);
        capture.0.expect("a struct")
    }

    #[test]
    fn the_key_reference_lists_exactly_the_keys_the_parser_accepts() {
        let mut accepted: Vec<String> = Vec::new();
        for field in fields_of::<PolicySpec>() {
            match *field {
                "breaker" => accepted.extend(
                    fields_of::<BreakerSpec>()
                        .iter()
                        .map(|f| format!("breaker.{f}")),
                ),
                "shed" => {
                    for f in fields_of::<ShedSpec>() {
                        match *f {
                            "queue" => accepted.extend(
                                fields_of::<QueueSpec>()
                                    .iter()
                                    .map(|q| format!("shed.queue.{q}")),
                            ),
                            table @ ("admit_below" | "guaranteed_share") => accepted.extend(
                                fields_of::<ClassFractions>()
                                    .iter()
                                    .map(|class| format!("shed.{table}.{class}")),
                            ),
                            f => accepted.push(format!("shed.{f}")),
                        }
                    }
                }
                "deadline" => accepted.extend(
                    fields_of::<DeadlineSpec>()
                        .iter()
                        .map(|f| format!("deadline.{f}")),
                ),
                "fault" => accepted.extend(
                    fields_of::<FaultSpec>()
                        .iter()
                        .map(|f| format!("fault.{f}")),
                ),
                "contract" => accepted.extend(
                    fields_of::<ContractSpec>()
                        .iter()
                        .map(|f| format!("contract.{f}")),
                ),
                "objective" => accepted.extend(
                    fields_of::<ObjectiveSpec>()
                        .iter()
                        .map(|f| format!("objective.{f}")),
                ),
                other => accepted.push(other.to_owned()),
            }
        }
        accepted.extend(
            fields_of::<OpenApiSpec>()
                .iter()
                .map(|f| format!("openapi.{f}")),
        );
        accepted.extend(
            fields_of::<AlertsSpec>()
                .iter()
                .map(|f| format!("alerts.{f}")),
        );
        accepted.extend(dependencies::fields());
        let listed: Vec<String> = CONFIG_KEYS.iter().map(|k| k.key.to_owned()).collect();
        assert_eq!(listed, accepted);
        assert_eq!(
            fields_of::<FileSpec>(),
            ["defaults", "routes", "openapi", "alerts", "dependencies"]
        );
    }

    #[test]
    fn text_that_is_not_toml_is_refused_with_its_place() {
        let error = PolicyFile::parse("[defaults]\ntimeout = \n").unwrap_err();
        assert_eq!(error.path(), "file");
        assert!(error.reason().contains("(line 2, column"), "{error}");
    }

    #[test]
    fn key_paths_name_the_key_wherever_it_is_written() {
        for (text, path) in [
            ("[defaults]\ntimeout = 5\n", "defaults.timeout"),
            (
                "[routes.\"/a\".breaker]\nminimum_calls = \"x\"\n",
                "routes.\"/a\".breaker.minimum_calls",
            ),
            // Inside an inline table, which a line-based locator cannot see into.
            (
                "[routes.\"/a\"]\nbreaker = { minimum_calls = \"x\" }\n",
                "routes.\"/a\".breaker.minimum_calls",
            ),
            (
                "routes = { \"/a\" = { shed = { limit = -1 } } }\n",
                "routes.\"/a\".shed.limit",
            ),
            (
                "[defaults]\nbreaker = { failure_rate = 50 }\n",
                "defaults.breaker.failure_rate",
            ),
            (
                "[alerts]\nservice_labels = [\"job\", 7]\n",
                "alerts.service_labels[1]",
            ),
            ("nonsense = 1\n", "nonsense"),
        ] {
            let error = PolicyFile::parse(text).unwrap_err();
            assert_eq!(error.path(), path, "{text}: {error}");
        }
    }
}
