//! The response future: read the request body if it must be checked, call the inner service,
//! read the response body if it must be checked.
//!
//! Long on purpose: one future's state machine (read the request body, call, read the response
//! body); its states share the readers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Service;

use super::config::Mode;
use super::grpc::{FirstFrame, FrameChecker, MessageCheck, first_frame};
use super::model::{BodyKind, Media};
use super::response::{broken_response, finish_response};
use super::service::{Next, OperationRef, Shared};
use super::violation::Collector;
use crate::core::grpc::Code;
use crate::core::labels;
use crate::core::{Overflow, RequestBody};
use crate::core::{Rejection, ResponseBody};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What to do with a request body once it is read.
pub(crate) enum ReadPlan {
    /// Read it as `kind` says and validate it against the operation's media type `media`.
    Body {
        operation: OperationRef,
        media: Arc<Media>,
        kind: BodyKind,
        enforce: bool,
    },
    /// Read the first gRPC message, check its size and run the method's hook on it.
    GrpcFirstMessage {
        path: String,
        check: Option<Arc<MessageCheck>>,
        max: usize,
    },
}

/// A body streamed to the service under the size limit: if the service's reading went past the
/// limit, its response (whatever it made of the error) gives way to the layer's `413` problem.
pub(crate) struct OverflowCheck {
    pub(crate) overflow: Overflow,
    pub(crate) route: Arc<str>,
    /// The request's method label.
    pub(crate) method: &'static str,
    pub(crate) shared: Arc<Shared>,
}

/// A response to check once the inner service answers.
pub(crate) struct ResponseCheck {
    pub(crate) operation: OperationRef,
    pub(crate) mode: Mode,
    pub(crate) shared: Arc<Shared>,
}

/// Bytes read from a body, kept as one chunk without copying while there is only one.
#[derive(Default)]
pub(crate) struct Reader {
    first: Option<Bytes>,
    joined: BytesMut,
    size: usize,
    trailers: Option<HeaderMap>,
    ended: bool,
}

enum Read {
    /// The body ended (or the plan has what it needs).
    Done,
    /// The next chunk would pass the limit; it is kept only if `keep_overflow`.
    Overflow,
}

impl Reader {
    fn push(&mut self, data: Bytes) {
        self.size += data.len();
        if self.first.is_none() && self.joined.is_empty() {
            self.first = Some(data);
            return;
        }
        if let Some(first) = self.first.take() {
            self.joined.extend_from_slice(&first);
        }
        self.joined.extend_from_slice(&data);
    }

    fn contiguous(&self) -> &[u8] {
        match &self.first {
            Some(first) => first,
            None => &self.joined,
        }
    }

    fn take(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => self.joined.split().freeze(),
        }
    }

    /// Reads until the body ends, `enough` says so, or the limit would be passed.
    fn poll_read<B>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
        limit: usize,
        keep_overflow: bool,
        enough: impl Fn(&[u8]) -> bool,
    ) -> Poll<Result<Read, B::Error>>
    where
        B: Body + ?Sized,
    {
        loop {
            if enough(self.contiguous()) {
                return Poll::Ready(Ok(Read::Done));
            }
            match ready!(body.as_mut().poll_frame(cx)) {
                None => {
                    self.ended = true;
                    return Poll::Ready(Ok(Read::Done));
                }
                Some(Err(error)) => return Poll::Ready(Err(error)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        let data = data.copy_to_bytes(data.remaining());
                        if self.size.saturating_add(data.len()) > limit {
                            if keep_overflow {
                                self.push(data);
                            }
                            return Poll::Ready(Ok(Read::Overflow));
                        }
                        self.push(data);
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.trailers = Some(trailers);
                        }
                    }
                },
            }
        }
    }
}

pin_project! {
    /// The future of [`ContractService`](super::ContractService).
    pub struct ResponseFuture<S, B, RB>
    where
        S: Service<Request<RequestBody<B>>>,
    {
        #[pin]
        state: State<S, S::Future, B, RB>,
        response_check: Option<ResponseCheck>,
        overflow: Option<OverflowCheck>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, B, RB> {
        Rejected { response: Option<Response<ResponseBody<RB>>> },
        ReadRequest {
            service: Option<S>,
            parts: Option<http::request::Parts>,
            body: Option<Pin<Box<B>>>,
            reader: Reader,
            limit: usize,
            shared: Arc<Shared>,
            plan: ReadPlan,
        },
        Called { #[pin] future: F },
        ReadResponse {
            parts: Option<http::response::Parts>,
            body: Option<Pin<Box<RB>>>,
            reader: Reader,
            media: Arc<Media>,
            violations: Option<Collector>,
        },
        Done,
    }
}

impl<S, B, RB> fmt::Debug for ResponseFuture<S, B, RB>
where
    S: Service<Request<RequestBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, RB> ResponseFuture<S, B, RB>
where
    S: Service<Request<RequestBody<B>>, Response = Response<RB>>,
{
    pub(crate) fn rejected(response: Response<ResponseBody<RB>>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
            response_check: None,
            overflow: None,
        }
    }

    pub(crate) fn call(
        mut service: S,
        request: Request<RequestBody<B>>,
        response_check: Option<ResponseCheck>,
        overflow: Option<OverflowCheck>,
    ) -> Self {
        Self {
            state: State::Called {
                future: service.call(request),
            },
            response_check,
            overflow,
        }
    }

    pub(crate) fn read_request(
        service: S,
        parts: http::request::Parts,
        body: B,
        shared: Arc<Shared>,
        plan: ReadPlan,
        limit: usize,
        response_check: Option<ResponseCheck>,
    ) -> Self {
        Self {
            state: State::ReadRequest {
                service: Some(service),
                parts: Some(parts),
                body: Some(Box::pin(body)),
                reader: Reader::default(),
                limit,
                shared,
                plan,
            },
            response_check,
            overflow: None,
        }
    }
}

fn after_request_read<B, RB>(
    shared: &Shared,
    plan: &ReadPlan,
    outcome: Result<Read, BoxError>,
    parts: http::request::Parts,
    body: Pin<Box<B>>,
    reader: &mut Reader,
) -> Next<B, RB>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match plan {
        ReadPlan::Body {
            operation,
            media,
            kind,
            enforce,
        } => match outcome {
            Err(_) => {
                let mut violations = Collector::new(shared.config.max_violations);
                violations.push("/body", "syntax", "the body could not be read to its end");
                Next::Answer(shared.request_rejection(
                    operation,
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read.",
                    violations,
                ))
            }
            Ok(Read::Overflow) => {
                if *enforce {
                    return Next::Answer(
                        shared.too_large(&operation.template, labels::method(&operation.method)),
                    );
                }
                let max = shared.config.max_body_bytes;
                let mut violations = Collector::new(shared.config.max_violations);
                violations.push(
                    "/body",
                    "maxBodySize",
                    format!("the body is larger than the {max} bytes allowed"),
                );
                shared.report_request(operation, &violations);
                let prefix = reader.take();
                Next::Call(Request::from_parts(
                    parts,
                    RequestBody::replay(prefix, None, body, None),
                ))
            }
            Ok(Read::Done) => {
                let data = reader.take();
                let trailers = reader.trailers.take();
                shared.finish_body_request(operation, media, *kind, *enforce, parts, data, trailers)
            }
        },
        ReadPlan::GrpcFirstMessage { path, check, max } => {
            let checked = |at: &str, code: Code, keyword: &'static str, message: String| {
                let mut violations = Collector::new(shared.config.max_violations);
                violations.push(at, keyword, message);
                Next::Answer(shared.grpc_rejection(path, code, violations))
            };
            // Let the inner service see the broken stream and answer it as it would.
            let (outcome, error) = match outcome {
                Ok(read) => (Ok(read), None),
                Err(error) => (Err(()), Some(error)),
            };
            match outcome {
                Err(()) | Ok(Read::Done | Read::Overflow) => {
                    match first_frame(reader.contiguous(), *max) {
                        FirstFrame::TooLarge(too_large) => {
                            return checked(
                                "/message",
                                Code::ResourceExhausted,
                                "maxMessageSize",
                                too_large.to_string(),
                            );
                        }
                        FirstFrame::Complete {
                            message,
                            compressed: false,
                        } => {
                            if let Some(check) = check {
                                if let Err(reason) = check(message) {
                                    return checked(
                                        "/message",
                                        Code::InvalidArgument,
                                        "message",
                                        reason,
                                    );
                                }
                            }
                        }
                        FirstFrame::Complete { .. } | FirstFrame::Incomplete => {}
                    }
                    let prefix = reader.take();
                    let mut frames = FrameChecker::new(*max);
                    // The prefix may hold more frames than the first: check them all now.
                    if let Err(too_large) = frames.feed(&prefix) {
                        return checked(
                            "/message",
                            Code::ResourceExhausted,
                            "maxMessageSize",
                            too_large.to_string(),
                        );
                    }
                    Next::Call(Request::from_parts(
                        parts,
                        RequestBody::replay(prefix, error, body, Some(frames)),
                    ))
                }
            }
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B, RB>
where
    S: Service<Request<RequestBody<B>>, Response = Response<RB>>,
    B: Body,
    B::Error: Into<BoxError>,
    RB: Body,
    RB::Data: From<Bytes>,
{
    type Output = Result<Response<ResponseBody<RB>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Rejected { response } => {
                    let response = response.take().expect("polled after completion");
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(response));
                }
                StateProj::ReadRequest {
                    service,
                    parts,
                    body,
                    reader,
                    limit,
                    shared,
                    plan,
                } => {
                    let read_body = body.as_mut().expect("the body is read once");
                    let (keep_overflow, grpc_max) = match plan {
                        ReadPlan::Body { enforce, .. } => (!*enforce, None),
                        ReadPlan::GrpcFirstMessage { max, .. } => (true, Some(*max)),
                    };
                    let enough = |read: &[u8]| {
                        grpc_max.is_some_and(|max| {
                            !matches!(first_frame(read, max), FirstFrame::Incomplete)
                        })
                    };
                    let outcome = ready!(reader.poll_read(
                        read_body.as_mut(),
                        cx,
                        *limit,
                        keep_overflow,
                        enough
                    ))
                    .map_err(Into::into);
                    let parts = parts.take().expect("the head is used once");
                    let body = body.take().expect("the body is used once");
                    let next = after_request_read(shared, plan, outcome, parts, body, reader);
                    match next {
                        Next::Call(request) => {
                            let mut service = service.take().expect("the service is called once");
                            let future = service.call(request);
                            this.state.set(State::Called { future });
                        }
                        Next::Answer(response) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                StateProj::Called { future } => {
                    let response = ready!(future.poll(cx));
                    // The handler read past the limit: whatever it answered (Axum's plain 413,
                    // a 400, an error), the caller gets the layer's problem.
                    if let Some(check) = this.overflow.as_ref()
                        && check.overflow.happened()
                    {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(check.shared.too_large(&check.route, check.method)));
                    }
                    let response = response?;
                    // Another steadfast layer's rejection (an inner shedder, say) is not the
                    // handler's answer: the contract does not judge it.
                    let own_rejection = response.extensions().get::<Rejection>().is_some();
                    let check = this.response_check.as_ref().filter(|_| !own_rejection);
                    let Some(check) = check else {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(response.map(ResponseBody::new)));
                    };
                    let mut violations = Collector::new(check.shared.config.max_violations);
                    let body_is_empty = response.body().is_end_stream()
                        || response.body().size_hint().exact() == Some(0);
                    let media = check.shared.check_response_head(
                        &check.operation,
                        response.status(),
                        response.headers(),
                        body_is_empty,
                        &mut violations,
                    );
                    match media {
                        Some(media) => {
                            let (parts, body) = response.into_parts();
                            this.state.set(State::ReadResponse {
                                parts: Some(parts),
                                body: Some(Box::pin(body)),
                                reader: Reader::default(),
                                media,
                                violations: Some(violations),
                            });
                        }
                        None => {
                            let response = response.map(ResponseBody::new);
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(finish_response(check, violations, response)));
                        }
                    }
                }
                StateProj::ReadResponse {
                    parts,
                    body,
                    reader,
                    media,
                    violations,
                } => {
                    let check = this
                        .response_check
                        .as_ref()
                        .expect("only checked responses are read");
                    let limit = check.shared.config.max_response_body_bytes;
                    let read_body = body.as_mut().expect("the body is read once");
                    let outcome =
                        ready!(reader.poll_read(read_body.as_mut(), cx, limit, true, |_| false));
                    let parts = parts.take().expect("the head is used once");
                    let body = body.take().expect("the body is used once");
                    let mut violations = violations.take().expect("violations are taken once");
                    let response = match outcome {
                        Ok(Read::Done) => {
                            let data = reader.take();
                            media.check_json(&data, &mut violations);
                            let trailers = reader.trailers.take();
                            Response::from_parts(parts, ResponseBody::replay(data, trailers, None))
                        }
                        // The body failed before its end, and its head is not sent yet: the
                        // caller gets a 500 (counted as the service's failure), never the bytes
                        // read so far dressed as a complete response.
                        Err(_) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(broken_response(check, parts.status)));
                        }
                        // Too large to check: the caller gets it as it is.
                        Ok(Read::Overflow) => {
                            tracing::debug!(
                                target: "steadfast::contract",
                                route = &*check.operation.template,
                                "response body not checked: larger than max_response_body_bytes"
                            );
                            let prefix = reader.take();
                            Response::from_parts(
                                parts,
                                ResponseBody::replay(prefix, None, Some(body)),
                            )
                        }
                    };
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(finish_response(check, violations, response)));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}
