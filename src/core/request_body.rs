//! The request body handed on to the inner service.
// Every kind but `Untouched` is made by the contract layer only.
#![cfg_attr(not(feature = "contract"), allow(dead_code))]

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Limited;
use pin_project_lite::pin_project;

use super::framing::FrameChecker;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// The request body a steadfast layer hands on to the inner service: the body as it came
    /// ([`RequestBody::new`]), or, behind the contract layer, the bytes already read and
    /// validated (handed on without another copy) or the body streaming under the size limit.
    ///
    /// It is the same type whichever features are on, so a handler written for
    /// `Request<RequestBody<B>>` under the policy layer compiles with and without `contract`.
    /// Its data are [`Bytes`] and its errors boxed, as Axum, hyper and tonic take them.
    ///
    /// Going past the contract's limit while streaming yields
    /// `http_body_util::LengthLimitError`, which Axum's body extractors answer with
    /// `413 Payload Too Large` (and the contract layer then answers its own `413` problem).
    pub struct RequestBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Untouched { #[pin] body: B },
        Limited { #[pin] body: Limited<B>, overflow: Option<Overflow> },
        Read { data: Option<Bytes>, trailers: Option<HeaderMap> },
        Replay {
            prefix: Option<Bytes>,
            // The error that ended the body while the layer read it: handed on after the
            // prefix, so that the handler sees a broken body, never a complete truncated one.
            error: Option<BoxError>,
            rest: Pin<Box<B>>,
            frames: Option<FrameChecker>,
        },
        Framed { #[pin] body: B, frames: FrameChecker },
    }
}

/// Set when a streamed request body went past the size limit: shared by the body the handler
/// reads and the response future that answers for it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overflow(Arc<AtomicBool>);

impl Overflow {
    fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn happened(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl<B> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Untouched { .. } => "untouched",
            Kind::Limited { .. } => "limited",
            Kind::Read { .. } => "read",
            Kind::Replay { .. } => "replay",
            Kind::Framed { .. } => "framed",
        };
        f.debug_struct("RequestBody").field("kind", &kind).finish()
    }
}

impl<B> RequestBody<B> {
    /// The body as it came, handed on untouched.
    pub fn new(body: B) -> Self {
        Self::untouched(body)
    }

    pub(crate) fn untouched(body: B) -> Self {
        Self {
            kind: Kind::Untouched { body },
        }
    }

    /// The body streaming under `limit`; going past it is an error for the reader and, if
    /// `overflow` is given, a mark the layer finds when the response comes back (and answers
    /// with its own `413` problem instead of whatever the handler made of the error).
    pub(crate) fn limited(body: B, limit: usize, overflow: Option<Overflow>) -> Self {
        Self {
            kind: Kind::Limited {
                body: Limited::new(body, limit),
                overflow,
            },
        }
    }

    pub(crate) fn read(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Read {
                data: (!data.is_empty()).then_some(data),
                trailers,
            },
        }
    }

    pub(crate) fn framed(body: B, frames: FrameChecker) -> Self {
        Self {
            kind: Kind::Framed { body, frames },
        }
    }

    pub(crate) fn replay(
        prefix: Bytes,
        error: Option<BoxError>,
        rest: Pin<Box<B>>,
        frames: Option<FrameChecker>,
    ) -> Self {
        Self {
            kind: Kind::Replay {
                prefix: (!prefix.is_empty()).then_some(prefix),
                error,
                rest,
                frames,
            },
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let to_bytes =
            |frame: Frame<B::Data>| frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
        match self.project().kind.project() {
            KindProj::Untouched { body } => match body.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(to_bytes(frame)))),
                Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            KindProj::Limited { body, overflow } => match body.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(to_bytes(frame)))),
                Poll::Ready(Some(Err(error))) => {
                    if let Some(overflow) = overflow
                        && error.is::<http_body_util::LengthLimitError>()
                    {
                        overflow.mark();
                    }
                    Poll::Ready(Some(Err(error)))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            KindProj::Read { data, trailers } => Poll::Ready(match data.take() {
                Some(data) => Some(Ok(Frame::data(data))),
                None => trailers.take().map(|t| Ok(Frame::trailers(t))),
            }),
            KindProj::Replay {
                prefix,
                error,
                rest,
                frames,
            } => {
                if let Some(data) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if let Some(error) = error.take() {
                    return Poll::Ready(Some(Err(error)));
                }
                poll_checked(rest.as_mut(), cx, frames.as_mut())
            }
            KindProj::Framed { body, frames } => poll_checked(body, cx, Some(frames)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Untouched { body } => body.is_end_stream(),
            Kind::Limited { body, .. } => body.is_end_stream(),
            Kind::Read { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Replay {
                prefix,
                error,
                rest,
                ..
            } => prefix.is_none() && error.is_none() && rest.is_end_stream(),
            Kind::Framed { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Untouched { body } => body.size_hint(),
            Kind::Limited { body, .. } => body.size_hint(),
            Kind::Read { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Framed { body, .. } => body.size_hint(),
            Kind::Replay { prefix, rest, .. } => {
                let read = prefix.as_ref().map_or(0, |d| d.len() as u64);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
        }
    }
}

/// The next frame of `body`, its data fed to the gRPC frame checker if there is one.
fn poll_checked<B>(
    body: Pin<&mut B>,
    cx: &mut Context<'_>,
    frames: Option<&mut FrameChecker>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match body.poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) => {
            let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
            if let (Some(checker), Some(data)) = (frames, frame.data_ref()) {
                checker.feed(data)?;
            }
            Poll::Ready(Some(Ok(frame)))
        }
        Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    }
}
