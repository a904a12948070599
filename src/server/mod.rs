//! The embedded session/workflow MCP server (`js-mcp serve`).

pub mod ai;
pub mod docker;
pub mod workflows;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::{Router, http::StatusCode, routing::get};
use clap::Args;

/// Flags of `js-mcp serve`; every flag is also read from the environment.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to bind.
    #[arg(long, env = "JSMCP_BIND", default_value = "0.0.0.0")]
    pub bind: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, env = "JSMCP_PORT", default_value_t = 3000)]
    pub port: u16,
    /// JSON config file written by the operator (`config.json` of the instance's ConfigMap).
    #[arg(long, env = "JSMCP_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

/// Shared state of the HTTP handlers.
#[derive(Default)]
pub struct AppState {
    draining: AtomicBool,
}

/// The server's routes.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/ready",
            get(
                |axum::extract::State(state): axum::extract::State<Arc<AppState>>| async move {
                    if state.draining.load(Ordering::Relaxed) {
                        (StatusCode::SERVICE_UNAVAILABLE, "draining")
                    } else {
                        (StatusCode::OK, "ready")
                    }
                },
            ),
        )
        .with_state(state)
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config {}: {e}", path.display()))?;
        let _: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config {} is not valid JSON: {e}", path.display()))?;
    }
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "js-mcp serve listening");
    axum::serve(listener, app(Arc::new(AppState::default())))
        .with_graceful_shutdown(crate::operator::shutdown_signal())
        .await?;
    Ok(())
}
