//! The server-side timeout layer.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower::Layer;

use super::config::TimeoutConfig;
use super::service::Timeout;
use crate::core::{ConfigError, ProtocolResponses, TypedErrors};

/// Applies [`Timeout`] to a service: a per-request budget, the caller's deadline honoured, the
/// effective [`Deadline`](crate::core::Deadline) put in the request extensions.
///
/// `M` is how rejections are answered: [`ProtocolResponses`] (the default) or
/// [`TypedErrors`] (see [`TimeoutLayer::typed_errors`]).
pub struct TimeoutLayer<M = ProtocolResponses> {
    config: Arc<TimeoutConfig>,
    _mode: PhantomData<fn() -> M>,
}

impl TimeoutLayer {
    /// A layer with these settings: a [`TimeoutConfig`], or just a budget (a `Duration`, with
    /// the other settings at their defaults), as every layer's `new(config)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::{TimeoutConfig, TimeoutLayer};
    ///
    /// let budget = TimeoutLayer::new(Duration::from_millis(300))?;
    /// let capped = TimeoutLayer::new(TimeoutConfig::caller_deadline(Duration::from_secs(5)))?;
    /// # Ok::<(), steadfast::core::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] of [`TimeoutConfig::validate`] (a zero budget, say).
    pub fn new(config: impl Into<TimeoutConfig>) -> Result<Self, ConfigError> {
        let config = config.into();
        config.validate()?;
        Ok(Self {
            config: Arc::new(config),
            _mode: PhantomData,
        })
    }

    /// A layer with the given settings: the same as [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] of [`TimeoutConfig::validate`].
    #[deprecated(note = "`TimeoutLayer::new` takes a `TimeoutConfig` (or a budget)")]
    pub fn from_config(config: TimeoutConfig) -> Result<Self, ConfigError> {
        Self::new(config)
    }
}

impl<M> TimeoutLayer<M> {
    /// Answer rejections with [`crate::Error::Rejected`] instead of protocol responses; for
    /// services whose requests are not HTTP. Such requests carry no headers, so only the
    /// budget (and cap) applies.
    pub fn typed_errors(self) -> TimeoutLayer<TypedErrors> {
        TimeoutLayer {
            config: self.config,
            _mode: PhantomData,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &TimeoutConfig {
        &self.config
    }
}

impl<S, M> Layer<S> for TimeoutLayer<M> {
    type Service = Timeout<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::with_config(inner, self.config.clone())
    }
}

impl<M> Clone for TimeoutLayer<M> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            _mode: PhantomData,
        }
    }
}

impl<M> fmt::Debug for TimeoutLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("config", &self.config)
            .finish()
    }
}
