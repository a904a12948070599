//! A cluster in a box: etcd + kube-apiserver + kube-controller-manager + a node agent.

use clap::Args;

/// Flags of `js-mcp local`.
#[derive(Args, Debug, Clone)]
pub struct LocalArgs {
    /// Directory for certificates, data and the kubeconfig.
    #[arg(long, env = "JSMCP_LOCAL_DIR", default_value = ".js-mcp-local")]
    pub dir: std::path::PathBuf,
}

/// Runs the local cluster until Ctrl-C.
pub async fn run(_args: LocalArgs) -> anyhow::Result<()> {
    anyhow::bail!("js-mcp local is not built yet")
}
