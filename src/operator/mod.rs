//! The operator process: controllers, leader election, admin server, shutdown.

use clap::Args;

/// Flags of `js-mcp operator`; every flag is also read from the environment.
#[derive(Args, Debug, Clone)]
pub struct OperatorArgs {
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "JSMCP_NAMESPACE")]
    pub namespace: Option<String>,
}

/// Runs the operator until SIGTERM.
pub async fn run(_args: OperatorArgs) -> crate::Result<()> {
    Ok(())
}

/// Runs every controller with `client` until `shutdown` is cancelled.
///
/// Placeholder so `js-mcp local` builds on this branch: it only waits for `shutdown`.
/// The lead's operator replaces it with the real controllers at merge.
pub async fn run_controllers(
    _client: kube::Client,
    _args: OperatorArgs,
    shutdown: tokio_util::sync::CancellationToken,
) -> crate::Result<()> {
    shutdown.cancelled().await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
