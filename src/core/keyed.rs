//! One instance per key (route, upstream, header value), shared by every service that a layer
//! builds: Axum rebuilds a route's service per connection (and per request when a `Router` is
//! called directly), so state kept in a service instance would be forgotten.

use std::borrow::Borrow;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, Request, Uri};

use super::route;

/// A function that keys a request by its URI and headers.
pub type KeyFn = dyn Fn(&Uri, &HeaderMap) -> Option<String> + Send + Sync;

/// What a keyed layer tells its instances apart by.
#[derive(Clone)]
#[non_exhaustive]
pub enum Key {
    /// The route: Axum's route template (`MatchedPath`), else the gRPC method path
    /// (`pkg.Service/Method`), else one instance for everything unmatched. The default.
    Route,
    /// The request URI's authority (or `Host` header): one instance per upstream, for clients.
    Authority,
    /// The value of a request header; requests without it share one instance.
    Header(HeaderName),
    /// A function of the request's URI and headers; `None` shares one instance.
    Custom(Arc<KeyFn>),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Route => f.write_str("Route"),
            Key::Authority => f.write_str("Authority"),
            Key::Header(name) => f.debug_tuple("Header").field(name).finish(),
            Key::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// The method of a gRPC request, from its path, if well-formed.
fn grpc_method<B>(request: &Request<B>) -> Option<&str> {
    super::grpc::is_grpc(request.headers())
        .then(|| super::grpc::method_key(request.uri().path()))
        .flatten()
}

/// A request's route as [`Key::Route`] reads it: its template, else its gRPC method (from a
/// well-formed path), else none.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RouteKey<'a> {
    Template(&'a str),
    GrpcMethod(&'a str),
    Unmatched,
}

impl<'a> RouteKey<'a> {
    /// The route of `request`, its protocol read only when it has no template.
    #[inline]
    pub(crate) fn of_request<B>(request: &'a Request<B>) -> Self {
        match route::template(request.extensions()) {
            Some(template) => RouteKey::Template(template),
            None => grpc_method(request).map_or(RouteKey::Unmatched, RouteKey::GrpcMethod),
        }
    }

    /// The route of `request` (`grpc`: whether it is a gRPC request).
    #[inline]
    pub(crate) fn of<B>(request: &'a Request<B>, grpc: bool) -> Self {
        match route::template(request.extensions()) {
            Some(template) => RouteKey::Template(template),
            None if grpc => super::grpc::method_key(request.uri().path())
                .map_or(RouteKey::Unmatched, RouteKey::GrpcMethod),
            None => RouteKey::Unmatched,
        }
    }
}

/// The key of requests that have none (no route matched, no header, ...).
pub(crate) const DEFAULT_KEY: &str = "unmatched";
/// The instance that takes every key beyond the bound.
pub(crate) const OVERFLOW_KEY: &str = "overflow";
/// The most instances a keyed layer makes by default (and as many again for gRPC methods read
/// from request paths, which have a bound of their own).
pub const DEFAULT_MAX_KEYS: usize = 1024;

impl Key {
    /// The key of a request, borrowed from it where possible.
    pub(crate) fn of<'a, B>(&self, request: &'a Request<B>) -> Cow<'a, str> {
        let key = match self {
            // A raw gRPC path is request data: only a well-formed method name is a key (and
            // such keys have their own bound, see `Keyed::get_method`).
            Key::Route => route::template(request.extensions())
                .map(Cow::Borrowed)
                .or_else(|| grpc_method(request).map(Cow::Borrowed)),
            Key::Authority => request
                .uri()
                .authority()
                .map(|authority| Cow::Borrowed(authority.as_str()))
                .or_else(|| {
                    let host = request.headers().get(http::header::HOST)?;
                    host.to_str().ok().map(Cow::Borrowed)
                }),
            Key::Header(name) => request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(Cow::Borrowed),
            Key::Custom(key) => key(request.uri(), request.headers()).map(Cow::Owned),
        };
        key.unwrap_or(Cow::Borrowed(DEFAULT_KEY))
    }
}

/// A map read without a lock (a snapshot behind an `ArcSwap`) and written by copying it under a
/// lock: for maps read on every request and written once per new key.
pub(crate) struct CowMap<K, V> {
    map: ArcSwap<HashMap<K, V>>,
    insert: Mutex<()>,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        Self {
            map: ArcSwap::default(),
            insert: Mutex::new(()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> CowMap<K, V> {
    /// The value for `key`, if present.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.load().get(key).cloned()
    }

    /// The value for `key`; if absent, `make` is asked for one, given the map's size, and may
    /// decline (`None`, say at a bound). `owned` turns the key into the map's key type.
    pub(crate) fn get_or_insert_with<Q>(
        &self,
        key: &Q,
        owned: impl FnOnce() -> K,
        make: impl FnOnce(usize) -> Option<V>,
    ) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(value) = self.get(key) {
            return Some(value);
        }
        let _insert = self
            .insert
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.map.load_full();
        if let Some(value) = current.get(key) {
            return Some(value.clone());
        }
        let value = make(current.len())?;
        let mut next = HashMap::clone(&current);
        next.insert(owned(), value.clone());
        self.map.store(Arc::new(next));
        Some(value)
    }

    /// The map as it is now.
    pub(crate) fn snapshot(&self) -> Arc<HashMap<K, V>> {
        self.map.load_full()
    }
}

/// Instances by key, made on first use by `make`. Reads are lock-free (a snapshot of the map
/// behind an `ArcSwap`); a new key copies the map under a lock, once per key. Keys beyond the
/// bound share one `overflow` instance, so request-controlled keys cannot grow memory or metric
/// label sets without end.
pub(crate) struct Keyed<T> {
    key: Key,
    max_keys: usize,
    /// How many keys came from gRPC request paths: they have a bound of their own (`max_keys`
    /// again), so that junk method names can never take the place of a router's routes.
    /// Beyond it they share the `unmatched` instance.
    methods: std::sync::atomic::AtomicUsize,
    map: CowMap<Arc<str>, T>,
    overflow: OnceLock<T>,
    make: Box<dyn Fn(&str) -> T + Send + Sync>,
}

impl<T: Clone> Keyed<T> {
    pub(crate) fn new(
        key: Key,
        max_keys: usize,
        make: impl Fn(&str) -> T + Send + Sync + 'static,
    ) -> Self {
        Self {
            key,
            max_keys,
            methods: std::sync::atomic::AtomicUsize::new(0),
            map: CowMap::default(),
            overflow: OnceLock::new(),
            make: Box::new(make),
        }
    }

    /// The instance for a request.
    pub(crate) fn for_request<B>(&self, request: &Request<B>, cache: &KeyCache<T>) -> T {
        match self.key {
            Key::Route => self.for_route(RouteKey::of_request(request), request, cache),
            _ => self.get_cached(&self.key.of(request), cache),
        }
    }

    /// The instance for a request whose route the caller already read (the policy's fused
    /// stack reads it once for every part); a layer keyed by something else than the route
    /// reads its key from `request`.
    #[inline]
    pub(crate) fn for_route<B>(
        &self,
        route: RouteKey<'_>,
        request: &Request<B>,
        cache: &KeyCache<T>,
    ) -> T {
        if !matches!(self.key, Key::Route) {
            return self.for_request(request, cache);
        }
        match route {
            RouteKey::Template(template) => self.get_cached(template, cache),
            RouteKey::GrpcMethod(method) => {
                self.cached(method, cache, |method| self.get_method(method))
            }
            RouteKey::Unmatched => self.get_cached(DEFAULT_KEY, cache),
        }
    }

    /// The instance for `key`, looked up in `cache` first.
    pub(crate) fn get_cached(&self, key: &str, cache: &KeyCache<T>) -> T {
        self.cached(key, cache, |key| self.get(key))
    }

    fn cached(&self, key: &str, cache: &KeyCache<T>, get: impl FnOnce(&str) -> T) -> T {
        if let Some((cached, value)) = cache.get() {
            if **cached == *key {
                return value.clone();
            }
        }
        let value = get(key);
        // The first key a service sees stays cached; others go to the map.
        let _ = cache.set((Box::from(key), value.clone()));
        value
    }

    /// The instance for `key`, made on first use; beyond the bound, the overflow instance.
    pub(crate) fn get(&self, key: &str) -> T {
        let methods = &self.methods;
        let made = self.map.get_or_insert_with(
            key,
            || Arc::from(key),
            |len| {
                (len - methods.load(std::sync::atomic::Ordering::Relaxed) < self.max_keys)
                    .then(|| (self.make)(key))
            },
        );
        made.unwrap_or_else(|| {
            self.overflow
                .get_or_init(|| (self.make)(OVERFLOW_KEY))
                .clone()
        })
    }

    /// The instance for a gRPC method taken from a request's path (already checked to be
    /// well-formed): its own while the method bound allows, else the `unmatched` instance.
    pub(crate) fn get_method(&self, method: &str) -> T {
        let bound = self.max_keys;
        let methods = &self.methods;
        let made = self.map.get_or_insert_with(
            method,
            || Arc::from(method),
            |_| {
                // Under the map's insert lock: the count cannot race.
                let seen = methods.load(std::sync::atomic::Ordering::Relaxed);
                (seen < bound).then(|| {
                    methods.store(seen + 1, std::sync::atomic::Ordering::Relaxed);
                    (self.make)(method)
                })
            },
        );
        made.unwrap_or_else(|| self.get(DEFAULT_KEY))
    }

    /// Every instance made so far, by key (the overflow instance under `"overflow"`), sorted.
    pub(crate) fn all(&self) -> Vec<(String, T)> {
        let mut all: Vec<_> = self
            .map
            .snapshot()
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect();
        if let Some(overflow) = self.overflow.get() {
            all.push((OVERFLOW_KEY.to_owned(), overflow.clone()));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The instance a service used last, by key: a service built for one route sees one key, so
/// most calls find their instance here without hashing. Shared by the clones of one service.
pub(crate) type KeyCache<T> = OnceLock<(Box<str>, T)>;

/// Where a layer's services find their instance: one per key, or one shared by all.
pub(crate) enum Source<T> {
    Keyed(Arc<Keyed<T>>),
    Shared(T),
}

impl<T: Clone> Clone for Source<T> {
    fn clone(&self) -> Self {
        match self {
            Source::Keyed(keyed) => Source::Keyed(keyed.clone()),
            Source::Shared(shared) => Source::Shared(shared.clone()),
        }
    }
}

impl<T: Clone> Source<T> {
    /// The instance for a request.
    pub(crate) fn for_request<B>(&self, request: &Request<B>, cache: &KeyCache<T>) -> T {
        match self {
            Source::Keyed(keyed) => keyed.for_request(request, cache),
            Source::Shared(shared) => shared.clone(),
        }
    }

    /// The instance for a request whose route the caller already read.
    #[inline]
    pub(crate) fn for_route<B>(
        &self,
        route: RouteKey<'_>,
        request: &Request<B>,
        cache: &KeyCache<T>,
    ) -> T {
        match self {
            Source::Keyed(keyed) => keyed.for_route(route, request, cache),
            Source::Shared(shared) => shared.clone(),
        }
    }

    /// The instance for requests that have no key (not HTTP).
    pub(crate) fn default_instance(&self) -> T {
        match self {
            Source::Keyed(keyed) => keyed.get("default"),
            Source::Shared(shared) => shared.clone(),
        }
    }

    /// Every instance made so far, by key; a shared one under `shared_key`.
    pub(crate) fn all(&self, shared_key: impl FnOnce(&T) -> String) -> Vec<(String, T)> {
        match self {
            Source::Keyed(keyed) => keyed.all(),
            Source::Shared(shared) => vec![(shared_key(shared), shared.clone())],
        }
    }
}
