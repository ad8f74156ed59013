//! Fault injection for drills: delays, aborts, percentages, the trigger header, labels, and
//! the policy keys.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::DebuggingRecorder;
use steadfast::fault::{FaultConfig, FaultLayer, InjectedFault};
use tower::{Layer, Service, ServiceExt};

fn ok_service()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    tower::service_fn(|_request: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"served"))))
    })
}

#[tokio::test(start_paused = true)]
async fn nothing_is_injected_unless_configured() {
    let service = FaultLayer::new(FaultConfig::new())
        .unwrap()
        .layer(ok_service());
    let started = tokio::time::Instant::now();
    let response = service.oneshot(Request::new(())).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.extensions().get::<InjectedFault>().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_delay_is_added_before_the_request_is_served() {
    let config = FaultConfig::new().delay(Duration::from_millis(250), 100.0);
    let service = FaultLayer::new(config).unwrap().layer(ok_service());
    let started = tokio::time::Instant::now();
    let response = service.oneshot(Request::new(())).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.extensions().get::<InjectedFault>(),
        Some(&InjectedFault {
            delay: Some(Duration::from_millis(250)),
            abort: None
        })
    );
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "served"
    );
}

#[tokio::test]
async fn an_abort_answers_in_the_services_place_in_its_protocol() {
    let config = FaultConfig::new().abort(StatusCode::SERVICE_UNAVAILABLE, 100.0);
    let layer = FaultLayer::new(config).unwrap();
    let called = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = {
        let called = called.clone();
        tower::service_fn(move |_request: Request<()>| {
            called.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
        })
    };
    let service = layer.layer(counting);
    let response = service.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["x-steadfast-fault"], "abort");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 503);

    let grpc = Request::post("/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let response = service.oneshot(grpc).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "14", "UNAVAILABLE");
    assert_eq!(
        called.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "never served"
    );
}

#[tokio::test]
async fn percentages_choose_that_share_of_requests() {
    let config = FaultConfig::new().abort(StatusCode::INTERNAL_SERVER_ERROR, 30.0);
    let service = FaultLayer::new(config).unwrap().layer(ok_service());
    let mut aborted = 0;
    for _ in 0..10_000 {
        let response = service.clone().oneshot(Request::new(())).await.unwrap();
        aborted += usize::from(response.status() == StatusCode::INTERNAL_SERVER_ERROR);
    }
    // 30% of 10,000: the standard deviation is about 46.
    assert!((2_750..=3_250).contains(&aborted), "{aborted} aborted");

    let none = FaultConfig::new().abort(StatusCode::INTERNAL_SERVER_ERROR, 0.0);
    let service = FaultLayer::new(none).unwrap().layer(ok_service());
    for _ in 0..1_000 {
        let response = service.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_trigger_header_limits_faults_to_the_requests_that_carry_it() {
    let config = FaultConfig::new()
        .abort(StatusCode::BAD_GATEWAY, 100.0)
        .header(HeaderName::from_static("x-drill"));
    let service = FaultLayer::new(config).unwrap().layer(ok_service());
    let plain = service.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    let drill = Request::get("/").header("x-drill", "1").body(()).unwrap();
    assert_eq!(service.oneshot(drill).await.unwrap().status(), 502);
}

#[tokio::test]
async fn injected_faults_are_counted_as_such() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let config = FaultConfig::new()
        .delay(Duration::from_millis(1), 100.0)
        .abort(StatusCode::SERVICE_UNAVAILABLE, 100.0);
    let service = FaultLayer::new(config).unwrap().layer(ok_service());
    for _ in 0..3 {
        service.clone().oneshot(Request::new(())).await.unwrap();
    }
    let mut counted: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "steadfast.fault.injected")
        .map(|(key, _, _, value)| {
            let fault = key
                .key()
                .labels()
                .find(|label| label.key() == "fault")
                .unwrap()
                .value()
                .to_owned();
            let metrics_util::debugging::DebugValue::Counter(count) = value else {
                panic!("a counter")
            };
            (fault, count)
        })
        .collect();
    counted.sort();
    assert_eq!(counted, [("abort".to_owned(), 3), ("delay".to_owned(), 3)]);
}

#[test]
fn bad_settings_are_errors_that_name_the_setting() {
    for (config, key) in [
        (
            FaultConfig::new().delay(Duration::from_secs(1), 101.0),
            "delay_percent",
        ),
        (
            FaultConfig::new().delay(Duration::from_secs(1), -1.0),
            "delay_percent",
        ),
        (
            FaultConfig::new().delay(Duration::from_secs(1), f64::NAN),
            "delay_percent",
        ),
        (FaultConfig::new().delay(Duration::MAX, 1.0), "delay"),
        (
            FaultConfig::new().abort(StatusCode::OK, 1.0),
            "abort_status",
        ),
        (
            FaultConfig::new().abort(StatusCode::SERVICE_UNAVAILABLE, 200.0),
            "abort_percent",
        ),
    ] {
        let error = FaultLayer::new(config).expect_err("refused");
        assert_eq!(error.key(), key, "{error}");
    }
}

#[cfg(all(feature = "config", feature = "axum"))]
mod policy {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use steadfast::policy::PolicyFile;

    #[test]
    fn the_policy_keys_are_read_and_checked() {
        let file = PolicyFile::parse(
            "[routes.\"/a\".fault]\ndelay = \"100ms\"\ndelay_percent = 5\nabort_status = 503\nabort_percent = 1\nheader = \"x-drill\"\n",
        )
        .unwrap();
        assert!(file.into_layer().is_ok());
        for (text, key) in [
            (
                "[defaults.fault]\nabort_status = 200\n",
                "fault.abort_status",
            ),
            (
                "[defaults.fault]\nabort_status = 1000\n",
                "fault.abort_status",
            ),
            (
                "[defaults.fault]\nabort_percent = 5\n",
                "fault.abort_percent",
            ),
            (
                "[defaults.fault]\ndelay = \"1s\"\ndelay_percent = 150\n",
                "fault.delay_percent",
            ),
            (
                "[defaults.fault]\nheader = \"bad header\"\n",
                "fault.header",
            ),
            ("[defaults.fault]\nunknown = 1\n", "unknown"),
        ] {
            let error = PolicyFile::parse(text).expect_err("refused");
            assert!(error.to_string().contains(key), "{text}: {error}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn in_the_policy_stack_an_injected_delay_meets_the_timeout() {
        let file = PolicyFile::parse(
            "[routes.\"/slow\"]\ntimeout = \"100ms\"\n[routes.\"/slow\".fault]\ndelay = \"1s\"\n",
        )
        .unwrap();
        let app = Router::new()
            .route("/slow", get(|| async { "ok" }))
            .route("/fast", get(|| async { "ok" }))
            .layer(file.into_layer().unwrap());
        let slow = Request::get("/slow").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(slow).await.unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let fast = Request::get("/fast").body(Body::empty()).unwrap();
        assert_eq!(app.oneshot(fast).await.unwrap().status(), StatusCode::OK);
    }
}
