//! Strict mode: what to do with traffic that has no policy of its own.

/// What a [`PolicyLayer`](crate::policy::PolicyLayer) does with a request whose route has no
/// policy of its own (so it is served under the defaults), and what a dependency policy made
/// up for an undeclared dependency does with its calls
/// ([`PolicyFile::dependency_layer_or_default`](crate::policy::PolicyFile)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strict {
    /// Serve it under the defaults, silently (the default). An undeclared dependency is still
    /// marked so in the [reality map](crate::map).
    #[default]
    Off,
    /// Serve it under the defaults, and log a warning and count it
    /// (`steadfast.policy.unmatched`, `steadfast.dependency.undeclared`).
    Report,
    /// Refuse it as a misconfiguration, logged and counted: a request is answered `500` (gRPC
    /// `INTERNAL`), a dependency call fails with a
    /// [`Misconfigured`](crate::core::RejectionKind::Misconfigured) rejection and is not sent.
    /// For tests and staging, where every route and dependency must have been given a policy
    /// on purpose.
    Refuse,
}
