//! Session operations as the HTTP API and the MCP tools use them: the store plus
//! metrics, draining and the live-session gauge, in one place so both surfaces agree.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::metrics::Metrics;
use super::sessions::{NewSession, Session, SessionError, SessionFilter, SessionOp};
use super::store::SessionStore;

/// The session service shared by REST and MCP.
#[derive(Clone)]
pub struct SessionService {
    store: Arc<dyn SessionStore>,
    metrics: Metrics,
    draining: Arc<AtomicBool>,
}

impl SessionService {
    /// Wraps `store`; `draining` is the server-wide drain flag.
    pub fn new(store: Arc<dyn SessionStore>, metrics: Metrics, draining: Arc<AtomicBool>) -> Self {
        SessionService {
            store,
            metrics,
            draining,
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Creates a session (refused while draining or when the table is full).
    pub async fn create(&self, new: NewSession) -> Result<Session, SessionError> {
        let t = Instant::now();
        let r = if self.draining.load(Ordering::Relaxed) {
            Err(SessionError::Draining)
        } else {
            self.store.create(new).await
        };
        self.metrics.session_op("create", t, &r);
        match &r {
            Ok(_) => {
                self.metrics.sessions_created.inc();
                self.metrics.sessions_live.inc();
            }
            Err(SessionError::Full { .. }) => self
                .metrics
                .sessions_rejected
                .with_label_values(&["full"])
                .inc(),
            Err(SessionError::Draining) => self
                .metrics
                .sessions_rejected
                .with_label_values(&["draining"])
                .inc(),
            Err(_) => {}
        }
        r
    }

    /// Reads a session.
    pub async fn get(&self, id: &str) -> Result<Session, SessionError> {
        let t = Instant::now();
        let r = self.store.get(id.to_string()).await;
        self.metrics.session_op("get", t, &r);
        r
    }

    /// Applies one operation (optionally only at `expected_version`).
    pub async fn update(
        &self,
        id: &str,
        expected_version: Option<u64>,
        op: SessionOp,
    ) -> Result<Session, SessionError> {
        let t = Instant::now();
        let name = op.metric_name();
        let r = self
            .store
            .update(id.to_string(), expected_version, op)
            .await;
        self.metrics.session_op(name, t, &r);
        r
    }

    /// Deletes a session.
    pub async fn delete(
        &self,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<(), SessionError> {
        let t = Instant::now();
        let r = self.store.delete(id.to_string(), expected_version).await;
        self.metrics.session_op("delete", t, &r);
        if r.is_ok() {
            self.metrics.sessions_deleted.inc();
            self.metrics.sessions_live.dec();
        }
        r
    }

    /// Lists sessions.
    pub async fn list(&self, filter: SessionFilter) -> Result<Vec<Session>, SessionError> {
        let t = Instant::now();
        let r = self.store.list(filter).await;
        self.metrics.session_op("list", t, &r);
        r
    }

    /// Sweeps expired sessions and refreshes the live gauge from the store's count.
    pub async fn sweep(&self) -> Result<usize, SessionError> {
        let t = Instant::now();
        let r = self.store.sweep_expired().await;
        self.metrics.session_op("sweep", t, &r);
        if let Ok(n) = r {
            self.metrics.sessions_expired.inc_by(n as u64);
        }
        self.refresh_gauge().await;
        r
    }

    /// Sets `jsmcp_sessions_live` from the store (other replicas change it too with Redis).
    pub async fn refresh_gauge(&self) {
        if let Ok(n) = self.store.count().await {
            self.metrics.sessions_live.set(n as i64);
        }
    }
}
