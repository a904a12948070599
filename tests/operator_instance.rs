//! The McpInstance controller against a real control plane: children, status, rollouts,
//! references, garbage collection, coexistence with HPAs/kubectl, validation, restarts, leadership.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use common::{TestNamespace, shared_cluster};
use js_mcp::api::conditions;
use js_mcp::api::instance::{McpInstance, McpInstanceSpec};
use js_mcp::operator::instance::template_annotation;
use js_mcp::operator::{OperatorArgs, run_controllers};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(90);

/// Polls `check` until it returns Some, or panics with `what` after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An in-process operator scoped to one namespace; stops when dropped.
struct Operator {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<js_mcp::Result<()>>>,
    admin: SocketAddr,
}

impl Operator {
    fn start(client: Client, namespace: &str) -> Operator {
        let admin = free_loopback_addr();
        let mut args = OperatorArgs::for_namespace(Some(namespace.to_string()));
        args.admin_addr = admin;
        args.lease_namespace = namespace.to_string();
        args.default_image = "js-mcp:dev".into();
        let stop = CancellationToken::new();
        let task = Some(tokio::spawn(run_controllers(client, args, stop.clone())));
        Operator { stop, task, admin }
    }

    /// Graceful stop (releases the lease).
    async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }

    async fn metrics(&self) -> String {
        scrape(self.admin).await
    }
}

async fn scrape(admin: SocketAddr) -> String {
    match reqwest::get(format!("http://{admin}/metrics")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn free_loopback_addr() -> SocketAddr {
    let port = js_mcp::local::process::free_port().unwrap_or_else(|e| panic!("{e}"));
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `js-mcp operator` as a real process, so a test can SIGKILL it mid-reconcile.
struct OperatorProcess {
    child: std::process::Child,
    admin: SocketAddr,
}

impl OperatorProcess {
    fn start(namespace: &str) -> OperatorProcess {
        let admin = free_loopback_addr();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_js-mcp"))
            .arg("operator")
            .env("KUBECONFIG", shared_cluster().kubeconfig_path())
            .env("JSMCP_NAMESPACE", namespace)
            .env("POD_NAMESPACE", namespace)
            .env("JSMCP_ADMIN_ADDR", admin.to_string())
            .env("JSMCP_DEFAULT_IMAGE", "js-mcp:dev")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting js-mcp operator: {e}"));
        OperatorProcess { child, admin }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn instance(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "jsmcp.io/v1alpha1",
        "kind": "McpInstance",
        "metadata": { "name": name },
        "spec": spec,
    })
}

async fn apply(api: &Api<McpInstance>, name: &str, spec: serde_json::Value) -> McpInstance {
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(instance(name, spec)),
    )
    .await
    .unwrap_or_else(|e| panic!("applying McpInstance {name}: {e}"))
}

async fn ready_instance(api: &Api<McpInstance>, name: &str, replicas: i32) -> McpInstance {
    eventually(
        &format!("McpInstance {name} Ready with {replicas} replicas"),
        TIMEOUT,
        || async {
            let current = api.get(name).await.ok()?;
            let status = current.status.as_ref()?;
            let ready = conditions::is_true(&status.conditions, conditions::READY);
            (ready
                && status.ready_replicas == replicas
                && status.observed_generation == current.metadata.generation)
                .then_some(current)
        },
    )
    .await
}

fn owned_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    owner: &McpInstance,
) -> bool {
    meta.owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| Some(&r.uid) == owner.metadata.uid.as_ref() && r.controller == Some(true))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_an_instance_creates_owned_children_runs_pods_and_reports_ready() {
    let ns = TestNamespace::new("mcpi-create").await;
    let _agent = ns.start_node_agent().await;
    let client = ns.client();
    let _operator = Operator::start(client.clone(), ns.name());
    let api: Api<McpInstance> = Api::namespaced(client.clone(), ns.name());

    apply(
        &api,
        "alpha",
        json!({ "replicas": 2, "config": { "maxSessions": 500 } }),
    )
    .await;
    let ready = ready_instance(&api, "alpha", 2).await;
    let status = ready.status.clone().unwrap_or_default();
    assert_eq!(status.replicas, 2);
    assert_eq!(status.available_replicas, 2);
    assert!(status.current_revision.is_some());
    assert_eq!(status.last_known_good_revision, status.current_revision);
    assert_eq!(
        status.endpoint.as_deref(),
        Some(format!("http://alpha.{}.svc:3000/mcp", ns.name()).as_str())
    );

    let deployment = Api::<Deployment>::namespaced(client.clone(), ns.name())
        .get("alpha")
        .await
        .unwrap();
    let service = Api::<Service>::namespaced(client.clone(), ns.name())
        .get("alpha")
        .await
        .unwrap();
    let config = Api::<ConfigMap>::namespaced(client.clone(), ns.name())
        .get("alpha-config")
        .await
        .unwrap();
    for meta in [&deployment.metadata, &service.metadata, &config.metadata] {
        assert!(
            owned_by(meta, &ready),
            "{:?} lacks a controller owner reference",
            meta.name
        );
    }
    let config_json = config
        .data
        .unwrap_or_default()
        .remove("config.json")
        .unwrap_or_default();
    assert!(
        config_json.contains("\"maxSessions\": 500"),
        "{config_json}"
    );
    // replicas > 1: a PodDisruptionBudget in whichever policy version the server serves (1.20: v1beta1).
    let pdb_version = js_mcp::operator::pdb_api_version(&client).await.unwrap();
    let (group, version) = pdb_version.split_once('/').unwrap();
    let pdb_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns.name(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            group,
            version,
            "PodDisruptionBudget",
        )),
    );
    assert!(
        pdb_api.get("alpha").await.is_ok(),
        "PDB {pdb_version} missing"
    );

    // The pods are real `js-mcp serve` processes: their /health answers at the pod IP.
    let pods = Api::<Pod>::namespaced(client.clone(), ns.name())
        .list(&ListParams::default().labels("jsmcp.io/instance=alpha"))
        .await
        .unwrap();
    let running: Vec<_> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(running.len(), 2);
    for pod in running {
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap();
        let health = reqwest::get(format!("http://{ip}:3000/health"))
            .await
            .unwrap();
        assert!(
            health.status().is_success(),
            "pod {ip} /health: {}",
            health.status()
        );
    }

    // An event says what the operator did.
    let events: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns.name(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event")),
    );
    let listed = events.list(&ListParams::default()).await.unwrap();
    assert!(
        listed.items.iter().any(|e| e.data["reason"] == "Created"),
        "no Created event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_and_referenced_secret_changes_roll_new_revisions_and_deletion_collects_children() {
    let ns = TestNamespace::new("mcpi-rollout").await;
    let _agent = ns.start_node_agent().await;
    let client = ns.client();
    let _operator = Operator::start(client.clone(), ns.name());
    let api: Api<McpInstance> = Api::namespaced(client.clone(), ns.name());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());

    // The Secret does not exist yet: Degraded/MissingReference, no Deployment.
    let spec = json!({ "replicas": 1, "authTokenSecretRef": { "name": "token", "key": "value" } });
    apply(&api, "beta", spec.clone()).await;
    eventually("Degraded/MissingReference", TIMEOUT, || async {
        let status = api.get("beta").await.ok()?.status?;
        conditions::find(&status.conditions, conditions::DEGRADED)
            .filter(|c| {
                c.status == "True"
                    && c.reason == "MissingReference"
                    && c.message.contains("spec.authTokenSecretRef")
            })
            .map(|_| ())
    })
    .await;
    assert!(deployments.get_opt("beta").await.unwrap().is_none());

    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "token" }, "stringData": { "value": "first" }
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let first = ready_instance(&api, "beta", 1).await;
    let revision_1 = first.status.and_then(|s| s.current_revision).unwrap();

    // A spec change rolls a new revision.
    apply(&api, "beta", json!({ "replicas": 1, "authTokenSecretRef": { "name": "token", "key": "value" }, "config": { "maxSessions": 7 } })).await;
    let revision_2 = eventually("new revision after a spec change", TIMEOUT, || async {
        let d = deployments.get("beta").await.ok()?;
        template_annotation(&d, "jsmcp.io/revision").filter(|r| *r != revision_1)
    })
    .await;
    ready_instance(&api, "beta", 1).await;

    // Changing the referenced Secret re-renders (its data is hashed into the pod template).
    secrets
        .patch(
            "token",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "value": "second" } })),
        )
        .await
        .unwrap();
    eventually("new revision after a Secret change", TIMEOUT, || async {
        let d = deployments.get("beta").await.ok()?;
        template_annotation(&d, "jsmcp.io/revision")
            .filter(|r| *r != revision_2 && *r != revision_1)
    })
    .await;
    let rolled = ready_instance(&api, "beta", 1).await;
    assert_ne!(
        rolled.status.and_then(|s| s.current_revision),
        Some(revision_2)
    );

    // Deleting the instance garbage-collects every child.
    api.delete("beta", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("children garbage-collected", TIMEOUT, || async {
        let d = deployments.get_opt("beta").await.ok()?;
        let s = Api::<Service>::namespaced(client.clone(), ns.name())
            .get_opt("beta")
            .await
            .ok()?;
        let c = Api::<ConfigMap>::namespaced(client.clone(), ns.name())
            .get_opt("beta-config")
            .await
            .ok()?;
        (d.is_none() && s.is_none() && c.is_none()).then_some(())
    })
    .await;
}

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running kubectl {args:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_does_not_fight_manual_scaling_or_rollout_restart() {
    let ns = TestNamespace::new("mcpi-coexist").await;
    let _agent = ns.start_node_agent().await;
    let client = ns.client();
    let _operator = Operator::start(client.clone(), ns.name());
    let api: Api<McpInstance> = Api::namespaced(client.clone(), ns.name());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let kubeconfig = shared_cluster().kubeconfig_path();

    // No replicas in the spec: scaling belongs to someone else.
    apply(&api, "gamma", json!({})).await;
    ready_instance(&api, "gamma", 1).await;
    let out = kubectl(
        kubeconfig,
        &["-n", ns.name(), "scale", "deployment/gamma", "--replicas=2"],
    );
    assert!(
        out.status.success(),
        "kubectl scale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kubectl(
        kubeconfig,
        &["-n", ns.name(), "rollout", "restart", "deployment/gamma"],
    );
    assert!(
        out.status.success(),
        "kubectl rollout restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A spec change makes the operator apply again.
    apply(&api, "gamma", json!({ "config": { "logLevel": "debug" } })).await;
    let deployment = eventually("operator applied the new config", TIMEOUT, || async {
        let d = deployments.get("gamma").await.ok()?;
        let status = api.get("gamma").await.ok()?.status?;
        (template_annotation(&d, "jsmcp.io/revision") == status.current_revision
            && status.observed_generation == Some(2))
        .then_some(d)
    })
    .await;
    assert_eq!(
        deployment.spec.as_ref().and_then(|s| s.replicas),
        Some(2),
        "operator reverted manual scaling"
    );
    assert!(
        template_annotation(&deployment, "kubectl.kubernetes.io/restartedAt").is_some(),
        "operator dropped the rollout restart annotation"
    );
    ready_instance(&api, "gamma", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_rejects_invalid_objects_naming_the_field() {
    let ns = TestNamespace::new("mcpi-invalid").await;
    let client = ns.client();
    // Raw objects: the typed client would refuse most of these before the API server sees them.
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns.name(),
        &ApiResource::erase::<McpInstance>(&()),
    );
    let cases = [
        (
            "negative-replicas",
            json!({ "replicas": -1 }),
            "spec.replicas",
        ),
        (
            "unknown-store",
            json!({ "sessionStore": { "type": "etcd" } }),
            "spec.sessionStore.type",
        ),
        (
            "bad-image",
            json!({ "image": "Not A Valid//Image" }),
            "spec.image",
        ),
        (
            "missing-required",
            json!({ "ai": { "model": "gpt" } }),
            "spec.ai.baseUrl",
        ),
        ("bad-port", json!({ "port": 70000 }), "spec.port"),
    ];
    for (name, spec, field) in cases {
        let error = api
            .create(
                &PostParams::default(),
                &serde_json::from_value::<DynamicObject>(instance(name, spec)).unwrap(),
            )
            .await
            .expect_err(name);
        let message = error.to_string();
        assert!(
            message.contains(field),
            "{name}: error does not name {field}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_but_unservable_spec_gets_invalid_spec_condition_and_recovers_after_a_fix() {
    let ns = TestNamespace::new("mcpi-unservable").await;
    let _agent = ns.start_node_agent().await;
    let client = ns.client();
    let operator = Operator::start(client.clone(), ns.name());
    let api: Api<McpInstance> = Api::namespaced(client.clone(), ns.name());

    apply(
        &api,
        "delta",
        json!({ "sessionStore": { "type": "redis" } }),
    )
    .await;
    let degraded = eventually("Degraded/InvalidSpec", TIMEOUT, || async {
        let status = api.get("delta").await.ok()?.status?;
        conditions::find(&status.conditions, conditions::DEGRADED)
            .filter(|c| c.status == "True" && c.reason == "InvalidSpec")
            .cloned()
    })
    .await;
    assert!(
        degraded
            .message
            .contains("spec.sessionStore.redisUrlSecretRef"),
        "{}",
        degraded.message
    );
    assert!(
        Api::<Deployment>::namespaced(client.clone(), ns.name())
            .get_opt("delta")
            .await
            .unwrap()
            .is_none()
    );
    // Invalid specs wait for a change instead of crash-looping: no reconcile errors counted.
    assert_eq!(
        metric_value(
            &operator.metrics().await,
            "jsmcp_operator_reconcile_errors_total"
        ),
        0.0
    );

    apply(
        &api,
        "delta",
        json!({ "sessionStore": { "type": "embedded" } }),
    )
    .await;
    let fixed = ready_instance(&api, "delta", 1).await;
    let status = fixed.status.unwrap_or_default();
    assert!(!conditions::is_true(
        &status.conditions,
        conditions::DEGRADED
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_mid_reconcile_converges_without_duplicates_or_orphans() {
    let ns = TestNamespace::new("mcpi-restart").await;
    let _agent = ns.start_node_agent().await;
    let client = ns.client();
    let api: Api<McpInstance> = Api::namespaced(client.clone(), ns.name());
    let names: Vec<String> = (0..4).map(|i| format!("kill-{i}")).collect();

    let mut first = OperatorProcess::start(ns.name());
    for name in &names {
        apply(&api, name, json!({ "replicas": 1 })).await;
    }
    // SIGKILL it as soon as it has started working, then start a fresh one (which takes over
    // the lease after expiry, since a killed process cannot release it).
    eventually("first operator started reconciling", TIMEOUT, || async {
        (metric_value(&scrape(first.admin).await, "jsmcp_operator_reconcile_total") > 0.0)
            .then_some(())
    })
    .await;
    first.kill();
    let _second = OperatorProcess::start(ns.name());
    for name in &names {
        ready_instance(&api, name, 1).await;
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns.name())
        .list(&ListParams::default())
        .await
        .unwrap();
    let services = Api::<Service>::namespaced(client.clone(), ns.name())
        .list(&ListParams::default())
        .await
        .unwrap();
    let instances = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(deployments.items.len(), names.len());
    assert_eq!(services.items.len(), names.len());
    for d in &deployments.items {
        let owner = instances.items.iter().find(|i| owned_by(&d.metadata, i));
        assert!(owner.is_some(), "Deployment {} is orphaned", d.name_any());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_operator_replicas_only_the_leader_acts() {
    let ns = TestNamespace::new("mcpi-leader").await;
    let _agent = ns.start_node_agent().await;
    let client = ns.client();
    let api: Api<McpInstance> = Api::namespaced(client.clone(), ns.name());
    let leader = Operator::start(client.clone(), ns.name());
    eventually("first replica leads", TIMEOUT, || async {
        (metric_value(&leader.metrics().await, "jsmcp_operator_leader") == 1.0).then_some(())
    })
    .await;
    let standby = Operator::start(client.clone(), ns.name());
    apply(&api, "epsilon", json!({ "replicas": 1 })).await;
    ready_instance(&api, "epsilon", 1).await;
    // Both replicas are live and ready: the leader after its caches synced, the standby because waiting is its job.
    for admin in &[leader.admin, standby.admin] {
        for path in ["healthz", "readyz"] {
            eventually(&format!("{admin}/{path} answers 200"), TIMEOUT, || async {
                let response = reqwest::get(format!("http://{admin}/{path}")).await.ok()?;
                response.status().is_success().then_some(())
            })
            .await;
        }
    }
    let standby_metrics = standby.metrics().await;
    assert!(
        !standby_metrics.is_empty(),
        "standby admin server not answering"
    );
    assert_eq!(metric_value(&standby_metrics, "jsmcp_operator_leader"), 0.0);
    assert_eq!(
        metric_value(&standby_metrics, "jsmcp_operator_reconcile_total"),
        0.0,
        "standby reconciled"
    );
    assert!(metric_value(&leader.metrics().await, "jsmcp_operator_reconcile_total") > 0.0);

    // The leader stops gracefully and releases the lease: the standby takes over and acts.
    leader.shutdown().await;
    eventually("standby became leader", TIMEOUT, || async {
        (metric_value(&standby.metrics().await, "jsmcp_operator_leader") == 1.0).then_some(())
    })
    .await;
    apply(
        &api,
        "epsilon",
        json!({ "replicas": 1, "config": { "logLevel": "warn" } }),
    )
    .await;
    eventually("new leader reconciled the change", TIMEOUT, || async {
        let current = api.get("epsilon").await.ok()?;
        (current.status?.observed_generation == current.metadata.generation).then_some(())
    })
    .await;
    assert!(metric_value(&standby.metrics().await, "jsmcp_operator_reconcile_total") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_instance_keeps_its_children_unchanged() {
    let ns = TestNamespace::new("mcpi-paused").await;
    let _agent = ns.start_node_agent().await;
    let client = ns.client();
    let _operator = Operator::start(client.clone(), ns.name());
    let api: Api<McpInstance> = Api::namespaced(client.clone(), ns.name());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    apply(&api, "zeta", json!({ "replicas": 1 })).await;
    ready_instance(&api, "zeta", 1).await;
    let before = template_annotation(&deployments.get("zeta").await.unwrap(), "jsmcp.io/revision");

    apply(
        &api,
        "zeta",
        json!({ "replicas": 1, "paused": true, "config": { "maxSessions": 3 } }),
    )
    .await;
    eventually("Progressing/Paused", TIMEOUT, || async {
        let status = api.get("zeta").await.ok()?.status?;
        conditions::find(&status.conditions, conditions::PROGRESSING)
            .filter(|c| c.reason == "Paused")
            .map(|_| ())
    })
    .await;
    assert_eq!(
        template_annotation(&deployments.get("zeta").await.unwrap(), "jsmcp.io/revision"),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_committed_crds_and_lists_the_jsmcp_category() {
    let ns = TestNamespace::new("mcpi-kubectl").await;
    let kubeconfig = shared_cluster().kubeconfig_path();
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/");
    let out = kubectl(kubeconfig, &["apply", "-f", crds]);
    assert!(
        out.status.success(),
        "kubectl apply -f crds/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api: Api<McpInstance> = Api::namespaced(ns.client(), ns.name());
    let spec: McpInstanceSpec = serde_json::from_value(json!({ "replicas": 0 })).unwrap();
    api.create(&PostParams::default(), &McpInstance::new("eta", spec))
        .await
        .unwrap();
    let out = kubectl(kubeconfig, &["get", "jsmcp", "-n", ns.name()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl get jsmcp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mcpinstance.jsmcp.io/eta"), "{stdout}");
}
