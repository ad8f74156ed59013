//! Contract validation: the cost of the layer against the raw work it must do anyway (parse a
//! 1 KiB JSON body with serde_json and validate it with the same compiled schema), and the
//! start-up time and memory of a large generated OpenAPI document.
//! Run: `cargo bench --bench contract --features contract`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use serde_json::{Value, json};
use steadfast::contract::{Contract, ContractBody, ContractConfig, ContractLayer, Mode};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Counts live heap bytes, for the memory a compiled contract holds.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is kept on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout is passed on as it came.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "customer", "items"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "pattern": "^ord-[0-9]+$"},
            "customer": {
                "type": "object",
                "required": ["name", "email"],
                "properties": {
                    "name": {"type": "string", "maxLength": 80},
                    "email": {"type": "string", "format": "email"}
                }
            },
            "items": {
                "type": "array",
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["sku", "quantity", "price"],
                    "properties": {
                        "sku": {"type": "string", "minLength": 3},
                        "quantity": {"type": "integer", "minimum": 1},
                        "price": {"type": "number", "minimum": 0},
                        "note": {"type": ["string", "null"]}
                    }
                }
            }
        }
    })
}

/// A valid order of about 1 KiB.
fn order_body() -> Bytes {
    let items: Vec<Value> = (0..16)
        .map(|i| json!({"sku": format!("sku-{i:04}"), "quantity": i + 1, "price": 9.5 + f64::from(i), "note": null}))
        .collect();
    let body = json!({
        "id": "ord-123456",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "items": items
    })
    .to_string();
    assert!((900..1200).contains(&body.len()), "{} bytes", body.len());
    Bytes::from(body)
}

fn document(schema: &Value) -> String {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "orders", "version": "1"},
        "paths": {
            "/orders": {
                "post": {
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}},
                    "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}}}
                }
            }
        },
        "components": {"schemas": {"Order": schema}}
    })
    .to_string()
}

fn layered(
    response_mode: Mode,
    echo: bool,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<steadfast::core::ResponseBody<Full<Bytes>>>,
    Error = Infallible,
> + Clone {
    let contract = Contract::from_openapi(&document(&order_schema())).unwrap();
    let config = ContractConfig::default().responses(response_mode);
    ServiceBuilder::new()
        .layer(ContractLayer::new(contract, config).unwrap())
        .service_fn(
            move |request: Request<ContractBody<Full<Bytes>>>| async move {
                // The handler gets the validated bytes; echo them back as the response body.
                let body = if echo {
                    use http_body_util::BodyExt;
                    request.into_body().collect().await.unwrap().to_bytes()
                } else {
                    Bytes::new()
                };
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(201)
                        .header("content-type", "application/json")
                        .body(Full::new(body))
                        .unwrap(),
                )
            },
        )
}

fn request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("/orders")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap()
}

fn validation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = order_body();
    let validator = jsonschema::validator_for(&order_schema()).unwrap();

    let mut group = c.benchmark_group("contract_1kib");
    group.bench_function("raw-serde_json+jsonschema", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_slice(black_box(&body)).unwrap();
            assert!(validator.is_valid(&value));
        })
    });
    // The harness alone: the same request made and sent through `oneshot` to a service
    // that parses and validates it itself, without the layer.
    let validator_in_handler =
        std::sync::Arc::new(jsonschema::validator_for(&order_schema()).unwrap());
    let bare = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let validator = validator_in_handler.clone();
        async move {
            use http_body_util::BodyExt;
            let bytes = request.into_body().collect().await.unwrap().to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(validator.is_valid(&value));
            Ok::<_, Infallible>(
                Response::builder()
                    .status(201)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
        }
    });
    group.bench_function("handler-validates-itself", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(bare.clone().oneshot(request(&body)))
                .unwrap();
            assert_eq!(response.status(), 201);
        })
    });
    let service = layered(Mode::Off, false);
    group.bench_function("layer-request", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(service.clone().oneshot(request(&body)))
                .unwrap();
            assert_eq!(response.status(), 201);
        })
    });
    let service = layered(Mode::Report, true);
    group.bench_function("layer-request+response", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(service.clone().oneshot(request(&body)))
                .unwrap();
            assert_eq!(response.status(), 201);
        })
    });
    group.finish();
}

/// A document with `paths` paths of two operations each, with parameters, `$ref`s into
/// components and request and response bodies.
fn large_document(paths: usize) -> String {
    let mut all = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for i in 0..paths {
        schemas.insert(format!("Thing{i}"), order_schema());
        let reference = json!({"$ref": format!("#/components/schemas/Thing{i}")});
        all.insert(
            format!("/things{i}/{{id}}"),
            json!({
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "get": {
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                        {"name": "x-tenant", "in": "header", "required": true, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": reference}}}}
                },
                "put": {
                    "requestBody": {"required": true, "content": {"application/json": {"schema": reference}}},
                    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": reference}}}, "default": {"description": "problem"}}
                }
            }),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "large", "version": "1"},
        "paths": all,
        "components": {"schemas": schemas}
    })
    .to_string()
}

fn startup(c: &mut Criterion) {
    let paths = 250;
    let document = large_document(paths);
    let before = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    let contract = Contract::from_openapi(&document).unwrap();
    let took = started.elapsed();
    let held = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "startup: {} operations ({} KiB of JSON) compiled in {:.1} ms, holding {:.1} MiB",
        paths * 2,
        document.len() / 1024,
        took.as_secs_f64() * 1e3,
        held as f64 / (1024.0 * 1024.0)
    );
    drop(contract);

    let mut group = c.benchmark_group("contract_startup");
    group.sample_size(10);
    group.bench_function(format!("{}-operations", paths * 2), |b| {
        b.iter(|| Contract::from_openapi(black_box(&document)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, validation, startup);
criterion_main!(benches);
