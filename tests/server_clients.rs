//! The official MCP SDK clients against the real binary: the Python SDK (PyPI `mcp`, in the
//! `.venv-tests` venv) and the TypeScript SDK (npm `@modelcontextprotocol/sdk` in
//! tests/clients), both installed by .ci/setup-server.sh. Each connects, lists tools,
//! creates and uses a session, runs a workflow when the server has an engine, and ends the
//! MCP session with DELETE.

mod server_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use server_support::Server;

/// The built-in workflow the clients run when the engine is present.
const WORKFLOW: &str = "containerize";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn metric(s: &Server, name: &str) -> f64 {
    let text = s.req("GET", "/metrics", &[], None).text();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not found"))
}

/// The workflow to pass, or `None` when the server reports no engine.
fn workflow_arg(s: &Server) -> Option<&'static str> {
    let status = s.json("GET", "/status", None).json();
    (status["components"]["workflows"]["state"] != "disabled").then_some(WORKFLOW)
}

fn run_client(mut cmd: Command) -> Value {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run client {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed: {stdout}\n{stderr}");
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("client summary not JSON ({e}): {stdout}\n{stderr}"))
}

fn check_summary(s: &Server, v: &Value, workflow: Option<&str>) {
    assert_eq!(v["server"], "js-mcp");
    let version = v["protocolVersion"].as_str().unwrap_or_default();
    assert!(
        ["2025-06-18", "2025-11-25"].contains(&version),
        "negotiated {version}"
    );
    assert_eq!(v["staleUpdateIsError"], true, "{v}");
    assert!(
        v["staleUpdateText"]
            .as_str()
            .unwrap_or_default()
            .contains("version conflict")
    );
    assert_eq!(v["version"], 2);
    assert_eq!(v["completedSteps"], serde_json::json!(["analyze"]));
    assert_eq!(v["ping"], true);
    assert_eq!(v["closed"], true);
    match workflow {
        Some(_) => {
            assert_eq!(v["workflowStatus"], "completed", "{v}");
            assert_eq!(v["workflowStatusTool"], "completed", "{v}");
        }
        None => {
            let err = v["workflowError"].as_str().unwrap_or_default();
            assert!(err.contains("workflows are unavailable"), "{v}");
        }
    }
    // The session the client created is stored and visible over REST.
    let sid = v["sessionId"].as_str().unwrap_or_default();
    assert_eq!(
        s.json("GET", &format!("/api/v1/sessions/{sid}"), None)
            .status,
        200
    );
}

#[test]
fn python_sdk_client_uses_sessions_and_terminates_with_delete() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-tests/bin/python");
    assert!(
        python.exists(),
        "{} missing: run .ci/setup-server.sh",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = Server::start(dir.path(), &[], &[]);
    let workflow = workflow_arg(&s);
    let mut cmd = Command::new(&python);
    cmd.arg(clients_dir().join("python_client.py"))
        .arg(format!("{}/mcp", s.base));
    if let Some(w) = workflow {
        cmd.arg(w);
    }
    let v = run_client(cmd);
    check_summary(&s, &v, workflow);
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_opened_total"), 1.0);
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_closed_total"), 1.0);
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_live"), 0.0);
}

#[test]
fn typescript_sdk_client_uses_sessions_and_terminates_with_delete() {
    let sdk = clients_dir().join("node_modules/@modelcontextprotocol/sdk");
    assert!(
        sdk.exists(),
        "{} missing: run .ci/setup-server.sh",
        sdk.display()
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = Server::start(dir.path(), &[], &[]);
    let workflow = workflow_arg(&s);
    let mut cmd = Command::new("node");
    cmd.current_dir(clients_dir())
        .arg("ts_client.mjs")
        .arg(format!("{}/mcp", s.base));
    if let Some(w) = workflow {
        cmd.arg(w);
    }
    let v = run_client(cmd);
    check_summary(&s, &v, workflow);
    assert!(v["mcpSessionId"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_closed_total"), 1.0);
    assert_eq!(metric(&s, "jsmcp_mcp_sessions_live"), 0.0);
}
