//! One Pod's life on the local node: bind, materialize volumes, run init then app containers
//! as local processes, probe them, restart them per restartPolicy, report status, and finish
//! the deletion once the processes are gone.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Binding, Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, ObjectReference, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::env::{PathRewriter, RefCache, container_env, expand, is_js_mcp_image};
use super::probe::{ExecEnv, ProbeKind, ProbeTiming, run_once};
use super::volumes::{VolumeContext, container_mounts, prepare, service_account_kubeconfig};
use crate::local::process::{ChildProcess, Exit};

/// Longest time a deleted pod's processes get between SIGTERM and SIGKILL.
pub const MAX_GRACE: Duration = Duration::from_secs(10);
/// Grace when the agent itself shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// First restart delay of a crashing container; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A container that ran this long restarts without backoff penalty.
const BACKOFF_RESET: Duration = Duration::from_secs(60);
/// Retry interval when a ConfigMap/Secret/claim a container needs is missing.
const CONFIG_RETRY: Duration = Duration::from_secs(2);

/// What every pod worker of one agent shares.
pub struct PodContext {
    /// Admin client.
    pub client: kube::Client,
    /// The agent's Node.
    pub node_name: String,
    /// The Node's address.
    pub host_ip: String,
    /// API server address for in-pod clients (`KUBERNETES_SERVICE_HOST`, `_PORT`).
    pub api_server: Option<(String, u16)>,
    /// The js-mcp binary that js-mcp images run.
    pub serve_binary: PathBuf,
    /// Agent work dir.
    pub work_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug)]
enum Event {
    Exited {
        init: bool,
        idx: usize,
        generation: u64,
        exit: Exit,
    },
    Probe {
        init: bool,
        idx: usize,
        generation: u64,
        kind: ProbeKind,
        ok: bool,
    },
}

#[derive(Debug, Clone)]
struct Terminated {
    exit_code: i32,
    signal: Option<i32>,
    reason: String,
    message: Option<String>,
    started_at: Timestamp,
    finished_at: Timestamp,
    pid: u32,
}

#[derive(Debug, Clone)]
enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated(Terminated),
}

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    successes: u32,
    failures: u32,
}

struct ContainerRun {
    spec: Container,
    init: bool,
    process: Option<ChildProcess>,
    generation: u64,
    restart_count: i32,
    ever_started: bool,
    state: State,
    last_terminated: Option<Terminated>,
    ready: bool,
    started: bool,
    next_start: Option<Instant>,
    backoff: Duration,
    probe_task: Option<AbortOnDropHandle<()>>,
    exit_task: Option<AbortOnDropHandle<()>>,
    readiness: Counter,
    liveness: Counter,
    startup: Counter,
    kill_deadline: Option<Instant>,
    /// The container reached a final state and will not run again.
    done: bool,
}

impl ContainerRun {
    fn new(spec: Container, init: bool, restart_count: i32) -> Self {
        ContainerRun {
            spec,
            init,
            process: None,
            generation: 0,
            restart_count,
            ever_started: restart_count > 0,
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last_terminated: None,
            ready: false,
            started: false,
            next_start: None,
            backoff: INITIAL_BACKOFF,
            probe_task: None,
            exit_task: None,
            readiness: Counter::default(),
            liveness: Counter::default(),
            startup: Counter::default(),
            kill_deadline: None,
            done: false,
        }
    }

    fn due(&self, now: Instant) -> bool {
        !self.done && self.process.is_none() && self.next_start.is_none_or(|t| t <= now)
    }

    /// Ready per the readiness probe; without one, ready once running and started.
    fn is_ready(&self) -> bool {
        if self.process.is_none() || !self.started {
            return false;
        }
        match self.spec.readiness_probe {
            Some(_) => self.ready,
            None => true,
        }
    }

    fn status(&self) -> ContainerStatus {
        let image = self.spec.image.clone().unwrap_or_default();
        let pid = match (&self.process, &self.state) {
            (Some(p), _) => Some(p.pid()),
            (None, State::Terminated(t)) => Some(t.pid),
            _ => None,
        };
        ContainerStatus {
            name: self.spec.name.clone(),
            image: image.clone(),
            image_id: format!("js-mcp-local://{image}"),
            container_id: pid.map(|p| format!("local://{p}")),
            ready: self.is_ready(),
            restart_count: self.restart_count,
            started: (!self.init).then_some(self.started),
            state: Some(state_json(&self.state)),
            last_state: Some(
                self.last_terminated
                    .clone()
                    .map(|t| state_json(&State::Terminated(t)))
                    .unwrap_or_default(),
            ),
            ..Default::default()
        }
    }
}

fn state_json(state: &State) -> ContainerState {
    match state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                signal: t.signal,
                reason: Some(t.reason.clone()),
                message: t.message.clone(),
                started_at: Some(Time(t.started_at)),
                finished_at: Some(Time(t.finished_at)),
                container_id: Some(format!("local://{}", t.pid)),
            }),
            ..Default::default()
        },
    }
}

/// Runs one pod until it is deleted, leaves this node, or the agent shuts down.
pub async fn run_pod(
    ctx: Arc<PodContext>,
    pod_ip: Ipv4Addr,
    updates: watch::Receiver<Option<Pod>>,
    shutdown: CancellationToken,
) {
    let Some(pod) = updates.borrow().clone() else {
        return;
    };
    let mut worker = Worker::new(ctx, pod, pod_ip);
    worker.run(updates, shutdown).await;
}

struct Worker {
    ctx: Arc<PodContext>,
    pod: Pod,
    name: String,
    namespace: String,
    uid: String,
    pod_ip: Ipv4Addr,
    pod_dir: PathBuf,
    policy: RestartPolicy,
    start_time: Option<Timestamp>,
    volumes: Option<HashMap<String, PathBuf>>,
    next_prepare: Option<Instant>,
    init: Vec<ContainerRun>,
    containers: Vec<ContainerRun>,
    conditions: BTreeMap<&'static str, (bool, Timestamp)>,
    terminal: Option<&'static str>,
    last_status: Option<serde_json::Value>,
    bound: bool,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
}

impl Worker {
    fn new(ctx: Arc<PodContext>, pod: Pod, pod_ip: Ipv4Addr) -> Self {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = match spec.restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        };
        let status = pod.status.clone().unwrap_or_default();
        // Restart counts survive an agent restart.
        let prior = |list: &Option<Vec<ContainerStatus>>, name: &str| {
            list.iter()
                .flatten()
                .find(|s| s.name == name)
                .map_or(0, |s| s.restart_count)
        };
        let init: Vec<ContainerRun> = spec
            .init_containers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let n = prior(&status.init_container_statuses, &c.name);
                ContainerRun::new(c, true, n)
            })
            .collect();
        let containers: Vec<ContainerRun> = spec
            .containers
            .clone()
            .into_iter()
            .map(|c| {
                let n = prior(&status.container_statuses, &c.name);
                ContainerRun::new(c, false, n)
            })
            .collect();
        let mut init: Vec<ContainerRun> = init;
        let mut containers: Vec<ContainerRun> = containers;
        adopt_terminated(&mut init, &status.init_container_statuses, |_| true);
        adopt_terminated(
            &mut containers,
            &status.container_statuses,
            |code| match policy {
                RestartPolicy::Always => false,
                RestartPolicy::OnFailure => code == 0,
                RestartPolicy::Never => true,
            },
        );
        let terminal = match status.phase.as_deref() {
            Some("Succeeded") => Some("Succeeded"),
            Some("Failed") => Some("Failed"),
            _ => None,
        };
        let start_time = status.start_time.map(|t| t.0);
        let pod_dir = ctx.work_dir.join("pods").join(&uid);
        let bound = spec.node_name.is_some();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Worker {
            ctx,
            pod,
            name,
            namespace,
            uid,
            pod_ip,
            pod_dir,
            policy,
            start_time,
            volumes: None,
            next_prepare: None,
            init,
            containers,
            conditions: BTreeMap::new(),
            terminal,
            last_status: None,
            bound,
            events_tx,
            events_rx,
        }
    }

    fn api(&self) -> Api<Pod> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    async fn run(
        &mut self,
        mut updates: watch::Receiver<Option<Pod>>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.pod.metadata.deletion_timestamp.is_some() {
                self.finish_deletion().await;
                return;
            }
            match self.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                Some(n) if n != self.ctx.node_name => {
                    // Another agent bound it first.
                    self.stop_all(SHUTDOWN_GRACE).await;
                    return;
                }
                Some(_) => self.bound = true,
                None => {}
            }
            if !self.bound {
                match self.bind().await {
                    Ok(true) => self.bound = true,
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(pod = %self.name, namespace = %self.namespace, error = %e, "binding failed; retrying");
                    }
                }
            }
            if self.bound {
                self.reconcile().await;
                self.flush_status().await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.stop_all(SHUTDOWN_GRACE).await;
                    return;
                }
                changed = updates.changed() => {
                    if changed.is_err() {
                        self.stop_all(SHUTDOWN_GRACE).await;
                        return;
                    }
                    let latest = updates.borrow_and_update().clone();
                    match latest {
                        Some(pod) => self.pod = pod,
                        None => {
                            // Removed from the API without our help (forced delete).
                            self.stop_all(Duration::from_secs(2)).await;
                            self.remove_pod_dir();
                            return;
                        }
                    }
                }
                Some(event) = self.events_rx.recv() => self.handle_event(event),
                _ = tick.tick() => {}
            }
            // Drain whatever else arrived, so one status write covers a burst of events.
            while let Ok(event) = self.events_rx.try_recv() {
                self.handle_event(event);
            }
        }
    }

    /// Binds the pod to this node. `Ok(false)` when another node has it.
    async fn bind(&mut self) -> crate::Result<bool> {
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                uid: Some(self.uid.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(self.ctx.node_name.clone()),
                ..Default::default()
            },
        };
        let result: Result<serde_json::Value, kube::Error> = self
            .api()
            .create_subresource("binding", &self.name, &PostParams::default(), &binding)
            .await;
        match result {
            Ok(_) => {
                tracing::debug!(pod = %self.name, namespace = %self.namespace, node = %self.ctx.node_name, "bound");
                if let Some(spec) = self.pod.spec.as_mut() {
                    spec.node_name = Some(self.ctx.node_name.clone());
                }
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts what is due: volumes, then init containers one by one, then app containers.
    async fn reconcile(&mut self) {
        let now = Instant::now();
        if self.start_time.is_none() {
            self.start_time = Some(Timestamp::now());
        }
        for c in self.init.iter().chain(self.containers.iter()) {
            if let (Some(deadline), Some(p)) = (c.kill_deadline, &c.process)
                && now >= deadline
            {
                p.signal_group(nix::sys::signal::Signal::SIGKILL);
            }
        }
        if self.terminal.is_some() {
            return;
        }
        if self.volumes.is_none() {
            if self.next_prepare.is_some_and(|t| t > now) {
                return;
            }
            let mut refs = RefCache::new(self.ctx.client.clone(), &self.namespace);
            let vctx = VolumeContext {
                client: &self.ctx.client,
                pod_dir: &self.pod_dir,
                work_dir: &self.ctx.work_dir,
                pod_ip: &self.pod_ip.to_string(),
                host_ip: &self.ctx.host_ip,
            };
            match prepare(&vctx, &self.pod, &mut refs).await {
                Ok(v) => self.volumes = Some(v),
                Err(e) => {
                    let reason = match e {
                        crate::Error::MissingReference(_) | crate::Error::InvalidSpec(_) => {
                            "CreateContainerConfigError"
                        }
                        _ => "ContainerCreating",
                    };
                    for c in self
                        .init
                        .iter_mut()
                        .chain(self.containers.iter_mut())
                        .filter(|c| !c.done)
                    {
                        c.state = State::Waiting {
                            reason: reason.into(),
                            message: Some(e.to_string()),
                        };
                    }
                    self.next_prepare = Some(now + CONFIG_RETRY);
                    return;
                }
            }
        }
        if let Some(idx) = self.init.iter().position(|c| !c.done) {
            if self.init[idx].due(now) {
                self.start(true, idx).await;
            }
            return;
        }
        for idx in 0..self.containers.len() {
            if self.containers[idx].due(now) {
                self.start(false, idx).await;
            }
        }
    }

    fn run_mut(&mut self, init: bool, idx: usize) -> Option<&mut ContainerRun> {
        if init {
            self.init.get_mut(idx)
        } else {
            self.containers.get_mut(idx)
        }
    }

    /// Starts one container process (first start or restart).
    async fn start(&mut self, init: bool, idx: usize) {
        let Some(c) = self.run_mut(init, idx) else {
            return;
        };
        let spec = c.spec.clone();
        match self.build_command(&spec).await {
            Ok((cmd, exec_env)) => {
                let log = self.pod_dir.join("logs").join(format!("{}.log", spec.name));
                let spawned = ChildProcess::spawn(cmd, Some(&log)).await;
                let pod_ip = IpAddr::V4(self.pod_ip);
                let tx = self.events_tx.clone();
                let (pod_name, namespace) = (self.name.clone(), self.namespace.clone());
                let Some(c) = self.run_mut(init, idx) else {
                    return;
                };
                match spawned {
                    Ok(process) => {
                        c.generation += 1;
                        if c.ever_started {
                            c.restart_count += 1;
                        }
                        c.ever_started = true;
                        c.state = State::Running {
                            started_at: Timestamp::now(),
                        };
                        c.next_start = None;
                        c.kill_deadline = None;
                        c.readiness = Counter::default();
                        c.liveness = Counter::default();
                        c.startup = Counter::default();
                        c.started = spec.startup_probe.is_none();
                        c.ready = false;
                        let generation = c.generation;
                        let mut exit_rx = process.exit_receiver();
                        let exit_tx = tx.clone();
                        c.exit_task = Some(AbortOnDropHandle::new(tokio::spawn(async move {
                            let exit = loop {
                                if let Some(exit) = *exit_rx.borrow_and_update() {
                                    break exit;
                                }
                                if exit_rx.changed().await.is_err() {
                                    break (*exit_rx.borrow()).unwrap_or(Exit {
                                        code: 255,
                                        signal: None,
                                    });
                                }
                            };
                            let _ = exit_tx.send(Event::Exited {
                                init,
                                idx,
                                generation,
                                exit,
                            });
                        })));
                        if !init {
                            c.probe_task = Some(AbortOnDropHandle::new(tokio::spawn(probe_loop(
                                spec.clone(),
                                pod_ip,
                                Arc::new(exec_env),
                                tx,
                                idx,
                                generation,
                            ))));
                        }
                        tracing::info!(pod = %pod_name, namespace = %namespace, container = %spec.name, pid = process.pid(), ip = %pod_ip, "container started");
                        c.process = Some(process);
                    }
                    Err(e) => {
                        let message = e.to_string();
                        tracing::warn!(pod = %pod_name, container = %spec.name, error = %message, "container could not start");
                        self.on_start_failure(init, idx, "RunContainerError", message);
                    }
                }
            }
            Err(e) => {
                let reason = match e {
                    crate::Error::MissingReference(_) => "CreateContainerConfigError",
                    _ => "CreateContainerError",
                };
                let message = e.to_string();
                tracing::debug!(pod = %self.name, container = %spec.name, error = %message, "container config not ready");
                if let Some(c) = self.run_mut(init, idx) {
                    c.state = State::Waiting {
                        reason: reason.into(),
                        message: Some(message),
                    };
                    c.next_start = Some(Instant::now() + CONFIG_RETRY);
                }
            }
        }
    }

    fn on_start_failure(&mut self, init: bool, idx: usize, reason: &str, message: String) {
        let policy = self.policy;
        let Some(c) = self.run_mut(init, idx) else {
            return;
        };
        if policy == RestartPolicy::Never {
            let now = Timestamp::now();
            c.state = State::Terminated(Terminated {
                exit_code: 128,
                signal: None,
                reason: "ContainerCannotRun".into(),
                message: Some(message),
                started_at: now,
                finished_at: now,
                pid: 0,
            });
            c.done = true;
            self.update_terminal();
        } else {
            c.state = State::Waiting {
                reason: reason.into(),
                message: Some(message),
            };
            c.next_start = Some(Instant::now() + c.backoff);
            c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The process command line, environment and working dir for a container.
    async fn build_command(
        &self,
        spec: &Container,
    ) -> crate::Result<(std::process::Command, ExecEnv)> {
        let empty = HashMap::new();
        let volumes = self.volumes.as_ref().unwrap_or(&empty);
        let mounts = container_mounts(spec, volumes)?;
        let rewriter = PathRewriter::new(mounts);
        let pod_ip = self.pod_ip.to_string();
        let mut refs = RefCache::new(self.ctx.client.clone(), &self.namespace);
        let own_env = container_env(&self.pod, spec, &pod_ip, &self.ctx.host_ip, &mut refs).await?;

        let image = spec.image.clone().unwrap_or_default();
        let js_mcp = is_js_mcp_image(&image);
        let command = spec.command.clone().unwrap_or_default();
        let args = spec.args.clone().unwrap_or_default();
        let lookup = |name: &str| {
            own_env
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let command: Vec<String> = command.iter().map(|a| expand(a, lookup)).collect();
        let mut args: Vec<String> = args.iter().map(|a| expand(a, lookup)).collect();
        // The serve binary is a host path, never a path inside the pod: it must not be rewritten
        // (a checkout under /tmp would otherwise land in the pod's /tmp emptyDir).
        let mut host_program = false;
        let (program, mut argv): (String, Vec<String>) = if js_mcp {
            let runs_self = command.is_empty()
                || command
                    .first()
                    .is_some_and(|c| c.rsplit('/').next() == Some("js-mcp"));
            if runs_self {
                let extra: Vec<String> = command.iter().skip(1).cloned().collect();
                rebind_args(&mut args, &pod_ip);
                host_program = true;
                (
                    self.ctx.serve_binary.display().to_string(),
                    extra.into_iter().chain(args).collect(),
                )
            } else {
                let (first, rest) = command
                    .split_first()
                    .ok_or_else(|| crate::Error::InvalidSpec("empty command".into()))?;
                (first.clone(), rest.iter().cloned().chain(args).collect())
            }
        } else {
            let mut full = command.into_iter().chain(args);
            let Some(first) = full.next() else {
                return Err(crate::Error::InvalidSpec(format!(
                    "container {:?}: image {image:?} is not runnable locally without a command \
                     (only images named *js-mcp map to a local binary)",
                    spec.name
                )));
            };
            (first, full.collect())
        };
        let program = if host_program {
            program
        } else {
            rewriter.rewrite(&program)
        };
        for a in argv.iter_mut() {
            *a = rewriter.rewrite(a);
        }

        let workdir = spec
            .working_dir
            .as_deref()
            .and_then(|w| rewriter.local_path(w))
            .unwrap_or_else(|| self.pod_dir.join("containers").join(&spec.name));
        std::fs::create_dir_all(&workdir)
            .map_err(|e| crate::Error::io(format!("creating {}", workdir.display()), e))?;
        let logs = self.pod_dir.join("logs");
        std::fs::create_dir_all(&logs)
            .map_err(|e| crate::Error::io(format!("creating {}", logs.display()), e))?;

        let mut env: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: String| {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v));
        };
        put(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        );
        put("HOME", workdir.display().to_string());
        put("HOSTNAME", self.name.clone());
        if let Some((host, port)) = &self.ctx.api_server {
            put("KUBERNETES_SERVICE_HOST", host.clone());
            put("KUBERNETES_SERVICE_PORT", port.to_string());
            put("KUBERNETES_SERVICE_PORT_HTTPS", port.to_string());
            let kubeconfig = self.pod_dir.join(format!("{}.kubeconfig", spec.name));
            let server = format!("https://{host}:{port}");
            if let Some(path) =
                service_account_kubeconfig(&rewriter, &server, &self.namespace, &kubeconfig)?
            {
                put("KUBECONFIG", path.display().to_string());
            }
        }
        for (k, v) in &own_env {
            put(k, rewriter.rewrite(v));
        }
        // The pod's own loopback address is its network namespace: these win over the spec.
        put("POD_IP", pod_ip.clone());
        put("JSMCP_BIND", pod_ip.clone());

        let mut cmd = std::process::Command::new(&program);
        cmd.args(&argv)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&workdir);
        argv.insert(0, program);
        tracing::debug!(pod = %self.name, container = %spec.name, argv = ?argv, "command");
        Ok((
            cmd,
            ExecEnv {
                env,
                cwd: workdir,
                rewriter,
            },
        ))
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Exited {
                init,
                idx,
                generation,
                exit,
            } => self.on_exit(init, idx, generation, exit),
            Event::Probe {
                init,
                idx,
                generation,
                kind,
                ok,
            } => self.on_probe(init, idx, generation, kind, ok),
        }
    }

    fn on_exit(&mut self, init: bool, idx: usize, generation: u64, exit: Exit) {
        let policy = self.policy;
        let deleting = self.pod.metadata.deletion_timestamp.is_some();
        let name = self.name.clone();
        let Some(c) = self.run_mut(init, idx) else {
            return;
        };
        if c.generation != generation || c.process.is_none() {
            return;
        }
        let pid = c.process.as_ref().map_or(0, |p| p.pid());
        // The rest of its process group was killed when it ended (container semantics).
        c.process = None;
        c.probe_task = None;
        c.exit_task = None;
        c.ready = false;
        c.started = false;
        c.kill_deadline = None;
        let started_at = match &c.state {
            State::Running { started_at } => *started_at,
            _ => Timestamp::now(),
        };
        let finished_at = Timestamp::now();
        let terminated = Terminated {
            exit_code: exit.code,
            signal: exit.signal,
            reason: if exit.code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at,
            finished_at,
            pid,
        };
        tracing::info!(pod = %name, container = %c.spec.name, pid, code = exit.code, "container exited");
        let restart = !deleting
            && match policy {
                RestartPolicy::Always => !init || exit.code != 0,
                RestartPolicy::OnFailure => exit.code != 0,
                RestartPolicy::Never => false,
            };
        if init && exit.code == 0 {
            c.state = State::Terminated(terminated);
            c.done = true;
            return;
        }
        if restart {
            let ran = finished_at.duration_since(started_at).unsigned_abs();
            if ran >= BACKOFF_RESET {
                c.backoff = INITIAL_BACKOFF;
            }
            c.next_start = Some(Instant::now() + c.backoff);
            c.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={} pod={}",
                    c.backoff.as_secs(),
                    c.spec.name,
                    name
                )),
            };
            c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
            c.last_terminated = Some(terminated);
        } else {
            c.state = State::Terminated(terminated);
            c.done = true;
            self.update_terminal();
        }
    }

    /// Sets the terminal phase once nothing will run again.
    fn update_terminal(&mut self) {
        let failed_init = self
            .init
            .iter()
            .any(|c| c.done && matches!(&c.state, State::Terminated(t) if t.exit_code != 0));
        if failed_init {
            self.terminal = Some("Failed");
            return;
        }
        if !self.containers.is_empty() && self.containers.iter().all(|c| c.done) {
            let ok = self
                .containers
                .iter()
                .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
            self.terminal = Some(if ok { "Succeeded" } else { "Failed" });
        }
    }

    fn on_probe(&mut self, init: bool, idx: usize, generation: u64, kind: ProbeKind, ok: bool) {
        let grace = self.grace();
        let name = self.name.clone();
        let Some(c) = self.run_mut(init, idx) else {
            return;
        };
        if c.generation != generation || c.process.is_none() {
            return;
        }
        let probe = match kind {
            ProbeKind::Startup => c.spec.startup_probe.as_ref(),
            ProbeKind::Readiness => c.spec.readiness_probe.as_ref(),
            ProbeKind::Liveness => c.spec.liveness_probe.as_ref(),
        };
        let Some(timing) = probe.map(ProbeTiming::of) else {
            return;
        };
        let counter = match kind {
            ProbeKind::Startup => &mut c.startup,
            ProbeKind::Readiness => &mut c.readiness,
            ProbeKind::Liveness => &mut c.liveness,
        };
        if ok {
            counter.successes += 1;
            counter.failures = 0;
        } else {
            counter.failures += 1;
            counter.successes = 0;
        }
        let passed = counter.successes >= timing.success_threshold;
        let failed = counter.failures >= timing.failure_threshold;
        match kind {
            ProbeKind::Readiness => {
                if passed {
                    c.ready = true;
                } else if failed {
                    c.ready = false;
                }
            }
            ProbeKind::Startup if passed => c.started = true,
            ProbeKind::Startup | ProbeKind::Liveness if failed && c.kill_deadline.is_none() => {
                tracing::info!(pod = %name, container = %c.spec.name, probe = ?kind, "probe failed; restarting container");
                if let Some(p) = &c.process {
                    p.signal_group(nix::sys::signal::Signal::SIGTERM);
                }
                c.kill_deadline = Some(Instant::now() + grace);
            }
            _ => {}
        }
    }

    /// Termination grace: the deletion's, else the spec's, capped at [`MAX_GRACE`].
    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        Duration::from_secs(secs).min(MAX_GRACE)
    }

    fn build_status(&mut self) -> PodStatus {
        let now = Timestamp::now();
        let initialized = self.init.iter().all(|c| c.done);
        let containers_ready = self.terminal.is_none()
            && !self.containers.is_empty()
            && self.containers.iter().all(|c| c.is_ready());
        let phase = match self.terminal {
            Some(p) => p,
            None if initialized && self.containers.iter().any(|c| c.ever_started) => "Running",
            None => "Pending",
        };
        let mut set = |ty: &'static str, value: bool| {
            let entry = self.conditions.entry(ty).or_insert((value, now));
            if entry.0 != value {
                *entry = (value, now);
            }
            entry.1
        };
        let scheduled_at = set("PodScheduled", true);
        let init_at = set("Initialized", initialized);
        let cr_at = set("ContainersReady", containers_ready);
        let ready_at = set("Ready", containers_ready);
        let not_ready_reason = if self.terminal.is_some() {
            "PodCompleted"
        } else {
            "ContainersNotReady"
        };
        let cond = |ty: &str, ok: bool, at: Timestamp, reason: &str| PodCondition {
            type_: ty.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(at)),
            reason: (!ok).then(|| reason.to_string()),
            ..Default::default()
        };
        PodStatus {
            phase: Some(phase.into()),
            host_ip: Some(self.ctx.host_ip.clone()),
            pod_ip: Some(self.pod_ip.to_string()),
            pod_ips: Some(vec![PodIP {
                ip: self.pod_ip.to_string(),
            }]),
            start_time: self.start_time.map(Time),
            conditions: Some(vec![
                cond("PodScheduled", true, scheduled_at, ""),
                cond(
                    "Initialized",
                    initialized,
                    init_at,
                    if self.terminal.is_some() {
                        "PodCompleted"
                    } else {
                        "ContainersNotInitialized"
                    },
                ),
                cond("ContainersReady", containers_ready, cr_at, not_ready_reason),
                cond("Ready", containers_ready, ready_at, not_ready_reason),
            ]),
            container_statuses: Some(self.containers.iter().map(|c| c.status()).collect()),
            init_container_statuses: (!self.init.is_empty())
                .then(|| self.init.iter().map(|c| c.status()).collect()),
            ..Default::default()
        }
    }

    /// Writes the status when it differs from the last one written.
    async fn flush_status(&mut self) {
        let status = self.build_status();
        let Ok(value) = serde_json::to_value(&status) else {
            return;
        };
        if self.last_status.as_ref() == Some(&value) {
            return;
        }
        let patch = serde_json::json!({ "status": value });
        match self
            .api()
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.last_status = Some(value),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Api(s)) if s.code == 422 => {
                // Retrying the same content cannot succeed; try again once it changes.
                tracing::warn!(pod = %self.name, namespace = %self.namespace, error = %s.message, "status refused by the API server");
                self.last_status = Some(value);
            }
            Err(e) => {
                tracing::warn!(pod = %self.name, namespace = %self.namespace, error = %e, "status update failed; retrying")
            }
        }
    }

    /// SIGTERM every process, SIGKILL after `grace`, wait for all of them.
    async fn stop_all(&mut self, grace: Duration) {
        let stops = self
            .init
            .iter()
            .chain(self.containers.iter())
            .filter_map(|c| c.process.as_ref())
            .map(|p| p.stop(grace));
        futures::future::join_all(stops).await;
        for c in self.init.iter_mut().chain(self.containers.iter_mut()) {
            c.probe_task = None;
            c.exit_task = None;
            c.process = None;
        }
    }

    /// The kubelet's part of a deletion: stop the processes, then remove the object for good.
    async fn finish_deletion(&mut self) {
        let grace = self.grace();
        self.stop_all(grace).await;
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        for attempt in 0..5 {
            match self.api().delete(&self.name, &dp).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => break,
                Err(e) => {
                    tracing::warn!(pod = %self.name, namespace = %self.namespace, attempt, error = %e, "finishing deletion failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        self.remove_pod_dir();
        tracing::info!(pod = %self.name, namespace = %self.namespace, "pod deleted");
    }

    fn remove_pod_dir(&self) {
        if !self.uid.is_empty() && self.pod_dir.exists() {
            let _ = std::fs::remove_dir_all(&self.pod_dir);
        }
    }
}

/// Takes over containers that an earlier agent already saw terminate for good (the API server
/// refuses a terminated container going back to waiting or running). Init containers count as
/// done when they exited 0.
fn adopt_terminated(
    runs: &mut [ContainerRun],
    statuses: &Option<Vec<ContainerStatus>>,
    final_exit: impl Fn(i32) -> bool,
) {
    for run in runs.iter_mut() {
        let Some(t) = statuses
            .iter()
            .flatten()
            .find(|s| s.name == run.spec.name)
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.terminated.as_ref())
        else {
            continue;
        };
        let adopt = if run.init {
            t.exit_code == 0
        } else {
            final_exit(t.exit_code)
        };
        if !adopt {
            continue;
        }
        let now = Timestamp::now();
        run.state = State::Terminated(Terminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: t.reason.clone().unwrap_or_default(),
            message: t.message.clone(),
            started_at: t.started_at.as_ref().map_or(now, |x| x.0),
            finished_at: t.finished_at.as_ref().map_or(now, |x| x.0),
            pid: t
                .container_id
                .as_deref()
                .and_then(|id| id.strip_prefix("local://"))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
        });
        run.done = true;
    }
}

/// `--bind 0.0.0.0` / `--bind=::` in a js-mcp command line becomes the pod's own address,
/// so servers never listen on every loopback address at once.
fn rebind_args(args: &mut [String], pod_ip: &str) {
    let wildcard = |v: &str| matches!(v, "0.0.0.0" | "::" | "[::]");
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--bind" && i + 1 < args.len() && wildcard(&args[i + 1]) {
            args[i + 1] = pod_ip.to_string();
            i += 1;
        } else if let Some(v) = args[i].strip_prefix("--bind=")
            && wildcard(v)
        {
            args[i] = format!("--bind={pod_ip}");
        }
        i += 1;
    }
}

/// Runs a container's probes: startup first (if any), then readiness and liveness side by
/// side. Until the first readiness success, readiness is tried every second so a fresh pod is
/// not held back a whole period by a probe that ran before the server listened.
async fn probe_loop(
    spec: Container,
    pod_ip: IpAddr,
    exec_env: Arc<ExecEnv>,
    tx: mpsc::UnboundedSender<Event>,
    idx: usize,
    generation: u64,
) {
    let send = |kind: ProbeKind, ok: bool| {
        tx.send(Event::Probe {
            init: false,
            idx,
            generation,
            kind,
            ok,
        })
        .is_ok()
    };
    if let Some(probe) = &spec.startup_probe {
        let t = ProbeTiming::of(probe);
        tokio::time::sleep(t.initial_delay).await;
        loop {
            let ok = run_once(probe, &spec, pod_ip, &exec_env).await;
            if !send(ProbeKind::Startup, ok) {
                return;
            }
            if ok {
                break;
            }
            tokio::time::sleep(t.period).await;
        }
    }
    let readiness = async {
        let Some(probe) = &spec.readiness_probe else {
            return;
        };
        let t = ProbeTiming::of(probe);
        tokio::time::sleep(t.initial_delay).await;
        let mut ever_ok = false;
        loop {
            let ok = run_once(probe, &spec, pod_ip, &exec_env).await;
            ever_ok |= ok;
            if !send(ProbeKind::Readiness, ok) {
                return;
            }
            let wait = if ever_ok {
                t.period
            } else {
                t.period.min(Duration::from_secs(1))
            };
            tokio::time::sleep(wait).await;
        }
    };
    let liveness = async {
        let Some(probe) = &spec.liveness_probe else {
            return;
        };
        let t = ProbeTiming::of(probe);
        tokio::time::sleep(t.initial_delay).await;
        loop {
            let ok = run_once(probe, &spec, pod_ip, &exec_env).await;
            if !send(ProbeKind::Liveness, ok) {
                return;
            }
            tokio::time::sleep(t.period).await;
        }
    };
    tokio::join!(readiness, liveness);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_bind_flags_become_the_pod_address() {
        let mut args: Vec<String> = ["serve", "--bind", "0.0.0.0", "--bind=::", "--port", "3000"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        rebind_args(&mut args, "127.9.0.1");
        assert_eq!(
            args,
            [
                "serve",
                "--bind",
                "127.9.0.1",
                "--bind=127.9.0.1",
                "--port",
                "3000"
            ]
        );
    }
}
