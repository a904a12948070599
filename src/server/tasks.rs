//! MCP tasks (the SEP-2663 tasks extension that rmcp 3.11 implements) over workflow runs.
//!
//! When a client that declared the `io.modelcontextprotocol/tasks` extension calls
//! `start_workflow` (without `wait`), the run is returned as a task whose id is the run id.
//! `tasks/get` reads the stored run, so a task outlives its MCP session and survives a
//! restart as long as the run record does; `tasks/cancel` cancels the run. A finished task's
//! result is exactly what `start_workflow` with `wait: true` returns. Clients without the
//! extension keep `start_workflow` + `workflow_status`.

use rmcp::model::{DetailedTask, JsonObject, Task, TaskPayload, TaskStatus};
use serde_json::Value;

use super::store::RunDoc;

/// How often clients are asked to poll `tasks/get`.
pub const POLL_INTERVAL_MS: u64 = 250;

/// The `tasks/get` view of a run; `result` is the tool result the finished run gives.
pub fn task_of_run(run: &RunDoc, result: impl FnOnce() -> Value) -> DetailedTask {
    let created = run.started_at.to_rfc3339();
    let updated = run
        .record
        .get("finishedAt")
        .and_then(Value::as_str)
        .map_or_else(|| chrono::Utc::now().to_rfc3339(), str::to_owned);
    let task = Task::new(run.id.clone(), TaskStatus::Working, created, updated)
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message(format!("workflow {} is {}", run.workflow_id, run.status));
    let payload = match run.status.as_str() {
        "running" => TaskPayload::Working,
        "cancelled" => TaskPayload::Cancelled,
        // completed, partial and failed runs all produced a run record: the tool call
        // completed, and the record says how the run went (as `wait: true` does).
        _ => TaskPayload::Completed {
            result: as_object(result()),
        },
    };
    DetailedTask::new(task, payload)
}

/// The seed task `start_workflow` answers with.
pub fn started_task(run: &RunDoc) -> Task {
    let at = run.started_at.to_rfc3339();
    Task::new(run.id.clone(), TaskStatus::Working, at.clone(), at)
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message(format!("workflow {} started", run.workflow_id))
}

fn as_object(v: Value) -> JsonObject {
    match v {
        Value::Object(map) => map,
        other => {
            let mut map = JsonObject::new();
            map.insert("value".into(), other);
            map
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(status: &str) -> RunDoc {
        RunDoc {
            id: "run-1".into(),
            workflow_id: "health-check".into(),
            session_id: None,
            status: status.into(),
            started_at: chrono::DateTime::parse_from_rfc3339("2026-11-28T00:00:00Z")
                .expect("time")
                .to_utc(),
            record: json!({"finishedAt": "2026-11-28T00:00:01Z"}),
        }
    }

    #[test]
    fn run_statuses_map_to_task_statuses() {
        let result = || json!({"content": [], "structuredContent": {"status": "x"}});
        assert_eq!(
            task_of_run(&run("running"), result).status(),
            TaskStatus::Working
        );
        assert_eq!(
            task_of_run(&run("cancelled"), result).status(),
            TaskStatus::Cancelled
        );
        for finished in ["completed", "partial", "failed"] {
            let t = task_of_run(&run(finished), result);
            assert_eq!(t.status(), TaskStatus::Completed, "{finished}");
            assert_eq!(t.task.task_id, "run-1");
            assert_eq!(t.task.last_updated_at, "2026-11-28T00:00:01Z");
            match t.payload {
                TaskPayload::Completed { result } => {
                    assert_eq!(result["structuredContent"]["status"], "x")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
