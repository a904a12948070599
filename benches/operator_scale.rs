//! Operator scale benchmark: apply N McpInstances against the local control plane and measure
//! the time until every Deployment exists and every status is written, reconciles per second,
//! and the operator's peak RSS. Run: `cargo bench --bench operator_scale` (N from JSMCP_BENCH_INSTANCES,
//! default 500). The operator runs as its own `js-mcp operator` process so its RSS is its own.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use js_mcp::api::McpInstance;
use js_mcp::local::{ClusterOptions, LocalCluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

fn metric_sum(text: &str, prefix: &str) -> f64 {
    // `+ 0.0`: an empty float sum is -0.0, which would print as "-0".
    let sum: f64 = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    sum + 0.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::var("JSMCP_BENCH_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir()?;
    let mut cluster = LocalCluster::start(ClusterOptions::new(dir.path().join("cluster"))).await?;
    let client = cluster.client().await?;
    let ns = "bench";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": ns } }))?,
        )
        .await?;

    let admin_port = js_mcp::local::process::free_port()?;
    let mut operator = std::process::Command::new(env!("CARGO_BIN_EXE_js-mcp"))
        .arg("operator")
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .env("JSMCP_NAMESPACE", ns)
        .env("POD_NAMESPACE", ns)
        .env("JSMCP_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("RUST_LOG", "warn")
        .spawn()?;
    let pid = operator.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(pid, "VmRSS:");

    let control_plane: Vec<(&'static str, u32)> = cluster.pids();
    let cpu_before: Vec<f64> = control_plane
        .iter()
        .map(|(_, pid)| cpu_seconds(*pid))
        .collect();
    let operator_cpu_before = cpu_seconds(pid);
    let api: Api<McpInstance> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    let applied: Vec<anyhow::Result<()>> = stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("bench-{i}");
                let body = json!({
                    "apiVersion": "jsmcp.io/v1alpha1", "kind": "McpInstance",
                    "metadata": { "name": name }, "spec": { "replicas": 1 }
                });
                api.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(body))
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for result in applied {
        result?;
    }
    let applied_in = started.elapsed();

    let mut peak_rss = idle_rss;
    let (deployments_at, statuses_at) = loop {
        peak_rss = peak_rss.max(rss_kib(pid, "VmHWM:"));
        let deployment_count = deployments
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len();
        let instances = api.list(&ListParams::default()).await?;
        let with_status = instances
            .items
            .iter()
            .filter(|i| {
                i.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == i.metadata.generation)
            })
            .count();
        if deployment_count >= count && with_status >= count {
            let at = started.elapsed();
            break (at, at);
        }
        if started.elapsed() > Duration::from_secs(900) {
            anyhow::bail!(
                "gave up after 900 s: {deployment_count} deployments, {with_status} statuses of {count}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let metrics = reqwest::get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .await?
        .text()
        .await?;
    let reconciles = metric_sum(&metrics, "jsmcp_operator_reconcile_total");
    let errors = metric_sum(&metrics, "jsmcp_operator_reconcile_errors_total");
    peak_rss = peak_rss.max(rss_kib(pid, "VmHWM:"));

    let operator_cpu = cpu_seconds(pid) - operator_cpu_before;
    println!("operator_scale: instances={count}");
    println!(
        "  apply of all instances done after   {:>8.2} s",
        applied_in.as_secs_f64()
    );
    println!(
        "  every Deployment exists after        {:>8.2} s",
        deployments_at.as_secs_f64()
    );
    println!(
        "  every status written after           {:>8.2} s",
        statuses_at.as_secs_f64()
    );
    println!(
        "  reconciles={reconciles} errors={errors} -> {:.1} reconciles/s",
        reconciles / statuses_at.as_secs_f64()
    );
    println!(
        "  operator RSS idle {:.1} MiB, peak {:.1} MiB",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );

    println!("  CPU used during the run (s): operator {operator_cpu:.1}");
    for ((name, pid), before) in control_plane.iter().zip(cpu_before) {
        println!(
            "  CPU used during the run (s): {name} {:.1}",
            cpu_seconds(*pid) - before
        );
    }
    let _ = operator.kill();
    let _ = operator.wait();
    cluster.stop();
    Ok(())
}
