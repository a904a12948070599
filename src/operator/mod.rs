//! The operator process: controllers, leader election, admin server, shutdown.

pub mod admin;
pub mod context;
pub mod instance;
pub mod leader;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use kube::Client;
use kube::runtime::events::Reporter;
use tokio_util::sync::CancellationToken;

use self::context::Context;
use self::metrics::Metrics;

/// The one field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "js-mcp-operator";

/// Flags of `js-mcp operator`; every flag is also read from the environment.
#[derive(Args, Debug, Clone)]
pub struct OperatorArgs {
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "JSMCP_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the admin server (/metrics, /healthz, /readyz); port 0 picks a free one.
    #[arg(long, env = "JSMCP_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Image for McpInstances that name none: the operator's own.
    #[arg(long, env = "JSMCP_DEFAULT_IMAGE", default_value = concat!("ghcr.io/js-mcp/js-mcp:", env!("CARGO_PKG_VERSION")))]
    pub default_image: String,
    /// Parallel reconciles per controller.
    #[arg(long, env = "JSMCP_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Elect a leader through a Lease so several replicas can run.
    #[arg(long, env = "JSMCP_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, env = "JSMCP_LEASE_NAME", default_value = "js-mcp-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease and in events (defaults to the pod/host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

impl OperatorArgs {
    /// Defaults for an in-process operator (tests, `js-mcp local`): admin server on a free loopback port.
    pub fn for_namespace(namespace: Option<String>) -> Self {
        OperatorArgs {
            namespace,
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            default_image: concat!("ghcr.io/js-mcp/js-mcp:", env!("CARGO_PKG_VERSION")).into(),
            concurrency: 8,
            leader_elect: true,
            lease_namespace: "default".into(),
            lease_name: "js-mcp-operator".into(),
            identity: None,
        }
    }
}

/// Runs the operator until SIGTERM or Ctrl-C, with the in-cluster or kubeconfig client.
pub async fn run(args: OperatorArgs) -> crate::Result<()> {
    let client = Client::try_default().await?;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    run_controllers(client, args, shutdown).await
}

/// Runs the admin server, leader election and every controller until `shutdown` fires.
/// Returns an error when the leader lease is lost: the process should exit and restart.
pub async fn run_controllers(
    client: Client,
    args: OperatorArgs,
    shutdown: CancellationToken,
) -> crate::Result<()> {
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let admin_stop = shutdown.child_token();
    let admin_addr = admin::serve(
        args.admin_addr,
        admin::AdminState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        admin_stop,
    )
    .await?;
    tracing::info!(%admin_addr, "operator admin server listening");

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let lost = CancellationToken::new();
    if args.leader_elect {
        let settings =
            leader::LeaseSettings::new(&args.lease_namespace, &args.lease_name, &identity);
        // A standby is healthy and ready: it only waits.
        ready.store(true, Ordering::Relaxed);
        if !leader::acquire(&client, &settings, &shutdown).await {
            return Ok(());
        }
        ready.store(false, Ordering::Relaxed);
        tokio::spawn(leader::keep(
            client.clone(),
            settings,
            shutdown.clone(),
            lost.clone(),
        ));
    }
    metrics.leader.set(1);

    let pdb_api_version = pdb_api_version(&client).await?;
    let reporter = Reporter {
        controller: "js-mcp-operator".into(),
        instance: Some(identity),
    };
    let ctx = Arc::new(Context::new(
        client,
        args.namespace.clone(),
        args.default_image.clone(),
        pdb_api_version,
        args.concurrency,
        metrics.clone(),
        reporter,
    ));
    let controllers_stop = CancellationToken::new();
    let instance_controller = tokio::spawn(instance::run(ctx.clone(), controllers_stop.clone()));
    let sync_ctx = ctx.clone();
    let sync_ready = ready.clone();
    tokio::spawn(async move {
        sync_ctx.wait_until_listable().await;
        sync_ready.store(true, Ordering::Relaxed);
    });

    let lost_lease = tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = lost.cancelled() => true,
    };
    controllers_stop.cancel();
    let _ = instance_controller.await;
    metrics.leader.set(0);
    if lost_lease {
        return Err(crate::Error::Other(
            "lost the leader lease; exiting so a restart rejoins the election".into(),
        ));
    }
    tracing::info!("operator stopped");
    Ok(())
}

/// Asks discovery which PodDisruptionBudget version the server has (1.20 serves only v1beta1).
pub async fn pdb_api_version(client: &Client) -> crate::Result<String> {
    let group = kube::discovery::group(client, "policy").await?;
    let has_v1 = group.versions().any(|v| v == "v1");
    Ok(if has_v1 {
        "policy/v1"
    } else {
        "policy/v1beta1"
    }
    .to_string())
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "js-mcp-operator".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
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
