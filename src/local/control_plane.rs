//! Starts and stops a real Kubernetes control plane (etcd + kube-apiserver +
//! kube-controller-manager) as local processes under one directory, and installs the CRDs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};

use super::assets::Assets;
use super::certs::{Pki, kubeconfig_yaml};
use super::process::{ChildProcess, free_port, stop_all_blocking};

/// Field manager of every write the local cluster makes.
pub const FIELD_MANAGER: &str = "js-mcp";

/// Controllers kube-controller-manager runs. `nodelifecycle` and `podgc` stay out: they evict
/// or delete Pods of Nodes whose heartbeat is silent (a stopped node agent), and
/// `persistentvolume-binder` stays out because no provisioner exists (the node agent binds
/// claims itself).
pub const CONTROLLERS: &str = "deployment,replicaset,garbagecollector,namespace,serviceaccount,\
serviceaccount-token,job,statefulset,daemonset,cronjob,endpoint,endpointslice,disruption";

/// How to start a [`LocalCluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Directory holding certificates, etcd data, logs and the kubeconfig. Created if missing;
    /// an existing one is reused (its etcd data and keys survive restarts).
    pub dir: PathBuf,
    /// Control-plane binaries; discovered with [`Assets::discover`] when `None`.
    pub assets: Option<Assets>,
    /// Whether to install the js-mcp CRDs and wait until they are Established.
    pub install_crds: bool,
    /// Whether to run kube-controller-manager (Deployments, garbage collection, tokens...).
    pub controller_manager: bool,
    /// How long the API server may take to become ready (the machine may be busy compiling).
    pub startup_timeout: Duration,
    /// Extra flags for kube-apiserver, appended last.
    pub extra_apiserver_args: Vec<String>,
}

impl ClusterOptions {
    /// Defaults: discover binaries, install CRDs, run the controller manager, 180 s startup.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            dir: dir.into(),
            assets: None,
            install_crds: true,
            controller_manager: true,
            startup_timeout: Duration::from_secs(180),
            extra_apiserver_args: Vec::new(),
        }
    }
}

/// A running control plane. Stopped by [`LocalCluster::stop`] or on drop; its processes also
/// die with the process that started them (parent-death signal).
#[derive(Debug)]
pub struct LocalCluster {
    dir: PathBuf,
    kubeconfig_path: PathBuf,
    config: kube::Config,
    api_port: u16,
    /// Started processes in start order (etcd, kube-apiserver, kube-controller-manager).
    processes: Vec<(&'static str, ChildProcess)>,
}

/// A failed start attempt; `retry` when a port was taken between choosing and binding it.
struct AttemptError {
    error: crate::Error,
    retry: bool,
}

impl From<crate::Error> for AttemptError {
    fn from(error: crate::Error) -> Self {
        AttemptError {
            error,
            retry: false,
        }
    }
}

impl LocalCluster {
    /// Starts etcd, kube-apiserver and kube-controller-manager, waits until the API server is
    /// ready, and installs the CRDs (waiting until each is Established).
    pub async fn start(opts: ClusterOptions) -> crate::Result<LocalCluster> {
        let assets = match &opts.assets {
            Some(a) => a.clone(),
            None => Assets::discover()?,
        };
        let dir = absolute(&opts.dir)?;
        for sub in ["logs", "etcd"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| crate::Error::io(format!("creating {}", path.display()), e))?;
        }
        let pki = Pki::ensure(&dir.join("pki"))?;

        // Ports are picked free but another process may grab one before our child binds it;
        // such a start is retried with new ports.
        let mut attempt = 0;
        let mut cluster = loop {
            attempt += 1;
            match Self::start_processes(&opts, &assets, &dir, &pki).await {
                Ok(cluster) => break cluster,
                Err(e) if e.retry && attempt < 4 => {
                    tracing::warn!(error = %e.error, attempt, "control plane start failed, retrying with new ports");
                }
                Err(e) => return Err(e.error),
            }
        };
        if opts.controller_manager
            && let Err(e) =
                wait_for_service_account_token(&cluster, "default", opts.startup_timeout).await
        {
            cluster.stop();
            return Err(e);
        }
        if opts.install_crds {
            let client = cluster.client().await?;
            if let Err(e) = install_crds(&client, opts.startup_timeout).await {
                cluster.stop();
                return Err(e);
            }
        }
        Ok(cluster)
    }

    async fn start_processes(
        opts: &ClusterOptions,
        assets: &Assets,
        dir: &Path,
        pki: &Pki,
    ) -> Result<LocalCluster, AttemptError> {
        let deadline = Instant::now() + opts.startup_timeout;
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let api_port = free_port()?;
        let logs = dir.join("logs");

        let mut etcd = Command::new(&assets.etcd);
        etcd.arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=default=http://127.0.0.1:{peer_port}"
            ))
            .arg("--name=default")
            .arg("--log-level=warn")
            .current_dir(dir);
        let etcd_log = logs.join("etcd.log");
        let etcd = ChildProcess::spawn(etcd, Some(&etcd_log)).await?;
        let mut cluster = LocalCluster {
            dir: dir.to_path_buf(),
            kubeconfig_path: dir.join("kubeconfig"),
            config: kube::Config::new(http::Uri::from_static("https://127.0.0.1")),
            api_port,
            processes: vec![("etcd", etcd)],
        };
        let etcd_addr = std::net::SocketAddr::from(([127, 0, 0, 1], etcd_port));
        loop {
            if let Some(e) = cluster.early_exit("etcd", &etcd_log) {
                return Err(e);
            }
            if let Ok((200, body)) = super::http::get(
                etcd_addr,
                "127.0.0.1",
                "/health",
                &[],
                Duration::from_secs(2),
            )
            .await
                && body.contains("true")
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(timeout_error("etcd", &etcd_log).into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let mut apiserver = Command::new(&assets.kube_apiserver);
        apiserver
            .arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--secure-port={api_port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            // The `kubernetes` Endpoints would carry 127.0.0.1, which Endpoints validation
            // refuses (no loopback addresses); nothing local needs them.
            .arg("--endpoint-reconciler-type=none")
            .arg(format!("--cert-dir={}", dir.join("pki").display()))
            .arg(format!("--tls-cert-file={}", pki.server_cert.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.server_key.display()
            ))
            .arg(format!("--client-ca-file={}", pki.ca_cert.display()))
            .arg(format!("--token-auth-file={}", pki.tokens_csv.display()))
            .arg("--authorization-mode=RBAC")
            .arg(format!(
                "--service-account-key-file={}",
                pki.sa_pub.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki.sa_key.display()
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .arg("--allow-privileged=true")
            .arg("--enable-priority-and-fairness=false")
            .arg("--profiling=false")
            .args(&opts.extra_apiserver_args)
            .current_dir(dir);
        let api_log = logs.join("kube-apiserver.log");
        let apiserver = ChildProcess::spawn(apiserver, Some(&api_log)).await?;
        cluster.processes.push(("kube-apiserver", apiserver));

        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = kubeconfig_yaml(&server, &pki.ca_pem()?, &pki.admin_token)?;
        super::certs::write_secret(&cluster.kubeconfig_path, &kubeconfig)?;
        let parsed = kube::config::Kubeconfig::from_yaml(&kubeconfig)
            .map_err(|e| crate::Error::Other(format!("parsing the generated kubeconfig: {e}")))?;
        cluster.config = kube::Config::from_custom_kubeconfig(
            parsed,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| crate::Error::Other(format!("loading the generated kubeconfig: {e}")))?;
        // Readiness is polled with a plain HTTPS client: kube's client logs every refused
        // connection and 500 of a starting server as an error.
        let ca = reqwest::Certificate::from_pem(pki.ca_pem()?.as_bytes())
            .map_err(|e| crate::Error::Other(format!("loading the generated CA: {e}")))?;
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| crate::Error::Other(format!("building an HTTPS client: {e}")))?;
        let readyz = format!("{server}/readyz");
        loop {
            if let Some(e) = cluster.early_exit("kube-apiserver", &api_log) {
                return Err(e);
            }
            let response = http.get(&readyz).bearer_auth(&pki.admin_token).send().await;
            if let Ok(r) = response
                && r.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(timeout_error("kube-apiserver", &api_log).into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        if opts.controller_manager {
            let kc = cluster.kubeconfig_path.display().to_string();
            let mut kcm = Command::new(&assets.kube_controller_manager);
            kcm.arg(format!("--kubeconfig={kc}"))
                .arg(format!("--authentication-kubeconfig={kc}"))
                .arg(format!("--authorization-kubeconfig={kc}"))
                .arg("--leader-elect=false")
                .arg("--port=0")
                .arg("--secure-port=0")
                .arg(format!("--controllers={CONTROLLERS}"))
                .arg(format!(
                    "--service-account-private-key-file={}",
                    pki.sa_key.display()
                ))
                .arg(format!("--root-ca-file={}", pki.ca_cert.display()))
                .current_dir(dir);
            let kcm_log = logs.join("kube-controller-manager.log");
            let kcm = ChildProcess::spawn(kcm, Some(&kcm_log)).await?;
            cluster.processes.push(("kube-controller-manager", kcm));
        }
        tracing::info!(server = %server, dir = %dir.display(), "local control plane ready");
        Ok(cluster)
    }

    /// An error when `name` has already exited, with the tail of its log; retryable when the
    /// log says a port was taken.
    fn early_exit(&self, name: &str, log: &Path) -> Option<AttemptError> {
        let (_, process) = self.processes.iter().find(|(n, _)| *n == name)?;
        let exit = process.exited()?;
        let tail = log_tail(log, 15);
        let retry = tail.contains("address already in use");
        Some(AttemptError {
            error: crate::Error::Other(format!(
                "{name} exited with code {} while starting (log {}):\n{tail}",
                exit.code,
                log.display()
            )),
            retry,
        })
    }

    /// Path of the admin kubeconfig (`kubectl --kubeconfig`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The directory everything lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The API server's HTTPS port on 127.0.0.1.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub fn api_server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// Client configuration (admin); build clients from it in any tokio runtime.
    pub fn kube_config(&self) -> crate::Result<kube::Config> {
        Ok(self.config.clone())
    }

    /// An admin client for the current tokio runtime.
    pub async fn client(&self) -> crate::Result<kube::Client> {
        Ok(kube::Client::try_from(self.kube_config()?)?)
    }

    /// Pids of the running control-plane processes, by name.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.processes.iter().map(|(n, p)| (*n, p.pid())).collect()
    }

    /// Stops every process: SIGTERM, then SIGKILL after a grace period. Idempotent.
    pub fn stop(&mut self) {
        if self.processes.is_empty() {
            return;
        }
        // API server and controller manager first, so they do not log etcd errors while
        // dying and etcd gets a clean shutdown.
        let etcd_pos = self.processes.iter().position(|(n, _)| *n == "etcd");
        let etcd = etcd_pos.map(|i| self.processes.remove(i));
        let rest: Vec<&ChildProcess> = self.processes.iter().map(|(_, p)| p).collect();
        stop_all_blocking(&rest, Duration::from_secs(5));
        if let Some((_, etcd)) = &etcd {
            etcd.stop_blocking(Duration::from_secs(5));
        }
        self.processes.clear();
        tracing::debug!(dir = %self.dir.display(), "local control plane stopped");
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `namespace`'s `default` ServiceAccount has its token Secret: before that, the
/// API server (1.20) refuses every Pod of the namespace.
async fn wait_for_service_account_token(
    cluster: &LocalCluster,
    namespace: &str,
    timeout: Duration,
) -> crate::Result<()> {
    let client = cluster.client().await?;
    wait_for_default_token(&client, namespace, timeout).await
}

/// Waits until the `default` ServiceAccount of `namespace` lists a token Secret (the
/// kube-controller-manager's token controller creates it shortly after the namespace).
pub async fn wait_for_default_token(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> crate::Result<()> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(sa)) = api.get_opt("default").await
            && sa.secrets.as_ref().is_some_and(|s| !s.is_empty())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(crate::Error::Other(format!(
                "the default ServiceAccount of namespace {namespace} got no token within {}s                  (is kube-controller-manager running? see logs/kube-controller-manager.log)",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies every js-mcp CRD with server-side apply and waits until each is Established.
pub async fn install_crds(client: &kube::Client, timeout: Duration) -> crate::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let crds = crate::api::crds();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &pp, &Patch::Apply(crd))
            .await
            .map_err(|e| crate::Error::Other(format!("installing CRD {name}: {e}")))?;
    }
    let deadline = Instant::now() + timeout;
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let current = api.get(&name).await?;
            let established = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(crate::Error::Other(format!(
                    "CRD {name} not Established after {}s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn timeout_error(name: &str, log: &Path) -> crate::Error {
    crate::Error::Other(format!(
        "{name} did not become ready in time (log {}):\n{}",
        log.display(),
        log_tail(log, 15)
    ))
}

/// The last `n` lines of a log file (empty when unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn absolute(path: &Path) -> crate::Result<PathBuf> {
    std::fs::create_dir_all(path)
        .map_err(|e| crate::Error::io(format!("creating {}", path.display()), e))?;
    std::fs::canonicalize(path)
        .map_err(|e| crate::Error::io(format!("resolving {}", path.display()), e))
}
