//! A cluster in a box: etcd + kube-apiserver + kube-controller-manager + a node agent that
//! runs Pods as local processes, and `js-mcp local`, which adds the operator on top.
//!
//! - [`control_plane`]: [`LocalCluster`] starts the real control-plane binaries
//!   (found by [`assets`]) with generated certificates ([`certs`]) and installs the CRDs.
//! - [`node_agent`]: plays kubelet (see its docs for how Pods map to processes).
//! - [`apply`]: server-side apply of YAML files.
//! - [`process`]: child processes that never outlive js-mcp.

pub mod apply;
pub mod assets;
pub mod certs;
pub mod control_plane;
mod http;
pub mod node_agent;
pub mod process;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

pub use control_plane::{ClusterOptions, LocalCluster};
pub use node_agent::{NodeAgentOptions, run_node_agent};

/// Flags of `js-mcp local`.
#[derive(Args, Debug, Clone)]
pub struct LocalArgs {
    /// Directory for certificates, etcd data, logs, pod volumes and the kubeconfig. Reused
    /// when it exists, so objects survive a restart.
    #[arg(long, env = "JSMCP_LOCAL_DIR", default_value = ".js-mcp-local")]
    pub dir: PathBuf,
    /// Delete the directory first and start from an empty cluster.
    #[arg(long)]
    pub reset: bool,
    /// YAML file or directory to apply (server-side) once the cluster is up; repeatable.
    /// Defaults to `examples/` when that directory exists.
    #[arg(long = "apply", value_name = "PATH")]
    pub apply: Vec<PathBuf>,
    /// Do not apply `examples/` by default.
    #[arg(long)]
    pub no_examples: bool,
    /// Pods get loopback addresses 127.<block>.x.y.
    #[arg(long, env = "JSMCP_LOCAL_ADDRESS_BLOCK", default_value_t = 42,
          value_parser = clap::value_parser!(u8).range(1..=254))]
    pub address_block: u8,
    /// Name of the Node the local agent registers.
    #[arg(long, default_value = "js-mcp-local")]
    pub node_name: String,
    /// Flags of the operator that runs in-process.
    #[command(flatten)]
    pub operator: crate::operator::OperatorArgs,
}

/// Runs the local cluster, the node agent and the operator until Ctrl-C or SIGTERM, then
/// stops everything, leaving no process behind.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    if args.reset && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .map_err(|e| anyhow::anyhow!("removing {}: {e}", args.dir.display()))?;
    }
    let mut cluster = LocalCluster::start(ClusterOptions::new(&args.dir)).await?;
    let client = cluster.client().await?;
    let shutdown = CancellationToken::new();

    let serve_binary = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("finding the js-mcp binary to run pods with: {e}"))?;
    let agent_opts = NodeAgentOptions {
        node_name: args.node_name.clone(),
        namespace: None,
        address_block: args.address_block,
        serve_binary,
        work_dir: cluster.dir().join("node"),
        api_server: Some(cluster.api_server_url()),
    };
    let mut agent = tokio::spawn(run_node_agent(
        client.clone(),
        agent_opts,
        shutdown.child_token(),
    ));
    let mut operator = tokio::spawn(crate::operator::run_controllers(
        client.clone(),
        args.operator.clone(),
        shutdown.child_token(),
    ));

    let mut paths = args.apply.clone();
    let examples = PathBuf::from("examples");
    if paths.is_empty() && !args.no_examples && examples.is_dir() {
        paths.push(examples);
    }
    let mut apply_error = None;
    if !paths.is_empty() {
        match apply::apply_paths(&client, &paths, control_plane::FIELD_MANAGER, "default").await {
            Ok(applied) => {
                for a in applied {
                    println!("applied {} ({})", a.object, a.file.display());
                }
            }
            Err(e) => apply_error = Some(e),
        }
    }

    let kubeconfig = cluster.kubeconfig_path().display().to_string();
    let block = args.address_block;
    println!(
        "\njs-mcp local is running (Ctrl-C stops everything).\n\
         \n  export KUBECONFIG={kubeconfig}\n  kubectl get jsmcp -A\n  kubectl get pods -A -o wide\n\
         \nPods run as local processes on 127.{block}.x.y; a js-mcp pod answers on its pod IP:\n  \
         curl http://$(kubectl get pod POD -o jsonpath='{{.status.podIP}}'):3000/health\n\
         \nLogs: {}/logs (control plane), {}/node/pods/<uid>/logs (pods)\n",
        cluster.dir().display(),
        cluster.dir().display()
    );

    let outcome: anyhow::Result<()> = if let Some(e) = apply_error {
        Err(e.into())
    } else {
        tokio::select! {
            _ = crate::operator::shutdown_signal() => Ok(()),
            r = &mut agent => match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("the node agent stopped unexpectedly")),
                Ok(Err(e)) => Err(anyhow::anyhow!("node agent: {e}")),
                Err(e) => Err(anyhow::anyhow!("node agent task: {e}")),
            },
            r = &mut operator => match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("the operator stopped unexpectedly")),
                Ok(Err(e)) => Err(anyhow::anyhow!("operator: {e}")),
                Err(e) => Err(anyhow::anyhow!("operator task: {e}")),
            },
        }
    };

    println!("stopping...");
    shutdown.cancel();
    let wait = async {
        if !agent.is_finished() {
            let _ = (&mut agent).await;
        }
        if !operator.is_finished() {
            let _ = (&mut operator).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .is_err()
    {
        agent.abort();
        operator.abort();
    }
    cluster.stop();
    outcome
}
