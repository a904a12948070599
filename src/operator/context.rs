//! Shared state of the controllers: client, settings, metrics, events, backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::McpInstance;
use crate::operator::metrics::Metrics;

/// Everything a reconcile needs besides the object.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Namespace watched, or all when `None`.
    pub namespace: Option<String>,
    /// Image for instances that name none.
    pub default_image: String,
    /// `policy/v1` or `policy/v1beta1`, from discovery.
    pub pdb_api_version: String,
    /// Parallel reconciles allowed.
    pub concurrency: u16,
    /// Metrics registry and handles.
    pub metrics: Metrics,
    recorder: Recorder,
    failures: Mutex<HashMap<ObjectRef<McpInstance>, u32>>,
    stores: Mutex<Vec<Store<McpInstance>>>,
}

impl Context {
    /// Builds the context; `reporter` names this operator replica in events.
    pub fn new(
        client: Client,
        namespace: Option<String>,
        default_image: String,
        pdb_api_version: String,
        concurrency: u16,
        metrics: Metrics,
        reporter: Reporter,
    ) -> Self {
        let recorder = Recorder::new(client.clone(), reporter);
        Context {
            client,
            namespace,
            default_image,
            pdb_api_version,
            concurrency,
            metrics,
            recorder,
            failures: Mutex::new(HashMap::new()),
            stores: Mutex::new(Vec::new()),
        }
    }

    /// Publishes an event on `object`; failures are logged, never fatal.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::debug!(%error, reason, "could not publish event");
        }
    }

    /// Exponential backoff per object: 1s, 2s, 4s ... capped at 5 minutes.
    pub fn backoff(&self, object: &ObjectRef<McpInstance>) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(object.clone()).or_insert(0);
        *count = count.saturating_add(1);
        Duration::from_secs(1u64 << (*count - 1).min(8)).min(Duration::from_secs(300))
    }

    /// Forgets the failures of an object after a good reconcile.
    pub fn reset_backoff(&self, object: &ObjectRef<McpInstance>) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(object);
    }

    /// Keeps a controller's reflector store so readiness can wait for it to sync.
    pub fn mark_store(&self, store: Store<McpInstance>) {
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
    }

    /// Resolves once every controller's cache has synced.
    pub async fn wait_until_synced(&self) {
        let stores: Vec<Store<McpInstance>> = self
            .stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for store in stores {
            let _ = store.wait_until_ready().await;
        }
    }
}
