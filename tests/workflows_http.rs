//! `http.request` and `ai.complete` steps against a real local HTTP server: JSON and text
//! bodies, headers/query/body sent, non-2xx failures, retries of a flaky endpoint, step
//! timeouts on a slow one, the body size cap, and AI steps inside built-in workflows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use js_mcp::server::ai::{AiClient, AiConfig};
use js_mcp::server::workflows::{
    Catalog, DefinitionFormat, EgressPolicy, Engine, LazyHttpClient, RunInput, RunRecord,
    RunStatus, StepDeps, WorkflowDefinition,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Counters {
    flaky: Arc<AtomicUsize>,
}

async fn echo(
    headers: HeaderMap,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    Json(json!({
        "token": headers.get("x-token").and_then(|v| v.to_str().ok()),
        "contentType": headers.get("content-type").and_then(|v| v.to_str().ok()),
        "query": query,
        "body": body,
    }))
}

async fn status(Path(code): Path<u16>) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
    (
        code,
        Json(json!({"error": format!("you asked for {code}")})),
    )
        .into_response()
}

async fn flaky(State(c): State<Counters>) -> Response {
    let call = c.flaky.fetch_add(1, Ordering::SeqCst) + 1;
    if call < 3 {
        (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response()
    } else {
        Json(json!({"calls": call})).into_response()
    }
}

async fn chat(Json(body): Json<Value>) -> Json<Value> {
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    Json(json!({
        "model": body["model"],
        "choices": [{"message": {"role": "assistant", "content": format!("reviewed {} chars", prompt.len())}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    }))
}

async fn start_server() -> (String, Counters) {
    let counters = Counters::default();
    let app = Router::new()
        .route(
            "/json",
            get(|| async { Json(json!({"ok": true, "items": [1, 2, 3]})) }),
        )
        .route("/text", get(|| async { "plain text" }))
        .route("/echo", post(echo))
        .route("/status/{code}", get(status))
        .route("/flaky", get(flaky))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { "x".repeat(5 * 1024 * 1024) }))
        .route("/v1/chat/completions", post(chat))
        .route(
            "/redirect",
            get(
                |Query(q): Query<std::collections::BTreeMap<String, String>>| async move {
                    let to = q.get("to").cloned().unwrap_or_default();
                    (StatusCode::FOUND, [("location", to)]).into_response()
                },
            ),
        )
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local addr: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), counters)
}

fn deps(ai_base: Option<&str>) -> StepDeps {
    StepDeps {
        http: Default::default(),
        docker: None,
        ai: ai_base.map(|base| {
            Arc::new(
                AiClient::new(AiConfig {
                    base_url: format!("{base}/v1"),
                    model: "reviewer".into(),
                    api_key: None,
                    timeout: Duration::from_secs(10),
                })
                .unwrap_or_else(|e| panic!("ai client: {e}")),
            )
        }),
    }
}

async fn run_yaml(yaml: &str, params: Value, deps: StepDeps) -> RunRecord {
    let def = WorkflowDefinition::parse(yaml, DefinitionFormat::Yaml)
        .unwrap_or_else(|e| panic!("parse: {e}"));
    let id = def.id.clone();
    let catalog =
        Catalog::from_definitions(vec![def], "test").unwrap_or_else(|e| panic!("invalid: {e:#?}"));
    run_builtin(Arc::new(catalog), &id, params, deps).await
}

async fn run_builtin(catalog: Arc<Catalog>, id: &str, params: Value, deps: StepDeps) -> RunRecord {
    Engine::new(catalog, deps)
        .run(
            RunInput {
                workflow_id: id.into(),
                session_id: None,
                session_state: Value::Null,
                params,
            },
            CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("start: {e}"))
}

#[tokio::test]
async fn http_steps_record_status_headers_and_json_or_text_bodies() {
    let (base, _) = start_server().await;
    let record = run_yaml(
        r#"
id: wf
name: http
steps:
  - {name: j, tool: http.request, params: {url: '${params.base}/json'}}
  - {name: t, tool: http.request, params: {url: '${params.base}/text'}}
  - name: count
    tool: transform
    dependsOn: [j]
    condition: outputs.j.body.ok == true && outputs.j.status == 200
    params: {op: count, from: '${outputs.j.body.items}'}
"#,
        json!({"base": base}),
        deps(None),
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.outputs["j"]["status"], 200);
    assert_eq!(
        record.outputs["j"]["body"],
        json!({"ok": true, "items": [1, 2, 3]})
    );
    assert_eq!(
        record.outputs["j"]["headers"]["content-type"],
        "application/json"
    );
    assert_eq!(record.outputs["t"]["body"], "plain text");
    assert_eq!(record.outputs["count"], 3);
}

#[tokio::test]
async fn http_steps_send_method_headers_query_and_json_body() {
    let (base, _) = start_server().await;
    let record = run_yaml(
        r#"
id: wf
name: post
steps:
  - name: post
    tool: http.request
    params:
      method: post
      url: '${params.base}/echo'
      headers: {X-Token: '${params.token}'}
      query: {page: 2, q: 'a b'}
      body: {name: '${params.name}', tags: [x, y], n: '${params.n}'}
"#,
        json!({"base": base, "token": "t0k", "name": "orders", "n": 5}),
        deps(None),
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(
        record.outputs["post"]["body"],
        json!({
            "token": "t0k",
            "contentType": "application/json",
            "query": {"page": "2", "q": "a b"},
            "body": {"name": "orders", "tags": ["x", "y"], "n": 5}
        })
    );
}

#[tokio::test]
async fn a_non_2xx_answer_fails_the_step_with_status_and_body_and_4xx_is_not_retried() {
    let (base, _) = start_server().await;
    let record = run_yaml(
        r#"
id: wf
name: status
steps:
  - {name: missing, tool: http.request, retryable: true, maxRetries: 3, onError: continue, params: {url: '${params.base}/status/404'}}
  - {name: broken, tool: http.request, retryable: true, maxRetries: 1, onError: continue, params: {url: '${params.base}/status/500'}}
"#,
        json!({"base": base}),
        deps(None),
    )
    .await;
    assert_eq!(record.status, RunStatus::Partial);
    assert_eq!(record.failed_steps, vec!["missing", "broken"]);
    let missing = &record.errors[0].message;
    assert!(
        missing.contains("GET")
            && missing.contains("/status/404")
            && missing.contains("HTTP 404 Not Found")
            && missing.contains("you asked for 404"),
        "{missing}"
    );
    assert_eq!(record.steps[0].attempts, 1, "a 404 will not get better");
    assert_eq!(record.steps[1].attempts, 2, "a 500 may");
}

#[tokio::test]
async fn a_flaky_endpoint_succeeds_on_retry() {
    let (base, counters) = start_server().await;
    let record = run_yaml(
        r#"
id: wf
name: flaky
steps:
  - {name: f, tool: http.request, retryable: true, maxRetries: 4, params: {url: '${params.base}/flaky'}}
"#,
        json!({"base": base}),
        deps(None),
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.steps[0].attempts, 3);
    assert_eq!(record.outputs["f"]["body"], json!({"calls": 3}));
    assert_eq!(counters.flaky.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_slow_endpoint_hits_the_step_timeout() {
    let (base, _) = start_server().await;
    let record = run_yaml(
        r#"
id: wf
name: slow
steps:
  - {name: s, tool: http.request, timeout: 200ms, params: {url: '${params.base}/slow'}}
"#,
        json!({"base": base}),
        deps(None),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.errors[0].message, "timed out after 200ms");
}

#[tokio::test]
async fn an_oversized_body_fails_the_step_instead_of_filling_memory() {
    let (base, _) = start_server().await;
    let record = run_yaml(
        r#"
id: wf
name: big
steps:
  - {name: b, tool: http.request, params: {url: '${params.base}/big'}}
"#,
        json!({"base": base}),
        deps(None),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert!(
        record.errors[0].message.contains("larger than"),
        "{:?}",
        record.errors
    );
}

#[tokio::test]
async fn an_unreachable_url_is_a_clear_retryable_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let record = run_yaml(
        r#"
id: wf
name: refused
steps:
  - {name: r, tool: http.request, retryable: true, maxRetries: 1, params: {url: '${params.url}'}}
"#,
        json!({"url": format!("http://127.0.0.1:{port}/x")}),
        deps(None),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.steps[0].attempts, 2);
    let message = record.errors[0].message.to_lowercase();
    assert!(message.contains("refused"), "{message}");
}

/// Deps whose `http.request` may reach only `hosts`.
fn deps_allowing(hosts: &[&str]) -> StepDeps {
    let egress = EgressPolicy::parse(hosts).unwrap_or_else(|e| panic!("{e}"));
    StepDeps {
        http: LazyHttpClient::new(egress),
        ..deps(None)
    }
}

const ONE_REQUEST: &str = r#"
id: wf
name: egress
steps:
  - {name: r, tool: http.request, retryable: true, maxRetries: 2, params: {url: '${params.url}'}}
"#;

#[tokio::test]
async fn http_steps_reach_only_allowed_hosts_and_a_refusal_is_not_retried() {
    let (base, _) = start_server().await;
    // Allowed: 127.0.0.1 by address.
    let ok = run_yaml(
        ONE_REQUEST,
        json!({"url": format!("{base}/json")}),
        deps_allowing(&["127.0.0.1"]),
    )
    .await;
    assert_eq!(ok.status, RunStatus::Completed, "{:?}", ok.errors);
    // The same server by name is another host: refused before any request, once.
    let by_name = base.replace("127.0.0.1", "localhost");
    let refused = run_yaml(
        ONE_REQUEST,
        json!({"url": format!("{by_name}/json")}),
        deps_allowing(&["127.0.0.1", "*.internal.example"]),
    )
    .await;
    assert_eq!(refused.status, RunStatus::Failed);
    assert_eq!(refused.steps[0].attempts, 1, "a refusal is permanent");
    assert_eq!(
        refused.errors[0].message,
        "http.request to host `localhost` is not allowed (--http-allowed-hosts: 127.0.0.1, *.internal.example)"
    );
}

#[tokio::test]
async fn a_redirect_to_a_host_that_is_not_allowed_is_refused() {
    let (base, _) = start_server().await;
    let by_name = base.replace("127.0.0.1", "localhost");
    let to_allowed = run_yaml(
        ONE_REQUEST,
        json!({"url": format!("{base}/redirect?to={base}/json")}),
        deps_allowing(&["127.0.0.1"]),
    )
    .await;
    assert_eq!(
        to_allowed.status,
        RunStatus::Completed,
        "{:?}",
        to_allowed.errors
    );
    assert_eq!(to_allowed.outputs["r"]["body"]["ok"], json!(true));
    let to_other = run_yaml(
        ONE_REQUEST,
        json!({"url": format!("{base}/redirect?to={by_name}/json")}),
        deps_allowing(&["127.0.0.1"]),
    )
    .await;
    assert_eq!(to_other.status, RunStatus::Failed);
    assert_eq!(
        to_other.steps[0].attempts, 1,
        "a refused redirect is permanent"
    );
    let message = &to_other.errors[0].message;
    assert!(
        message.contains("http.request to host `localhost` is not allowed"),
        "{message}"
    );
}

#[tokio::test]
async fn builtin_health_check_probes_a_url_and_reports_unhealthy_as_partial() {
    let (base, _) = start_server().await;
    let catalog = Arc::new(Catalog::builtin());
    let ok = run_builtin(
        catalog.clone(),
        "health-check",
        json!({"url": format!("{base}/json")}),
        deps(None),
    )
    .await;
    assert_eq!(ok.status, RunStatus::Completed, "{ok:#?}");
    assert_eq!(ok.outputs["report"]["httpStatus"], 200);
    assert_eq!(ok.outputs["report"]["healthy"], true);
    let bad = run_builtin(
        catalog,
        "health-check",
        json!({"url": format!("{base}/status/404")}),
        deps(None),
    )
    .await;
    assert_eq!(bad.status, RunStatus::Partial, "{bad:#?}");
    assert_eq!(bad.failed_steps, vec!["probe"]);
    assert_eq!(bad.outputs["report"]["healthy"], false);
    assert_eq!(bad.outputs["report"]["probe"], "failed");
}

#[tokio::test]
async fn ai_steps_call_the_completion_api_and_feed_later_steps() {
    let (base, _) = start_server().await;
    let record = run_builtin(
        Arc::new(Catalog::builtin()),
        "containerize",
        json!({"language": "go", "name": "api", "review": true}),
        deps(Some(&base)),
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.outputs["review"]["model"], "reviewer");
    assert_eq!(record.outputs["review"]["usage"]["totalTokens"], 3);
    let review = record.outputs["summary"]["review"]
        .as_str()
        .unwrap_or_default();
    assert!(review.starts_with("reviewed "), "{review}");
}

#[tokio::test]
async fn a_failing_optional_ai_review_leaves_the_run_partial_not_failed() {
    // An AI client pointing at a path the server does not serve: HTTP 404 from the provider.
    let (base, _) = start_server().await;
    let record = run_builtin(
        Arc::new(Catalog::builtin()),
        "containerize",
        json!({"language": "node", "review": true}),
        deps(Some(&format!("{base}/nowhere"))),
    )
    .await;
    assert_eq!(record.status, RunStatus::Partial, "{record:#?}");
    assert_eq!(record.failed_steps, vec!["review"]);
    assert!(
        record.errors[0].message.contains("HTTP 404"),
        "{:?}",
        record.errors
    );
    assert_eq!(record.outputs["summary"]["review"], Value::Null);
}
