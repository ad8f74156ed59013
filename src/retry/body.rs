//! The request body of an attempt: the original stream, or bytes kept to send again.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The request body the client behind a [`Retry`](super::Retry) is given for each attempt.
    ///
    /// A body that fit in [`RetryConfig::max_replay_bytes`](super::RetryConfig::max_replay_bytes)
    /// was read before the first attempt and is sent again, without a copy, on every retry
    /// (trailers included). Any other body is streamed through once (with the part already read
    /// in front), and its call is not retried. Its data are [`Bytes`].
    pub struct ReplayBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        Stream { #[pin] body: B },
        // The trailers boxed: rare, and a request body is moved with every request.
        Full { data: Option<Bytes>, trailers: Option<Box<HeaderMap>> },
        Prefixed { prefix: Option<Bytes>, #[pin] rest: B },
        // The body broke while it was read: what was read, then its error.
        Failed { prefix: Option<Bytes>, error: Option<B::Error> },
    }
}

impl<B: Body> ReplayBody<B> {
    /// The body streamed through once, as it came: what a call that is not retried sends.
    pub fn new(body: B) -> Self {
        Self::stream(body)
    }

    /// The body streamed through once, as it came.
    pub(crate) fn stream(body: B) -> Self {
        Self {
            kind: Kind::Stream { body },
        }
    }

    /// A body read whole: the bytes (empty for none) and the trailers.
    pub(crate) fn full(data: Bytes, trailers: Option<Box<HeaderMap>>) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
                trailers,
            },
        }
    }

    /// What was read before the body failed, then its error.
    pub(crate) fn failed(prefix: Bytes, error: B::Error) -> Self {
        Self {
            kind: Kind::Failed {
                prefix: (!prefix.is_empty()).then_some(prefix),
                error: Some(error),
            },
        }
    }

    /// A copy of a body kept whole (a second attempt of the same request), or `None` for a
    /// body that streams through once.
    pub fn try_clone(&self) -> Option<Self> {
        match &self.kind {
            Kind::Full { data, trailers } => Some(Self {
                kind: Kind::Full {
                    data: data.clone(),
                    trailers: trailers.clone(),
                },
            }),
            _ => None,
        }
    }

    /// The part read before the body turned out too large, then the rest of it.
    pub(crate) fn prefixed(prefix: Bytes, rest: B) -> Self {
        Self {
            kind: Kind::Prefixed {
                prefix: (!prefix.is_empty()).then_some(prefix),
                rest,
            },
        }
    }
}

impl<B: Body> std::fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Stream { .. } => "stream",
            Kind::Full { .. } => "replayable",
            Kind::Prefixed { .. } => "prefixed stream",
            Kind::Failed { .. } => "failed",
        };
        f.debug_tuple("ReplayBody").field(&kind).finish()
    }
}

fn to_bytes<D: Buf>(mut data: D) -> Bytes {
    data.copy_to_bytes(data.remaining())
}

/// A frame of a body of any data type, its data as [`Bytes`].
type BytesFrame<E> = Poll<Option<Result<Frame<Bytes>, E>>>;

fn poll_bytes<B: Body>(body: Pin<&mut B>, cx: &mut Context<'_>) -> BytesFrame<B::Error> {
    body.poll_frame(cx)
        .map(|frame| frame.map(|frame| frame.map(|frame| frame.map_data(to_bytes))))
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Stream { body } => poll_bytes(body, cx),
            KindProj::Full { data, trailers } => Poll::Ready(match data.take() {
                Some(data) => Some(Ok(Frame::data(data))),
                None => trailers
                    .take()
                    .map(|trailers| Ok(Frame::trailers(*trailers))),
            }),
            KindProj::Prefixed { prefix, rest } => match prefix.take() {
                Some(prefix) => Poll::Ready(Some(Ok(Frame::data(prefix)))),
                None => poll_bytes(rest, cx),
            },
            KindProj::Failed { prefix, error } => Poll::Ready(match prefix.take() {
                Some(prefix) => Some(Ok(Frame::data(prefix))),
                None => error.take().map(Err),
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stream { body } => body.is_end_stream(),
            Kind::Full { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Prefixed { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
            Kind::Failed { prefix, error } => prefix.is_none() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stream { body } => body.size_hint(),
            Kind::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Kind::Prefixed { prefix, rest } => {
                let extra = prefix.as_ref().map_or(0, |prefix| prefix.len() as u64);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(extra));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(extra));
                }
                hint
            }
            Kind::Failed { .. } => SizeHint::new(),
        }
    }
}
