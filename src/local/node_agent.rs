//! The node agent: plays kubelet for a cluster without nodes. It registers a Node, binds
//! pending Pods to it, and runs each Pod's containers as local processes.
//!
//! How a Pod maps to local processes:
//! - **Network**: every Pod gets its own loopback address `127.<address_block>.x.y` (all of
//!   127.0.0.0/8 reaches `lo` on Linux), reported as `status.podIP`. Processes get `POD_IP`
//!   and `JSMCP_BIND` set to it, so servers that honour them (js-mcp serve does) bind only
//!   their own address: each Pod behaves as if it had its own network namespace, and two Pods
//!   can listen on the same port.
//! - **Images**: an image whose repository name ends in `js-mcp` runs the agent's
//!   `serve_binary` with the container's `args`; any other image runs `command` + `args` as
//!   given, from the host's `PATH`.
//! - **Volumes**: configMap, secret, projected, downwardAPI and emptyDir volumes are
//!   directories under `<work_dir>/pods/<uid>/volumes/`; a persistentVolumeClaim is
//!   `<work_dir>/pvc/<namespace>/<claim>` (it survives pod restarts and is marked Bound);
//!   hostPath is the host path. Processes cannot see mounts, so every occurrence of a
//!   `volumeMounts[].mountPath` prefix in `command`, `args`, env values and `workingDir` is
//!   rewritten to the local directory. Files *inside* volumes are not rewritten.
//! - **API access**: `KUBERNETES_SERVICE_HOST`/`_PORT` point at the API server, and when the
//!   service-account token is mounted, `KUBECONFIG` points at a kubeconfig using that token
//!   (in-cluster clients cannot read `/var/run/secrets/...` on the host).
//! - **Not modelled**: images and their filesystems, resource limits, users, lifecycle hooks,
//!   `kubectl logs`/`exec` (logs are files under `<work_dir>/pods/<uid>/logs/`).

pub mod env;
pub mod pod;
pub mod probe;
pub mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo, Pod,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use pod::{PodContext, run_pod};

/// Field manager of the agent's writes.
pub const AGENT_FIELD_MANAGER: &str = "js-mcp-node-agent";
/// Label set on every Node an agent registers.
pub const AGENT_LABEL: &str = "jsmcp.io/node-agent";
/// Interval of Node heartbeats.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// How a node agent runs.
#[derive(Debug, Clone)]
pub struct NodeAgentOptions {
    /// Name of the Node to register (unique per agent).
    pub node_name: String,
    /// Only bind pending pods of this namespace; `None` binds pending pods of every namespace.
    /// Pods already bound to `node_name` are run whatever their namespace.
    pub namespace: Option<String>,
    /// Pods get addresses `127.<address_block>.x.y`; 1..=254, unique per agent.
    pub address_block: u8,
    /// The js-mcp binary that js-mcp images run.
    pub serve_binary: PathBuf,
    /// Directory for pod volumes, logs and claims.
    pub work_dir: PathBuf,
    /// API server URL handed to pods (`KUBERNETES_SERVICE_HOST`/`_PORT`, and a kubeconfig
    /// with the pod's service-account token), e.g. [`crate::local::LocalCluster::api_server_url`].
    /// `None`: pods get no API access settings.
    pub api_server: Option<String>,
}

impl NodeAgentOptions {
    /// An agent for every namespace with address block 1 (change fields as needed).
    pub fn new(
        node_name: impl Into<String>,
        serve_binary: impl Into<PathBuf>,
        work_dir: impl Into<PathBuf>,
    ) -> Self {
        NodeAgentOptions {
            node_name: node_name.into(),
            namespace: None,
            address_block: 1,
            serve_binary: serve_binary.into(),
            work_dir: work_dir.into(),
            api_server: None,
        }
    }
}

/// Hands out `127.<block>.x.y` addresses, never two at once.
struct IpAllocator {
    block: u8,
    next: u32,
    in_use: HashSet<Ipv4Addr>,
}

impl IpAllocator {
    /// x in 0..=255, y in 1..=254: 65 024 addresses per block.
    const SIZE: u32 = 256 * 254;

    fn new(block: u8) -> Self {
        IpAllocator {
            block,
            next: 0,
            in_use: HashSet::new(),
        }
    }

    fn ip(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::new(127, self.block, (n / 254) as u8, (n % 254 + 1) as u8)
    }

    /// Takes `wanted` when it belongs to this block and is free (a pod keeps its address
    /// across agent restarts), else the next free address.
    fn allocate(&mut self, wanted: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(ip) = wanted
            && ip.octets()[0] == 127
            && ip.octets()[1] == self.block
            && ip.octets()[3] != 0
            && ip.octets()[3] != 255
            && self.in_use.insert(ip)
        {
            return Some(ip);
        }
        for _ in 0..Self::SIZE {
            let ip = self.ip(self.next);
            self.next = (self.next + 1) % Self::SIZE;
            if self.in_use.insert(ip) {
                return Some(ip);
            }
        }
        None
    }

    fn release(&mut self, ip: Ipv4Addr) {
        self.in_use.remove(&ip);
    }
}

struct WorkerHandle {
    updates: watch::Sender<Option<Pod>>,
    ip: Ipv4Addr,
}

/// Runs the node agent until `shutdown` is cancelled; then stops every process it started
/// (SIGTERM, then SIGKILL) and deletes its Node. Errors about single pods are logged, never
/// returned.
pub async fn run_node_agent(
    client: kube::Client,
    opts: NodeAgentOptions,
    shutdown: CancellationToken,
) -> crate::Result<()> {
    if opts.address_block == 0 || opts.address_block == 255 {
        return Err(crate::Error::InvalidSpec(format!(
            "address_block must be in 1..=254, got {}",
            opts.address_block
        )));
    }
    std::fs::create_dir_all(&opts.work_dir)
        .map_err(|e| crate::Error::io(format!("creating {}", opts.work_dir.display()), e))?;
    let work_dir = std::fs::canonicalize(&opts.work_dir)
        .map_err(|e| crate::Error::io(format!("resolving {}", opts.work_dir.display()), e))?;

    let host_ip = "127.0.0.1".to_string();
    register_node(&client, &opts.node_name, &host_ip).await?;
    let api_server = match &opts.api_server {
        Some(url) => Some(parse_host_port(url)?),
        None => None,
    };
    let ctx = Arc::new(PodContext {
        client: client.clone(),
        node_name: opts.node_name.clone(),
        host_ip: host_ip.clone(),
        api_server,
        serve_binary: opts.serve_binary.clone(),
        work_dir,
    });

    let heartbeat = {
        let client = client.clone();
        let node = opts.node_name.clone();
        let host_ip = host_ip.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(HEARTBEAT) => {}
                }
                if let Err(e) = patch_node_status(&client, &node, &host_ip).await {
                    tracing::warn!(node = %node, error = %e, "node heartbeat failed");
                }
            }
        })
    };

    let pods: Api<Pod> = match &opts.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    let workers_stop = shutdown.child_token();
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut ips = IpAllocator::new(opts.address_block);
    let mut listed: Option<HashSet<String>> = None;
    tracing::info!(node = %opts.node_name, namespace = ?opts.namespace, block = opts.address_block, "node agent running");

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(uid) = done
                    && let Some(w) = workers.remove(&uid)
                {
                    ips.release(w.ip);
                }
            }
            event = stream.next() => {
                let Some(event) = event else { break };
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(node = %opts.node_name, error = %e, "pod watch error");
                        continue;
                    }
                };
                match event {
                    watcher::Event::Init => listed = Some(HashSet::new()),
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        if let Some(seen) = listed.as_mut() {
                            seen.insert(uid.clone());
                        }
                        if let Some(w) = workers.get(&uid) {
                            w.updates.send_replace(Some(pod));
                        } else if claims(&opts, &pod) {
                            let wanted = pod
                                .status
                                .as_ref()
                                .and_then(|s| s.pod_ip.as_deref())
                                .and_then(|ip| ip.parse().ok());
                            let Some(ip) = ips.allocate(wanted) else {
                                tracing::error!(node = %opts.node_name, "no free pod address left");
                                continue;
                            };
                            let (tx, rx) = watch::channel(Some(pod));
                            let ctx = ctx.clone();
                            let stop = workers_stop.clone();
                            let task_uid = uid.clone();
                            tasks.spawn(async move {
                                // A bug in one pod's worker must not take the agent down, and
                                // its uid must come back so the pod can be picked up again.
                                let run = std::panic::AssertUnwindSafe(run_pod(ctx, ip, rx, stop));
                                if run.catch_unwind().await.is_err() {
                                    tracing::error!(pod_uid = %task_uid, "pod worker panicked");
                                }
                                task_uid
                            });
                            workers.insert(uid, WorkerHandle { updates: tx, ip });
                        }
                    }
                    watcher::Event::Delete(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        if let Some(w) = workers.get(&uid) {
                            w.updates.send_replace(None);
                        }
                    }
                    watcher::Event::InitDone => {
                        // Pods that vanished while the watch was down.
                        if let Some(seen) = listed.take() {
                            for (uid, w) in &workers {
                                if !seen.contains(uid) {
                                    w.updates.send_replace(None);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // Shutdown: workers stop their processes (SIGTERM, then SIGKILL), then the Node goes.
    workers_stop.cancel();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(20), drain)
        .await
        .is_err()
    {
        tracing::warn!(node = %opts.node_name, "pod workers did not stop in time; killing");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    heartbeat.abort();
    let nodes: Api<Node> = Api::all(client);
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        nodes.delete(&opts.node_name, &DeleteParams::default()),
    )
    .await;
    tracing::info!(node = %opts.node_name, "node agent stopped");
    Ok(())
}

/// Whether this agent runs `pod`: bound to our node, or pending, unbound, in our namespace,
/// and for the default scheduler.
fn claims(opts: &NodeAgentOptions, pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    match spec.node_name.as_deref() {
        Some(node) => node == opts.node_name,
        None => {
            let ns_ok = opts.namespace.is_none()
                || opts.namespace.as_deref() == pod.metadata.namespace.as_deref();
            let scheduler_ok = spec
                .scheduler_name
                .as_deref()
                .is_none_or(|s| s == "default-scheduler");
            let pending = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_none_or(|p| p == "Pending");
            ns_ok && scheduler_ok && pending && pod.metadata.deletion_timestamp.is_none()
        }
    }
}

/// `https://host:port` -> (host, port); the port defaults to 443.
fn parse_host_port(url: &str) -> crate::Result<(String, u16)> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| crate::Error::InvalidSpec(format!("api_server {url:?} is not a URL: {e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| crate::Error::InvalidSpec(format!("api_server {url:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

async fn register_node(client: &kube::Client, name: &str, host_ip: &str) -> crate::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), name.to_string()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                (
                    "kubernetes.io/arch".to_string(),
                    std::env::consts::ARCH.to_string(),
                ),
                (AGENT_LABEL.to_string(), "true".to_string()),
            ])),
            ..Default::default()
        },
        ..Default::default()
    };
    api.patch(
        name,
        &PatchParams::apply(AGENT_FIELD_MANAGER).force(),
        &Patch::Apply(&node),
    )
    .await?;
    patch_node_status(client, name, host_ip).await
}

/// Writes the Node's status: Ready, capacity, addresses, a fresh heartbeat.
async fn patch_node_status(client: &kube::Client, name: &str, host_ip: &str) -> crate::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let now = Time(Timestamp::now());
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(cpus().to_string())),
        ("memory".to_string(), Quantity("16Gi".into())),
        ("pods".to_string(), Quantity("1000".into())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
    ]);
    let status = NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("js-mcp node agent is posting ready status".into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(now),
        }]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: host_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.to_string(),
            },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.into(),
            operating_system: std::env::consts::OS.into(),
            container_runtime_version: "js-mcp-local://0".into(),
            kubelet_version: format!("js-mcp-node-agent/{}", env!("CARGO_PKG_VERSION")),
            kube_proxy_version: "none".into(),
            os_image: "local processes".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Only the heartbeat moves on every call; lastTransitionTime is kept by merging with the
    // stored condition.
    let mut status = status;
    if let Ok(existing) = api.get_status(name).await
        && let Some(prev) = existing.status.and_then(|s| s.conditions).and_then(|cs| {
            cs.into_iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")
        })
        && let Some(conds) = status.conditions.as_mut()
    {
        conds[0].last_transition_time = prev.last_transition_time;
    }
    let patch = serde_json::json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};

    #[test]
    fn api_server_urls_split_into_host_and_port() {
        assert_eq!(
            parse_host_port("https://127.0.0.1:6443").unwrap(),
            ("127.0.0.1".to_string(), 6443)
        );
        assert_eq!(
            parse_host_port("https://kubernetes.default.svc").unwrap().1,
            443
        );
        assert!(parse_host_port("not a url").is_err());
    }

    #[test]
    fn allocator_skips_used_addresses_and_honours_wanted_ones() {
        let mut a = IpAllocator::new(7);
        assert_eq!(a.allocate(None), Some(Ipv4Addr::new(127, 7, 0, 1)));
        assert_eq!(
            a.allocate(Some(Ipv4Addr::new(127, 7, 0, 2))),
            Some(Ipv4Addr::new(127, 7, 0, 2))
        );
        // Taken, and another block's address is never reused.
        assert_eq!(
            a.allocate(Some(Ipv4Addr::new(127, 8, 0, 9))),
            Some(Ipv4Addr::new(127, 7, 0, 3))
        );
        a.release(Ipv4Addr::new(127, 7, 0, 1));
        for _ in 0..251 {
            a.allocate(None);
        }
        assert_eq!(a.allocate(None), Some(Ipv4Addr::new(127, 7, 1, 1)));
    }

    fn pod(ns: &str, node: Option<&str>, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn agents_claim_own_pods_and_pending_pods_of_their_namespace() {
        let mut opts = NodeAgentOptions::new("n1", "/bin/true", "/tmp");
        opts.namespace = Some("a".into());
        assert!(claims(&opts, &pod("a", None, "Pending")));
        assert!(!claims(&opts, &pod("b", None, "Pending")));
        assert!(claims(&opts, &pod("b", Some("n1"), "Running")));
        assert!(!claims(&opts, &pod("a", Some("n2"), "Pending")));
        opts.namespace = None;
        assert!(claims(&opts, &pod("b", None, "Pending")));
    }
}
