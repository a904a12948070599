//! The local cluster against the real control plane (etcd + kube-apiserver +
//! kube-controller-manager): CRDs installed, and the node agent running Pods as real
//! processes — readiness, HTTP on the pod's loopback address, Deployments, exit codes,
//! restarts, deletion, mounted ConfigMaps.

mod common;

use std::time::Duration;

use common::{TestNamespace, shared_cluster, wait_for};
use js_mcp::local::process::pid_alive;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

/// Generous: the machine may be busy compiling while tests run.
const TIMEOUT: Duration = Duration::from_secs(90);

fn pod(name: &str, spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("pod {name}: {e}"))
}

/// Waits until `pred` holds for the pod, returning it; panics with `what` on timeout.
async fn wait_pod(api: &Api<Pod>, name: &str, what: &str, pred: impl Fn(&Pod) -> bool) -> Pod {
    let last: std::sync::Mutex<Option<Pod>> = std::sync::Mutex::new(None);
    let ok = wait_for(TIMEOUT, || async {
        match api.get_opt(name).await {
            Ok(Some(p)) => {
                let hit = pred(&p);
                if let Ok(mut slot) = last.lock() {
                    *slot = Some(p);
                }
                hit
            }
            _ => false,
        }
    })
    .await;
    let last = last.into_inner().ok().flatten();
    match (ok, last) {
        (true, Some(p)) => p,
        (_, last) => panic!(
            "pod {name}: timed out waiting for {what}; last status: {:?}",
            last.and_then(|p| p.status)
        ),
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// The pid the agent reports in `containerID` (`local://<pid>`).
fn container_pid(p: &Pod) -> Option<u32> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .container_id
        .as_deref()?
        .strip_prefix("local://")?
        .parse()
        .ok()
}

fn restart_count(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .map_or(0, |c| c.restart_count)
}

fn exit_code(p: &Pod) -> Option<i32> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_starts_with_every_crd_established() {
    let cluster = shared_cluster();
    assert!(cluster.kubeconfig_path().is_file());
    let client = common::cluster_client();
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for crd in js_mcp::api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let live = api
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name}: {e}"));
        let established = live
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD {name} is not Established");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_mcp_pod_becomes_ready_on_its_own_loopback_address_and_answers_health() {
    let ns = TestNamespace::new("local-serve").await;
    let agent = ns.start_node_agent().await;
    let api: Api<Pod> = Api::namespaced(ns.client(), ns.name());
    let spec = json!({
        "containers": [{
            "name": "server",
            "image": "ghcr.io/js-mcp/js-mcp:0.1.0",
            "args": ["serve"],
            "readinessProbe": { "httpGet": { "path": "/ready", "port": 3000 }, "periodSeconds": 2 },
        }],
    });
    api.create(&PostParams::default(), &pod("server", spec))
        .await
        .unwrap();
    let running = wait_pod(&api, "server", "Running and Ready", |p| {
        phase(p) == "Running" && is_ready(p)
    })
    .await;

    let ip = pod_ip(&running);
    assert!(
        ip.starts_with(&format!("127.{}.", agent.address_block())),
        "pod IP {ip} is not in the agent's block"
    );
    assert_eq!(
        running.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(agent.node_name())
    );
    let response = reqwest::get(format!("http://{ip}:3000/health"))
        .await
        .unwrap_or_else(|e| panic!("GET http://{ip}:3000/health: {e}"));
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_of_js_mcp_reaches_its_available_replicas() {
    let ns = TestNamespace::new("local-deploy").await;
    let _agent = ns.start_node_agent().await;
    let api: Api<Deployment> = Api::namespaced(ns.client(), ns.name());
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{
                    "name": "server",
                    "image": "js-mcp:dev",
                    "args": ["serve"],
                    "readinessProbe": { "httpGet": { "path": "/ready", "port": 3000 } },
                }] },
            },
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let available = wait_for(TIMEOUT, || async {
        api.get("web")
            .await
            .ok()
            .and_then(|d| d.status)
            .and_then(|s| s.available_replicas)
            == Some(2)
    })
    .await;
    assert!(available, "deployment web never had 2 available replicas");

    // Two pods, two addresses, both serving.
    let pods: Api<Pod> = Api::namespaced(ns.client(), ns.name());
    let list = pods
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let mut ips: Vec<String> = list.items.iter().map(pod_ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 2, "pods share an address: {ips:?}");
    for ip in ips {
        let status = reqwest::get(format!("http://{ip}:3000/health"))
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{ip}: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_restarted_pods_end_succeeded_or_failed_with_the_exit_code() {
    let ns = TestNamespace::new("local-exit").await;
    let _agent = ns.start_node_agent().await;
    let api: Api<Pod> = Api::namespaced(ns.client(), ns.name());
    for (name, code) in [("ok", 0), ("fails", 3)] {
        let spec = json!({
            "restartPolicy": "Never",
            "containers": [{ "name": "c", "image": "busybox", "command": ["sh", "-c", format!("exit {code}")] }],
        });
        api.create(&PostParams::default(), &pod(name, spec))
            .await
            .unwrap();
    }
    let ok = wait_pod(&api, "ok", "Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(exit_code(&ok), Some(0));
    let failed = wait_pod(&api, "fails", "Failed", |p| phase(p) == "Failed").await;
    assert_eq!(exit_code(&failed), Some(3));
    assert_eq!(restart_count(&failed), 0);
    assert!(!is_ready(&failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_container_is_restarted_and_a_failing_liveness_probe_restarts_a_server() {
    let ns = TestNamespace::new("local-restart").await;
    let _agent = ns.start_node_agent().await;
    let api: Api<Pod> = Api::namespaced(ns.client(), ns.name());
    let crash = json!({
        "containers": [{ "name": "c", "image": "busybox", "command": ["sh", "-c", "exit 1"] }],
    });
    api.create(&PostParams::default(), &pod("crash", crash))
        .await
        .unwrap();
    let live = json!({
        "containers": [{
            "name": "server",
            "image": "js-mcp:dev",
            "args": ["serve"],
            "livenessProbe": {
                "httpGet": { "path": "/does-not-exist", "port": 3000 },
                "periodSeconds": 1,
                "failureThreshold": 2,
            },
        }],
    });
    api.create(&PostParams::default(), &pod("unhealthy", live))
        .await
        .unwrap();

    let crashed = wait_pod(&api, "crash", "two restarts", |p| restart_count(p) >= 2).await;
    assert_eq!(phase(&crashed), "Running");
    let last_exit = crashed
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    assert_eq!(last_exit, Some(1));

    wait_pod(&api, "unhealthy", "a liveness restart", |p| {
        restart_count(p) >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_kills_its_process_and_removes_the_object() {
    let ns = TestNamespace::new("local-delete").await;
    let _agent = ns.start_node_agent().await;
    let api: Api<Pod> = Api::namespaced(ns.client(), ns.name());
    let spec = json!({
        "terminationGracePeriodSeconds": 3,
        "containers": [{ "name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 300"] }],
    });
    api.create(&PostParams::default(), &pod("sleeper", spec))
        .await
        .unwrap();
    let running = wait_pod(&api, "sleeper", "Running with a pid", |p| {
        phase(p) == "Running" && container_pid(p).is_some()
    })
    .await;
    let pid = container_pid(&running).unwrap_or_default();
    assert!(
        pid_alive(pid),
        "process {pid} of a Running pod is not alive"
    );

    api.delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    let gone = wait_for(TIMEOUT, || async {
        matches!(api.get_opt("sleeper").await, Ok(None))
    })
    .await;
    assert!(gone, "pod object still exists after deletion");
    assert!(
        !pid_alive(pid),
        "process {pid} survived the deletion of its pod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_node_agent_leaves_no_process_behind() {
    let ns = TestNamespace::new("local-stop").await;
    let agent = ns.start_node_agent().await;
    let api: Api<Pod> = Api::namespaced(ns.client(), ns.name());
    let spec = json!({
        "containers": [{ "name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 300 & sleep 300"] }],
    });
    api.create(&PostParams::default(), &pod("sleeper", spec))
        .await
        .unwrap();
    let running = wait_pod(&api, "sleeper", "Running with a pid", |p| {
        phase(p) == "Running" && container_pid(p).is_some()
    })
    .await;
    let pid = container_pid(&running).unwrap_or_default();
    // The shell and both sleeps share the process group led by `pid`.
    let group: Vec<u32> = group_members(pid);
    assert!(
        group.len() >= 2,
        "expected the shell and its children, got {group:?}"
    );

    agent.stop().await;
    for member in group {
        assert!(
            !pid_alive(member),
            "process {member} outlived the node agent"
        );
    }
}

/// Pids whose process group is `pgid` (from /proc).
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after "(comm)": state ppid pgrp ...
        let group = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        if group == Some(pgid) && pid_alive(pid) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_configmap_file_and_env_reference_reach_the_process() {
    let ns = TestNamespace::new("local-config").await;
    let _agent = ns.start_node_agent().await;
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), ns.name());
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "settings" },
        "data": { "file": "hello-from-configmap", "expected": "hello-from-configmap" },
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();

    let api: Api<Pod> = Api::namespaced(ns.client(), ns.name());
    let check = |name: &str, script: &str| {
        pod(
            name,
            json!({
                "restartPolicy": "Never",
                "containers": [{
                    "name": "c",
                    "image": "busybox",
                    "command": ["sh", "-c", script],
                    "env": [{ "name": "EXPECTED", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "expected" } } }],
                    "volumeMounts": [{ "name": "cfg", "mountPath": "/etc/x" }],
                }],
                "volumes": [{ "name": "cfg", "configMap": { "name": "settings" } }],
            }),
        )
    };
    // The file holds exactly what the env var (from the same ConfigMap) says.
    api.create(
        &PostParams::default(),
        &check("reads", "grep -qx \"$EXPECTED\" /etc/x/file"),
    )
    .await
    .unwrap();
    // Control: the same check against other content fails, so the grep really looks.
    api.create(
        &PostParams::default(),
        &check("control", "grep -qx \"$EXPECTED-not\" /etc/x/file"),
    )
    .await
    .unwrap();
    let reads = wait_pod(&api, "reads", "a final phase", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    assert_eq!(phase(&reads), "Succeeded", "{:?}", reads.status);
    let control = wait_pod(&api, "control", "a final phase", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    assert_eq!(phase(&control), "Failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_container_secret_items_and_env_from_reach_the_app_container() {
    let ns = TestNamespace::new("local-volumes").await;
    let _agent = ns.start_node_agent().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(ns.client(), ns.name());
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": { "name": "creds" },
        "stringData": { "password": "s3cret", "user": "alice" },
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let api: Api<Pod> = Api::namespaced(ns.client(), ns.name());
    let spec = json!({
        "restartPolicy": "Never",
        "initContainers": [{
            "name": "prepare",
            "image": "busybox",
            "command": ["sh", "-c", "echo prepared > /work/marker"],
            "volumeMounts": [{ "name": "scratch", "mountPath": "/work" }],
        }],
        "containers": [{
            "name": "check",
            "image": "busybox",
            "command": ["sh", "-c",
                "grep -qx prepared /work/marker && grep -qx s3cret /etc/creds/pw && test \"$APP_user\" = alice"],
            "envFrom": [{ "secretRef": { "name": "creds" }, "prefix": "APP_" }],
            "volumeMounts": [
                { "name": "scratch", "mountPath": "/work" },
                { "name": "creds", "mountPath": "/etc/creds", "readOnly": true },
            ],
        }],
        "volumes": [
            { "name": "scratch", "emptyDir": {} },
            { "name": "creds", "secret": { "secretName": "creds", "items": [{ "key": "password", "path": "pw" }] } },
        ],
    });
    api.create(&PostParams::default(), &pod("checker", spec))
        .await
        .unwrap();
    let done = wait_pod(&api, "checker", "a final phase", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    assert_eq!(phase(&done), "Succeeded", "{:?}", done.status);
    let init_exit = done
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    assert_eq!(init_exit, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_volume_claim_data_outlives_the_pod_that_wrote_it() {
    let ns = TestNamespace::new("local-pvc").await;
    let _agent = ns.start_node_agent().await;
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(ns.client(), ns.name());
    let claim = serde_json::from_value(json!({
        "metadata": { "name": "data" },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();

    let api: Api<Pod> = Api::namespaced(ns.client(), ns.name());
    let with_claim = |script: &str| {
        json!({
            "restartPolicy": "Never",
            "containers": [{
                "name": "c",
                "image": "busybox",
                "command": ["sh", "-c", script],
                "volumeMounts": [{ "name": "data", "mountPath": "/data" }],
            }],
            "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": "data" } }],
        })
    };
    api.create(
        &PostParams::default(),
        &pod("writer", with_claim("echo kept > /data/value")),
    )
    .await
    .unwrap();
    let writer = wait_pod(&api, "writer", "a final phase", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    assert_eq!(phase(&writer), "Succeeded", "{:?}", writer.status);
    api.delete("writer", &DeleteParams::default())
        .await
        .unwrap();
    let gone = wait_for(TIMEOUT, || async {
        matches!(api.get_opt("writer").await, Ok(None))
    })
    .await;
    assert!(gone, "writer pod not deleted");

    api.create(
        &PostParams::default(),
        &pod("reader", with_claim("grep -qx kept /data/value")),
    )
    .await
    .unwrap();
    let reader = wait_pod(&api, "reader", "a final phase", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    assert_eq!(phase(&reader), "Succeeded", "{:?}", reader.status);
    let bound = claims
        .get("data")
        .await
        .unwrap()
        .status
        .and_then(|s| s.phase);
    assert_eq!(bound.as_deref(), Some("Bound"));
}
