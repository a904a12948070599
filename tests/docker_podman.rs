//! `DockerClient` and the `docker.*` workflow steps against a real Docker-compatible API:
//! each test starts its own `podman system service` on a private socket with private
//! storage (vfs, so no overlay mounts are needed in a sandbox), creates images, containers,
//! volumes and networks through the API (running containers is refused here; creating them
//! is not), and checks info, ps, df and prune. Needs podman: `.ci/setup-docker.sh`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{CreateContainerOptions, CreateImageOptions};
use futures::StreamExt;
use js_mcp::server::docker::{DockerClient, DockerError, PruneRequest};
use js_mcp::server::workflows::{Catalog, Engine, RunInput, RunStatus, StepDeps};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A podman API service owned by one test; stopped and cleaned up on drop.
struct Podman {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Podman {
    async fn start() -> Podman {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let d = dir.path();
        for sub in ["run", "root", "runroot", "tmp", "net", "volumes"] {
            std::fs::create_dir_all(d.join(sub)).unwrap_or_else(|e| panic!("mkdir {sub}: {e}"));
        }
        let socket = d.join("podman.sock");
        let log =
            std::fs::File::create(d.join("podman.log")).unwrap_or_else(|e| panic!("log file: {e}"));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("log file: {e}"));
        let arg = |p: &Path| p.display().to_string();
        // Everything podman writes lives under the test's temp dir, so tests running in
        // parallel never see (or prune) each other's objects.
        let child = Command::new("podman")
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .args(["--root", &arg(&d.join("root"))])
            .args(["--runroot", &arg(&d.join("runroot"))])
            .args(["--tmpdir", &arg(&d.join("tmp"))])
            .args(["--network-config-dir", &arg(&d.join("net"))])
            .args(["--volumepath", &arg(&d.join("volumes"))])
            .args(["--storage-driver", "vfs"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(["--log-level", "warn"])
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start podman ({e}); install it with .ci/setup-docker.sh")
            });
        let mut podman = Podman { child, dir, socket };
        podman.wait_ready().await;
        podman
    }

    /// Waits until the API answers (generous: other tests compile and run alongside).
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("podman exited early ({status}): {}", self.log());
            }
            if self.socket.exists()
                && let Ok(client) = DockerClient::connect(Some(&self.socket.display().to_string()))
                && client.info().await.is_ok()
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("podman API not ready after 90s: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("podman.log")).unwrap_or_default()
    }

    fn client(&self) -> DockerClient {
        DockerClient::connect(Some(&self.socket.display().to_string()))
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }

    /// A raw bollard client for creating fixtures.
    async fn raw(&self) -> Docker {
        Docker::connect_with_unix(
            &self.socket.display().to_string(),
            60,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap_or_else(|e| panic!("bollard: {e}"))
        .negotiate_version()
        .await
        .unwrap_or_else(|e| panic!("negotiate: {e}"))
    }

    /// Imports a one-file root filesystem as an image; `repo: None` makes it dangling.
    /// (podman tags imports `:latest` whatever tag is asked for.)
    async fn import_image(&self, repo: Option<&str>) -> String {
        let rootfs = self
            .dir
            .path()
            .join(format!("rootfs-{}", repo.unwrap_or("none")));
        std::fs::create_dir_all(&rootfs).unwrap_or_else(|e| panic!("rootfs: {e}"));
        std::fs::write(rootfs.join("hello.txt"), repo.unwrap_or("dangling"))
            .unwrap_or_else(|e| panic!("write: {e}"));
        let tar = rootfs.with_extension("tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap_or_else(|e| panic!("tar: {e}"));
        assert!(status.success(), "tar failed");
        let bytes = std::fs::read(&tar).unwrap_or_else(|e| panic!("read tar: {e}"));
        let docker = self.raw().await;
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: repo.map(str::to_owned),
            ..Default::default()
        };
        let mut stream =
            docker.create_image(Some(options), Some(bollard::body_full(bytes.into())), None);
        let mut last = None;
        while let Some(item) = stream.next().await {
            last = Some(item.unwrap_or_else(|e| panic!("import: {e}")));
        }
        last.and_then(|i| i.id.or(i.status))
            .unwrap_or_else(|| panic!("import returned nothing"))
    }

    async fn create_container(&self, image: &str, name: &str) -> String {
        self.raw()
            .await
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.into()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(image.into()),
                    cmd: Some(vec!["/hello.txt".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create container: {e}"))
            .id
    }

    async fn create_volume(&self, name: &str) {
        self.raw()
            .await
            .create_volume(VolumeCreateRequest {
                name: Some(name.into()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("create volume: {e}"));
    }

    async fn create_network(&self, name: &str) {
        self.raw()
            .await
            .create_network(NetworkCreateRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("create network: {e}"));
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // SIGTERM lets podman release its storage locks; SIGKILL if it does not exit.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn info_reports_the_engine_identity_negotiated_version_and_counts() {
    let podman = Podman::start().await;
    let docker = podman.client();
    let info = docker.info().await.unwrap_or_else(|e| panic!("info: {e}"));
    assert!(
        info["serverVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{info}"
    );
    // podman speaks API 1.41; bollard's default (1.53) was negotiated down.
    assert_eq!(info["apiVersion"], "1.41", "{info}");
    assert_eq!(docker.api_version(), Some("1.41"));
    assert_eq!(info["storageDriver"], "vfs");
    assert_eq!(info["containers"]["total"], 0);
    assert_eq!(info["images"], 0);
    assert_eq!(
        info["endpoint"],
        format!("unix://{}", podman.socket.display())
    );
}

#[tokio::test]
async fn ps_lists_containers_compactly_and_only_running_ones_unless_all() {
    let podman = Podman::start().await;
    podman.import_image(Some("jsmcp-test")).await;
    let id = podman
        .create_container("jsmcp-test:latest", "jsmcp-c1")
        .await;
    let docker = podman.client();
    let running = docker.ps(false).await.unwrap_or_else(|e| panic!("ps: {e}"));
    assert_eq!(running, json!([]), "a created container is not running");
    let all = docker
        .ps(true)
        .await
        .unwrap_or_else(|e| panic!("ps -a: {e}"));
    let list = all.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "{all}");
    let c = &list[0];
    assert_eq!(c["id"], id.chars().take(12).collect::<String>());
    assert_eq!(strs(&c["names"]), vec!["jsmcp-c1"]);
    assert!(
        c["image"]
            .as_str()
            .is_some_and(|i| i.contains("jsmcp-test")),
        "{c}"
    );
    assert_eq!(c["state"], "created");
    assert!(c["status"].is_string());
    // Compact: only the summary fields, not the Engine's whole struct.
    let keys: Vec<&String> = c
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        vec!["created", "id", "image", "names", "state", "status"]
    );
}

#[tokio::test]
async fn df_summarizes_images_containers_and_volumes() {
    let podman = Podman::start().await;
    podman.import_image(Some("jsmcp-test")).await;
    podman.import_image(None).await;
    podman
        .create_container("jsmcp-test:latest", "jsmcp-c1")
        .await;
    podman.create_volume("jsmcp-v1").await;
    let df = podman
        .client()
        .df()
        .await
        .unwrap_or_else(|e| panic!("df: {e}"));
    assert_eq!(df["images"]["count"], 2, "{df}");
    assert_eq!(
        df["images"]["active"], 1,
        "the tagged image is used by a container: {df}"
    );
    assert!(
        df["images"]["sizeBytes"].as_i64().is_some_and(|s| s > 0),
        "{df}"
    );
    assert!(
        df["images"]["reclaimableBytes"]
            .as_i64()
            .is_some_and(|s| s > 0),
        "the dangling image can be reclaimed: {df}"
    );
    assert_eq!(df["containers"]["count"], 1, "{df}");
    assert_eq!(df["containers"]["active"], 0, "{df}");
    assert_eq!(df["volumes"]["count"], 1, "{df}");
    assert_eq!(df["volumes"]["active"], 0, "{df}");
}

#[tokio::test]
async fn prune_removes_stopped_containers_unused_volumes_and_networks_and_dangling_images() {
    let podman = Podman::start().await;
    podman.import_image(Some("jsmcp-test")).await;
    podman.import_image(None).await;
    let container = podman
        .create_container("jsmcp-test:latest", "jsmcp-c1")
        .await;
    podman.create_volume("jsmcp-v1").await;
    podman.create_network("jsmcp-n1").await;
    let docker = podman.client();

    let err = docker
        .prune(PruneRequest::default())
        .await
        .expect_err("nothing selected");
    assert!(err.to_string().contains("nothing to prune"), "{err}");

    let pruned = docker
        .prune(PruneRequest {
            containers: true,
            images: true,
            volumes: true,
            networks: true,
        })
        .await
        .unwrap_or_else(|e| panic!("prune: {e}"));
    assert_eq!(
        strs(&pruned["containers"]["deleted"]),
        vec![container.chars().take(12).collect::<String>()],
        "{pruned}"
    );
    assert_eq!(
        strs(&pruned["volumes"]["deleted"]),
        vec!["jsmcp-v1"],
        "{pruned}"
    );
    assert_eq!(
        strs(&pruned["networks"]["deleted"]),
        vec!["jsmcp-n1"],
        "{pruned}"
    );
    assert_eq!(
        pruned["images"]["deleted"].as_array().map(Vec::len),
        Some(1),
        "only the dangling image goes: {pruned}"
    );
    assert!(pruned["spaceReclaimedBytes"].is_i64());

    assert_eq!(
        docker.ps(true).await.unwrap_or_else(|e| panic!("{e}")),
        json!([])
    );
    let df = docker.df().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(df["images"]["count"], 1, "the tagged image stays: {df}");
    assert_eq!(df["volumes"]["count"], 0, "{df}");
}

#[tokio::test]
async fn an_engine_that_is_not_there_is_reported_with_the_endpoint_and_the_cause() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("missing.sock");
    let err = DockerClient::connect(Some(&missing.display().to_string()))
        .unwrap_or_else(|e| panic!("{e}"))
        .info()
        .await
        .expect_err("no socket");
    assert!(matches!(err, DockerError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot reach Docker Engine at unix://{}",
            missing.display()
        )),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(err.is_transient());

    // A socket file nobody listens on any more: connection refused.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap_or_else(|e| panic!("bind: {e}")));
    let err = DockerClient::connect(Some(&stale.display().to_string()))
        .unwrap_or_else(|e| panic!("{e}"))
        .ps(true)
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach Docker Engine at unix://{}: connection refused",
            stale.display()
        )
    );
}

#[tokio::test]
async fn the_docker_maintenance_workflow_reports_then_prunes_through_the_engine() {
    let podman = Podman::start().await;
    podman.import_image(Some("jsmcp-test")).await;
    podman
        .create_container("jsmcp-test:latest", "jsmcp-c1")
        .await;
    podman.create_volume("jsmcp-v1").await;
    let engine = Engine::new(
        Arc::new(Catalog::builtin()),
        StepDeps {
            http: Default::default(),
            docker: Some(Arc::new(podman.client())),
            ai: None,
        },
    );
    let run = |params: Value| {
        engine.run(
            RunInput {
                workflow_id: "docker-maintenance".into(),
                session_id: None,
                session_state: Value::Null,
                params,
            },
            CancellationToken::new(),
        )
    };

    let dry = run(json!({"dryRun": true}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dry.status, RunStatus::Completed, "{dry:#?}");
    assert_eq!(dry.skipped_steps, vec!["prune", "usage-after"]);
    assert_eq!(dry.outputs["report"]["containers"], 1);
    assert_eq!(dry.outputs["report"]["pruned"], Value::Null);
    assert_eq!(dry.outputs["report"]["before"]["volumes"]["count"], 1);

    let real = run(json!({"volumes": true}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(real.status, RunStatus::Completed, "{real:#?}");
    assert!(real.skipped_steps.is_empty(), "{real:#?}");
    let report = &real.outputs["report"];
    assert_eq!(
        strs(&report["pruned"]["volumes"]["deleted"]),
        vec!["jsmcp-v1"],
        "{report}"
    );
    assert_eq!(report["before"]["containers"]["count"], 1, "{report}");
    assert_eq!(report["after"]["containers"]["count"], 0, "{report}");
    assert_eq!(report["after"]["volumes"]["count"], 0, "{report}");
}
