//! MCP tasks (SEP-2663, as rmcp 3.11 serves them) over workflow runs, on the real binary over
//! HTTP: a client that declares the tasks extension gets `start_workflow` back as a task,
//! polls `tasks/get` to the result, cancels a slow run with `tasks/cancel`, and gets clear
//! errors for unknown tasks; a client without the extension keeps the plain result.

mod server_support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server_support::{Server, mcp_open, mcp_request};

const VERSION: &str = "2025-11-25";

/// An MCP session over the real HTTP transport, numbering its requests.
struct Mcp<'a> {
    server: &'a Server,
    sid: String,
    next_id: u64,
}

impl<'a> Mcp<'a> {
    fn open(server: &'a Server, capabilities: Value) -> Mcp<'a> {
        let sid = mcp_open(server, VERSION, capabilities);
        Mcp {
            server,
            sid,
            next_id: 1,
        }
    }

    /// A request; returns the whole JSON-RPC reply (result or error).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        mcp_request(
            self.server,
            &self.sid,
            VERSION,
            self.next_id,
            method,
            params,
        )
    }

    fn start(&mut self, workflow_id: &str, params: Value) -> Value {
        self.request(
            "tools/call",
            json!({"name": "start_workflow",
                   "arguments": {"workflow_id": workflow_id, "params": params}}),
        )
    }

    /// Polls `tasks/get` until the task leaves `working`.
    fn wait_task(&mut self, task_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self.request("tasks/get", json!({"taskId": task_id}));
            let status = reply["result"]["status"].as_str().unwrap_or_default();
            assert!(!status.is_empty(), "tasks/get: {reply}");
            if status != "working" {
                return reply["result"].clone();
            }
            assert!(Instant::now() < deadline, "task {task_id} still working");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn tasks_extension() -> Value {
    json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})
}

/// A workflows directory with one slow workflow, for cancellation.
fn slow_workflows() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("slow.yaml"),
        "id: slow\nname: slow\nsteps:\n  - {name: wait, tool: sleep, params: {ms: 30000}}\n  - {name: after, tool: echo, dependsOn: [wait]}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn a_task_capable_client_gets_start_workflow_as_a_task_and_polls_it_to_the_result() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(data.path(), &[], &[]);
    let mut mcp = Mcp::open(&server, tasks_extension());

    let created = mcp.start("containerize", json!({"language": "rust", "name": "svc"}));
    let result = &created["result"];
    assert_eq!(result["resultType"], "task", "{created}");
    assert_eq!(result["status"], "working");
    assert_eq!(result["pollIntervalMs"], 250);
    let task_id = result["taskId"].as_str().unwrap_or_default().to_string();
    assert!(!task_id.is_empty());

    let done = mcp.wait_task(&task_id);
    assert_eq!(done["status"], "completed", "{done}");
    // The result is the tool result `start_workflow` with wait=true gives: the run record.
    let run = &done["result"]["structuredContent"];
    assert_eq!(
        run["id"],
        json!(task_id),
        "the task id is the run id: {done}"
    );
    assert_eq!(run["status"], "completed");
    assert_eq!(run["record"]["workflowId"], "containerize");
    // The same run through the polling tool every client has.
    let status = mcp.request(
        "tools/call",
        json!({"name": "workflow_status", "arguments": {"run_id": task_id}}),
    );
    assert_eq!(
        status["result"]["structuredContent"]["status"], "completed",
        "{status}"
    );
}

#[test]
fn tasks_cancel_stops_a_slow_run_and_unknown_tasks_are_named() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let flows = slow_workflows();
    let flows_arg = flows.path().to_string_lossy().to_string();
    let server = Server::start(data.path(), &["--workflows-dir", &flows_arg], &[]);
    let mut mcp = Mcp::open(&server, tasks_extension());

    let created = mcp.start("slow", json!({}));
    let task_id = created["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task: {created}"))
        .to_string();
    let working = mcp.request("tasks/get", json!({"taskId": task_id}));
    assert_eq!(working["result"]["status"], "working", "{working}");

    let ack = mcp.request("tasks/cancel", json!({"taskId": task_id}));
    assert!(ack.get("error").is_none(), "{ack}");
    let ended = mcp.wait_task(&task_id);
    assert_eq!(ended["status"], "cancelled", "{ended}");
    // Cancelling a task that already ended is acknowledged and changes nothing.
    let again = mcp.request("tasks/cancel", json!({"taskId": task_id}));
    assert!(again.get("error").is_none(), "{again}");

    let unknown = mcp.request("tasks/get", json!({"taskId": "no-such-run"}));
    let message = unknown["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(message, "unknown task \"no-such-run\"", "{unknown}");
    let update = mcp.request(
        "tasks/update",
        json!({"taskId": task_id, "inputResponses": {}}),
    );
    assert!(
        update["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("never asks for input"),
        "{update}"
    );
}

#[test]
fn a_client_without_the_extension_keeps_the_plain_result() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(data.path(), &[], &[]);
    let mut mcp = Mcp::open(&server, json!({}));
    let started = mcp.start("containerize", json!({"language": "go", "name": "api"}));
    let result = &started["result"];
    assert!(
        result.get("resultType").is_none_or(|t| t == "complete"),
        "{started}"
    );
    let run_id = result["structuredContent"]["id"]
        .as_str()
        .unwrap_or_default();
    assert!(!run_id.is_empty(), "{started}");
    // tasks/* are refused to a client that did not declare the extension.
    let refused = mcp.request("tasks/get", json!({"taskId": run_id}));
    assert!(refused.get("error").is_some(), "{refused}");
}
