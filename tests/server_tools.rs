//! MCP tools that reach outside the server (AI completion, Docker Engine) through the real
//! binary: they answer with results when their backend works, and with an `isError` result
//! that says what is wrong when it does not, never a crash or a protocol error.

mod server_support;

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};
use server_support::{Server, mcp_open, mcp_request};

fn mcp_session(s: &Server) -> String {
    mcp_open(s, "2025-06-18", json!({}))
}

fn call(s: &Server, sid: &str, tool: &str, args: Value) -> Value {
    let params = json!({"name": tool, "arguments": args});
    mcp_request(s, sid, "2025-06-18", 7, "tools/call", params)["result"].clone()
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// An OpenAI-compatible chat-completions endpoint on loopback that echoes the prompt.
fn start_ai_stub() -> (
    String,
    std::thread::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/chat/completions",
                post(|Json(req): Json<Value>| async move {
                    let prompt = req["messages"]
                        .as_array()
                        .and_then(|m| m.last())
                        .and_then(|m| m["content"].as_str())
                        .unwrap_or_default()
                        .to_string();
                    Json(json!({
                        "id": "cmpl-1", "object": "chat.completion", "model": req["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": format!("echo: {prompt}")}}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
                    }))
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let _ = addr_tx.send(listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    let addr = addr_rx
        .recv_timeout(server_support::READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("AI stub did not start: {e}"));
    (format!("http://{addr}/v1"), handle, stop_tx)
}

#[test]
fn ai_complete_uses_the_configured_endpoint_or_says_why_it_cannot() {
    let (base, handle, stop) = start_ai_stub();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = Server::start(
        dir.path(),
        &[],
        &[
            ("JSMCP_AI_BASE_URL", base.as_str()),
            ("JSMCP_AI_MODEL", "stub-model"),
        ],
    );
    let sid = mcp_session(&s);
    let status = s.json("GET", "/status", None).json();
    let r = call(&s, &sid, "ai_complete", json!({"prompt": "hello there"}));
    if status["components"]["ai"]["state"] == "disabled" {
        // Built without the AI client: the tool explains instead of failing the call.
        assert_eq!(r["isError"], true, "{r}");
        assert!(text(&r).contains("AI completion is unavailable"), "{r}");
    } else {
        assert_eq!(r["isError"], false, "{r}");
        assert_eq!(
            r["structuredContent"]["content"], "echo: hello there",
            "{r}"
        );
        assert_eq!(r["structuredContent"]["model"], "stub-model", "{r}");
    }
    // An empty prompt is refused with a message, whatever the backend.
    let r = call(&s, &sid, "ai_complete", json!({"prompt": "  "}));
    assert_eq!(r["isError"], true, "{r}");
    let _ = stop.send(());
    let _ = handle.join();
}

#[test]
fn ai_complete_against_an_unreachable_endpoint_is_a_tool_error() {
    let port = server_support::free_port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = Server::start(
        dir.path(),
        &[],
        &[
            ("JSMCP_AI_BASE_URL", base.as_str()),
            ("JSMCP_AI_MODEL", "m"),
        ],
    );
    let sid = mcp_session(&s);
    let r = call(&s, &sid, "ai_complete", json!({"prompt": "hi"}));
    assert_eq!(r["isError"], true, "{r}");
    assert!(!text(&r).is_empty());
    assert_eq!(s.req("GET", "/health", &[], None).status, 200);
}

#[test]
fn docker_tools_with_a_missing_socket_are_tool_errors_with_a_reason() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("no-docker.sock");
    let socket = socket.to_string_lossy().to_string();
    let s = Server::start(dir.path(), &[], &[("JSMCP_DOCKER_HOST", socket.as_str())]);
    let sid = mcp_session(&s);
    for (tool, args) in [
        ("docker_info", json!({})),
        ("docker_ps", json!({"all": true})),
        ("docker_df", json!({})),
        ("docker_prune", json!({"containers": true})),
    ] {
        let r = call(&s, &sid, tool, args);
        assert_eq!(r["isError"], true, "{tool}: {r}");
        assert!(text(&r).to_lowercase().contains("docker"), "{tool}: {r}");
    }
    let r = call(&s, &sid, "docker_prune", json!({}));
    assert!(text(&r).contains("at least one"), "{r}");
    // The server reports Docker's state and keeps serving.
    let status = s.json("GET", "/status", None).json();
    assert_ne!(status["components"]["docker"]["state"], "ok");
    assert_eq!(s.req("GET", "/health", &[], None).status, 200);
}
