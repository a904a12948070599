//! Shared state of the controllers: client, settings, metrics, events, backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

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

    /// Resolves once the watched McpInstances can be listed (API reachable, RBAC allows it).
    ///
    /// Not `Store::wait_until_ready`: kube-runtime's Controller already awaits that store's
    /// readiness, and its DelayedInit keeps a single waker, so a second waiter can starve
    /// forever (seen here as a /readyz stuck at 503). The Controller itself still waits for its
    /// cache before the first reconcile.
    pub async fn wait_until_listable(&self) {
        let api: kube::Api<McpInstance> = match &self.namespace {
            Some(ns) => kube::Api::namespaced(self.client.clone(), ns),
            None => kube::Api::all(self.client.clone()),
        };
        loop {
            match api.list(&kube::api::ListParams::default().limit(1)).await {
                Ok(_) => return,
                Err(error) => tracing::warn!(%error, "cannot list McpInstances yet"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
