//! The sample definitions in `examples/workflows/` load cleanly and do what they say, run
//! against a local HTTP server that stands in for the services and the AI endpoint.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use js_mcp::server::ai::{AiClient, AiConfig};
use js_mcp::server::workflows::{Catalog, Engine, RunInput, RunRecord, RunStatus, StepDeps};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/workflows")
}

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::load(&[examples_dir()]).unwrap_or_else(|errors| {
        panic!(
            "examples do not load:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    }))
}

/// Stand-in services; `posted` collects webhook bodies.
async fn start_server(posted: Arc<Mutex<Vec<Value>>>) -> String {
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/status",
            get(|| async {
                Json(json!({"version": "1.2.3", "components": {"store": {"state": "ok"}}}))
            }),
        )
        .route("/users", get(|| async { Json(json!([{"id": 1}])) }))
        .route(
            "/orders",
            get(|| async { (StatusCode::BAD_GATEWAY, "orders down") }),
        )
        .route("/inventory", get(|| async { Json(json!({"widgets": 4})) }))
        .route(
            "/hook",
            post(move |Json(body): Json<Value>| {
                let posted = posted.clone();
                async move {
                    posted.lock().unwrap_or_else(|p| p.into_inner()).push(body);
                    StatusCode::NO_CONTENT
                }
            }),
        )
        .route(
            "/v1/chat/completions",
            post(|Json(_): Json<Value>| async {
                Json(json!({"model": "m", "choices": [{"message": {"content": "- faster runs"}}]}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

async fn run(
    catalog: Arc<Catalog>,
    id: &str,
    session: Value,
    params: Value,
    ai_base: Option<&str>,
) -> RunRecord {
    let deps = StepDeps {
        http: Default::default(),
        docker: None,
        ai: ai_base.map(|base| {
            Arc::new(
                AiClient::new(AiConfig {
                    base_url: format!("{base}/v1"),
                    model: "m".into(),
                    api_key: Some("k".into()),
                    timeout: Duration::from_secs(10),
                })
                .unwrap_or_else(|e| panic!("ai: {e}")),
            )
        }),
    };
    Engine::new(catalog, deps)
        .run(
            RunInput {
                workflow_id: id.into(),
                session_id: session["id"].as_str().map(str::to_owned),
                session_state: session,
                params,
            },
            CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("start {id}: {e}"))
}

#[test]
fn every_example_loads_next_to_the_builtins() {
    let catalog = catalog();
    let files = std::fs::read_dir(examples_dir())
        .unwrap_or_else(|e| panic!("examples dir: {e}"))
        .filter_map(Result::ok)
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .count();
    assert!(files >= 4, "expected the sample files, found {files}");
    for id in [
        "http-smoke",
        "session-gate",
        "fanout-join",
        "release-notes",
        "health-check",
        "containerize",
        "docker-maintenance",
    ] {
        assert!(catalog.get(id).is_some(), "{id} missing");
    }
    assert_eq!(catalog.len(), files + 3);
}

#[tokio::test]
async fn http_smoke_reports_the_version_of_a_healthy_instance() {
    let base = start_server(Arc::default()).await;
    let record = run(
        catalog(),
        "http-smoke",
        Value::Null,
        json!({"baseUrl": base}),
        None,
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(
        record.outputs["verdict"],
        json!({"version": "1.2.3", "healthStatus": 200, "components": {"store": {"state": "ok"}}})
    );
}

#[tokio::test]
async fn session_gate_stops_unapproved_production_changes_only() {
    let catalog = catalog();
    let prod = json!({"id": "s1", "labels": {"env": "prod"}});
    let refused = run(
        catalog.clone(),
        "session-gate",
        prod.clone(),
        json!({}),
        None,
    )
    .await;
    assert_eq!(refused.status, RunStatus::Failed);
    assert_eq!(refused.failed_steps, vec!["guard"]);
    assert!(
        refused.errors[0]
            .message
            .contains("needs params.approved = true")
    );

    let approved = run(
        catalog.clone(),
        "session-gate",
        prod,
        json!({"approved": true, "requester": "ana"}),
        None,
    )
    .await;
    assert_eq!(approved.status, RunStatus::Completed, "{approved:#?}");
    assert_eq!(approved.skipped_steps, vec!["guard"]);
    assert_eq!(
        approved.outputs["note"]["logged"],
        "change approved for prod session s1 by ana"
    );

    let dev = run(
        catalog,
        "session-gate",
        json!({"labels": {"env": "dev"}}),
        json!({}),
        None,
    )
    .await;
    assert_eq!(dev.status, RunStatus::Completed, "{dev:#?}");
    assert_eq!(dev.outputs["result"]["environment"], "dev");
}

#[tokio::test]
async fn fanout_join_keeps_what_succeeded_and_flags_what_failed() {
    let base = start_server(Arc::default()).await;
    let record = run(
        catalog(),
        "fanout-join",
        Value::Null,
        json!({"baseUrl": base}),
        None,
    )
    .await;
    assert_eq!(record.status, RunStatus::Partial, "{record:#?}");
    assert_eq!(record.failed_steps, vec!["orders"]);
    assert_eq!(
        record.outputs["join"],
        json!({
            "users": [{"id": 1}],
            "orders": null,
            "inventory": {"widgets": 4},
            "failed": {"users": false, "orders": true, "inventory": false}
        })
    );
}

#[tokio::test]
async fn release_notes_summarizes_with_ai_and_posts_to_the_webhook() {
    let posted = Arc::new(Mutex::new(Vec::new()));
    let base = start_server(posted.clone()).await;
    let record = run(
        catalog(),
        "release-notes",
        Value::Null,
        json!({"version": "0.2.0", "changes": ["faster runs", "fix leak"], "webhook": format!("{base}/hook")}),
        Some(&base),
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.outputs["count"], 2);
    assert_eq!(record.outputs["publish"]["status"], 204);
    assert_eq!(
        posted.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        vec![json!({"version": "0.2.0", "notes": "- faster runs"})]
    );

    let nothing = run(
        catalog(),
        "release-notes",
        Value::Null,
        json!({"changes": []}),
        None,
    )
    .await;
    assert_eq!(nothing.status, RunStatus::Completed, "{nothing:#?}");
    assert_eq!(nothing.skipped_steps, vec!["summarize", "publish"]);
}
