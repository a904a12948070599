//! The operator's admin HTTP server: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Router, routing::get};
use tokio_util::sync::CancellationToken;

use crate::operator::metrics::Metrics;

/// What the admin endpoints report.
#[derive(Clone)]
pub struct AdminState {
    /// Metrics to render.
    pub metrics: Metrics,
    /// True once this replica is a synced leader or a standby.
    pub ready: Arc<AtomicBool>,
}

/// The admin routes.
pub fn app(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Serves the admin routes on `addr` until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: CancellationToken,
) -> crate::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::Error::io(format!("binding the admin server to {addr}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| crate::Error::io("reading the admin address", e))?;
    tokio::spawn(async move {
        let result = axum::serve(listener, app(state))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "admin server stopped");
        }
    });
    Ok(bound)
}
