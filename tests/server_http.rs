//! `js-mcp serve` over real HTTP: the real binary on a free loopback port, its REST API,
//! probes, drain, shutdown, restart, and how it answers bad input.

mod server_support;

use serde_json::{Value, json};
use server_support::{ACCEPT_BOTH, JSON_CT, RedisServer, Resp, Server, mcp_open, mcp_request};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

fn initialize_body(version: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}}
    }))
    .unwrap_or_default()
}

/// Initializes an MCP session (2025-06-18) and returns its id.
fn mcp_initialize(s: &Server) -> String {
    mcp_open(s, "2025-06-18", json!({}))
}

fn mcp_call(s: &Server, sid: &str, id: u64, tool: &str, args: Value) -> Value {
    let params = json!({"name": tool, "arguments": args});
    mcp_request(s, sid, "2025-06-18", id, "tools/call", params)
}

fn metric(s: &Server, name: &str) -> f64 {
    let text = s.req("GET", "/metrics", &[], None).text();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not found"))
}

fn assert_still_serving(s: &Server) {
    assert_eq!(s.req("GET", "/health", &[], None).status, 200);
}

fn error_field(r: &Resp) -> Option<String> {
    r.json()["error"]["field"].as_str().map(str::to_string)
}

#[test]
fn sessions_survive_sigterm_and_restart_on_the_embedded_store() {
    let dir = tmp();
    let mut s = Server::start(dir.path(), &[], &[]);
    let created = s.json(
        "POST",
        "/api/v1/sessions",
        Some(json!({"labels": {"team": "a"}})),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let upd = s.json(
        "POST",
        &format!("/api/v1/sessions/{id}/ops?version=1"),
        Some(json!({"op": "mark_step_completed", "step": "analyze", "result": {"lang": "rust"}})),
    );
    assert_eq!(upd.status, 200, "{}", upd.text());
    assert_eq!(s.terminate(), Some(0), "serve must exit 0 on SIGTERM");

    let s2 = Server::start(dir.path(), &[], &[]);
    let got = s2.json("GET", &format!("/api/v1/sessions/{id}"), None);
    assert_eq!(got.status, 200);
    let v = got.json();
    assert_eq!(v["version"], 2);
    assert_eq!(v["workflow_state"]["completed_steps"], json!(["analyze"]));
    assert_eq!(
        v["workflow_state"]["step_results"]["analyze"]["lang"],
        "rust"
    );
}

#[test]
fn every_write_acknowledged_before_sigterm_is_there_after_restart() {
    let dir = tmp();
    let mut s = Server::start(dir.path(), &[], &[]);
    let addr = s.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let mut acked = Vec::new();
            // Bounded: at most 2,000 requests per worker.
            for _ in 0..2000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let body = br#"{"metadata": {"k": "v"}}"#;
                match server_support::http(addr, "POST", "/api/v1/sessions", &[JSON_CT], Some(body))
                {
                    Ok(r) if r.status == 201 => {
                        acked.push(r.json()["id"].as_str().unwrap_or_default().to_string())
                    }
                    // Refused while draining, or the listener is gone: not acknowledged.
                    Ok(_) | Err(_) => {}
                }
            }
            acked
        }));
    }
    // Let some writes land, then stop the server while clients keep writing.
    let deadline = std::time::Instant::now() + server_support::READY_TIMEOUT;
    while metric(&s, "jsmcp_sessions_created_total") < 50.0 && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(s.terminate(), Some(0));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_default())
        .collect();
    assert!(
        acked.len() >= 50,
        "only {} writes acknowledged",
        acked.len()
    );

    let s2 = Server::start(dir.path(), &[], &[]);
    for id in &acked {
        let r = s2.req("GET", &format!("/api/v1/sessions/{id}"), &[], None);
        assert_eq!(r.status, 200, "acknowledged session {id} lost");
    }
}

#[test]
fn stale_version_update_is_refused_with_409_and_current_version() {
    let dir = tmp();
    let s = Server::start(dir.path(), &[], &[]);
    let id = s.json("POST", "/api/v1/sessions", Some(json!({}))).json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let first = s.json(
        "PATCH",
        &format!("/api/v1/sessions/{id}?version=1"),
        Some(json!({"status": "building"})),
    );
    assert_eq!(first.status, 200);
    let stale = s.req(
        "PATCH",
        &format!("/api/v1/sessions/{id}"),
        &[JSON_CT, ("if-match", "\"1\"")],
        Some(br#"{"status": "deploying"}"#),
    );
    assert_eq!(stale.status, 409);
    let e = stale.json();
    assert_eq!(e["error"]["code"], "version_conflict");
    assert_eq!(e["error"]["current_version"], 2);
    let now = s
        .json("GET", &format!("/api/v1/sessions/{id}"), None)
        .json();
    assert_eq!(now["status"], "building");
}

#[test]
fn rest_bad_input_gets_documented_status_and_names_the_field() {
    let dir = tmp();
    let s = Server::start(dir.path(), &["--max-body-bytes", "2048"], &[]);
    let r = s.req("POST", "/api/v1/sessions", &[JSON_CT], Some(b"{not json"));
    assert_eq!((r.status, error_field(&r).as_deref()), (400, Some("body")));
    let r = s.json(
        "POST",
        "/api/v1/sessions",
        Some(json!({"ttl_seconds": "soon"})),
    );
    assert_eq!(
        (r.status, error_field(&r).as_deref()),
        (400, Some("ttl_seconds"))
    );
    let r = s.json("POST", "/api/v1/sessions", Some(json!({"colour": "red"})));
    assert_eq!(
        (r.status, error_field(&r).as_deref()),
        (400, Some("colour"))
    );
    let r = s.json("POST", "/api/v1/sessions", Some(json!({"id": "has space"})));
    assert_eq!((r.status, error_field(&r).as_deref()), (400, Some("id")));
    let r = s.json("GET", "/api/v1/sessions?status=sleeping", None);
    assert_eq!(
        (r.status, error_field(&r).as_deref()),
        (400, Some("status"))
    );
    let r = s.json("GET", "/api/v1/sessions/nope", None);
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let r = s.req(
        "POST",
        "/api/v1/sessions",
        &[("content-type", "text/plain")],
        Some(b"{}"),
    );
    assert_eq!(r.status, 415);
    let big = format!("{{\"metadata\": {{\"x\": \"{}\"}}}}", "a".repeat(4096));
    let r = s.req("POST", "/api/v1/sessions", &[JSON_CT], Some(big.as_bytes()));
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    assert_still_serving(&s);
}

#[test]
fn full_session_table_answers_503_and_keeps_serving() {
    let dir = tmp();
    let s = Server::start(
        dir.path(),
        &["--max-sessions", "2", "--max-mcp-sessions", "1"],
        &[],
    );
    for _ in 0..2 {
        assert_eq!(
            s.json("POST", "/api/v1/sessions", Some(json!({}))).status,
            201
        );
    }
    let r = s.json("POST", "/api/v1/sessions", Some(json!({})));
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "session_table_full");
    assert!(r.header("retry-after").is_some());

    let _sid = mcp_initialize(&s);
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH],
        Some(&initialize_body("2025-11-25")),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    let err = r.json();
    assert_eq!(err["error"]["data"]["reason"], "full");
    assert_eq!(err["id"], 1);
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_live"), 1.0);
    assert_still_serving(&s);
}

#[test]
fn mcp_bad_input_gets_spec_status_codes_and_server_keeps_serving() {
    let dir = tmp();
    let s = Server::start(
        dir.path(),
        &[
            "--max-body-bytes",
            "4096",
            "--allowed-origins",
            "http://allowed.example",
        ],
        &[],
    );
    // Malformed JSON-RPC: not JSON at all, and JSON that is no JSON-RPC message.
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH],
        Some(b"{\"jsonrpc\": \"2.0\", "),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32700);
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH],
        Some(br#"{"hello": "world"}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], -32600);
    let r = s.req(
        "POST",
        "/mcp",
        &[("content-type", "text/plain"), ACCEPT_BOTH],
        Some(b"{}"),
    );
    assert_eq!(r.status, 415);
    // Oversized body.
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}",
        "a".repeat(8192)
    );
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH],
        Some(big.as_bytes()),
    );
    assert_eq!(r.status, 413);
    // Unknown session id.
    let ping = br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH, ("mcp-session-id", "no-such-session")],
        Some(ping),
    );
    assert_eq!(r.status, 404);
    // Unsupported protocol version header.
    let sid = mcp_initialize(&s);
    let r = s.req(
        "POST",
        "/mcp",
        &[
            JSON_CT,
            ACCEPT_BOTH,
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", "1999-01-01"),
        ],
        Some(ping),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // Bad Host (DNS rebinding) and bad Origin.
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH, ("host", "evil.example")],
        Some(&initialize_body("2025-06-18")),
    );
    assert_eq!(r.status, 403);
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH, ("origin", "http://evil.example")],
        Some(&initialize_body("2025-06-18")),
    );
    assert_eq!(r.status, 403);
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH, ("origin", "http://allowed.example")],
        Some(&initialize_body("2025-06-18")),
    );
    assert_eq!(r.status, 200);
    // The session made above still works.
    let pong = mcp_call(&s, &sid, 3, "ping", json!({}));
    assert_eq!(pong["result"]["isError"], false);
    assert_still_serving(&s);
}

#[test]
fn allowed_hosts_flag_admits_service_names() {
    let dir = tmp();
    let s = Server::start(
        dir.path(),
        &[],
        &[("JSMCP_ALLOWED_HOSTS", "js-mcp.ns.svc,10.1.2.3")],
    );
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH, ("host", "js-mcp.ns.svc:3000")],
        Some(&initialize_body("2025-06-18")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn mcp_session_lifecycle_tools_and_delete_update_the_live_gauge() {
    let dir = tmp();
    let s = Server::start(dir.path(), &[], &[]);
    let sid = mcp_initialize(&s);
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_live"), 1.0);
    let created = mcp_call(
        &s,
        &sid,
        2,
        "session_create",
        json!({"labels": {"k": "v"}, "total_steps": 2}),
    );
    let session = &created["result"]["structuredContent"];
    let id = session["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(session["version"], 1);
    let marked = mcp_call(
        &s,
        &sid,
        3,
        "session_mark_step",
        json!({"session_id": id, "step": "a", "expected_version": 1}),
    );
    assert_eq!(
        marked["result"]["structuredContent"]["progress"]["percentage"],
        50.0
    );
    let stale = mcp_call(
        &s,
        &sid,
        4,
        "session_mark_step",
        json!({"session_id": id, "step": "b", "expected_version": 1}),
    );
    assert_eq!(stale["result"]["isError"], true);
    let text = stale["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("version conflict"), "{text}");
    let missing = mcp_call(&s, &sid, 5, "session_get", json!({"session_id": "nope"}));
    assert_eq!(missing["result"]["isError"], true);
    let unavailable = mcp_call(&s, &sid, 6, "docker_info", json!({}));
    assert_eq!(unavailable["result"]["isError"], true);
    let listed = mcp_call(&s, &sid, 7, "list_tools", json!({}));
    let names: Vec<String> = listed["result"]["structuredContent"]["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for want in [
        "ping",
        "server_status",
        "session_create",
        "start_workflow",
        "workflow_status",
        "docker_prune",
        "ai_complete",
    ] {
        assert!(names.iter().any(|n| n == want), "missing tool {want}");
    }
    let r = s.req("DELETE", "/mcp", &[("mcp-session-id", &sid)], None);
    assert_eq!(r.status, 200, "DELETE");
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH, ("mcp-session-id", &sid)],
        Some(br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#),
    );
    assert_eq!(r.status, 404);
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_live"), 0.0);
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_closed_total"), 1.0);
    // The session the MCP client created is an ordinary stored session.
    assert_eq!(
        s.json("GET", &format!("/api/v1/sessions/{id}"), None)
            .status,
        200
    );
}

#[test]
fn idle_mcp_sessions_are_closed_and_leave_the_gauge() {
    let dir = tmp();
    let s = Server::start(dir.path(), &["--idle-timeout-seconds", "1"], &[]);
    let sid = mcp_initialize(&s);
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_live"), 1.0);
    // Wait well past the idle timeout (bounded).
    let deadline = std::time::Instant::now() + server_support::READY_TIMEOUT;
    while metric(&s, "jsmcp_mcp_sessions_live") > 0.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_live"), 0.0);
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH, ("mcp-session-id", &sid)],
        Some(br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn stateless_2026_07_28_requests_are_served_on_the_same_endpoint() {
    let dir = tmp();
    let s = Server::start(dir.path(), &[], &[]);
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = serde_json::to_vec(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}),
    )
    .unwrap_or_default();
    let r = s.req(
        "POST",
        "/mcp",
        &[
            JSON_CT,
            ACCEPT_BOTH,
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "server/discover"),
        ],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("mcp-session-id").is_none());
    let msg = r.jsonrpc_messages().into_iter().next().unwrap_or_default();
    let versions = msg["result"]["supportedVersions"].to_string();
    for v in ["2025-06-18", "2025-11-25", "2026-07-28"] {
        assert!(versions.contains(v), "{versions}");
    }
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "session_create", "arguments": {"id": "stateless-1"}, "_meta": meta}}))
    .unwrap_or_default();
    let r = s.req(
        "POST",
        "/mcp",
        &[
            JSON_CT,
            ACCEPT_BOTH,
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "session_create"),
        ],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let msg = r.jsonrpc_messages().into_iter().next().unwrap_or_default();
    assert_eq!(msg["result"]["structuredContent"]["id"], "stateless-1");
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_live"), 0.0);
}

#[test]
fn drain_turns_readiness_off_and_refuses_new_sessions() {
    let dir = tmp();
    let s = Server::start(dir.path(), &[], &[]);
    assert_eq!(s.req("GET", "/ready", &[], None).status, 200);
    let r = s.req("POST", "/admin/drain", &[], None);
    assert_eq!(r.status, 202);
    assert_eq!(s.req("GET", "/ready", &[], None).status, 503);
    let r = s.json("POST", "/api/v1/sessions", Some(json!({})));
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (503, Some("draining"))
    );
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH],
        Some(&initialize_body("2025-06-18")),
    );
    assert_eq!(r.status, 503);
    let status = s.json("GET", "/status", None).json();
    assert_eq!(status["draining"], true);
    assert_eq!(metric(&s, "jsmcp_draining"), 1.0);
    assert_still_serving(&s);
}

#[test]
fn bearer_token_guards_api_mcp_and_admin_but_not_probes() {
    let dir = tmp();
    let s = Server::start(dir.path(), &[], &[("JSMCP_AUTH_TOKEN", "s3cret")]);
    assert_eq!(s.json("GET", "/api/v1/sessions", None).status, 401);
    assert_eq!(s.req("POST", "/admin/drain", &[], None).status, 401);
    let r = s.req(
        "POST",
        "/mcp",
        &[JSON_CT, ACCEPT_BOTH],
        Some(&initialize_body("2025-06-18")),
    );
    assert_eq!(r.status, 401);
    let r = s.req(
        "GET",
        "/api/v1/sessions",
        &[("authorization", "Bearer wrong")],
        None,
    );
    assert_eq!(r.status, 401);
    let r = s.req(
        "GET",
        "/api/v1/sessions",
        &[("authorization", "Bearer s3cret")],
        None,
    );
    assert_eq!(r.status, 200);
    for probe in ["/health", "/ready", "/status", "/metrics"] {
        assert_eq!(s.req("GET", probe, &[], None).status, 200, "{probe}");
    }
}

#[test]
fn status_lists_every_component_and_metrics_use_documented_names() {
    let dir = tmp();
    let s = Server::start(dir.path(), &[], &[]);
    let v = s.json("GET", "/status", None).json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptime_seconds"].as_f64().is_some());
    for c in ["sessions", "workflows", "store", "docker", "ai"] {
        assert!(
            v["components"][c]["state"].is_string(),
            "component {c}: {v}"
        );
        assert!(
            v["components"][c]["detail"].is_string(),
            "component {c}: {v}"
        );
    }
    assert_eq!(v["components"]["store"]["state"], "ok");
    s.json("POST", "/api/v1/sessions", Some(json!({})));
    let text = s.req("GET", "/metrics", &[], None).text();
    for name in [
        "jsmcp_http_request_duration_seconds_bucket",
        "jsmcp_http_requests_total",
        "jsmcp_session_ops_total",
        "jsmcp_session_op_duration_seconds_bucket",
        "jsmcp_sessions_live",
        "jsmcp_sessions_created_total",
        "jsmcp_sessions_expired_total",
        "jsmcp_mcp_sessions_live",
        "jsmcp_workflow_runs_active",
        "jsmcp_draining",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    assert!(text.contains("route=\"/api/v1/sessions\""));
}

#[test]
fn config_file_sets_limits_and_flags_override_it() {
    let dir = tmp();
    let cfg = dir.path().join("config.json");
    std::fs::write(
        &cfg,
        r#"{"maxSessions": 1, "sessionTtlSeconds": 120, "logLevel": "warn"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let cfg_s = cfg.to_string_lossy().to_string();
    let s = Server::start(&data, &["--config", &cfg_s], &[]);
    let v = s.json("POST", "/api/v1/sessions", Some(json!({}))).json();
    assert_eq!(v["ttl_seconds"], 120);
    assert_eq!(
        s.json("POST", "/api/v1/sessions", Some(json!({}))).status,
        503
    );
    drop(s);
    let s = Server::start(&data, &["--config", &cfg_s, "--max-sessions", "5"], &[]);
    assert_eq!(
        s.json("POST", "/api/v1/sessions", Some(json!({}))).status,
        201
    );
}

#[test]
fn bad_config_file_stops_startup_with_an_error_naming_the_key() {
    let dir = tmp();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, r#"{"maxSesions": 1}"#).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(server_support::binary())
        .args(["serve", "--port", "0", "--config"])
        .arg(&cfg)
        .env("JSMCP_DATA_DIR", dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maxSesions"), "{err}");
}

#[test]
fn http_egress_hosts_come_from_the_file_and_a_bad_pattern_stops_startup() {
    let dir = tmp();
    let cfg = dir.path().join("config.json");
    std::fs::write(
        &cfg,
        r#"{"httpAllowedHosts": ["api.example.com", "*.svc.cluster.local"]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cfg_s = cfg.to_string_lossy().to_string();
    let s = Server::start(&dir.path().join("data"), &["--config", &cfg_s], &[]);
    let status = s.json("GET", "/status", None).json();
    let detail = status["components"]["workflows"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("http.request may reach api.example.com, *.svc.cluster.local;"),
        "{detail}"
    );
    drop(s);
    let out = std::process::Command::new(server_support::binary())
        .args([
            "serve",
            "--port",
            "0",
            "--http-allowed-hosts",
            "https://api.example.com",
        ])
        .env("JSMCP_DATA_DIR", dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid configuration httpAllowedHosts")
            && err.contains("`https://api.example.com` is not a host pattern"),
        "{err}"
    );
}

#[test]
fn two_servers_sharing_redis_see_each_others_sessions() {
    let redis = RedisServer::start();
    let (d1, d2) = (tmp(), tmp());
    let env = [
        ("JSMCP_STORE", "redis"),
        ("JSMCP_REDIS_URL", redis.url.as_str()),
    ];
    let a = Server::start(d1.path(), &[], &env);
    let b = Server::start(d2.path(), &[], &env);
    let created = a.json(
        "POST",
        "/api/v1/sessions",
        Some(json!({"labels": {"shared": "yes"}})),
    );
    assert_eq!(created.status, 201);
    let id = created.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let seen = b.json("GET", &format!("/api/v1/sessions/{id}"), None);
    assert_eq!(seen.status, 200);
    let upd = b.json(
        "POST",
        &format!("/api/v1/sessions/{id}/ops?version=1"),
        Some(json!({"op": "set_current_step", "step": "build"})),
    );
    assert_eq!(upd.status, 200);
    let stale = a.json(
        "POST",
        &format!("/api/v1/sessions/{id}/ops?version=1"),
        Some(json!({"op": "set_current_step", "step": "deploy"})),
    );
    assert_eq!(stale.status, 409);
    let listed = a
        .json("GET", "/api/v1/sessions?labels=shared=yes", None)
        .json();
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        b.json("GET", "/status", None).json()["components"]["store"]["state"],
        "ok"
    );
}

#[test]
fn workflow_endpoints_run_workflows_or_say_why_they_cannot() {
    let dir = tmp();
    let s = Server::start(dir.path(), &[], &[]);
    let engine =
        s.json("GET", "/status", None).json()["components"]["workflows"]["state"] != "disabled";
    let r = s.json("GET", "/api/v1/runs/no-such-run", None);
    assert_eq!(r.status, 404);
    let r = s.json("GET", "/api/v1/runs?colour=red", None);
    assert_eq!(
        (r.status, error_field(&r).as_deref()),
        (400, Some("colour"))
    );
    if !engine {
        let r = s.json("GET", "/api/v1/workflows", None);
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (503, Some("workflows_unavailable"))
        );
        let r = s.json(
            "POST",
            "/api/v1/workflows/containerize/runs",
            Some(json!({})),
        );
        assert_eq!(r.status, 503);
        return;
    }
    let list = s.json("GET", "/api/v1/workflows", None).json();
    assert!(
        list["workflows"].to_string().contains("containerize"),
        "{list}"
    );
    let r = s.json("POST", "/api/v1/workflows/nope/runs", Some(json!({})));
    assert_eq!(r.status, 404);
    let r = s.json(
        "POST",
        "/api/v1/workflows/containerize/runs",
        Some(json!({"params": [1]})),
    );
    assert_eq!(
        (r.status, error_field(&r).as_deref()),
        (400, Some("params"))
    );
    let sid = s.json("POST", "/api/v1/sessions", Some(json!({}))).json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = s.json(
        "POST",
        "/api/v1/workflows/containerize/runs",
        Some(
            json!({"session_id": sid, "params": {"language": "rust", "name": "svc"}, "wait": true}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let run = r.json();
    assert_eq!(run["status"], "completed", "{run}");
    let got = s
        .json(
            "GET",
            &format!("/api/v1/runs/{}", run["id"].as_str().unwrap_or_default()),
            None,
        )
        .json();
    assert_eq!(got["status"], "completed");
    let session = s
        .json("GET", &format!("/api/v1/sessions/{sid}"), None)
        .json();
    assert!(
        !session["workflow_state"]["completed_steps"]
            .as_array()
            .map(Vec::is_empty)
            .unwrap_or(true)
    );
    // The session keeps each completed step's result, the same output the run record holds.
    let outputs = got["record"]["outputs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(!outputs.is_empty(), "{got}");
    for (step, output) in &outputs {
        assert_eq!(
            &session["workflow_state"]["step_results"][step], output,
            "step {step}: {session}"
        );
    }
    let runs = s
        .json("GET", &format!("/api/v1/runs?session_id={sid}"), None)
        .json();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1));
}

#[test]
fn sigterm_ends_open_sse_streams_and_exits_cleanly() {
    use std::io::{Read, Write};
    let dir = tmp();
    let mut s = Server::start(dir.path(), &[], &[]);
    let sid = mcp_initialize(&s);
    // A client holding the standalone GET stream open, as SDK clients do.
    let mut stream = std::net::TcpStream::connect(s.addr).unwrap_or_else(|e| panic!("{e}"));
    stream
        .set_read_timeout(Some(server_support::READY_TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}"));
    let req = format!(
        "GET /mcp HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\nMcp-Protocol-Version: 2025-06-18\r\n\r\n",
        s.addr
    );
    stream
        .write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    // The response head (and the priming event) arrive at once: the stream is open.
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(
        s.terminate(),
        Some(0),
        "serve must exit 0 with an open SSE stream"
    );
    // The server ended the stream: reading reaches EOF instead of blocking.
    let mut rest = Vec::new();
    let r = stream.read_to_end(&mut rest);
    assert!(r.is_ok(), "stream did not end cleanly: {r:?}");
}
