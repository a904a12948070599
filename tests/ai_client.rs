//! `AiClient` against a real local HTTP server that mimics the OpenAI chat-completions API:
//! request shape and bearer key, content and usage, provider error messages with their HTTP
//! status, unusable responses, timeouts and unreachable endpoints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use js_mcp::server::ai::{AiClient, AiConfig, AiError, CompletionRequest, Usage};
use serde_json::{Value, json};

const KEY: &str = "sk-test-123";

#[derive(Clone, Default)]
struct Mock {
    requests: Arc<Mutex<Vec<Value>>>,
}

async fn chat(State(mock): State<Mock>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    mock.requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(body.clone());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {KEY}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})),
        )
            .into_response();
    }
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    match prompt.as_str() {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(20)).await;
            Json(json!({})).into_response()
        }
        "overloaded" => (StatusCode::SERVICE_UNAVAILABLE, "upstream overloaded").into_response(),
        "rate" => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"message": "Rate limit reached for requests"}})),
        )
            .into_response(),
        "garbage" => (StatusCode::OK, "<html>not json</html>").into_response(),
        "empty" => Json(json!({"id": "x", "choices": []})).into_response(),
        _ => Json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": format!("{}-2026", body["model"].as_str().unwrap_or_default()),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("echo: {prompt}")}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        }))
        .into_response(),
    }
}

/// Starts the mock on an ephemeral loopback port; the server lives until the runtime ends.
async fn start_mock() -> (String, Mock) {
    let mock = Mock::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local addr: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), mock)
}

fn client(base_url: &str, key: Option<&str>, timeout: Duration) -> AiClient {
    AiClient::new(AiConfig {
        base_url: base_url.to_owned(),
        model: "test-model".into(),
        api_key: key.map(str::to_owned),
        timeout,
    })
    .unwrap_or_else(|e| panic!("client: {e}"))
}

fn request(prompt: &str) -> CompletionRequest {
    CompletionRequest {
        prompt: prompt.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn completion_sends_model_messages_and_options_and_returns_content_and_usage() {
    let (base, mock) = start_mock().await;
    let ai = client(&base, Some(KEY), Duration::from_secs(10));
    let response = ai
        .complete(CompletionRequest {
            prompt: "hello".into(),
            system: Some("be brief".into()),
            max_tokens: Some(64),
            temperature: Some(0.5),
        })
        .await
        .unwrap_or_else(|e| panic!("complete: {e}"));
    assert_eq!(response.content, "echo: hello");
    assert_eq!(response.model, "test-model-2026");
    assert_eq!(
        response.usage,
        Some(Usage {
            prompt_tokens: 7,
            completion_tokens: 3,
            total_tokens: 10
        })
    );
    let sent = mock.requests.lock().unwrap_or_else(|p| p.into_inner())[0].clone();
    assert_eq!(
        sent,
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello"}
            ],
            "max_tokens": 64,
            "temperature": 0.5
        })
    );
}

#[tokio::test]
async fn a_rejected_key_reports_the_status_and_the_providers_message() {
    let (base, _) = start_mock().await;
    let ai = client(&base, Some("wrong"), Duration::from_secs(10));
    let err = ai.complete(request("hi")).await.expect_err("401");
    match &err {
        AiError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 401);
            assert_eq!(message, "Incorrect API key provided");
        }
        other => panic!("wrong error: {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("returned HTTP 401: Incorrect API key provided")
    );
    assert!(!err.is_transient());
    // No key at all is the same refusal.
    let ai = client(&base, None, Duration::from_secs(10));
    assert!(matches!(
        ai.complete(request("hi")).await,
        Err(AiError::Status { status: 401, .. })
    ));
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient_and_quote_the_body() {
    let (base, _) = start_mock().await;
    let ai = client(&base, Some(KEY), Duration::from_secs(10));
    let err = ai.complete(request("overloaded")).await.expect_err("503");
    assert!(
        err.to_string().contains("HTTP 503: upstream overloaded"),
        "{err}"
    );
    assert!(err.is_transient());
    let err = ai.complete(request("rate")).await.expect_err("429");
    assert!(
        err.to_string().contains("HTTP 429: Rate limit reached"),
        "{err}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_response_that_is_not_a_completion_is_reported_as_unusable() {
    let (base, _) = start_mock().await;
    let ai = client(&base, Some(KEY), Duration::from_secs(10));
    let err = ai.complete(request("garbage")).await.expect_err("html");
    assert!(matches!(err, AiError::InvalidResponse { .. }), "{err:?}");
    let err = ai.complete(request("empty")).await.expect_err("no choices");
    assert!(err.to_string().contains("no choices"), "{err}");
}

#[tokio::test]
async fn a_slow_provider_hits_the_configured_timeout() {
    let (base, _) = start_mock().await;
    let ai = client(&base, Some(KEY), Duration::from_millis(300));
    let err = ai.complete(request("slow")).await.expect_err("timeout");
    assert!(matches!(err, AiError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out after 300ms"), "{err}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_endpoint_nobody_listens_on_is_reported_as_unreachable() {
    // Bind then release a port so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let ai = client(
        &format!("http://127.0.0.1:{port}/v1"),
        Some(KEY),
        Duration::from_secs(5),
    );
    let err = ai.complete(request("hi")).await.expect_err("refused");
    assert!(matches!(err, AiError::Unreachable { .. }), "{err:?}");
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("cannot reach ai endpoint") && text.contains("refused"),
        "{text}"
    );
}

#[tokio::test]
async fn requests_the_provider_would_reject_are_refused_before_sending() {
    let (base, mock) = start_mock().await;
    let ai = client(&base, Some(KEY), Duration::from_secs(5));
    assert!(matches!(
        ai.complete(request("  ")).await,
        Err(AiError::InvalidRequest(_))
    ));
    let mut r = request("hi");
    r.temperature = Some(3.0);
    assert!(matches!(
        ai.complete(r).await,
        Err(AiError::InvalidRequest(_))
    ));
    assert!(
        mock.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    );
}
