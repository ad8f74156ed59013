//! Every capability has the same public shape: `XLayer::new(config)` (one instance per route
//! where the layer keeps state), `XLayer::keyed(config, key, max)` (one per key, bounded), and
//! `XLayer::shared(handle)` (one instance, `XHandle::new(config)`, shared by every service and
//! layer given it); every service has `get_ref` / `get_mut` / `into_inner`; every config has a
//! public `validate`. A layer without state (timeout, fault) has only `new`.

use std::time::Duration;

use steadfast::breaker::{BreakerConfig, BreakerHandle, BreakerLayer};
use steadfast::core::keyed::{DEFAULT_MAX_KEYS, Key};
use steadfast::dependency::{DependencyConfig, DependencyHandle, DependencyLayer};
use steadfast::fault::{FaultConfig, FaultLayer};
use steadfast::observe::{DEFAULT_MAX_ROUTES, ObserveConfig, ObserveLayer};
use steadfast::retry::{RetryConfig, RetryHandle, RetryLayer};
use steadfast::shed::{ShedConfig, ShedHandle, ShedLayer};
use steadfast::timeout::{TimeoutConfig, TimeoutLayer};
use tower::Layer;

#[derive(Clone)]
struct Inner(u8);

/// `get_ref`, `get_mut` and `into_inner` on a service: the inner service, unchanged.
macro_rules! accessors {
    ($service:expr) => {{
        let mut service = $service;
        assert_eq!(service.get_ref().0, 7);
        service.get_mut().0 = 8;
        assert_eq!(service.into_inner().0, 8);
    }};
}

#[test]
fn stateful_layers_have_the_constructor_trio() {
    let breaker = BreakerConfig::new();
    let _per_route = BreakerLayer::new(breaker.clone()).unwrap();
    let _keyed = BreakerLayer::keyed(breaker.clone(), Key::Authority, 16).unwrap();
    let handle = BreakerHandle::new(breaker).unwrap();
    let shared = BreakerLayer::shared(handle.clone());
    accessors!(shared.layer(Inner(7)));

    let shed = ShedConfig::fixed(10);
    let _per_route = ShedLayer::new(shed.clone()).unwrap();
    let _keyed = ShedLayer::keyed(shed.clone(), Key::Authority, 16).unwrap();
    let handle = ShedHandle::new(shed).unwrap();
    let shared = ShedLayer::shared(handle.clone());
    accessors!(shared.layer(Inner(7)));
    // Two layers given one handle share its limiter.
    let _other = ShedLayer::shared(handle.clone());
    assert_eq!(handle.snapshot().limit, 10);

    let retry = RetryConfig::default();
    let _own = RetryLayer::new(retry.clone()).unwrap();
    let handle = RetryHandle::new(retry).unwrap();
    accessors!(RetryLayer::shared(handle).layer(Inner(7)));

    let dependency = DependencyConfig::new("inventory");
    let _own = DependencyLayer::new(dependency.clone()).unwrap();
    let handle = DependencyHandle::new(dependency).unwrap();
    accessors!(DependencyLayer::shared(handle).layer(Inner(7)));
}

#[test]
fn stateless_layers_take_their_config_in_new() {
    accessors!(
        TimeoutLayer::new(Duration::from_secs(1))
            .unwrap()
            .layer(Inner(7))
    );
    accessors!(
        TimeoutLayer::new(TimeoutConfig::new(Duration::from_secs(1)).cap(Duration::from_secs(2)))
            .unwrap()
            .layer(Inner(7))
    );
    accessors!(FaultLayer::new(FaultConfig::new()).unwrap().layer(Inner(7)));
    accessors!(ObserveLayer::new().layer(Inner(7)));
}

#[test]
fn bad_settings_are_refused_by_validate_and_by_the_constructors() {
    let zero = TimeoutConfig::new(Duration::ZERO);
    assert!(zero.validate().is_err());
    assert!(TimeoutLayer::new(zero).is_err());
    let breaker = BreakerConfig::new().failure_rate_threshold(150.0);
    assert!(breaker.validate().is_err());
    assert!(BreakerLayer::new(breaker.clone()).is_err());
    assert!(BreakerHandle::new(breaker).is_err());
    let shed = ShedConfig::fixed(0);
    assert!(shed.validate().is_err());
    assert!(ShedLayer::new(shed.clone()).is_err());
    assert!(ShedHandle::new(shed).is_err());
    assert!(BreakerLayer::keyed(BreakerConfig::new(), Key::Route, 0).is_err());
    assert!(ShedLayer::keyed(ShedConfig::new(), Key::Route, 0).is_err());
    let observe = ObserveConfig::new().max_routes(0);
    assert!(observe.validate().is_err());
    assert!(ObserveLayer::with_config(observe).is_err());
    assert!(ObserveLayer::with_config(ObserveConfig::new().max_routes(1)).is_ok());
}

#[test]
fn every_keyed_layer_has_the_same_default_bound() {
    assert_eq!(DEFAULT_MAX_ROUTES, DEFAULT_MAX_KEYS);
    assert_eq!(steadfast::breaker::DEFAULT_MAX_BREAKERS, DEFAULT_MAX_KEYS);
}
