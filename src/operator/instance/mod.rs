//! The McpInstance controller: dereference -> validate -> build (pure) -> apply -> status.

pub mod build;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::api::conditions::{self, DEGRADED, READY};
use crate::api::instance::{McpInstance, McpInstanceStatus};
use crate::operator::FIELD_MANAGER;
use crate::operator::context::Context;
use crate::{Error, Result};

use self::build::{Children, Resolved};
use self::status::RolloutView;

/// Controller name in metrics, logs and events.
pub const CONTROLLER: &str = "mcpinstance";

/// Runs the McpInstance controller until `shutdown` fires.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    let instances: Api<McpInstance> = scoped_api(&client, ctx.namespace.as_deref());
    let deployments: Api<Deployment> = scoped_api(&client, ctx.namespace.as_deref());
    let config_maps: Api<ConfigMap> = scoped_api(&client, ctx.namespace.as_deref());
    let services: Api<Service> = scoped_api(&client, ctx.namespace.as_deref());
    let secrets: Api<Secret> = scoped_api(&client, ctx.namespace.as_deref());
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=js-mcp-operator");
    let controller = Controller::new(instances, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.concurrency));
    let secret_store = controller.store();
    let config_map_store = secret_store.clone();
    let stop = shutdown.clone();
    controller
        .owns(deployments, owned.clone())
        .owns(services, owned.clone())
        .owns(config_maps.clone(), owned)
        // Referenced Secrets and workflow ConfigMaps re-render the instances that name them.
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: Secret| {
                referrers(
                    &secret_store,
                    &secret.namespace().unwrap_or_default(),
                    &secret.name_any(),
                    |spec| {
                        spec.referenced_secrets()
                            .into_iter()
                            .map(str::to_string)
                            .collect()
                    },
                )
            },
        )
        .watches(
            config_maps,
            watcher::Config::default(),
            move |cm: ConfigMap| {
                referrers(
                    &config_map_store,
                    &cm.namespace().unwrap_or_default(),
                    &cm.name_any(),
                    |spec| {
                        spec.referenced_config_maps()
                            .into_iter()
                            .map(str::to_string)
                            .collect()
                    },
                )
            },
        )
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile loop reported an error");
            }
        })
        .await;
}

/// An Api over one namespace, or all of them.
fn scoped_api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn referrers(
    store: &Store<McpInstance>,
    namespace: &str,
    name: &str,
    refs: impl Fn(&crate::api::instance::McpInstanceSpec) -> Vec<String>,
) -> Vec<ObjectRef<McpInstance>> {
    store
        .state()
        .iter()
        .filter(|i| {
            i.namespace().as_deref() == Some(namespace) && refs(&i.spec).iter().any(|r| r == name)
        })
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

/// How the apply step ended; decides the conditions and when to look again.
enum Outcome {
    /// Children applied; the Deployment as the API server returned it (its pod template carries
    /// the revision).
    Applied { deployment: Box<Deployment> },
    /// `spec.paused`: children left as they are.
    Paused,
    /// The spec cannot be served: wait for a change, say so in Degraded.
    Invalid(String),
    /// A referenced object is missing: retry soon, say so in Degraded.
    Missing(String),
}

async fn reconcile(instance: Arc<McpInstance>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_inner(&instance, &ctx).await;
    ctx.metrics
        .observe(CONTROLLER, started.elapsed(), result.as_ref().err());
    if result.is_ok() {
        ctx.reset_backoff(&ObjectRef::from_obj(instance.as_ref()));
    }
    result
}

async fn reconcile_inner(instance: &McpInstance, ctx: &Context) -> Result<Action> {
    let namespace = instance
        .namespace()
        .ok_or_else(|| Error::Other("McpInstance without namespace".into()))?;
    if instance.meta().deletion_timestamp.is_some() {
        // Children carry owner references: the garbage collector removes them.
        return Ok(Action::await_change());
    }
    let outcome = match instance.spec.validate() {
        Err(problems) => Outcome::Invalid(problems.join("; ")),
        Ok(()) if instance.spec.paused => Outcome::Paused,
        Ok(()) => match resolve(instance, ctx, &namespace).await {
            Ok(resolved) => {
                let children = build::build(instance, &resolved)?;
                match apply_children(instance, ctx, &namespace, &children).await {
                    Ok(deployment) => Outcome::Applied {
                        deployment: Box::new(deployment),
                    },
                    // The API server refused what the spec renders to (e.g. an invalid env var name):
                    // retrying cannot help until the spec changes.
                    Err(Error::Kube(kube::Error::Api(status)))
                        if status.code == 422 || status.code == 400 =>
                    {
                        Outcome::Invalid(format!(
                            "the API server rejected a child: {}",
                            status.message
                        ))
                    }
                    Err(other) => return Err(other),
                }
            }
            Err(Error::MissingReference(what)) => Outcome::Missing(what),
            Err(other) => return Err(other),
        },
    };
    update_status(instance, ctx, &namespace, outcome).await
}

/// Reads every referenced Secret key and workflow ConfigMap and hashes their data.
async fn resolve(instance: &McpInstance, ctx: &Context, namespace: &str) -> Result<Resolved> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let spec = &instance.spec;
    let mut entries = Vec::new();
    let mut secret_refs = Vec::new();
    if let Some(r) = &spec.session_store.redis_url_secret_ref {
        secret_refs.push(("spec.sessionStore.redisUrlSecretRef", r));
    }
    if let Some(r) = spec
        .ai
        .as_ref()
        .and_then(|ai| ai.api_key_secret_ref.as_ref())
    {
        secret_refs.push(("spec.ai.apiKeySecretRef", r));
    }
    if let Some(r) = &spec.auth_token_secret_ref {
        secret_refs.push(("spec.authTokenSecretRef", r));
    }
    for (field, r) in secret_refs {
        let secret = secrets.get_opt(&r.name).await?.ok_or_else(|| {
            Error::MissingReference(format!("{field}: Secret {namespace}/{} not found", r.name))
        })?;
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|v| v.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .map(|v| v.as_bytes().to_vec())
            })
            .ok_or_else(|| {
                Error::MissingReference(format!(
                    "{field}: Secret {namespace}/{} has no key {}",
                    r.name, r.key
                ))
            })?;
        entries.push((format!("secret/{}/{}", r.name, r.key), value));
    }
    for (i, w) in spec.workflows.iter().enumerate() {
        let cm = config_maps.get_opt(&w.name).await?.ok_or_else(|| {
            Error::MissingReference(format!(
                "spec.workflows[{i}]: ConfigMap {namespace}/{} not found",
                w.name
            ))
        })?;
        for (key, value) in cm.data.unwrap_or_default() {
            entries.push((format!("configmap/{}/{key}", w.name), value.into_bytes()));
        }
        for (key, value) in cm.binary_data.unwrap_or_default() {
            entries.push((format!("configmap/{}/{key}", w.name), value.0));
        }
    }
    Ok(Resolved {
        default_image: ctx.default_image.clone(),
        references_hash: build::references_hash(entries),
        pdb_api_version: ctx.pdb_api_version.clone(),
    })
}

async fn apply_children(
    instance: &McpInstance,
    ctx: &Context,
    namespace: &str,
    children: &Children,
) -> Result<Deployment> {
    let client = &ctx.client;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = instance.name_any();
    apply_typed(
        Api::<ConfigMap>::namespaced(client.clone(), namespace),
        &children.config_map,
        &params,
    )
    .await?;
    if let Some(pvc) = &children.pvc {
        apply_typed(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace),
            pvc,
            &params,
        )
        .await?;
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let deployment = apply_typed(deployments, &children.deployment, &params).await?;
    apply_typed(
        Api::<Service>::namespaced(client.clone(), namespace),
        &children.service,
        &params,
    )
    .await?;
    // Only a PDB we may have made before needs deleting; skipping the rest saves a call per reconcile.
    let had_pdb = instance.status.as_ref().is_some_and(|s| s.replicas > 1);
    if children.pdb.is_some() || had_pdb {
        apply_pdb(ctx, namespace, &name, children.pdb.as_ref(), &params).await?;
    }

    let previous_revision = instance
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone());
    if previous_revision.is_none() {
        ctx.publish(
            instance,
            EventType::Normal,
            "Created",
            "Apply",
            format!(
                "created Deployment, Service and ConfigMap for revision {}",
                children.revision
            ),
        )
        .await;
    } else if previous_revision.as_deref() != Some(children.revision.as_str()) {
        ctx.publish(
            instance,
            EventType::Normal,
            "RevisionChanged",
            "Apply",
            format!(
                "rolling out revision {} (was {})",
                children.revision,
                previous_revision.unwrap_or_else(|| "unknown".into())
            ),
        )
        .await;
    }
    Ok(deployment)
}

/// The revision annotation on a Deployment's pod template.
pub fn revision_of(deployment: &Deployment) -> Option<String> {
    template_annotation(deployment, build::REVISION_ANNOTATION)
}

/// One annotation of a Deployment's pod template.
pub fn template_annotation(deployment: &Deployment, key: &str) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

async fn apply_typed<K>(api: Api<K>, object: &K, params: &PatchParams) -> Result<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(object)?;
    body["apiVersion"] = json!(K::api_version(&()));
    body["kind"] = json!(K::kind(&()));
    Ok(api.patch(&name, params, &Patch::Apply(body)).await?)
}

async fn apply_pdb(
    ctx: &Context,
    namespace: &str,
    name: &str,
    pdb: Option<&serde_json::Value>,
    params: &PatchParams,
) -> Result<()> {
    let (group, version) = ctx
        .pdb_api_version
        .split_once('/')
        .unwrap_or(("policy", "v1"));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        group,
        version,
        "PodDisruptionBudget",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    match pdb {
        Some(body) => {
            api.patch(name, params, &Patch::Apply(body.clone())).await?;
        }
        None => {
            // Replicas dropped to one or became unset: our PDB would only block evictions.
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn update_status(
    instance: &McpInstance,
    ctx: &Context,
    namespace: &str,
    outcome: Outcome,
) -> Result<Action> {
    let name = instance.name_any();
    let generation = instance.meta().generation;
    let previous = instance.status.clone().unwrap_or_default();
    let deployment = match &outcome {
        Outcome::Applied { deployment } => Some(deployment.as_ref().clone()),
        _ => {
            Api::<Deployment>::namespaced(ctx.client.clone(), namespace)
                .get_opt(&name)
                .await?
        }
    };
    let view = deployment
        .as_ref()
        .map(RolloutView::from_deployment)
        .unwrap_or_default();

    let mut next = McpInstanceStatus {
        observed_generation: generation,
        replicas: view.desired,
        ready_replicas: view.ready,
        updated_replicas: view.updated,
        available_replicas: view.available,
        current_revision: deployment
            .as_ref()
            .and_then(revision_of)
            .or(previous.current_revision.clone()),
        endpoint: build::endpoint(instance),
        ..previous.clone()
    };
    let (updates, action) = match outcome {
        Outcome::Applied { .. } => {
            let conditions = status::rollout_conditions(&view, false);
            // Owned Deployments wake us on every status change; the requeue is only a resync.
            let requeue = if view.complete() {
                Duration::from_secs(300)
            } else {
                Duration::from_secs(30)
            };
            (conditions, Action::requeue(requeue))
        }
        Outcome::Paused => (
            status::rollout_conditions(&view, true),
            Action::requeue(Duration::from_secs(300)),
        ),
        Outcome::Invalid(message) => {
            warn_once(
                ctx,
                instance,
                &previous,
                "InvalidSpec",
                "Validate",
                &message,
            )
            .await;
            let conditions = status::blocked_conditions(
                &view,
                "InvalidSpec",
                message,
                "waiting for a valid spec",
            );
            (conditions, Action::await_change())
        }
        Outcome::Missing(message) => {
            warn_once(
                ctx,
                instance,
                &previous,
                "MissingReference",
                "Resolve",
                &message,
            )
            .await;
            let conditions = status::blocked_conditions(
                &view,
                "MissingReference",
                message,
                "waiting for the referenced object",
            );
            (conditions, Action::requeue(Duration::from_secs(30)))
        }
    };
    next.conditions = conditions::merge(&previous.conditions, &updates, generation);
    if conditions::is_true(&next.conditions, READY)
        && view.complete()
        && next.current_revision.is_some()
    {
        next.last_known_good_revision = next.current_revision.clone();
    }
    if next != previous {
        let body = json!({
            "apiVersion": McpInstance::api_version(&()),
            "kind": McpInstance::kind(&()),
            "status": next,
        });
        Api::<McpInstance>::namespaced(ctx.client.clone(), namespace)
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(body),
            )
            .await?;
    }
    Ok(action)
}

/// Publishes a Warning event unless Degraded already says the same thing (no event storm on resync).
async fn warn_once(
    ctx: &Context,
    instance: &McpInstance,
    previous: &McpInstanceStatus,
    reason: &str,
    action: &str,
    message: &str,
) {
    let already_said = conditions::find(&previous.conditions, DEGRADED)
        .is_some_and(|c| c.status == "True" && c.reason == reason && c.message == message);
    if !already_said {
        ctx.publish(
            instance,
            EventType::Warning,
            reason,
            action,
            message.to_string(),
        )
        .await;
    }
}

fn error_policy(instance: Arc<McpInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(instance = %instance.name_any(), namespace = ?instance.namespace(), %error, "reconcile failed");
    ctx.metrics
        .failures
        .with_label_values(&[CONTROLLER, error.metric_label()])
        .inc();
    Action::requeue(ctx.backoff(&ObjectRef::from_obj(instance.as_ref())))
}
