//! The point in time by which a request must be answered.

use std::cell::Cell;
use std::time::Duration;

use super::clock::{self, Instant};

thread_local! {
    /// The deadline of the request whose service is being called or polled on this thread.
    static CURRENT: Cell<Option<Deadline>> = const { Cell::new(None) };
}

/// The instant by which a request must be answered, shared by every layer.
///
/// [`TimeoutLayer`](crate::timeout::TimeoutLayer) computes the effective deadline of each request
/// (the earliest of the caller's, the service's own budget and the configured cap) and publishes
/// it as the request's **current deadline** while the inner service is called and its future
/// polled: [`Deadline::current`], [`Deadline::of`] and (with the `axum` feature) the `Deadline`
/// extractor read it there. Publishing costs no allocation (`http::Extensions` makes three to
/// hold a value on a request that has none). Outbound calls made while the handler runs —
/// through [`PropagateDeadline`](crate::timeout::PropagateDeadline) or a dependency policy —
/// pass on the time left without the handler copying anything. Work handed to another task
/// (`tokio::spawn`, tower's `Buffer`) does not see it — work that may outlive the request
/// should not be cut off by its deadline — unless it is handed on: read it first
/// (`Deadline::current()`) and put it in that work's requests' extensions. Other layers (the load shedder's queue, for one)
/// read it from here, never from the timeout module.
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

    /// The deadline of `request`: one put in its extensions (by hand, or a tonic request's),
    /// else the [current](Self::current) deadline on this thread.
    pub fn of<B>(request: &http::Request<B>) -> Option<Deadline> {
        Self::in_extensions(request.extensions())
    }

    /// The deadline in `extensions`, else the current one.
    pub(crate) fn in_extensions(extensions: &http::Extensions) -> Option<Deadline> {
        extensions.get::<Deadline>().copied().or_else(Self::current)
    }

    /// The deadline of the request being served on this thread: the one a steadfast timeout
    /// (or policy) published while it calls and polls the inner service — so a handler, its
    /// extractors and the outbound calls it makes all see it. `None` elsewhere (in work spawned
    /// onto another task, too).
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::core::Deadline;
    /// use steadfast::timeout::TimeoutLayer;
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let handler = tower::service_fn(|_: http::Request<()>| async {
    ///     let left = Deadline::current().map(Deadline::remaining);
    ///     assert_eq!(left, Some(Duration::from_millis(300)));
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// });
    /// let service = TimeoutLayer::new(Duration::from_millis(300)).unwrap().layer(handler);
    /// service.oneshot(http::Request::new(())).await.unwrap();
    /// assert_eq!(Deadline::current(), None); // only while the request is served
    /// # }
    /// ```
    #[inline]
    pub fn current() -> Option<Deadline> {
        CURRENT.with(Cell::get)
    }
}

/// Publishes `deadline` as the current one on this thread until the scope is dropped (panics
/// included); `None` leaves the current one as it is.
#[inline]
pub(crate) fn enter(deadline: Option<Deadline>) -> DeadlineScope {
    DeadlineScope {
        previous: deadline.map(|deadline| CURRENT.with(|current| current.replace(Some(deadline)))),
    }
}

/// The scope of [`enter`]; dropping it restores the deadline that was current before.
pub(crate) struct DeadlineScope {
    /// `Some(previous)` when a deadline was entered.
    previous: Option<Option<Deadline>>,
}

impl Drop for DeadlineScope {
    #[inline]
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            CURRENT.with(|current| current.set(previous));
        }
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
            f.write_str("no Deadline for this request: is steadfast's TimeoutLayer (or PolicyLayer) applied to this route?")
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
            Deadline::in_extensions(&parts.extensions).ok_or(MissingDeadline)
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for Deadline {
        type Rejection = Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(Deadline::in_extensions(&parts.extensions))
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
