//! The embedded session/workflow MCP server (`js-mcp serve`): `app(state) -> Router`, the
//! shared [`AppState`], and [`run`], which serves until SIGTERM and then drains gracefully.
//!
//! Layout: [`config`] (flags, env, file), [`cgroup`] (the memory limit), [`sessions`] (model), [`store`] (embedded redb and
//! Redis), [`service`] (session ops + metrics), [`runs`] (workflow runs), [`api`] (REST),
//! [`http`] (probes, admin, middleware), [`mcp`] (Streamable HTTP + tools), [`metrics`],
//! [`footprint`] (gives back startup-only code pages), [`tasks`] (runs as MCP tasks),
//! [`backends`] (seams to Docker, AI and the workflow engine) and [`adapters`] (the real ones).

pub mod adapters;
pub mod ai;
pub mod api;
pub mod backends;
pub mod cgroup;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod docker;
pub mod footprint;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod runs;
pub mod service;
pub mod sessions;
pub mod store;
pub mod tasks;
pub mod workflows;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;

pub use config::{FileConfig, ServeArgs, Settings, StoreKind};

use backends::Backends;
use metrics::Metrics;
use runs::RunManager;
use service::SessionService;
use store::{SessionStore, StoreConfig};

/// Shared state of the HTTP handlers and MCP tools.
pub struct AppState {
    /// Effective settings.
    pub settings: Settings,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Session operations.
    pub sessions: SessionService,
    /// Workflow runs.
    pub runs: RunManager,
    /// Docker, AI and workflow engine, where configured.
    pub backends: Backends,
    /// Set by `/admin/drain` and SIGTERM.
    pub draining: Arc<AtomicBool>,
    /// Live MCP sessions (the gauge's source of truth).
    pub mcp_live: Arc<AtomicUsize>,
    /// Cancelled at shutdown: ends MCP sessions and their streams.
    pub shutdown: CancellationToken,
    /// Process start, for uptime.
    pub started: Instant,
}

impl AppState {
    /// Builds the state over an opened store.
    pub fn new(
        settings: Settings,
        store: Arc<dyn SessionStore>,
        backends: Backends,
        metrics: Metrics,
    ) -> Arc<Self> {
        let draining = Arc::new(AtomicBool::new(false));
        let sessions = SessionService::new(store, metrics.clone(), draining.clone());
        let runs = RunManager::new(
            backends.workflows.clone(),
            backends.missing_reason("workflows"),
            sessions.clone(),
            metrics.clone(),
        );
        Arc::new(AppState {
            settings,
            metrics,
            sessions,
            runs,
            backends,
            draining,
            mcp_live: Arc::new(AtomicUsize::new(0)),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
        })
    }

    /// True while draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Enters drain mode (idempotent).
    pub fn start_draining(&self) {
        if !self.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("draining: readiness false, no new sessions or runs");
        }
        self.metrics.draining.set(1);
    }
}

/// The server's routes: open probes, and `/mcp`, `/api/v1`, `/admin` behind the optional
/// token (checked, with metrics and the MCP gate, by the single [`http::entry`] layer).
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(http::health))
        .route("/ready", get(http::ready))
        .route("/status", get(http::status))
        .route("/metrics", get(http::metrics))
        .merge(api::routes())
        .route("/admin/drain", post(http::drain))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .route_service("/mcp", mcp::service(state.clone()))
        .route_layer(from_fn_with_state(state.clone(), http::entry))
        .with_state(state)
}

/// Opens the configured store.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn SessionStore>> {
    let config = StoreConfig {
        max_sessions: settings.max_sessions,
        default_ttl_seconds: settings.session_ttl_seconds,
        cache_bytes: settings.store_cache_bytes,
        ..StoreConfig::default()
    };
    Ok(match settings.store {
        StoreKind::Embedded => Arc::new(store::embedded::EmbeddedStore::open(
            &settings.data_dir,
            config,
        )?),
        StoreKind::Redis => {
            let url = settings.redis_url.clone().unwrap_or_default();
            Arc::new(store::redis::RedisStore::connect(&url, &settings.redis_prefix, config).await?)
        }
    })
}

/// Builds the state from settings: store, backends, metrics.
pub async fn build_state(settings: Settings) -> anyhow::Result<Arc<AppState>> {
    let metrics = Metrics::new()?;
    let store = open_store(&settings).await?;
    let backends = adapters::build(&settings, &metrics).await?;
    let state = AppState::new(settings, store, backends, metrics);
    state.sessions.refresh_gauge().await;
    Ok(state)
}

/// Runs `app` on `listener` until `shutdown` resolves, then drains: readiness false, wait
/// for runs (bounded by the drain timeout), end MCP sessions, finish in-flight requests,
/// close the store. Every write acknowledged to a client was committed before its response.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let sweeper = {
        let st = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(st.settings.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = st.sessions.sweep().await {
                            tracing::warn!(error = %e, "session expiry sweep failed");
                        }
                    }
                    _ = st.shutdown.cancelled() => break,
                }
            }
        })
    };
    let signalled = CancellationToken::new();
    let drain_state = state.clone();
    let signalled2 = signalled.clone();
    let graceful = async move {
        shutdown.await;
        signalled2.cancel();
        tracing::info!("shutdown requested: draining");
        drain_state.start_draining();
        drain_state
            .runs
            .drain(drain_state.settings.drain_timeout)
            .await;
        // Ends MCP session workers and their SSE streams so connections can close.
        drain_state.shutdown.cancel();
    };
    // TCP_NODELAY: without it a request/response exchange waits on Nagle + delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "failed to set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app(state.clone())).with_graceful_shutdown(graceful);
    let hard_deadline = state.settings.drain_timeout + Duration::from_secs(5);
    let deadline = async {
        signalled.cancelled().await;
        tokio::time::sleep(hard_deadline).await;
    };
    tokio::select! {
        r = server => r?,
        _ = deadline => tracing::warn!("in-flight requests did not finish in time; exiting"),
    }
    state.shutdown.cancel();
    let _ = sweeper.await;
    state.sessions.store().close().await?;
    tracing::info!("js-mcp serve stopped");
    Ok(())
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let settings = Settings::resolve(&args, &file)?;
    if let Some(level) = &settings.log_level
        && std::env::var_os("RUST_LOG").is_none()
        && let Err(e) = crate::telemetry::set_filter(level)
    {
        tracing::warn!(error = %e, level = %level, "ignoring invalid logLevel");
    }
    if let Some(limit) = settings.memory_limit_bytes {
        tracing::info!(
            memory_limit_mib = limit / (1024 * 1024),
            max_mcp_sessions = settings.max_mcp_sessions,
            "MCP session cap within the container's memory limit"
        );
    }
    let addr = SocketAddr::new(settings.bind, settings.port);
    let state = build_state(settings).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, store = state.sessions.store().kind(), "js-mcp serve listening");
    tokio::spawn(footprint::release_after_startup());
    serve(state, listener, crate::operator::shutdown_signal()).await
}
