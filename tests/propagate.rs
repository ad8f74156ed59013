//! Client side: the remaining deadline travels on outbound requests.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::poll;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use steadfast::core::{Deadline, Origin, Rejection, RejectionKind};
use steadfast::timeout::{DeadlineFormat, PropagateDeadlineLayer};
use tower::{Layer, Service, ServiceExt};

/// An upstream that records the headers it received and answers after `delay`.
#[derive(Clone, Default)]
struct Upstream {
    headers: Arc<Mutex<Option<HeaderMap>>>,
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    fn service(
        &self,
        delay: Duration,
    ) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static {
        let this = self.clone();
        tower::service_fn(move |request: Request<()>| {
            this.calls.fetch_add(1, Ordering::SeqCst);
            *this.headers.lock().unwrap() = Some(request.headers().clone());
            async move {
                tokio::time::sleep(delay).await;
                Ok(Response::new(()))
            }
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        let headers = self.headers.lock().unwrap();
        headers
            .as_ref()?
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    }
}

fn outbound(grpc: bool, deadline: Option<Deadline>) -> Request<()> {
    let mut builder = Request::post("http://upstream/pkg.Service/Method");
    if grpc {
        builder = builder.header("content-type", "application/grpc");
    }
    let mut request = builder.body(()).unwrap();
    if let Some(deadline) = deadline {
        request.extensions_mut().insert(deadline);
    }
    request
}

#[tokio::test(start_paused = true)]
async fn grpc_calls_carry_the_remaining_time_as_grpc_timeout() {
    let upstream = Upstream::default();
    let deadline = Deadline::after(Duration::from_millis(300));
    tokio::time::advance(Duration::from_millis(120)).await;
    let client = PropagateDeadlineLayer::new().layer(upstream.service(Duration::ZERO));
    client
        .oneshot(outbound(true, Some(deadline)))
        .await
        .unwrap();
    assert_eq!(upstream.header("grpc-timeout").as_deref(), Some("180000u"));
}

#[tokio::test(start_paused = true)]
async fn a_shorter_grpc_timeout_already_on_the_call_is_kept() {
    let upstream = Upstream::default();
    let client = PropagateDeadlineLayer::new().layer(upstream.service(Duration::ZERO));
    let mut request = outbound(true, Some(Deadline::after(Duration::from_secs(2))));
    request
        .headers_mut()
        .insert("grpc-timeout", "50m".parse().unwrap());
    client.clone().oneshot(request).await.unwrap();
    assert_eq!(
        upstream.header("grpc-timeout").as_deref(),
        Some("50000000n")
    );

    let mut request = outbound(true, Some(Deadline::after(Duration::from_millis(10))));
    request
        .headers_mut()
        .insert("grpc-timeout", "5S".parse().unwrap());
    client.oneshot(request).await.unwrap();
    assert_eq!(
        upstream.header("grpc-timeout").as_deref(),
        Some("10000000n")
    );
}

#[tokio::test(start_paused = true)]
async fn http_calls_carry_the_configured_header() {
    let upstream = Upstream::default();
    let header = HeaderName::from_static("x-request-timeout-ms");
    let client = PropagateDeadlineLayer::new()
        .http_header(header, DeadlineFormat::Millis)
        .layer(upstream.service(Duration::ZERO));
    client
        .oneshot(outbound(
            false,
            Some(Deadline::after(Duration::from_millis(250))),
        ))
        .await
        .unwrap();
    assert_eq!(
        upstream.header("x-request-timeout-ms").as_deref(),
        Some("250")
    );
    assert_eq!(upstream.header("grpc-timeout"), None);

    // Without a configured header, plain HTTP calls are not annotated.
    let client = PropagateDeadlineLayer::new().layer(upstream.service(Duration::ZERO));
    client
        .oneshot(outbound(
            false,
            Some(Deadline::after(Duration::from_millis(250))),
        ))
        .await
        .unwrap();
    assert_eq!(upstream.header("x-request-timeout-ms"), None);
}

#[tokio::test(start_paused = true)]
async fn calls_without_a_deadline_pass_untouched() {
    let upstream = Upstream::default();
    let client = PropagateDeadlineLayer::new().layer(upstream.service(Duration::from_secs(60)));
    let response = client.oneshot(outbound(true, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(upstream.header("grpc-timeout"), None);
}

#[tokio::test(start_paused = true)]
async fn no_time_left_fails_fast_without_sending() {
    let upstream = Upstream::default();
    let deadline = Deadline::after(Duration::from_millis(100));
    tokio::time::advance(Duration::from_millis(100)).await;

    let client = PropagateDeadlineLayer::new().layer(upstream.service(Duration::ZERO));
    let response = client
        .clone()
        .oneshot(outbound(true, Some(deadline)))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "4");
    let rejection = response.extensions().get::<Rejection>().unwrap();
    assert_eq!(
        (rejection.kind(), rejection.origin()),
        (RejectionKind::DeadlineExpired, Origin::PropagateDeadline)
    );

    let response = client
        .oneshot(outbound(false, Some(deadline)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);

    let typed = PropagateDeadlineLayer::new()
        .typed_errors()
        .layer(upstream.service(Duration::ZERO));
    let error = typed
        .oneshot(outbound(false, Some(deadline)))
        .await
        .unwrap_err();
    assert_eq!(
        error.rejection().unwrap().kind(),
        RejectionKind::DeadlineExpired
    );
    assert_eq!(
        upstream.calls.load(Ordering::SeqCst),
        0,
        "nothing may be sent"
    );
}

#[tokio::test(start_paused = true)]
async fn the_outbound_call_is_bounded_by_the_deadline() {
    let upstream = Upstream::default();
    let client = PropagateDeadlineLayer::new().layer(upstream.service(Duration::from_secs(5)));
    let call = client.oneshot(outbound(
        false,
        Some(Deadline::after(Duration::from_millis(80))),
    ));
    tokio::pin!(call);
    assert!(poll!(call.as_mut()).is_pending());
    tokio::time::advance(Duration::from_millis(80)).await;
    let response = call.await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        response.extensions().get::<Rejection>().unwrap().kind(),
        RejectionKind::Timeout
    );
}

#[tokio::test(start_paused = true)]
async fn enforcement_can_be_turned_off() {
    let upstream = Upstream::default();
    let client = PropagateDeadlineLayer::new()
        .enforce(false)
        .layer(upstream.service(Duration::from_secs(5)));
    let response = client
        .oneshot(outbound(
            true,
            Some(Deadline::after(Duration::from_millis(80))),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("grpc-status").is_none());
    assert_eq!(
        upstream.header("grpc-timeout").as_deref(),
        Some("80000000n")
    );
}

/// A handler served under a policy calls an upstream from its own future: the call carries the
/// time the request has left, without the handler copying the deadline. A task it spawns does
/// not see the deadline (it may outlive the request) unless handed it in the request.
#[tokio::test(start_paused = true)]
async fn calls_made_while_a_request_is_served_carry_its_deadline_without_copying() {
    use steadfast::core::RequestBody;
    use steadfast::policy::{Policies, Policy, PolicyLayer};

    let direct = Upstream::default();
    let handed = Upstream::default();
    let orphan = Upstream::default();
    let clients = [&direct, &handed, &orphan]
        .map(|upstream| PropagateDeadlineLayer::new().layer(upstream.service(Duration::ZERO)));
    let handler = tower::service_fn(move |_: Request<RequestBody<String>>| {
        let [direct, handed, orphan] = clients.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            direct.oneshot(outbound(true, None)).await.unwrap();
            let deadline = Deadline::current().expect("a deadline under a policy");
            tokio::spawn(handed.oneshot(outbound(true, Some(deadline))))
                .await
                .unwrap()
                .unwrap();
            tokio::spawn(orphan.oneshot(outbound(true, None)))
                .await
                .unwrap()
                .unwrap();
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    });
    let policies = Policies::new(Policy::new().timeout(Duration::from_millis(300)));
    let service = PolicyLayer::new(policies).unwrap().layer(handler);
    let response = service.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(direct.header("grpc-timeout").as_deref(), Some("200000u"));
    assert_eq!(handed.header("grpc-timeout").as_deref(), Some("200000u"));
    assert_eq!(orphan.header("grpc-timeout"), None);
    assert_eq!(
        Deadline::current(),
        None,
        "published only while the request is served"
    );
}
