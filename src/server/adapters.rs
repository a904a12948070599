//! Binds the [`backends`](super::backends) seams to the real clients: the Docker Engine
//! client, the OpenAI-compatible AI client and the workflow engine with its catalog.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::ai::{AiClient, AiConfig, CompletionRequest};
use super::backends::{
    AiBackend, AiRequest, Backends, ComponentHealth, DockerBackend, DockerCall, RunRequest,
    StepCallback, StepEvent, WorkflowBackend,
};
use super::config::Settings;
use super::docker::{DockerClient, PruneRequest};
use super::metrics::Metrics;
use super::workflows::{Catalog, Engine, LazyHttpClient, RunEvent, RunInput, StepDeps};

/// How long one AI completion may take.
const AI_TIMEOUT: Duration = Duration::from_secs(120);

struct Docker(Arc<DockerClient>);

impl DockerBackend for Docker {
    fn call(&self, call: DockerCall) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let r = match call {
                DockerCall::Info => self.0.info().await,
                DockerCall::Ps { all } => self.0.ps(all).await,
                DockerCall::Df => self.0.df().await,
                DockerCall::Prune(p) => {
                    self.0
                        .prune(PruneRequest {
                            containers: p.containers,
                            images: p.images,
                            volumes: p.volumes,
                            networks: p.networks,
                        })
                        .await
                }
            };
            r.map_err(|e| e.to_string())
        })
    }

    fn describe(&self) -> String {
        format!("Docker Engine at {}", self.0.endpoint())
    }
}

struct Ai(Arc<AiClient>);

impl AiBackend for Ai {
    fn complete(&self, req: AiRequest) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let r = self
                .0
                .complete(CompletionRequest {
                    prompt: req.prompt,
                    system: req.system,
                    max_tokens: req.max_tokens,
                    temperature: req.temperature,
                })
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(r).map_err(|e| e.to_string())
        })
    }

    fn describe(&self) -> String {
        format!("model {} at {}", self.0.config().model, self.0.endpoint())
    }
}

struct Workflows {
    engine: Engine,
    sources: String,
    /// `--http-allowed-hosts`, as `/status` shows it.
    egress: String,
}

impl WorkflowBackend for Workflows {
    fn list(&self) -> Vec<Value> {
        self.engine
            .catalog()
            .list()
            .into_iter()
            .map(|d| {
                json!({
                    "id": d.id, "name": d.name, "description": d.description,
                    "steps": d.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                })
            })
            .collect()
    }

    fn get(&self, id: &str) -> Option<Value> {
        self.engine
            .catalog()
            .get(id)
            .and_then(|d| serde_json::to_value(d).ok())
    }

    fn run(
        &self,
        req: RunRequest,
        cancel: CancellationToken,
        on_step: StepCallback,
    ) -> Result<BoxFuture<'static, Value>, String> {
        let sink = Arc::new(move |ev: RunEvent| match ev {
            RunEvent::StepStarted { step, .. } => on_step(StepEvent::Started { step }),
            RunEvent::StepCompleted { step, output, .. } => {
                on_step(StepEvent::Completed { step, output })
            }
            RunEvent::StepFailed { step, error, .. } => on_step(StepEvent::Failed { step, error }),
            RunEvent::StepSkipped { step, .. } => on_step(StepEvent::Skipped { step }),
            _ => {}
        });
        let handle = self
            .engine
            .start(
                RunInput {
                    workflow_id: req.workflow_id,
                    session_id: req.session_id,
                    session_state: req.session_state,
                    params: req.params,
                },
                cancel,
                sink,
            )
            .map_err(|e| e.to_string())?;
        Ok(Box::pin(async move {
            let record = handle.wait().await;
            serde_json::to_value(record).unwrap_or_else(|e| {
                json!({"status": "failed", "errors": [{"step": "", "message": format!("record encoding failed: {e}")}]})
            })
        }))
    }

    fn health(&self) -> ComponentHealth {
        ComponentHealth::ok(format!(
            "{} workflows ({}); {} runs in the engine; http.request may reach {}",
            self.engine.catalog().len(),
            self.sources,
            self.engine.active_runs(),
            self.egress
        ))
    }
}

/// Builds the backends the settings ask for. Docker and AI that cannot be set up are left
/// out with the reason (shown by `/status` and the tools); invalid workflow definitions
/// stop startup, with every error naming its file, workflow and step.
pub async fn build(settings: &Settings, _metrics: &Metrics) -> anyhow::Result<Backends> {
    let mut b = Backends::default();
    // Without a configured host, only use Docker where the default socket exists: a pod
    // without Docker is "disabled", not "error".
    let default_socket = std::path::Path::new("/var/run/docker.sock");
    let docker = if settings.docker_host.is_none() && !default_socket.exists() {
        b.missing_reasons.push((
            "docker",
            "no Docker socket (set JSMCP_DOCKER_HOST; /var/run/docker.sock does not exist)".into(),
        ));
        None
    } else {
        match DockerClient::connect(settings.docker_host.as_deref()) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                b.missing_reasons
                    .push(("docker", format!("Docker client not set up: {e}")));
                None
            }
        }
    };
    if let Some(d) = &docker {
        b.docker = Some(Arc::new(Docker(d.clone())));
    }
    let ai = match &settings.ai {
        Some(a) => match AiClient::new(AiConfig {
            base_url: a.base_url.clone(),
            model: a.model.clone(),
            api_key: a.api_key.clone(),
            timeout: AI_TIMEOUT,
        }) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                b.missing_reasons
                    .push(("ai", format!("AI client not set up: {e}")));
                None
            }
        },
        None => {
            b.missing_reasons.push((
                "ai",
                "no AI endpoint configured (JSMCP_AI_BASE_URL, JSMCP_AI_MODEL)".into(),
            ));
            None
        }
    };
    if let Some(a) = &ai {
        b.ai = Some(Arc::new(Ai(a.clone())));
    }
    let catalog = Catalog::load(&settings.workflows_dirs).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        anyhow::anyhow!("invalid workflow definitions:\n{}", lines.join("\n"))
    })?;
    let sources = if settings.workflows_dirs.is_empty() {
        "built-ins".to_string()
    } else {
        format!(
            "built-ins and {}",
            settings
                .workflows_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        )
    };
    let deps = StepDeps {
        http: LazyHttpClient::new(settings.http_egress.clone()),
        docker,
        ai,
    };
    b.workflows = Some(Arc::new(Workflows {
        engine: Engine::new(Arc::new(catalog), deps),
        sources,
        egress: settings.http_egress.to_string(),
    }));
    Ok(b)
}
