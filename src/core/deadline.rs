//! The point in time by which a request must be answered.

use std::time::Duration;

use super::clock::{self, Instant};

/// The instant by which a request must be answered, shared by every layer.
///
/// [`TimeoutLayer`](crate::timeout::TimeoutLayer) computes the effective deadline of each request
/// (the earliest of the caller's, the service's own budget and the configured cap) and puts it in
/// the request extensions. Handlers read it to learn how much time is left, and copy it onto
/// outbound requests so that [`PropagateDeadline`](crate::timeout::PropagateDeadline) can pass it
/// on to the next service. Other layers (the load shedder's queue, for one) read it from here,
/// never from the timeout module.
///
/// ```
/// use std::time::Duration;
/// use steadfast::core::Deadline;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let deadline = Deadline::after(Duration::from_millis(300));
/// tokio::time::advance(Duration::from_millis(100)).await;
/// assert_eq!(deadline.remaining(), Duration::from_millis(200));
/// assert!(!deadline.is_expired());
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline at the given instant of tokio's clock.
    pub fn at(instant: Instant) -> Self {
        Self { at: instant }
    }

    /// A deadline `budget` from now. A budget too large to represent saturates far in the future.
    pub fn after(budget: Duration) -> Self {
        Self::at(clock::saturating_add(clock::now(), budget))
    }

    /// The instant of the deadline.
    pub fn instant(self) -> Instant {
        self.at
    }

    /// The time left before the deadline; zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.at.saturating_duration_since(clock::now())
    }

    /// Whether the deadline has been reached: no time is left.
    pub fn is_expired(self) -> bool {
        self.at <= clock::now()
    }

    /// The earlier of two deadlines.
    pub fn earliest(self, other: Deadline) -> Deadline {
        self.min(other)
    }

    /// The deadline carried in a request's extensions, if a layer put one there.
    pub fn of<B>(request: &http::Request<B>) -> Option<Deadline> {
        request.extensions().get::<Deadline>().copied()
    }
}

#[cfg(feature = "axum")]
mod axum_extract {
    use super::Deadline;
    use crate::core::{Origin, Rejection, RejectionKind};
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;
    use std::convert::Infallible;

    /// Extracting a [`Deadline`] failed because no steadfast timeout layer runs on the route.
    ///
    /// It answers 500 with a problem body: this is a wiring mistake in the service, not the
    /// caller's. Extract `Option<Deadline>` where the layer is optional.
    #[derive(Debug, Clone, Copy)]
    pub struct MissingDeadline;

    impl std::fmt::Display for MissingDeadline {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("no Deadline in the request extensions: is steadfast's TimeoutLayer applied to this route?")
        }
    }

    impl std::error::Error for MissingDeadline {}

    impl IntoResponse for MissingDeadline {
        fn into_response(self) -> Response {
            let rejection = Rejection::new(RejectionKind::Misconfigured, Origin::Timeout)
                .with_detail(self.to_string());
            rejection
                .to_http_response::<axum_core::body::Body>()
                .map(axum_core::body::Body::new)
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for Deadline {
        type Rejection = MissingDeadline;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<Deadline>()
                .copied()
                .ok_or(MissingDeadline)
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for Deadline {
        type Rejection = Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<Deadline>().copied())
        }
    }
}

#[cfg(feature = "axum")]
pub use axum_extract::MissingDeadline;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn remaining_counts_down_and_saturates_at_zero() {
        let deadline = Deadline::after(Duration::from_millis(50));
        assert_eq!(deadline.remaining(), Duration::from_millis(50));
        tokio::time::advance(Duration::from_millis(49)).await;
        assert!(!deadline.is_expired());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(deadline.is_expired());
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(deadline.remaining(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn huge_budget_saturates_instead_of_panicking() {
        let deadline = Deadline::after(Duration::MAX);
        assert!(deadline.remaining() > Duration::from_secs(86_400 * 365));
    }

    #[tokio::test(start_paused = true)]
    async fn earliest_picks_the_sooner() {
        let a = Deadline::after(Duration::from_millis(10));
        let b = Deadline::after(Duration::from_millis(20));
        assert_eq!(a.earliest(b), a);
        assert_eq!(b.earliest(a), a);
    }
}
