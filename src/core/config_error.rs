//! Configuration errors, shared by every layer's settings and the policy file.

use std::borrow::Cow;
use std::fmt;

/// A setting that cannot work, named by its key: the setting's name in a layer's config
/// (`failure_rate_threshold`), or its key path in a policy file
/// (`routes."POST /orders".shed.min_limit`; `file` for a file that cannot be read). The one
/// settings error of the crate ([`PolicyError`](crate::policy::PolicyError) is this type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    key: Cow<'static, str>,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key: Cow::Borrowed(key),
            reason: reason.into(),
        }
    }

    /// At a key path made at run time (a policy file's).
    pub(crate) fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: Cow::Owned(path.into()),
            reason: reason.into(),
        }
    }

    /// The setting at fault, as named in the configuration: `failure_rate_threshold`,
    /// `defaults.breaker.minimum_calls`, ...
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The same as [`key`](Self::key), by its policy-file name: the key path.
    pub fn path(&self) -> &str {
        &self.key
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid setting `{}`: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}
