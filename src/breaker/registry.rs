//! Breakers by key: one per route (the default), per upstream, or per any other key.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, Request, Uri};
use metrics::SharedString;

use super::config::BreakerConfig;
use super::handle::BreakerHandle;
use crate::core::route;

/// A function that keys a request by its URI and headers.
pub type KeyFn = dyn Fn(&Uri, &HeaderMap) -> Option<String> + Send + Sync;

/// What a keyed breaker layer tells its breakers apart by.
#[derive(Clone)]
#[non_exhaustive]
pub enum BreakerKey {
    /// The route: Axum's route template (`MatchedPath`), else the gRPC method path
    /// (`pkg.Service/Method`), else one breaker for everything unmatched. The default.
    Route,
    /// The request URI's authority (or `Host` header): one breaker per upstream, for clients.
    Authority,
    /// The value of a request header; requests without it share one breaker.
    Header(HeaderName),
    /// A function of the request's URI and headers; `None` shares one breaker.
    Custom(Arc<KeyFn>),
}

impl fmt::Debug for BreakerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerKey::Route => f.write_str("Route"),
            BreakerKey::Authority => f.write_str("Authority"),
            BreakerKey::Header(name) => f.debug_tuple("Header").field(name).finish(),
            BreakerKey::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// The key of requests that have none (no route matched, no header, ...).
const DEFAULT_KEY: &str = "unmatched";
/// The breaker that takes every key beyond the bound.
const OVERFLOW_KEY: &str = "overflow";

impl BreakerKey {
    /// The key of a request, borrowed from it where possible.
    pub(crate) fn of<'a, B>(&self, request: &'a Request<B>) -> Cow<'a, str> {
        let key = match self {
            BreakerKey::Route => route::template(request.extensions())
                .map(Cow::Borrowed)
                .or_else(|| {
                    crate::core::grpc::is_grpc(request.headers())
                        .then(|| Cow::Borrowed(request.uri().path().trim_start_matches('/')))
                }),
            BreakerKey::Authority => request
                .uri()
                .authority()
                .map(|authority| Cow::Borrowed(authority.as_str()))
                .or_else(|| {
                    request
                        .headers()
                        .get(http::header::HOST)?
                        .to_str()
                        .ok()
                        .map(Cow::Borrowed)
                }),
            BreakerKey::Header(name) => request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(Cow::Borrowed),
            BreakerKey::Custom(key) => key(request.uri(), request.headers()).map(Cow::Owned),
        };
        key.unwrap_or(Cow::Borrowed(DEFAULT_KEY))
    }
}

/// The breakers of one layer, by key. Reads are lock-free (a snapshot of the map behind an
/// `ArcSwap`); a new key copies the map under a lock, which happens once per key.
pub(crate) struct Registry {
    config: BreakerConfig,
    key: BreakerKey,
    max_keys: usize,
    breakers: ArcSwap<HashMap<Arc<str>, BreakerHandle>>,
    insert: Mutex<()>,
    overflow: OnceLock<BreakerHandle>,
}

impl Registry {
    pub(crate) fn new(config: BreakerConfig, key: BreakerKey, max_keys: usize) -> Self {
        Self {
            config,
            key,
            max_keys,
            breakers: ArcSwap::default(),
            insert: Mutex::new(()),
            overflow: OnceLock::new(),
        }
    }

    pub(crate) fn key(&self) -> &BreakerKey {
        &self.key
    }

    /// The breaker for `key`, made on first use. Keys beyond the bound share one overflow
    /// breaker, so that request-controlled keys cannot grow memory or label sets without end.
    pub(crate) fn get(&self, key: &str) -> BreakerHandle {
        if let Some(breaker) = self.breakers.load().get(key) {
            return breaker.clone();
        }
        let _insert = self
            .insert
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.breakers.load_full();
        if let Some(breaker) = current.get(key) {
            return breaker.clone();
        }
        if current.len() >= self.max_keys {
            return self
                .overflow
                .get_or_init(|| self.make(OVERFLOW_KEY))
                .clone();
        }
        let breaker = self.make(key);
        let mut next = HashMap::clone(&current);
        next.insert(Arc::from(key), breaker.clone());
        self.breakers.store(Arc::new(next));
        breaker
    }

    fn make(&self, key: &str) -> BreakerHandle {
        let name = match &self.config.name {
            Some(prefix) => format!("{prefix}:{key}"),
            None => key.to_owned(),
        };
        BreakerHandle::from_valid(&self.config, Some(SharedString::from(name)))
    }

    /// Every breaker made so far, by key (the overflow breaker under `"overflow"`).
    pub(crate) fn all(&self) -> Vec<(String, BreakerHandle)> {
        let mut all: Vec<_> = self
            .breakers
            .load()
            .iter()
            .map(|(key, breaker)| (key.to_string(), breaker.clone()))
            .collect();
        if let Some(overflow) = self.overflow.get() {
            all.push((OVERFLOW_KEY.to_owned(), overflow.clone()));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
