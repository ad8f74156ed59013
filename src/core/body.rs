//! The response body of a layer that may answer on its own.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's body, or the body of a rejection made by a steadfast layer.
    ///
    /// It has the inner body's data and error types, so it fits wherever the inner body did
    /// (Axum's `IntoResponse`, hyper, tonic).
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
        // Boxed: the rare case keeps the common ones small to move.
        Replay { replay: Box<Replay<B>> },
    }
}

#[derive(Debug)]
struct Replay<B> {
    prefix: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
    rest: Option<Pin<Box<B>>>,
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn new(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body of one chunk of bytes.
    pub fn full(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: Kind::Full { data },
        }
    }

    /// A body a layer has read (part of) to inspect it, handed on unchanged: the bytes read,
    /// then what is left of the inner body if the layer stopped early, else the trailers read.
    pub fn replay(
        prefix: Bytes,
        trailers: Option<http::HeaderMap>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        Self {
            kind: Kind::Replay {
                replay: Box::new(Replay {
                    prefix: (!prefix.is_empty()).then_some(prefix),
                    trailers,
                    rest,
                }),
            },
        }
    }

    /// A body with no data: the stream ends at once (a gRPC trailers-only response).
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full { data: None },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data.into()))))
            }
            KindProj::Replay { replay } => {
                if let Some(data) = replay.prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data.into()))));
                }
                match &mut replay.rest {
                    Some(rest) => rest.as_mut().poll_frame(cx),
                    None => Poll::Ready(replay.trailers.take().map(|t| Ok(Frame::trailers(t)))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
            Kind::Replay { replay } => {
                replay.prefix.is_none()
                    && replay
                        .rest
                        .as_ref()
                        .map_or(replay.trailers.is_none(), |rest| rest.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Kind::Replay { replay } => {
                let read = replay.prefix.as_ref().map_or(0, |data| data.len() as u64);
                let rest = replay
                    .rest
                    .as_ref()
                    .map_or(SizeHint::with_exact(0), Body::size_hint);
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn inner_body_passes_through() {
        let body = ResponseBody::new(Full::new(Bytes::from_static(b"hello")));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn full_and_empty_bodies() {
        let body = ResponseBody::<Full<Bytes>>::full(Bytes::from_static(b"{}"));
        assert!(!body.is_end_stream());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
        let empty = ResponseBody::<Full<Bytes>>::empty();
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }

    #[tokio::test]
    async fn replay_gives_back_what_was_read_then_the_rest() {
        let rest = Full::new(Bytes::from_static(b" world"));
        let body = ResponseBody::replay(Bytes::from_static(b"hello"), None, Some(Box::pin(rest)));
        assert_eq!(body.size_hint().exact(), Some(11));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello world");

        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let body =
            ResponseBody::<Full<Bytes>>::replay(Bytes::from_static(b"all"), Some(trailers), None);
        assert!(!body.is_end_stream());
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(collected.to_bytes(), "all");
    }
}

/// Told, exactly once, how a response body ended. A tracker dropped without being told (the
/// body was dropped before its end: the client went away) handles that in its own `Drop`.
pub trait OnEndOfStream {
    /// The body ended, with its trailers if it had any.
    fn on_end(self, trailers: Option<&http::HeaderMap>);

    /// The body failed before its end.
    fn on_error(self);
}

pin_project! {
    /// A response body that tells a tracker how it ended: for layers that judge a call by its
    /// trailers (gRPC's `grpc-status`) or hold a resource until the body is done.
    ///
    /// Without a tracker it passes the inner body through untouched.
    #[derive(Debug)]
    pub struct TrackedBody<B, T> {
        #[pin]
        inner: B,
        tracker: Option<T>,
    }
}

impl<B, T> TrackedBody<B, T> {
    /// Wraps `inner`, reporting to `tracker` if there is one.
    pub fn new(inner: B, tracker: Option<T>) -> Self {
        Self { inner, tracker }
    }
}

impl<B, T> Body for TrackedBody<B, T>
where
    B: Body,
    T: OnEndOfStream,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(tracker) = this.tracker.take() {
                        tracker.on_end(Some(trailers));
                    }
                }
            }
            Some(Err(_)) => {
                if let Some(tracker) = this.tracker.take() {
                    tracker.on_error();
                }
            }
            None => {
                if let Some(tracker) = this.tracker.take() {
                    tracker.on_end(None);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(all(test, not(loom)))]
mod tracked_tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl OnEndOfStream for Seen {
        fn on_end(self, trailers: Option<&http::HeaderMap>) {
            let status = trailers
                .and_then(|t| t.get("grpc-status"))
                .map(|v| v.to_str().unwrap().to_owned());
            self.0.lock().unwrap().push(format!("end {status:?}"));
        }

        fn on_error(self) {
            self.0.lock().unwrap().push("error".to_owned());
        }
    }

    #[tokio::test]
    async fn trailers_end_and_errors_are_reported_once() {
        let seen = Seen::default();
        let trailers = http::HeaderMap::from_iter([(
            http::HeaderName::from_static("grpc-status"),
            http::HeaderValue::from_static("0"),
        )]);
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"x"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = TrackedBody::new(
            StreamBody::new(futures::stream::iter(frames)),
            Some(seen.clone()),
        );
        body.collect().await.unwrap();

        let plain = TrackedBody::new(Full::new(Bytes::from_static(b"y")), Some(seen.clone()));
        plain.collect().await.unwrap();

        let failing: Vec<Result<Frame<Bytes>, std::io::Error>> =
            vec![Err(std::io::Error::other("reset"))];
        let broken = TrackedBody::new(
            StreamBody::new(futures::stream::iter(failing)),
            Some(seen.clone()),
        );
        assert!(broken.collect().await.is_err());

        assert_eq!(
            *seen.0.lock().unwrap(),
            ["end Some(\"0\")", "end None", "error"]
        );
    }
}
