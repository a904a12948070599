//! Probe and admin endpoints (`/health`, `/ready`, `/status`, `/metrics`, `/admin/drain`)
//! and the middleware every request passes: request metrics by route, the optional bearer
//! token, and the MCP gate that answers a refused `initialize` with 503 before rmcp sees it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::api::ApiError;
use super::backends::ComponentHealth;

/// Liveness: the process answers.
pub async fn health() -> &'static str {
    "ok"
}

/// Readiness: the store answers and the server is not draining.
pub async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    match tokio::time::timeout(Duration::from_secs(2), st.sessions.store().ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store: ping timed out").into_response(),
    }
}

/// The `/status` document (also the `server_status` tool's result).
pub async fn status_json(st: &AppState) -> Value {
    let store = st.sessions.store();
    let store_health = match tokio::time::timeout(Duration::from_secs(2), store.ping()).await {
        Ok(Ok(())) => ComponentHealth::ok(match store.kind() {
            "embedded" => format!("embedded store in {}", st.settings.data_dir.display()),
            other => other.to_string(),
        }),
        Ok(Err(e)) => ComponentHealth::error(e.to_string()),
        Err(_) => ComponentHealth::error("store ping timed out after 2s"),
    };
    let sessions = match store.count().await {
        Ok(n) => {
            let max = st.settings.max_sessions;
            let detail = format!(
                "{n} sessions of max {max}; {} live MCP sessions of max {}",
                st.mcp_live.load(Ordering::Relaxed),
                st.settings.max_mcp_sessions
            );
            if n >= max {
                ComponentHealth::degraded(format!("table full: {detail}"))
            } else {
                ComponentHealth::ok(detail)
            }
        }
        Err(e) => ComponentHealth::error(e.to_string()),
    };
    let workflows = match &st.backends.workflows {
        Some(w) => {
            let mut h = w.health();
            h.detail = format!("{}; {} runs active", h.detail, st.runs.active_count());
            h
        }
        None => ComponentHealth::disabled(st.backends.missing_reason("workflows")),
    };
    let docker = match &st.backends.docker {
        Some(d) => {
            let t = Instant::now();
            match tokio::time::timeout(
                Duration::from_secs(2),
                d.call(super::backends::DockerCall::Info),
            )
            .await
            {
                Ok(Ok(_)) => ComponentHealth::ok(format!(
                    "{} answered in {} ms",
                    d.describe(),
                    t.elapsed().as_millis()
                )),
                Ok(Err(e)) => ComponentHealth::error(format!("{}: {e}", d.describe())),
                Err(_) => ComponentHealth::error(format!("{}: no answer in 2s", d.describe())),
            }
        }
        None => ComponentHealth::disabled(st.backends.missing_reason("docker")),
    };
    let ai = match &st.backends.ai {
        // Probing the model on every status call would cost tokens; report configuration.
        Some(a) => ComponentHealth::ok(a.describe()),
        None => ComponentHealth::disabled(st.backends.missing_reason("ai")),
    };
    let overall = if st.is_draining() {
        "draining"
    } else if store_health.state == "error" {
        "error"
    } else if [&sessions, &workflows, &docker]
        .iter()
        .any(|c| c.state == "error" || c.state == "degraded")
    {
        "degraded"
    } else {
        "ok"
    };
    json!({
        "status": overall,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": st.started.elapsed().as_secs_f64(),
        "draining": st.is_draining(),
        "components": {
            "sessions": sessions,
            "workflows": workflows,
            "store": store_health,
            "docker": docker,
            "ai": ai,
        }
    })
}

/// `/status`.
pub async fn status(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(status_json(&st).await)
}

/// `/metrics` in the Prometheus text format.
pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    st.sessions.refresh_gauge().await;
    match st.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics", e.to_string())
            .into_response(),
    }
}

/// `POST /admin/drain`: stop taking new sessions and runs; readiness goes false.
pub async fn drain(State(st): State<Arc<AppState>>) -> Response {
    st.start_draining();
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "draining": true,
            "live_mcp_sessions": st.mcp_live.load(Ordering::Relaxed),
            "active_runs": st.runs.active_count(),
        })),
    )
        .into_response()
}

/// The one middleware every routed request passes (one layer, not three: axum clones the
/// inner service per layer and request). It records `jsmcp_http_requests_total` and
/// `jsmcp_http_request_duration_seconds` by route template, checks the bearer token on
/// `/mcp`, `/api/...` and `/admin/...`, and runs the MCP gate on `/mcp`.
pub async fn entry(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let t = Instant::now();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    // The route template, never the raw path, so label values stay bounded.
    let route = matched.as_ref().map_or("unmatched", |p| p.as_str());
    let method = method_label(req.method());
    let protected = route == "/mcp" || route.starts_with("/api/") || route.starts_with("/admin/");
    let resp = if let Some(denied) = protected.then(|| auth_failure(&st, &req)).flatten() {
        denied
    } else if route == "/mcp" {
        mcp_gate(&st, req, next).await
    } else {
        next.run(req).await
    };
    let m = &st.metrics;
    m.http_duration
        .with_label_values(&[route, method])
        .observe(t.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[route, method, resp.status().as_str()])
        .inc();
    resp
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `Some(401)` when a token is configured and the request does not carry it.
fn auth_failure(st: &AppState, req: &Request) -> Option<Response> {
    let token = st.settings.auth_token.as_ref()?;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return None;
    }
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong bearer token (Authorization: Bearer <token>)",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(resp)
}

/// Compares without an early exit, so timing does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// In front of rmcp: when the MCP session table is full or the server drains, answer an
/// `initialize` with 503 and a JSON-RPC error naming the reason (rmcp alone would say 500).
/// Only then is the body parsed, so the common path costs nothing.
async fn mcp_gate(st: &AppState, req: Request, next: Next) -> Response {
    let full = st.mcp_live.load(Ordering::Relaxed) >= st.settings.max_mcp_sessions;
    let draining = st.is_draining();
    let is_post = req.method() == Method::POST;
    if req.method() == Method::DELETE {
        let mut resp = next.run(req).await;
        // rmcp acknowledges DELETE with 202; clients (the Python SDK among them) expect
        // 200 or 204 for a terminated session, and nothing is left pending.
        if resp.status() == StatusCode::ACCEPTED {
            *resp.status_mut() = StatusCode::OK;
        }
        return resp;
    }
    if !is_post || req.headers().contains_key("mcp-session-id") || !(full || draining) {
        let resp = next.run(req).await;
        return if is_post {
            jsonrpc_parse_error(resp).await
        } else {
            resp
        };
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, st.settings.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large").into_response();
        }
    };
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        id: Value,
        #[serde(default)]
        method: Option<String>,
    }
    if let Ok(p) = serde_json::from_slice::<Probe>(&bytes)
        && p.method.as_deref() == Some("initialize")
    {
        let (reason, msg) = if draining {
            (
                "draining",
                "server is draining and accepts no new MCP sessions".to_string(),
            )
        } else {
            (
                "full",
                format!(
                    "MCP session table full: {} live sessions is the configured maximum; retry later",
                    st.settings.max_mcp_sessions
                ),
            )
        };
        st.metrics
            .mcp_sessions_rejected
            .with_label_values(&[reason])
            .inc();
        let body = json!({
            "jsonrpc": "2.0",
            "id": p.id,
            "error": { "code": -32000, "message": msg, "data": { "reason": reason } }
        });
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return resp;
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    jsonrpc_parse_error(resp).await
}

/// rmcp answers a JSON body that does not parse as JSON-RPC with 415 and plain text; the
/// spec calls for 400 with a JSON-RPC error (-32700 parse error, -32600 invalid request).
/// Only 415s from the body parser are rewritten (a wrong Content-Type stays 415).
async fn jsonrpc_parse_error(resp: Response) -> Response {
    if resp.status() != StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let Some(detail) = text.strip_prefix("fail to deserialize request body ") else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    // serde reports a well-formed value of the wrong shape without a syntax position.
    let (code, kind) = if detail.contains("unrecognized JSON-RPC message")
        || detail.contains("did not match any variant")
        || detail.contains("missing field")
    {
        (-32600, "Invalid Request")
    } else {
        (-32700, "Parse error")
    };
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": format!("{kind}: {detail}") }
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_exact_match() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
