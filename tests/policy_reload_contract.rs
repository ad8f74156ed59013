//! A reloaded policy file applies its `[openapi]` section (the document read again, the body
//! limit, undocumented routes), drops a file's contract when the section is gone, and refuses
//! to replace a contract set in code.
#![cfg(all(feature = "axum", feature = "contract", feature = "config"))]

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode};
use steadfast::contract::{Contract, ContractConfig, RouteSchemas};
use steadfast::policy::{Policies, Policy, PolicyFile, PolicyLayer};
use tower::ServiceExt;

const DOCUMENT: &str = r#"
openapi: 3.0.3
info: {title: notes, version: "1"}
paths:
  /notes:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [title]
              properties:
                title: {type: string, maxLength: MAX_TITLE}
      responses:
        '201': {description: created}
"#;

/// A fresh directory with a policy file and its OpenAPI document.
struct Files(PathBuf);

impl Files {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("steadfast-reload-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes the files and reads the policy file back.
    fn write(&self, openapi: Option<&str>, max_title: usize) -> PolicyFile {
        let mut policies = String::from("[defaults]\ntimeout = \"2s\"\n");
        if let Some(section) = openapi {
            policies.push_str("\n[openapi]\ndocument = \"openapi.yaml\"\n");
            policies.push_str(section);
        }
        std::fs::write(self.path("policies.toml"), policies).unwrap();
        std::fs::write(
            self.path("openapi.yaml"),
            DOCUMENT.replace("MAX_TITLE", &max_title.to_string()),
        )
        .unwrap();
        PolicyFile::load(self.path("policies.toml")).unwrap()
    }

    fn path(&self, file: &str) -> PathBuf {
        Path::new(&self.0).join(file)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn app(layer: PolicyLayer) -> Router {
    Router::new()
        .route("/notes", post(|_: Bytes| async { StatusCode::CREATED }))
        .route("/other", post(|_: Bytes| async { StatusCode::CREATED }))
        .layer(layer)
}

async fn post_json(app: &Router, uri: &str, body: String) -> StatusCode {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

fn note(title_len: usize) -> String {
    format!(r#"{{"title":"{}"}}"#, "t".repeat(title_len))
}

#[tokio::test]
async fn a_reloaded_file_applies_its_openapi_section() {
    let files = Files::new("applies");
    let layer = files
        .write(Some("max_body_bytes = 4096\n"), 2000)
        .into_layer()
        .unwrap();
    let handle = layer.handle();
    let app = app(layer);
    assert_eq!(post_json(&app, "/notes", note(1500)).await, 201);
    assert_eq!(post_json(&app, "/notes", note(2500)).await, 422);
    assert_eq!(post_json(&app, "/other", note(1)).await, 201);

    // A smaller body limit, a new document (titles of 10 at most), undocumented routes refused.
    handle
        .reload_file(files.write(
            Some("max_body_bytes = 1024\nundocumented = \"reject\"\n"),
            10,
        ))
        .unwrap();
    assert_eq!(post_json(&app, "/notes", note(1500)).await, 413);
    assert_eq!(post_json(&app, "/notes", note(20)).await, 422);
    assert_eq!(post_json(&app, "/notes", note(5)).await, 201);
    assert_eq!(post_json(&app, "/other", note(1)).await, 404);

    // `reload` with policies alone leaves the contract as it is.
    handle.reload(Policies::new(Policy::new())).unwrap();
    assert_eq!(post_json(&app, "/notes", note(20)).await, 422);

    // The section removed: no contract any more.
    handle.reload_file(files.write(None, 10)).unwrap();
    assert_eq!(post_json(&app, "/notes", note(1500)).await, 201);
    assert_eq!(post_json(&app, "/notes", "not json".to_owned()).await, 201);
    assert_eq!(post_json(&app, "/other", note(1)).await, 201);
}

#[tokio::test]
async fn a_layer_without_a_contract_gains_the_files() {
    let files = Files::new("gains");
    let layer = PolicyLayer::new(Policies::new(Policy::new())).unwrap();
    let handle = layer.handle();
    let app = app(layer);
    assert_eq!(post_json(&app, "/notes", note(50)).await, 201);
    handle.reload_file(files.write(Some(""), 10)).unwrap();
    assert_eq!(post_json(&app, "/notes", note(50)).await, 422);
}

#[tokio::test]
async fn a_contract_set_in_code_is_not_replaced_by_a_file() {
    let files = Files::new("code");
    let contract = Contract::builder()
        .route(
            http::Method::POST,
            "/notes",
            RouteSchemas::new().request_body(serde_json::json!({
                "type": "object", "required": ["body"]
            })),
        )
        .build()
        .unwrap();
    let layer = PolicyLayer::with_contract(
        Policies::new(Policy::new()),
        contract,
        ContractConfig::default(),
    )
    .unwrap();
    let handle = layer.handle();
    let app = app(layer);
    assert_eq!(post_json(&app, "/notes", note(5)).await, 422);

    let error = handle
        .reload_file(files.write(Some("max_body_bytes = 16\n"), 10))
        .unwrap_err();
    assert_eq!(error.path(), "openapi", "{error}");
    // What was in force stays.
    assert_eq!(
        post_json(&app, "/notes", r#"{"body":"x"}"#.to_owned()).await,
        201
    );
    assert_eq!(post_json(&app, "/notes", note(5)).await, 422);

    // A file without `[openapi]` reloads its policies and keeps the code's contract.
    handle.reload_file(files.write(None, 10)).unwrap();
    assert_eq!(post_json(&app, "/notes", note(5)).await, 422);
    assert_eq!(
        post_json(&app, "/notes", r#"{"body":"x"}"#.to_owned()).await,
        201
    );
}
