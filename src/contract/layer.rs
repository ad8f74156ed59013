//! The contract layer.

use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::config::ContractConfig;
use super::service::{ContractService, Shared};
use super::spec::Contract;
use crate::core::ConfigError;

/// Applies [`ContractService`]: requests checked against the [`Contract`] before the handler
/// runs, responses checked after.
///
/// Put it on the router with `Router::layer` (it reads Axum's `MatchedPath`) or around any
/// HTTP service (it then matches the request path against the documented templates).
#[derive(Clone)]
pub struct ContractLayer {
    shared: Arc<Shared>,
}

impl ContractLayer {
    /// A layer for `contract` with `config`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting at fault (a sample rate outside 0..=1, a zero
    /// limit, a per-route setting for a template the contract does not document).
    pub fn new(contract: Contract, config: ContractConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared::new(contract, config)?),
        })
    }
}

impl fmt::Debug for ContractLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ContractLayer {
    type Service = ContractService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ContractService::new(inner, self.shared.clone())
    }
}
