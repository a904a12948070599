//! Test harness for tests against the real local control plane: one cluster per test binary,
//! one random namespace per test, a node agent per namespace, and a polling helper.
#![allow(dead_code)] // Each test binary uses a different subset of the helpers.

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use js_mcp::local::{ClusterOptions, LocalCluster, NodeAgentOptions, run_node_agent};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use tokio_util::sync::CancellationToken;

/// Prefix of the per-process cluster directories under the system temp dir.
const DIR_PREFIX: &str = "js-mcp-test-cluster-";

static CLUSTER: OnceLock<&'static LocalCluster> = OnceLock::new();

/// The control plane shared by every test of this binary, started on first use.
///
/// It is started on a dedicated thread whose tokio runtime lives as long as the process, so
/// the control plane outlives each `#[tokio::test]` runtime. Its processes die with the test
/// process (parent-death signal), and its directory is removed by the next run.
pub fn shared_cluster() -> &'static LocalCluster {
    CLUSTER.get_or_init(|| {
        remove_stale_dirs();
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("shared-cluster".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(format!("building the cluster runtime: {e}")));
                        return;
                    }
                };
                match runtime.block_on(LocalCluster::start(ClusterOptions::new(dir))) {
                    Ok(cluster) => {
                        let cluster: &'static LocalCluster = Box::leak(Box::new(cluster));
                        let _ = tx.send(Ok(cluster));
                        runtime.block_on(std::future::pending::<()>());
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            });
        if let Err(e) = spawned {
            panic!("starting the shared-cluster thread: {e}");
        }
        match rx.recv() {
            Ok(Ok(cluster)) => cluster,
            Ok(Err(e)) => panic!("starting the local control plane: {e}"),
            Err(_) => panic!("the shared-cluster thread died while starting the control plane"),
        }
    })
}

/// Deletes cluster directories of earlier test processes that are gone (etcd preallocates
/// tens of MB per directory).
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !js_mcp::local::process::pid_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh client for the shared cluster, bound to the calling tokio runtime.
pub fn cluster_client() -> kube::Client {
    let config = shared_cluster()
        .kube_config()
        .unwrap_or_else(|e| panic!("reading the cluster's client config: {e}"));
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("building a kube client: {e}"))
}

/// A namespace with a random name, deleted (in the background) when dropped.
pub struct TestNamespace {
    name: String,
    client: kube::Client,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>` and waits until Pods can be created in it (its default
    /// ServiceAccount has a token).
    pub async fn new(prefix: &str) -> TestNamespace {
        let client = cluster_client();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let prefix: String = prefix
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let name = format!("{}-{}", prefix.trim_matches('-'), &suffix[..8]);
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { "jsmcp.io/test": "true" } }
        }))
        .unwrap_or_else(|e| panic!("building namespace {name}: {e}"));
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        js_mcp::local::control_plane::wait_for_default_token(
            &client,
            &name,
            Duration::from_secs(90),
        )
        .await
        .unwrap_or_else(|e| panic!("namespace {name} not usable: {e}"));
        TestNamespace { name, client }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An admin client (for the runtime that created the namespace).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Runs a node agent that binds and runs this namespace's Pods until the guard is dropped
    /// (which kills every process it started).
    pub async fn start_node_agent(&self) -> NodeAgentGuard {
        let cluster = shared_cluster();
        let block = next_address_block();
        let node_name = format!("node-{}", self.name);
        let opts = NodeAgentOptions {
            node_name: node_name.clone(),
            namespace: Some(self.name.clone()),
            address_block: block,
            serve_binary: PathBuf::from(env!("CARGO_BIN_EXE_js-mcp")),
            work_dir: cluster.dir().join("agents").join(&node_name),
            api_server: Some(cluster.api_server_url()),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_node_agent(self.client.clone(), opts, stop.clone()));
        // The agent is usable once its Node exists.
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
        let registered = wait_for(Duration::from_secs(60), || async {
            nodes.get_opt(&node_name).await.ok().flatten().is_some()
        })
        .await;
        assert!(
            registered,
            "node agent {node_name} did not register its Node"
        );
        NodeAgentGuard {
            stop,
            task: Some(task),
            node_name,
            address_block: block,
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Best effort, on its own runtime: the test's runtime may be shutting down.
        let name = self.name.clone();
        let Ok(config) = shared_cluster().kube_config() else {
            return;
        };
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = kube::Client::try_from(config) {
                    let api: Api<Namespace> = Api::all(client);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        api.delete(&name, &DeleteParams::background()),
                    )
                    .await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// A running node agent; dropping it stops the agent and kills its processes.
pub struct NodeAgentGuard {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<js_mcp::Result<()>>>,
    node_name: String,
    address_block: u8,
}

impl NodeAgentGuard {
    /// The agent's Node name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Pods of this agent get 127.<block>.x.y.
    pub fn address_block(&self) -> u8 {
        self.address_block
    }

    /// Stops the agent gracefully (SIGTERM, then SIGKILL) and waits until it has finished.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

impl Drop for NodeAgentGuard {
    fn drop(&mut self) {
        // Cancelling lets a live runtime stop processes gracefully; if the runtime is
        // shutting down instead, dropping the agent's task drops its process handles, which
        // SIGKILL their process groups.
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Address blocks 1..=254 for this process's agents: a counter offset by the pid, so test
/// binaries running side by side rarely share a block (sharing one is harmless unless two
/// agents also hand out the same x.y at the same time).
fn next_address_block() -> u8 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let offset = std::process::id().wrapping_mul(37);
    ((offset.wrapping_add(n)) % 254 + 1) as u8
}

/// Polls `check` every 200 ms until it returns true (-> true) or `timeout` passes (-> false).
pub async fn wait_for<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
