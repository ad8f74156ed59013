//! The policy layer and its reload handle: policies compiled into per-route layer state.
//!
//! Long on purpose: compiling policies into per-route layer state and reloading them are one
//! piece (a reload recompiles against what is in force).

use crate::core::reload::Reloadable;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use http::Method;
use tower::Layer;

use super::service::PolicyService;
use super::spec::{Policies, Policy, PolicyError, RouteMatch};
use crate::breaker::{BreakerHandle, BreakerLayer};
use crate::core::Criticality;
use crate::core::Strict;
use crate::core::keyed::KeyCache;
use crate::core::map::RouteNode;
use crate::fault::FaultLayer;
use crate::observe::{ObserveCache, ObserveLayer};
use crate::shed::{ShedHandle, ShedLayer};
use crate::timeout::TimeoutConfig;

/// The layers one policy applies, with the state they keep between requests.
pub(crate) struct Entry {
    policy: Policy,
    pub(crate) timeout: Arc<TimeoutConfig>,
    /// `None`: the policy has no breaker, and its stack none at all.
    pub(crate) breaker: Option<BreakerLayer>,
    pub(crate) breaker_cache: Arc<KeyCache<BreakerHandle>>,
    /// `None`: the policy does not shed, and its stack has no shedder at all.
    pub(crate) shed: Option<ShedLayer>,
    pub(crate) shed_cache: Arc<KeyCache<ShedHandle>>,
    pub(crate) fault: FaultLayer,
    /// The observer's route cache for this policy's requests.
    pub(crate) observe_cache: ObserveCache,
    /// The reality map's route cache for this policy's requests.
    pub(crate) map_cache: Arc<KeyCache<&'static RouteNode>>,
    /// The policy's class and availability objective, for the reality map.
    pub(crate) criticality: Criticality,
    pub(crate) availability: f64,
}

impl Entry {
    /// The layers of `policy`. `shared_name` names the breaker and limiter of an explicit
    /// route (one instance); `None` means one instance per route (the defaults). State is kept
    /// from `old` for each layer whose settings did not change.
    fn build(policy: &Policy, shared_name: Option<&str>, old: Option<&Entry>) -> Entry {
        let (breaker, breaker_cache) = match old.filter(|old| old.policy.breaker == policy.breaker)
        {
            Some(old) => (old.breaker.clone(), old.breaker_cache.clone()),
            None => {
                let layer = match (&policy.breaker, shared_name) {
                    (None, _) => None,
                    (Some(config), None) => {
                        Some(BreakerLayer::new(config.clone()).expect("validated before compiling"))
                    }
                    (Some(config), Some(name)) => Some(BreakerLayer::shared(
                        BreakerHandle::new(config.clone().name(name))
                            .expect("validated before compiling"),
                    )),
                };
                (layer, Arc::default())
            }
        };
        let (shed, shed_cache) = match old.filter(|old| old.policy.shed == policy.shed) {
            Some(old) => (old.shed.clone(), old.shed_cache.clone()),
            None => {
                let layer = match (&policy.shed, shared_name) {
                    (None, _) => None,
                    (Some(config), None) => {
                        Some(ShedLayer::new(config.clone()).expect("validated before compiling"))
                    }
                    (Some(config), Some(name)) => Some(ShedLayer::shared(
                        ShedHandle::new(config.clone().name(name))
                            .expect("validated before compiling"),
                    )),
                };
                // Requests in flight on the old limiters count against the new limits.
                if let (Some(layer), Some(Some(old))) = (&layer, old.map(|old| &old.shed)) {
                    layer.take_over(old);
                }
                (layer, Arc::default())
            }
        };
        Entry {
            fault: FaultLayer::from_valid(&policy.fault),
            policy: policy.clone(),
            timeout: Arc::new(policy.timeout.clone()),
            breaker,
            breaker_cache,
            shed,
            shed_cache,
            observe_cache: Arc::default(),
            map_cache: Arc::default(),
            criticality: policy
                .shed
                .as_ref()
                .map_or(Criticality::Critical, |shed| shed.default_criticality),
            availability: policy.objective.availability,
        }
    }
}

/// One route's entries: for any method, and for particular methods.
#[derive(Default)]
pub(crate) struct RouteEntries {
    any: Option<Entry>,
    by_method: Vec<(Method, Entry)>,
}

/// The policies in force, compiled.
pub(crate) struct Compiled {
    pub(crate) policies: Policies,
    defaults: Entry,
    routes: HashMap<String, RouteEntries>,
    /// The templates the layer knows (its policies' and its contract's), to match a request's
    /// path against when no router has (the layer placed around the whole `Router`).
    matcher: Matcher,
    /// `None` when the layer has no contract: requests are handed on unchecked.
    #[cfg(feature = "contract")]
    pub(crate) contract: Option<crate::contract::ContractLayer>,
    /// What the contract layer was made from, for the next reload.
    #[cfg(feature = "contract")]
    contract_setup: Arc<ContractSetup>,
}

/// A path-to-template matcher over the templates a layer knows, in Axum's syntax (`{id}`,
/// `{*rest}`), with Axum's own matcher crate.
pub(crate) struct Matcher {
    router: Option<matchit::Router<&'static str>>,
}

impl Matcher {
    fn new<'a>(templates: impl Iterator<Item = &'a str>) -> Self {
        let mut router = matchit::Router::new();
        let mut any = false;
        for template in templates {
            if !template.starts_with('/') {
                continue;
            }
            match router.insert(template, crate::core::route::intern(template)) {
                Ok(()) => any = true,
                // The same template twice (a policy and the contract, two methods) is expected.
                Err(matchit::InsertError::Conflict { with }) if with == template => {}
                Err(error) => tracing::warn!(
                    target: "steadfast::policy",
                    template,
                    %error,
                    "template left out of the path matcher (it is still applied where a router \
                     names it as the matched route)"
                ),
            }
        }
        Self {
            router: any.then_some(router),
        }
    }

    /// The known template `path` matches.
    #[inline]
    pub(crate) fn find(&self, path: &str) -> Option<&'static str> {
        self.router
            .as_ref()?
            .at(path)
            .ok()
            .map(|matched| *matched.value)
    }
}

impl Compiled {
    /// The template the layer's own matcher finds for `path`.
    #[inline]
    pub(crate) fn match_path(&self, path: &str) -> Option<&'static str> {
        self.matcher.find(path)
    }

    /// The entry for a request, and whether it is a policy of the route's own.
    pub(crate) fn entry(&self, method: &Method, route: Option<&str>) -> (&Entry, bool) {
        let Some(entries) = route.and_then(|route| self.routes.get(route)) else {
            return (&self.defaults, false);
        };
        entries
            .by_method
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, entry)| entry)
            .or(entries.any.as_ref())
            .map_or((&self.defaults, false), |entry| (entry, true))
    }

    fn old_entry(&self, route: &RouteMatch) -> Option<&Entry> {
        let entries = self.routes.get(&route.template)?;
        match &route.method {
            None => entries.any.as_ref(),
            Some(method) => entries
                .by_method
                .iter()
                .find(|(m, _)| m == method)
                .map(|(_, entry)| entry),
        }
    }

    fn compile(
        policies: Policies,
        old: Option<&Compiled>,
        #[cfg(feature = "contract")] contract_setup: Arc<ContractSetup>,
    ) -> Result<Compiled, PolicyError> {
        policies.validate()?;
        let defaults = Entry::build(&policies.defaults, None, old.map(|old| &old.defaults));
        let mut routes: HashMap<String, RouteEntries> = HashMap::new();
        for (route, policy) in &policies.routes {
            let name = route.to_string();
            let previous = old.and_then(|old| old.old_entry(route));
            let entry = Entry::build(policy, Some(&name), previous);
            let entries = routes.entry(route.template.clone()).or_default();
            match &route.method {
                None => entries.any = Some(entry),
                Some(method) => entries.by_method.push((method.clone(), entry)),
            }
        }
        #[cfg(feature = "contract")]
        let contract = contract_setup.layer(&policies)?;
        let templates = policies
            .routes
            .iter()
            .map(|(route, _)| route.template.as_str());
        #[cfg(feature = "contract")]
        let templates = templates.chain(contract_setup.contract.routes());
        let matcher = Matcher::new(templates);
        Ok(Compiled {
            policies,
            defaults,
            routes,
            matcher,
            #[cfg(feature = "contract")]
            contract,
            #[cfg(feature = "contract")]
            contract_setup,
        })
    }
}

/// The contract every route is checked against, and its settings; per-route modes come from
/// the policies.
#[cfg(feature = "contract")]
#[derive(Clone)]
pub(crate) struct ContractSetup {
    contract: crate::contract::Contract,
    config: crate::contract::ContractConfig,
    // Read by file reloads only.
    #[cfg_attr(not(feature = "config"), allow(dead_code))]
    origin: ContractOrigin,
}

/// Where a policy layer's contract came from, which decides what a file reload may do to it.
#[cfg(feature = "contract")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "config"), allow(dead_code))]
pub(crate) enum ContractOrigin {
    /// No contract.
    None,
    /// [`PolicyLayer::with_contract`]: a reloaded file may not replace it.
    Code,
    /// A policy file's `[openapi]`: the next file's `[openapi]` replaces it (or removes it).
    File,
}

#[cfg(feature = "contract")]
impl ContractSetup {
    fn none() -> Self {
        use crate::contract::{Contract, ContractConfig, Mode};
        Self {
            contract: Contract::builder()
                .build()
                .expect("an empty contract compiles"),
            // Nothing documented, nothing checked: bodies pass untouched.
            config: ContractConfig::default()
                .requests(Mode::Off)
                .responses(Mode::Off),
            origin: ContractOrigin::None,
        }
    }

    /// The setup a reloaded file asks for, given the one in force: the file's `[openapi]`
    /// replaces a contract that came from a file (or adds one where there was none), its
    /// absence removes a file's contract; a contract set in code stays, and a file that names
    /// one of its own is refused.
    #[cfg(feature = "config")]
    fn reloaded(
        current: &Arc<ContractSetup>,
        from_file: Option<(crate::contract::Contract, crate::contract::ContractConfig)>,
    ) -> Result<Arc<ContractSetup>, PolicyError> {
        match (current.origin, from_file) {
            (ContractOrigin::Code, Some(_)) => Err(PolicyError::at(
                "openapi",
                "this layer's contract was set in code (PolicyLayer::with_contract); a reloaded \
                 file cannot replace it: remove [openapi] from the file, or build the layer from \
                 the file",
            )),
            (_, Some((contract, config))) => Ok(Arc::new(ContractSetup {
                contract,
                config,
                origin: ContractOrigin::File,
            })),
            (ContractOrigin::File, None) => Ok(Arc::new(ContractSetup::none())),
            (ContractOrigin::Code | ContractOrigin::None, None) => Ok(current.clone()),
        }
    }

    fn layer(
        &self,
        policies: &Policies,
    ) -> Result<Option<crate::contract::ContractLayer>, PolicyError> {
        if self.origin == ContractOrigin::None {
            return Ok(None);
        }
        let mut config = self.config.clone();
        let documented: Vec<&str> = self.contract.routes().collect();
        let modes = std::iter::once((None, &policies.defaults)).chain(
            policies
                .routes
                .iter()
                .map(|(route, policy)| (Some(route), policy)),
        );
        for (route, policy) in modes {
            let templates: Vec<&str> = match route {
                // The defaults apply to the documented routes without a policy of their own.
                None => documented
                    .iter()
                    .copied()
                    .filter(|t| !policies.routes.iter().any(|(r, _)| r.template == *t))
                    .collect(),
                Some(route) if documented.contains(&route.template.as_str()) => {
                    vec![route.template.as_str()]
                }
                Some(_) => Vec::new(),
            };
            if policy.contract != crate::contract::RouteModes::default() {
                for template in templates {
                    config = config.route(template, policy.contract);
                }
            }
        }
        crate::contract::ContractLayer::new(self.contract.clone(), config)
            .map(Some)
            .map_err(|error| PolicyError::at(format!("contract.{}", error.key()), error.reason()))
    }
}

/// Applies the whole stack of protections to every route, each with its policy, looked up per
/// request; see the [module docs](super) for the order and why.
#[derive(Clone)]
pub struct PolicyLayer {
    current: Arc<Reloadable<Compiled>>,
    observe: ObserveLayer,
    strict: Strict,
}

impl fmt::Debug for PolicyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyLayer")
            .field("policies", &self.current.load().policies)
            .finish_non_exhaustive()
    }
}

impl PolicyLayer {
    /// A layer applying `policies`.
    ///
    /// # Errors
    ///
    /// The first [`PolicyError`] of [`Policies::validate`].
    pub fn new(policies: Policies) -> Result<Self, PolicyError> {
        #[cfg(feature = "contract")]
        return Self::build(policies, ContractSetup::none());
        #[cfg(not(feature = "contract"))]
        return Self::build(policies);
    }

    /// A layer applying `policies`, checking requests and responses against `contract`
    /// (per-route modes from each policy's [`Policy::contract`]).
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] from the policies or the contract settings.
    #[cfg(feature = "contract")]
    pub fn with_contract(
        policies: Policies,
        contract: crate::contract::Contract,
        config: crate::contract::ContractConfig,
    ) -> Result<Self, PolicyError> {
        Self::with_contract_from(policies, contract, config, ContractOrigin::Code)
    }

    /// A layer whose contract comes from a policy file's `[openapi]`.
    #[cfg(all(feature = "contract", feature = "config"))]
    pub(crate) fn with_file_contract(
        policies: Policies,
        contract: crate::contract::Contract,
        config: crate::contract::ContractConfig,
    ) -> Result<Self, PolicyError> {
        Self::with_contract_from(policies, contract, config, ContractOrigin::File)
    }

    #[cfg(feature = "contract")]
    fn with_contract_from(
        policies: Policies,
        contract: crate::contract::Contract,
        config: crate::contract::ContractConfig,
        origin: ContractOrigin,
    ) -> Result<Self, PolicyError> {
        Self::build(
            policies,
            ContractSetup {
                contract,
                config,
                origin,
            },
        )
    }

    fn build(
        policies: Policies,
        #[cfg(feature = "contract")] contract: ContractSetup,
    ) -> Result<Self, PolicyError> {
        let compiled = Compiled::compile(
            policies,
            None,
            #[cfg(feature = "contract")]
            Arc::new(contract),
        )?;
        Ok(Self {
            current: Arc::new(Reloadable::new(compiled)),
            observe: ObserveLayer::new(),
            strict: Strict::Off,
        })
    }

    /// What to do with requests on routes without a policy of their own (default
    /// [`Strict::Off`]: serve them under the defaults).
    pub fn strict(mut self, strict: Strict) -> Self {
        self.strict = strict;
        self
    }

    /// A handle to replace the policies while the service runs.
    pub fn handle(&self) -> PolicyHandle {
        PolicyHandle {
            current: self.current.clone(),
        }
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyService::new(
            inner,
            self.current.clone(),
            self.observe.clone(),
            self.strict,
        )
    }
}

/// Replaces a [`PolicyLayer`]'s policies at run time (from a file watcher, a signal handler or
/// an admin endpoint: the trigger is yours).
///
/// New timeouts and limits apply to requests that start after the swap; requests in flight
/// finish under the policy they started with. A breaker or limiter whose own settings did not
/// change keeps its state (open or closed, the adaptive limit learned so far).
#[derive(Clone)]
pub struct PolicyHandle {
    current: Arc<Reloadable<Compiled>>,
}

impl fmt::Debug for PolicyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyHandle").finish_non_exhaustive()
    }
}

impl PolicyHandle {
    /// Swaps in `policies`; the contract (if any) stays as it is.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] if they are invalid; the policies in force stay.
    pub fn reload(&self, policies: Policies) -> Result<(), PolicyError> {
        let old = self.current.load();
        let compiled = Compiled::compile(
            policies,
            Some(&old),
            #[cfg(feature = "contract")]
            old.contract_setup.clone(),
        )?;
        self.current.store(compiled);
        tracing::info!(target: "steadfast::policy", "policies reloaded");
        Ok(())
    }

    /// Swaps in a whole policy file: its policies and its `[openapi]` section. A layer built
    /// from a file takes the new file's contract (the document read again, `max_body_bytes`,
    /// `undocumented`), or drops it if the section is gone; one without a contract gains it.
    /// A layer whose contract was set in code ([`PolicyLayer::with_contract`]) keeps it, and a
    /// file that brings its own `[openapi]` is refused rather than half applied.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] (`openapi` for the refusal); what is in force then stays.
    #[cfg(feature = "config")]
    pub fn reload_file(&self, file: super::PolicyFile) -> Result<(), PolicyError> {
        #[cfg(feature = "contract")]
        let (policies, contract) = file.into_parts();
        #[cfg(not(feature = "contract"))]
        let policies = file.into_policies();
        let old = self.current.load();
        let compiled = Compiled::compile(
            policies,
            Some(&old),
            #[cfg(feature = "contract")]
            ContractSetup::reloaded(&old.contract_setup, contract)?,
        )?;
        self.current.store(compiled);
        tracing::info!(target: "steadfast::policy", "policy file reloaded");
        Ok(())
    }

    /// Every limiter of the policies in force, by name (explicit routes under their template,
    /// the defaults' per-route limiters under the route they were made for): to watch what is in
    /// flight and queued, say in a health endpoint or a test that nothing leaked.
    pub fn limiters(&self) -> Vec<(String, ShedHandle)> {
        let compiled = self.current.load();
        let limiters = |entry: &Entry| {
            entry
                .shed
                .as_ref()
                .map(ShedLayer::limiters)
                .unwrap_or_default()
        };
        let mut all = limiters(&compiled.defaults);
        for entries in compiled.routes.values() {
            for entry in entries
                .any
                .iter()
                .chain(entries.by_method.iter().map(|(_, e)| e))
            {
                all.extend(limiters(entry));
            }
        }
        all
    }

    /// The policies in force.
    pub fn policies(&self) -> Policies {
        self.current.load().policies.clone()
    }
}
