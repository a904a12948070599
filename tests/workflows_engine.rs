//! Engine semantics with builtin tools only: DAG order and parallelism, parameter mapping,
//! conditions, retries, timeouts, onError policies, cancellation, events and built-ins.

use std::sync::{Arc, Mutex};

use js_mcp::server::workflows::{
    Catalog, DefinitionFormat, Engine, EngineError, RunEvent, RunInput, RunRecord, RunStatus,
    StepDeps, StepStatus, WorkflowDefinition,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn deps() -> StepDeps {
    StepDeps {
        http: Default::default(),
        docker: None,
        ai: None,
    }
}

fn engine_for(yaml: &str) -> Engine {
    let def = WorkflowDefinition::parse(yaml, DefinitionFormat::Yaml)
        .unwrap_or_else(|e| panic!("test workflow does not parse: {e}"));
    let catalog = Catalog::from_definitions(vec![def], "test")
        .unwrap_or_else(|e| panic!("test workflow is invalid: {e:#?}"));
    Engine::new(Arc::new(catalog), deps())
}

fn input(params: Value) -> RunInput {
    RunInput {
        workflow_id: "wf".into(),
        session_id: Some("sess-1".into()),
        session_state: json!({"id": "sess-1", "labels": {"env": "prod"}, "metadata": {"repo": "acme/api"}}),
        params,
    }
}

async fn run(yaml: &str, params: Value) -> RunRecord {
    engine_for(yaml)
        .run(input(params), CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("run did not start: {e}"))
}

/// Runs and records every event.
async fn run_with_events(yaml: &str, params: Value) -> (RunRecord, Vec<RunEvent>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let handle = engine_for(yaml)
        .start(
            input(params),
            CancellationToken::new(),
            Arc::new(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e)),
        )
        .unwrap_or_else(|e| panic!("run did not start: {e}"));
    let record = handle.wait().await;
    let events = events.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (record, events)
}

fn position(events: &[RunEvent], want: impl Fn(&RunEvent) -> bool) -> usize {
    events
        .iter()
        .position(want)
        .unwrap_or_else(|| panic!("event not found in {events:#?}"))
}

fn started(step: &'static str) -> impl Fn(&RunEvent) -> bool {
    move |e| matches!(e, RunEvent::StepStarted { step: s, .. } if s == step)
}

fn completed(step: &'static str) -> impl Fn(&RunEvent) -> bool {
    move |e| matches!(e, RunEvent::StepCompleted { step: s, .. } if s == step)
}

fn step_status(record: &RunRecord, name: &str) -> StepStatus {
    record
        .steps
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.status)
        .unwrap_or_else(|| panic!("no step {name} in {record:#?}"))
}

#[tokio::test]
async fn independent_steps_overlap_and_dependents_wait_for_all_their_dependencies() {
    let (record, events) = run_with_events(
        r#"
id: wf
name: fan-in
steps:
  - {name: a, tool: sleep, params: {ms: 150}}
  - {name: b, tool: sleep, params: {ms: 150}}
  - {name: c, tool: echo, dependsOn: [a, b]}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.completed_steps, vec!["a", "b", "c"]);
    // Both roots start before either finishes: they run in parallel.
    let first_done = position(&events, completed("a")).min(position(&events, completed("b")));
    assert!(position(&events, started("a")) < first_done);
    assert!(position(&events, started("b")) < first_done);
    // The join starts only after both of its dependencies completed.
    let c = position(&events, started("c"));
    assert!(c > position(&events, completed("a")) && c > position(&events, completed("b")));
}

#[tokio::test]
async fn a_chain_runs_in_dependency_order_not_file_order() {
    let (record, events) = run_with_events(
        r#"
id: wf
name: chain
steps:
  - {name: last, tool: echo, dependsOn: [middle]}
  - {name: middle, tool: echo, dependsOn: [first]}
  - {name: first, tool: echo}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed);
    assert!(position(&events, completed("first")) < position(&events, started("middle")));
    assert!(position(&events, completed("middle")) < position(&events, started("last")));
}

#[tokio::test]
async fn parameters_map_from_params_session_and_earlier_outputs_keeping_json_types() {
    let record = run(
        r#"
id: wf
name: mapping
steps:
  - name: scan
    tool: set
    params: {count: 3, files: ["a.rs", "b.rs"], meta: {lang: rust}}
  - name: use
    tool: echo
    dependsOn: [scan]
    params:
      count: '${steps.scan.output.count}'
      files: '${outputs.scan.files}'
      lang: '${outputs.scan.meta.lang}'
      first: '${outputs.scan.files[0]}'
      replicas: '${params.replicas}'
      env: '${session.labels.env}'
      repo: '${session.metadata.repo}'
      line: 'repo=${session.metadata.repo} n=${params.replicas} files=${outputs.scan.files}'
      fallback: '${params.tag ?? "latest"}'
      literal: 'cost: $${not-a-ref}'
"#,
        json!({"replicas": 2}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(
        record.outputs["use"],
        json!({
            "count": 3,
            "files": ["a.rs", "b.rs"],
            "lang": "rust",
            "first": "a.rs",
            "replicas": 2,
            "env": "prod",
            "repo": "acme/api",
            "line": "repo=acme/api n=2 files=[\"a.rs\",\"b.rs\"]",
            "fallback": "latest",
            "literal": "cost: ${not-a-ref}",
        })
    );
    assert_eq!(record.session_id.as_deref(), Some("sess-1"));
}

#[tokio::test]
async fn a_reference_to_a_missing_value_fails_the_step_with_the_reference_named() {
    let record = run(
        r#"
id: wf
name: missing
steps:
  - {name: a, tool: echo, params: {repo: '${params.repo}'}}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.failed_steps, vec!["a"]);
    assert!(
        record.errors[0].message.contains("params.repo")
            && record.errors[0].message.contains("not set"),
        "{:?}",
        record.errors
    );
}

#[tokio::test]
async fn false_condition_skips_the_step_but_its_dependents_still_run() {
    let yaml = r#"
id: wf
name: conditions
steps:
  - {name: scan, tool: set, params: {count: 0}}
  - {name: fix, tool: echo, dependsOn: [scan], condition: 'outputs.scan.count > 0'}
  - {name: prod-only, tool: echo, condition: 'session.labels.env == "prod"'}
  - {name: staging-only, tool: echo, condition: 'session.labels.env == "staging"'}
  - name: report
    tool: echo
    dependsOn: [fix]
    params: {fix: '${steps.fix.status}', fixed: '${outputs.fix ?? "nothing to fix"}'}
"#;
    let record = run(yaml, json!({})).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.skipped_steps, vec!["fix", "staging-only"]);
    assert_eq!(record.completed_steps, vec!["scan", "prod-only", "report"]);
    assert_eq!(
        record.outputs["report"],
        json!({"fix": "skipped", "fixed": "nothing to fix"})
    );
    let fix = record
        .steps
        .iter()
        .find(|s| s.name == "fix")
        .map(|s| s.reason.clone());
    assert_eq!(
        fix,
        Some(Some("condition `outputs.scan.count > 0` is false".into()))
    );
    assert!(record.errors.is_empty());
}

#[tokio::test]
async fn a_whole_run_timeout_cancels_what_is_in_flight_and_fails_the_run() {
    let began = std::time::Instant::now();
    let record = run(
        r#"
id: wf
name: bounded
timeout: 200ms
steps:
  - {name: quick, tool: echo, params: {x: 1}}
  - {name: slow, tool: sleep, params: {ms: 30000}}
  - {name: after, tool: echo, dependsOn: [slow]}
"#,
        json!({}),
    )
    .await;
    assert!(
        began.elapsed() < std::time::Duration::from_secs(10),
        "the run outlived its limit"
    );
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.completed_steps, vec!["quick"]);
    assert_eq!(record.cancelled_steps, vec!["slow", "after"]);
    assert_eq!(record.errors.len(), 1, "{:?}", record.errors);
    assert_eq!(record.errors[0].step, "");
    assert_eq!(record.errors[0].message, "the run timed out after 200ms");
    let slow = record.steps.iter().find(|s| s.name == "slow");
    assert_eq!(
        slow.and_then(|s| s.reason.as_deref()),
        Some("the run timed out after 200ms")
    );
}

#[test]
fn a_bad_whole_run_timeout_is_refused_on_load() {
    let def = WorkflowDefinition::parse(
        "id: wf\nname: bad\ntimeout: 'soon'\nsteps:\n  - {name: a, tool: echo}\n",
        DefinitionFormat::Yaml,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let errors = Catalog::from_definitions(vec![def], "test.yaml")
        .err()
        .unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let text = errors[0].to_string();
    assert!(
        text.contains("test.yaml") && text.contains("wf") && text.contains("bad timeout"),
        "{text}"
    );
}

#[tokio::test]
async fn on_error_fail_stops_the_run_and_cancels_what_is_pending_or_in_flight() {
    let record = run(
        r#"
id: wf
name: fail
steps:
  - {name: slow, tool: sleep, params: {ms: 30000}}
  - {name: boom, tool: fail, params: {message: disk on fire}}
  - {name: after, tool: echo, dependsOn: [boom]}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.failed_steps, vec!["boom"]);
    assert_eq!(record.cancelled_steps, vec!["slow", "after"]);
    assert!(record.completed_steps.is_empty());
    assert_eq!(record.errors.len(), 1);
    assert!(record.errors[0].message.contains("disk on fire"));
    let slow = record
        .steps
        .iter()
        .find(|s| s.name == "slow")
        .and_then(|s| s.reason.clone());
    assert_eq!(
        slow.as_deref(),
        Some("the run stopped because step `boom` failed")
    );
}

#[tokio::test]
async fn on_error_skip_skips_the_step_and_everything_downstream_and_the_run_is_partial() {
    let record = run(
        r#"
id: wf
name: skip
steps:
  - {name: optional, tool: fail, onError: skip, params: {message: no cache}}
  - {name: uses-it, tool: echo, dependsOn: [optional]}
  - {name: further, tool: echo, dependsOn: [uses-it]}
  - {name: unrelated, tool: echo}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Partial);
    assert_eq!(record.skipped_steps, vec!["optional", "uses-it", "further"]);
    assert_eq!(record.completed_steps, vec!["unrelated"]);
    assert!(record.failed_steps.is_empty());
    assert_eq!(record.errors.len(), 1);
    assert_eq!(record.errors[0].step, "optional");
    let reason = record
        .steps
        .iter()
        .find(|s| s.name == "further")
        .and_then(|s| s.reason.clone());
    assert_eq!(reason.as_deref(), Some("dependency `uses-it` was skipped"));
}

#[tokio::test]
async fn on_error_continue_records_the_error_and_dependents_still_run() {
    let record = run(
        r#"
id: wf
name: continue
steps:
  - {name: flaky, tool: fail, onError: continue, params: {message: upstream 503}}
  - name: report
    tool: echo
    dependsOn: [flaky]
    params: {status: '${steps.flaky.status}', error: '${steps.flaky.error}'}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Partial);
    assert_eq!(record.failed_steps, vec!["flaky"]);
    assert_eq!(record.completed_steps, vec!["report"]);
    assert_eq!(record.outputs["report"]["status"], "failed");
    assert!(
        record.outputs["report"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("upstream 503"))
    );
}

#[tokio::test]
async fn a_step_that_is_not_required_never_fails_the_run() {
    let record = run(
        r#"
id: wf
name: optional
steps:
  - {name: nice-to-have, tool: fail, required: false}
  - {name: next, tool: echo, dependsOn: [nice-to-have]}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Partial);
    assert_eq!(record.completed_steps, vec!["next"]);
}

#[tokio::test]
async fn retryable_steps_retry_with_backoff_until_they_succeed() {
    let (record, events) = run_with_events(
        r#"
id: wf
name: retry
steps:
  - {name: flaky, tool: fail, retryable: true, maxRetries: 3, params: {succeedOnAttempt: 3}}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.steps[0].attempts, 3);
    assert_eq!(record.outputs["flaky"], json!({"attempt": 3}));
    let retries: Vec<(u32, u64)> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::StepRetrying {
                attempt,
                backoff_ms,
                ..
            } => Some((*attempt, *backoff_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(retries, vec![(1, 25), (2, 50)]);
}

#[tokio::test]
async fn retries_stop_at_max_retries_and_the_error_says_how_many_attempts_were_made() {
    let record = run(
        r#"
id: wf
name: retry
steps:
  - {name: flaky, tool: fail, retryable: true, maxRetries: 1, params: {message: still down}}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.steps[0].attempts, 2);
    assert!(
        record.errors[0].message.contains("still down")
            && record.errors[0].message.contains("after 2 attempts"),
        "{:?}",
        record.errors
    );
}

#[tokio::test]
async fn permanent_errors_and_steps_that_are_not_retryable_run_once() {
    let record = run(
        r#"
id: wf
name: no-retry
steps:
  - {name: permanent, tool: fail, retryable: true, maxRetries: 5, onError: continue, params: {retryable: false}}
  - {name: not-retryable, tool: fail, onError: continue, params: {succeedOnAttempt: 2}}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.failed_steps, vec!["permanent", "not-retryable"]);
    assert!(record.steps.iter().all(|s| s.attempts == 1), "{record:#?}");
}

#[tokio::test]
async fn a_step_over_its_timeout_fails_and_a_retryable_one_is_tried_again() {
    let record = run(
        r#"
id: wf
name: timeout
steps:
  - {name: hang, tool: sleep, timeout: 50ms, onError: continue, params: {ms: 30000}}
  - {name: hang-retry, tool: sleep, timeout: 30, retryable: true, maxRetries: 1, onError: continue, params: {duration: 30s}}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Partial);
    assert_eq!(record.failed_steps, vec!["hang", "hang-retry"]);
    assert_eq!(record.errors[0].message, "timed out after 50ms");
    assert_eq!(record.steps[1].attempts, 2);
    assert!(
        record.errors[1]
            .message
            .contains("timed out after 30ms (after 2 attempts)")
    );
}

#[tokio::test]
async fn cancelling_a_run_interrupts_running_steps_and_never_starts_pending_ones() {
    let engine = engine_for(
        r#"
id: wf
name: cancel
steps:
  - {name: long, tool: sleep, params: {ms: 30000}}
  - {name: after, tool: echo, dependsOn: [long]}
"#,
    );
    let cancel = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let handle = engine
        .start(
            input(json!({})),
            cancel.clone(),
            Arc::new(move |e| {
                if matches!(e, RunEvent::StepStarted { .. })
                    && let Some(tx) = tx.lock().unwrap_or_else(|p| p.into_inner()).take()
                {
                    let _ = tx.send(());
                }
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(engine.active_runs(), 1);
    rx.await
        .unwrap_or_else(|e| panic!("step never started: {e}"));
    cancel.cancel();
    let record = handle.wait().await;
    assert_eq!(record.status, RunStatus::Cancelled);
    assert_eq!(record.cancelled_steps, vec!["long", "after"]);
    assert!(
        record
            .steps
            .iter()
            .all(|s| s.reason.as_deref() == Some("the run was cancelled"))
    );
    assert_eq!(engine.active_runs(), 0);
}

#[tokio::test]
async fn a_run_cancelled_before_it_starts_runs_nothing() {
    let engine = engine_for("id: wf\nname: x\nsteps: [{name: a, tool: echo}]\n");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let record = engine
        .run(input(json!({})), cancel)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.status, RunStatus::Cancelled);
    assert_eq!(record.cancelled_steps, vec!["a"]);
    assert_eq!(record.steps[0].attempts, 0);
}

#[tokio::test]
async fn starting_an_unknown_workflow_or_with_non_object_params_is_refused() {
    let engine = engine_for("id: wf\nname: x\nsteps: [{name: a, tool: echo}]\n");
    let mut bad = input(json!({}));
    bad.workflow_id = "nope".into();
    let err = engine
        .run(bad, CancellationToken::new())
        .await
        .expect_err("unknown workflow");
    assert_eq!(
        err,
        EngineError::UnknownWorkflow {
            id: "nope".into(),
            known: "wf".into()
        }
    );
    assert!(
        err.to_string()
            .contains("unknown workflow `nope` (known: wf)")
    );
    let err = engine
        .run(input(json!([1, 2])), CancellationToken::new())
        .await
        .expect_err("list params");
    assert!(
        err.to_string()
            .contains("params must be a JSON object, found a list")
    );
    let ok = engine
        .run(input(Value::Null), CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status, RunStatus::Completed);
}

#[tokio::test]
async fn events_report_progress_up_to_the_total_and_end_with_the_record() {
    let (record, events) = run_with_events(
        r#"
id: wf
name: progress
steps:
  - {name: a, tool: echo}
  - {name: b, tool: echo, dependsOn: [a]}
  - {name: c, tool: echo, dependsOn: [b], condition: 'false'}
  - {name: d, tool: echo, dependsOn: [c]}
"#,
        json!({}),
    )
    .await;
    assert!(matches!(events.first(), Some(RunEvent::RunStarted { .. })));
    let Some(RunEvent::RunFinished { record: last }) = events.last() else {
        panic!("last event is not RunFinished: {events:#?}");
    };
    assert_eq!(**last, record);
    let finals: Vec<(String, usize, u8)> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                RunEvent::StepCompleted { .. } | RunEvent::StepSkipped { .. }
            )
        })
        .map(|e| {
            let p = e.progress();
            (
                p.current_step.unwrap_or_default(),
                p.completed,
                p.percentage,
            )
        })
        .collect();
    assert_eq!(
        finals,
        vec![
            ("a".to_owned(), 1, 25),
            ("b".to_owned(), 2, 50),
            ("c".to_owned(), 3, 75),
            ("d".to_owned(), 4, 100)
        ]
    );
    assert!(events.iter().all(|e| e.run_id() == record.run_id));
    assert!(record.finished_at.is_some_and(|f| f >= record.started_at));
}

#[tokio::test]
async fn many_runs_proceed_concurrently_on_one_engine() {
    let engine = engine_for(
        r#"
id: wf
name: concurrent
steps:
  - {name: a, tool: sleep, params: {ms: 20}}
  - {name: b, tool: set, dependsOn: [a], params: {n: '${params.n}'}}
"#,
    );
    let handles: Vec<_> = (0..200)
        .map(|n| {
            engine
                .start(
                    input(json!({"n": n})),
                    CancellationToken::new(),
                    Arc::new(|_| {}),
                )
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for (n, h) in handles.into_iter().enumerate() {
        let r = h.wait().await;
        assert_eq!(r.status, RunStatus::Completed);
        assert_eq!(r.outputs["b"]["n"], json!(n));
        ids.insert(r.run_id);
    }
    assert_eq!(ids.len(), 200, "run ids are unique");
    assert_eq!(engine.active_runs(), 0);
}

#[tokio::test]
async fn a_panicking_event_callback_yields_a_failed_record_not_a_hang() {
    let engine = engine_for("id: wf\nname: x\nsteps: [{name: a, tool: echo}]\n");
    let handle = engine
        .start(
            input(json!({})),
            CancellationToken::new(),
            Arc::new(|e| {
                if matches!(e, RunEvent::StepCompleted { .. }) {
                    panic!("callback bug");
                }
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let run_id = handle.run_id.clone();
    let record = handle.wait().await;
    assert_eq!(record.run_id, run_id);
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.errors[0].message.contains("panicked"));
    assert_eq!(engine.active_runs(), 0);
}

#[tokio::test]
async fn builtin_health_check_without_a_url_is_healthy_and_skips_the_probe() {
    let engine = Engine::new(Arc::new(Catalog::builtin()), deps());
    let mut i = input(json!({"service": "orders"}));
    i.workflow_id = "health-check".into();
    let record = engine
        .run(i, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.skipped_steps, vec!["probe"]);
    assert_eq!(
        record.outputs["report"],
        json!({"service": "orders", "engine": "ok", "probe": "skipped", "httpStatus": null, "healthy": true})
    );
}

#[tokio::test]
async fn builtin_containerize_generates_a_dockerfile_and_manifests_from_the_analysis() {
    let engine = Engine::new(Arc::new(Catalog::builtin()), deps());
    let mut i = input(json!({"language": "python", "name": "orders", "replicas": 3}));
    i.workflow_id = "containerize".into();
    let record = engine
        .run(i, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(
        record.skipped_steps,
        vec!["review"],
        "review only when asked"
    );
    let dockerfile = record.outputs["dockerfile"].as_str().unwrap_or_default();
    assert!(
        dockerfile.starts_with("FROM python:3.12-slim\n"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("EXPOSE 8000\n"), "{dockerfile}");
    assert!(
        dockerfile.contains("CMD [\"python\", \"app.py\"]"),
        "{dockerfile}"
    );
    let manifests = record.outputs["manifests"].as_str().unwrap_or_default();
    assert!(manifests.contains("replicas: 3"), "{manifests}");
    assert!(manifests.contains("image: orders"), "{manifests}");
    assert!(manifests.contains("targetPort: 8000"), "{manifests}");
    assert_eq!(record.outputs["summary"]["review"], Value::Null);
    assert_eq!(step_status(&record, "summary"), StepStatus::Completed);
}

#[tokio::test]
async fn builtin_containerize_refuses_an_unknown_language_with_the_known_ones() {
    let engine = Engine::new(Arc::new(Catalog::builtin()), deps());
    let mut i = input(json!({"language": "cobol"}));
    i.workflow_id = "containerize".into();
    let record = engine
        .run(i, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.failed_steps, vec!["analyze"]);
    assert!(
        record.errors[0]
            .message
            .contains("`cobol` is not in the table")
            && record.errors[0].message.contains("python"),
        "{:?}",
        record.errors
    );
}

#[tokio::test]
async fn docker_and_ai_steps_fail_clearly_when_the_server_has_no_such_client() {
    let record = run(
        r#"
id: wf
name: no-clients
steps:
  - {name: d, tool: docker.ps, onError: continue}
  - {name: ai, tool: ai.complete, onError: continue, params: {prompt: hi}}
"#,
        json!({}),
    )
    .await;
    assert_eq!(record.failed_steps, vec!["d", "ai"]);
    assert!(
        record.errors[0]
            .message
            .contains("docker.ps needs a Docker Engine")
    );
    assert!(
        record.errors[1]
            .message
            .contains("ai.complete needs an AI endpoint")
    );
    // Missing configuration is permanent: no retries.
    assert!(record.steps.iter().all(|s| s.attempts == 1));
}

#[tokio::test]
async fn parameters_that_resolve_to_bad_values_fail_at_run_time_with_the_reason() {
    let record = run(
        r#"
id: wf
name: runtime-check
steps:
  - {name: nap, tool: sleep, params: {ms: '${params.ms}'}}
"#,
        json!({"ms": 999999}),
    )
    .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert!(
        record.errors[0].message.contains("between 0 and 60000"),
        "{:?}",
        record.errors
    );
}
