//! Workflow runs as the server manages them: start (record `running` in the store, spawn the
//! engine), follow step events into the session's workflow state, record the result, count
//! metrics, cancel, and wait for in-flight runs when draining.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::backends::{RunRequest, StepEvent, WorkflowBackend};
use super::metrics::Metrics;
use super::service::SessionService;
use super::sessions::{SessionError, SessionOp};
use super::store::{RunDoc, RunFilter};

/// Errors of starting or reading runs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// No engine in this server.
    #[error("workflows are unavailable: {0}")]
    Unavailable(String),
    /// Unknown workflow id.
    #[error("workflow {0:?} not found")]
    UnknownWorkflow(String),
    /// Unknown run id.
    #[error("run {0:?} not found")]
    UnknownRun(String),
    /// The session it names failed (not found, store error).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The server is draining.
    #[error("server is draining and starts no new runs")]
    Draining,
    /// The engine refused to start the run.
    #[error("workflow run could not start: {0}")]
    Rejected(String),
}

struct Active {
    cancel: CancellationToken,
}

/// Starts and tracks runs.
#[derive(Clone)]
pub struct RunManager {
    engine: Option<Arc<dyn WorkflowBackend>>,
    missing: String,
    sessions: SessionService,
    metrics: Metrics,
    active: Arc<Mutex<HashMap<String, Active>>>,
    idle: Arc<Notify>,
}

impl RunManager {
    /// A manager over `engine` (or none, with the reason it is missing).
    pub fn new(
        engine: Option<Arc<dyn WorkflowBackend>>,
        missing: String,
        sessions: SessionService,
        metrics: Metrics,
    ) -> Self {
        RunManager {
            engine,
            missing,
            sessions,
            metrics,
            active: Arc::new(Mutex::new(HashMap::new())),
            idle: Arc::new(Notify::new()),
        }
    }

    /// The engine, if any.
    pub fn engine(&self) -> Result<&Arc<dyn WorkflowBackend>, RunError> {
        self.engine
            .as_ref()
            .ok_or_else(|| RunError::Unavailable(self.missing.clone()))
    }

    /// Runs in progress.
    pub fn active_count(&self) -> usize {
        self.active.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Starts a run and returns its `running` record at once. With `wait`, resolves to the
    /// finished record instead.
    pub async fn start(
        &self,
        workflow_id: String,
        session_id: Option<String>,
        params: Value,
        draining: bool,
    ) -> Result<(RunDoc, Arc<Notify>), RunError> {
        if draining {
            return Err(RunError::Draining);
        }
        let engine = self.engine()?.clone();
        if engine.get(&workflow_id).is_none() {
            return Err(RunError::UnknownWorkflow(workflow_id));
        }
        let session_state = match &session_id {
            Some(id) => serde_json::to_value(self.sessions.get(id).await?).unwrap_or(Value::Null),
            None => Value::Null,
        };
        let run_id = uuid::Uuid::new_v4().to_string();
        let started_at = Utc::now();
        let doc = RunDoc {
            id: run_id.clone(),
            workflow_id: workflow_id.clone(),
            session_id: session_id.clone(),
            status: "running".into(),
            started_at,
            record: json!({
                "runId": run_id, "workflowId": workflow_id, "sessionId": session_id,
                "status": "running", "startedAt": started_at,
            }),
        };
        let cancel = CancellationToken::new();
        let done = Arc::new(Notify::new());
        if let Ok(mut a) = self.active.lock() {
            a.insert(
                run_id.clone(),
                Active {
                    cancel: cancel.clone(),
                },
            );
        }
        self.metrics.workflow_active.inc();
        // Step events go through a channel so session updates apply in event order.
        let (tx, rx) = mpsc::unbounded_channel::<StepEvent>();
        let on_step = Arc::new(move |ev: StepEvent| {
            let _ = tx.send(ev);
        });
        let follower = session_id
            .clone()
            .map(|sid| tokio::spawn(follow_steps(self.sessions.clone(), sid, rx)));
        let req = RunRequest {
            run_id: run_id.clone(),
            workflow_id,
            session_id,
            session_state,
            params,
        };
        let fut = match engine.run(req, cancel.clone(), on_step) {
            Ok(f) => f,
            Err(e) => {
                self.forget(&run_id);
                return Err(RunError::Rejected(e));
            }
        };
        // Recorded before the caller hears of the run, so workflow_status always finds it.
        if let Err(e) = self.sessions.store().put_run(doc.clone()).await {
            cancel.cancel();
            self.forget(&run_id);
            return Err(e.into());
        }
        let me = self.clone();
        let base = doc.clone();
        let done2 = done.clone();
        let run_key = run_id.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let mut record = fut.await;
            if let Some(f) = follower {
                // The engine dropped its callback, so the follower ends after the last event.
                let _ = f.await;
            }
            let status = record
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("failed")
                .to_string();
            if let Value::Object(m) = &mut record {
                m.insert("runId".into(), json!(base.id));
                m.entry("startedAt").or_insert(json!(base.started_at));
                m.insert("finishedAt".into(), json!(Utc::now()));
            }
            let finished = RunDoc {
                status: status.clone(),
                record,
                ..base
            };
            if let Err(e) = me.sessions.store().put_run(finished).await {
                tracing::error!(error = %e, "failed to record finished run");
            }
            me.metrics.workflow_active.dec();
            me.metrics
                .workflow_runs
                .with_label_values(&[status.as_str()])
                .inc();
            me.metrics
                .workflow_duration
                .with_label_values(&[status.as_str()])
                .observe(t.elapsed().as_secs_f64());
            let empty = me
                .active
                .lock()
                .map(|mut a| {
                    a.remove(&run_key);
                    a.is_empty()
                })
                .unwrap_or(true);
            done2.notify_waiters();
            if empty {
                me.idle.notify_waiters();
            }
        });
        Ok((doc, done))
    }

    /// Drops a run that never started from the active set.
    fn forget(&self, run_id: &str) {
        if let Ok(mut a) = self.active.lock() {
            a.remove(run_id);
        }
        self.metrics.workflow_active.dec();
    }

    /// Starts a run and waits for its result.
    pub async fn run_to_end(
        &self,
        workflow_id: String,
        session_id: Option<String>,
        params: Value,
        draining: bool,
    ) -> Result<RunDoc, RunError> {
        let (doc, done) = self
            .start(workflow_id, session_id, params, draining)
            .await?;
        let notified = done.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // The run may have finished before we registered interest: check the store first.
        loop {
            if let Some(r) = self
                .get(&doc.id)
                .await
                .ok()
                .filter(|r| r.status != "running")
            {
                return Ok(r);
            }
            tokio::select! {
                _ = &mut notified => {
                    return self.get(&doc.id).await;
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Reads a run record.
    pub async fn get(&self, run_id: &str) -> Result<RunDoc, RunError> {
        self.sessions
            .store()
            .get_run(run_id.to_string())
            .await?
            .ok_or_else(|| RunError::UnknownRun(run_id.to_string()))
    }

    /// Lists run records.
    pub async fn list(&self, filter: RunFilter) -> Result<Vec<RunDoc>, RunError> {
        Ok(self.sessions.store().list_runs(filter).await?)
    }

    /// Cancels a run in progress; false when it is not running here.
    pub fn cancel(&self, run_id: &str) -> bool {
        self.active
            .lock()
            .ok()
            .and_then(|a| a.get(run_id).map(|r| r.cancel.cancel()))
            .is_some()
    }

    /// Waits until no run is in progress, or `timeout` passes; then cancels what is left.
    pub async fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.active_count() > 0 && Instant::now() < deadline {
            let idle = self.idle.notified();
            let _ = tokio::time::timeout(Duration::from_millis(100), idle).await;
        }
        if let Ok(a) = self.active.lock() {
            for r in a.values() {
                r.cancel.cancel();
            }
        }
        // Cancelled runs record their result quickly; give them a moment.
        let grace = Instant::now() + Duration::from_secs(2);
        while self.active_count() > 0 && Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn follow_steps(
    sessions: SessionService,
    session_id: String,
    mut rx: mpsc::UnboundedReceiver<StepEvent>,
) {
    while let Some(ev) = rx.recv().await {
        let op = match ev {
            StepEvent::Started { step } => SessionOp::SetCurrentStep { step },
            StepEvent::Completed { step, output } => SessionOp::MarkStepCompleted {
                step,
                result: Some(output),
            },
            StepEvent::Failed { step, error } => SessionOp::AddStepError {
                step,
                message: error,
            },
            StepEvent::Skipped { .. } => continue,
        };
        if let Err(e) = sessions.update(&session_id, None, op).await {
            // The session may have been deleted or finished mid-run; the run goes on.
            tracing::debug!(session = %session_id, error = %e, "run step not recorded in session");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::backends::{ComponentHealth, StepCallback};
    use crate::server::sessions::NewSession;
    use crate::server::store::StoreConfig;
    use crate::server::store::embedded::EmbeddedStore;
    use futures::future::BoxFuture;
    use std::sync::atomic::AtomicBool;

    /// A two-step engine double: emits events, honours cancellation, returns a record.
    struct TwoSteps;

    impl WorkflowBackend for TwoSteps {
        fn list(&self) -> Vec<Value> {
            vec![json!({"id": "two"})]
        }
        fn get(&self, id: &str) -> Option<Value> {
            (id == "two" || id == "slow").then(|| json!({"id": id}))
        }
        fn run(
            &self,
            req: RunRequest,
            cancel: CancellationToken,
            on_step: StepCallback,
        ) -> Result<BoxFuture<'static, Value>, String> {
            if !req.params.is_object() {
                return Err("params must be a JSON object".into());
            }
            Ok(Box::pin(async move {
                if req.workflow_id == "slow" {
                    cancel.cancelled().await;
                    return json!({"status": "cancelled"});
                }
                for step in ["a", "b"] {
                    on_step(StepEvent::Started { step: step.into() });
                    on_step(StepEvent::Completed {
                        step: step.into(),
                        output: json!({"step": step}),
                    });
                }
                json!({"status": "completed", "completedSteps": ["a", "b"],
                       "sessionSeen": req.session_state["id"]})
            }))
        }
        fn health(&self) -> ComponentHealth {
            ComponentHealth::ok("double")
        }
    }

    fn manager(dir: &std::path::Path) -> RunManager {
        let store =
            EmbeddedStore::open(dir, StoreConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        let sessions = SessionService::new(
            Arc::new(store),
            metrics.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        RunManager::new(Some(Arc::new(TwoSteps)), String::new(), sessions, metrics)
    }

    #[tokio::test]
    async fn run_records_result_and_step_progress_in_the_session() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let m = manager(dir.path());
        let s = m
            .sessions
            .create(NewSession::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let doc = m
            .run_to_end("two".into(), Some(s.id.clone()), json!({}), false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(doc.status, "completed");
        assert_eq!(doc.record["runId"], json!(doc.id));
        assert_eq!(doc.record["sessionSeen"], json!(s.id));
        let after = m
            .sessions
            .get(&s.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after.workflow_state.completed_steps, vec!["a", "b"]);
        assert_eq!(after.workflow_state.step_results["b"], json!({"step": "b"}));
        assert_eq!(m.active_count(), 0);
        assert_eq!(
            m.metrics
                .workflow_runs
                .with_label_values(&["completed"])
                .get(),
            1
        );
    }

    #[tokio::test]
    async fn refused_runs_are_not_recorded_and_errors_say_why() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let m = manager(dir.path());
        let e = m.start("two".into(), None, json!([1]), false).await.err();
        assert!(matches!(e, Some(RunError::Rejected(ref msg)) if msg.contains("object")));
        let e = m.start("nope".into(), None, json!({}), false).await.err();
        assert_eq!(e, Some(RunError::UnknownWorkflow("nope".into())));
        let e = m
            .start("two".into(), Some("missing".into()), json!({}), false)
            .await
            .err();
        assert!(matches!(
            e,
            Some(RunError::Session(SessionError::NotFound(_)))
        ));
        let e = m.start("two".into(), None, json!({}), true).await.err();
        assert_eq!(e, Some(RunError::Draining));
        assert!(
            m.list(RunFilter::default())
                .await
                .unwrap_or_default()
                .is_empty()
        );
        assert_eq!(m.active_count(), 0);
    }

    #[tokio::test]
    async fn drain_cancels_runs_that_outlive_the_timeout() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let m = manager(dir.path());
        let (doc, _) = m
            .start("slow".into(), None, json!({}), false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.active_count(), 1);
        m.drain(Duration::from_millis(50)).await;
        assert_eq!(m.active_count(), 0);
        let rec = m.get(&doc.id).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rec.status, "cancelled");
    }

    #[test]
    fn engine_missing_is_reported_with_the_reason() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = EmbeddedStore::open(dir.path(), StoreConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        let sessions = SessionService::new(
            Arc::new(store),
            metrics.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        let m = RunManager::new(None, "not configured".into(), sessions, metrics);
        assert_eq!(
            m.engine().err(),
            Some(RunError::Unavailable("not configured".into()))
        );
    }
}
