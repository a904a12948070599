//! Docker Engine API client for the maintenance tools and workflow steps (bollard).
//!
//! [`DockerClient`] wraps `bollard::Docker` and returns compact JSON summaries instead of the
//! Engine's large structs: a tool result is read by a person or a model, and `docker ps` as
//! `{id, names, image, state, status}` serves both better than 40 fields per container.
//! The API version is negotiated on first use, so the client works against older engines and
//! podman's Docker-compatible service (which speaks API 1.41) as well as current Docker.

use std::collections::HashSet;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListVolumesOptions, PruneContainersOptions,
    PruneImagesOptions, PruneNetworksOptions, PruneVolumesOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where to connect when neither an explicit path nor `DOCKER_HOST` is given.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Seconds bollard waits for one Engine request; prune can take a while on a full disk.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// What `prune` removes. Images means dangling (untagged) images, like `docker image prune`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PruneRequest {
    /// Remove stopped containers.
    pub containers: bool,
    /// Remove dangling images.
    pub images: bool,
    /// Remove volumes no container uses.
    pub volumes: bool,
    /// Remove networks no container uses.
    pub networks: bool,
}

/// Why a Docker call failed, phrased so the user knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The endpoint string cannot be used (unsupported scheme, malformed).
    #[error("invalid Docker endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at the endpoint (socket missing, connection refused, ...).
    #[error("cannot reach Docker Engine at {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint used.
        endpoint: String,
        /// What the connection attempt said, e.g. "connection refused".
        reason: String,
    },
    /// The Engine did not answer in time.
    #[error("Docker Engine at {endpoint} did not answer within {seconds}s")]
    Timeout {
        /// The endpoint used.
        endpoint: String,
        /// The limit.
        seconds: u64,
    },
    /// The Engine answered with an error status.
    #[error("Docker Engine at {endpoint} refused {operation} (HTTP {status}): {message}")]
    Api {
        /// The endpoint used.
        endpoint: String,
        /// What was being done, e.g. "prune images".
        operation: String,
        /// HTTP status code.
        status: u16,
        /// The Engine's message.
        message: String,
    },
    /// Anything else (unexpected response bodies, protocol errors).
    #[error("Docker {operation} at {endpoint} failed: {message}")]
    Other {
        /// The endpoint used.
        endpoint: String,
        /// What was being done.
        operation: String,
        /// What went wrong.
        message: String,
    },
    /// The request asks for nothing.
    #[error("invalid Docker request: {0}")]
    InvalidRequest(String),
}

impl DockerError {
    /// Whether trying again may help (engine unreachable, timeouts, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            DockerError::Unreachable { .. } | DockerError::Timeout { .. } => true,
            DockerError::Api { status, .. } => *status >= 500,
            DockerError::InvalidEndpoint { .. }
            | DockerError::Other { .. }
            | DockerError::InvalidRequest(_) => false,
        }
    }

    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DockerError::InvalidEndpoint { .. } => "invalid_endpoint",
            DockerError::Unreachable { .. } => "unreachable",
            DockerError::Timeout { .. } => "timeout",
            DockerError::Api { .. } => "api",
            DockerError::Other { .. } => "other",
            DockerError::InvalidRequest(_) => "invalid_request",
        }
    }
}

/// A connection to one Docker Engine (or a compatible API such as podman's).
#[derive(Debug)]
pub struct DockerClient {
    endpoint: String,
    /// Connected and version-negotiated on first use. bollard refuses to build a unix client
    /// whose socket does not exist yet, and a server must be able to start before its Docker
    /// sidecar does.
    docker: tokio::sync::OnceCell<(Docker, String)>,
}

impl DockerClient {
    /// Prepares a client; nothing is sent and the socket need not exist yet. `socket_path`
    /// may be a path (`/run/podman.sock`), `unix://…`, `tcp://…` or `http://…`; `None` means
    /// `DOCKER_HOST` or [`DEFAULT_DOCKER_HOST`].
    pub fn connect(socket_path: Option<&str>) -> Result<DockerClient, DockerError> {
        let endpoint = match socket_path {
            Some(p) => p.trim().to_owned(),
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned()),
        };
        let endpoint = if endpoint.starts_with('/') {
            format!("unix://{endpoint}")
        } else {
            endpoint
        };
        let invalid = |reason: &str| DockerError::InvalidEndpoint {
            endpoint: endpoint.clone(),
            reason: reason.to_owned(),
        };
        if let Some(path) = endpoint.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("the unix socket path is empty"));
            }
        } else if let Some(rest) = endpoint
            .strip_prefix("tcp://")
            .or_else(|| endpoint.strip_prefix("http://"))
        {
            if rest.is_empty() {
                return Err(invalid("the host is empty"));
            }
        } else {
            return Err(invalid(
                "expected a socket path, unix://PATH, tcp://HOST:PORT or http://HOST:PORT",
            ));
        }
        Ok(DockerClient {
            endpoint,
            docker: tokio::sync::OnceCell::new(),
        })
    }

    /// The endpoint this client talks to, e.g. `unix:///var/run/docker.sock`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The negotiated API version, once a call has succeeded.
    pub fn api_version(&self) -> Option<&str> {
        self.docker.get().map(|(_, v)| v.as_str())
    }

    /// Connects and agrees on an API version once (bollard defaults to its newest, which
    /// older engines reject). A failure is not cached, so the next call tries again.
    async fn ready(&self) -> Result<&Docker, DockerError> {
        self.docker
            .get_or_try_init(|| async {
                let version = bollard::API_DEFAULT_VERSION;
                let docker = if self.endpoint.starts_with("unix://") {
                    Docker::connect_with_unix(&self.endpoint, REQUEST_TIMEOUT_SECS, version)
                } else {
                    Docker::connect_with_http(&self.endpoint, REQUEST_TIMEOUT_SECS, version)
                }
                .map_err(|e| self.map_err("connect", e))?;
                let docker = docker
                    .negotiate_version()
                    .await
                    .map_err(|e| self.map_err("version negotiation", e))?;
                let version = docker.client_version().to_string();
                Ok((docker, version))
            })
            .await
            .map(|(docker, _)| docker)
    }

    /// Engine identity, versions and counts.
    pub async fn info(&self) -> Result<Value, DockerError> {
        let docker = self.ready().await?;
        let info = docker.info().await.map_err(|e| self.map_err("info", e))?;
        Ok(json!({
            "endpoint": self.endpoint,
            "apiVersion": self.api_version(),
            "id": info.id,
            "name": info.name,
            "serverVersion": info.server_version,
            "operatingSystem": info.operating_system,
            "osType": info.os_type,
            "architecture": info.architecture,
            "kernelVersion": info.kernel_version,
            "cpus": info.ncpu,
            "memoryBytes": info.mem_total,
            "storageDriver": info.driver,
            "rootDir": info.docker_root_dir,
            "containers": {
                "total": info.containers,
                "running": info.containers_running,
                "paused": info.containers_paused,
                "stopped": info.containers_stopped,
            },
            "images": info.images,
        }))
    }

    /// Containers as a list of `{id, names, image, state, status, created}`; `all` includes
    /// stopped ones.
    pub async fn ps(&self, all: bool) -> Result<Value, DockerError> {
        let containers = self
            .ready()
            .await?
            .list_containers(Some(ListContainersOptions {
                all,
                ..Default::default()
            }))
            .await
            .map_err(|e| self.map_err("list containers", e))?;
        Ok(Value::Array(
            containers
                .into_iter()
                .map(|c| {
                    json!({
                        "id": c.id.as_deref().map(short_id),
                        "names": c.names.unwrap_or_default().iter()
                            .map(|n| n.trim_start_matches('/').to_owned())
                            .collect::<Vec<_>>(),
                        "image": c.image,
                        "state": c.state.map(|s| s.to_string()),
                        "status": c.status,
                        "created": c.created,
                    })
                })
                .collect(),
        ))
    }

    /// Disk usage by images, containers, volumes and build cache: count, in use, size and
    /// what a prune could reclaim.
    pub async fn df(&self) -> Result<Value, DockerError> {
        let docker = self.ready().await?;
        let usage = docker
            .df(None)
            .await
            .map_err(|e| self.map_err("disk usage", e))?;
        if usage.image_usage.is_some() || usage.container_usage.is_some() {
            let section = |count: Option<i64>,
                           active: Option<i64>,
                           size: Option<i64>,
                           rec: Option<i64>| {
                json!({"count": count, "active": active, "sizeBytes": size, "reclaimableBytes": rec})
            };
            return Ok(json!({
                "source": "engine",
                "images": usage.image_usage.map(|u| section(u.total_count, u.active_count, u.total_size, u.reclaimable)),
                "containers": usage.container_usage.map(|u| section(u.total_count, u.active_count, u.total_size, u.reclaimable)),
                "volumes": usage.volume_usage.map(|u| section(u.total_count, u.active_count, u.total_size, u.reclaimable)),
                "buildCache": usage.build_cache_usage.map(|u| section(u.total_count, u.active_count, u.total_size, u.reclaimable)),
            }));
        }
        // Engines before API 1.52 (and podman) answer /system/df in the legacy shape, which
        // bollard no longer decodes; the same summary is computed from the object lists.
        self.df_from_lists(docker).await
    }

    async fn df_from_lists(&self, docker: &Docker) -> Result<Value, DockerError> {
        let (images, containers, volumes) = futures::try_join!(
            async {
                docker
                    .list_images(Some(ListImagesOptions::default()))
                    .await
                    .map_err(|e| self.map_err("list images", e))
            },
            async {
                docker
                    .list_containers(Some(ListContainersOptions {
                        all: true,
                        size: true,
                        ..Default::default()
                    }))
                    .await
                    .map_err(|e| self.map_err("list containers", e))
            },
            async {
                docker
                    .list_volumes(None::<ListVolumesOptions>)
                    .await
                    .map_err(|e| self.map_err("list volumes", e))
            },
        )?;
        let used_images: HashSet<&str> = containers
            .iter()
            .filter_map(|c| c.image_id.as_deref())
            .map(|id| id.trim_start_matches("sha256:"))
            .collect();
        let image_active = |i: &bollard::models::ImageSummary| {
            i.containers > 0 || used_images.contains(i.id.trim_start_matches("sha256:"))
        };
        let image_size: i64 = images.iter().map(|i| i.size.max(0)).sum();
        let image_reclaimable: i64 = images
            .iter()
            .filter(|i| !image_active(i))
            .map(|i| i.size.max(0))
            .sum();
        let is_active = |c: &bollard::models::ContainerSummary| {
            matches!(
                c.state.map(|s| s.to_string()).as_deref(),
                Some("running" | "paused" | "restarting")
            )
        };
        let container_size: i64 = containers
            .iter()
            .filter_map(|c| c.size_rw)
            .map(|s| s.max(0))
            .sum();
        let container_reclaimable: i64 = containers
            .iter()
            .filter(|c| !is_active(c))
            .filter_map(|c| c.size_rw)
            .map(|s| s.max(0))
            .sum();
        let mounted: HashSet<&str> = containers
            .iter()
            .flat_map(|c| c.mounts.iter().flatten())
            .filter_map(|m| m.name.as_deref())
            .collect();
        let volumes = volumes.volumes.unwrap_or_default();
        let sizes: Vec<i64> = volumes
            .iter()
            .filter_map(|v| v.usage_data.as_ref().map(|u| u.size))
            .filter(|s| *s >= 0)
            .collect();
        // Volume sizes are only known when the engine reports usage for every volume.
        let volume_size = (sizes.len() == volumes.len()).then(|| sizes.iter().sum::<i64>());
        Ok(json!({
            "source": "computed",
            "images": {
                "count": images.len(),
                "active": images.iter().filter(|i| image_active(i)).count(),
                "sizeBytes": image_size,
                "reclaimableBytes": image_reclaimable,
            },
            "containers": {
                "count": containers.len(),
                "active": containers.iter().filter(|c| is_active(c)).count(),
                "sizeBytes": container_size,
                "reclaimableBytes": container_reclaimable,
            },
            "volumes": {
                "count": volumes.len(),
                "active": volumes.iter().filter(|v| mounted.contains(v.name.as_str())).count(),
                "sizeBytes": volume_size,
                "reclaimableBytes": Value::Null,
            },
            "buildCache": Value::Null,
        }))
    }

    /// Removes what `request` selects and reports what went and the space reclaimed.
    pub async fn prune(&self, request: PruneRequest) -> Result<Value, DockerError> {
        if !(request.containers || request.images || request.volumes || request.networks) {
            return Err(DockerError::InvalidRequest(
                "nothing to prune: set at least one of containers, images, volumes, networks"
                    .into(),
            ));
        }
        let docker = self.ready().await?;
        let mut out = serde_json::Map::new();
        let mut reclaimed: i64 = 0;
        // Containers first: removing them releases the images, volumes and networks they held.
        if request.containers {
            let r = docker
                .prune_containers(None::<PruneContainersOptions>)
                .await
                .map_err(|e| self.map_err("prune containers", e))?;
            let space = r.space_reclaimed.unwrap_or(0);
            reclaimed += space;
            out.insert(
                "containers".into(),
                json!({
                    "deleted": r.containers_deleted.unwrap_or_default().iter().map(|id| short_id(id)).collect::<Vec<_>>(),
                    "spaceReclaimedBytes": space,
                }),
            );
        }
        if request.images {
            let r = docker
                .prune_images(None::<PruneImagesOptions>)
                .await
                .map_err(|e| self.map_err("prune images", e))?;
            let space = r.space_reclaimed.unwrap_or(0);
            reclaimed += space;
            let items = r.images_deleted.unwrap_or_default();
            out.insert(
                "images".into(),
                json!({
                    "deleted": items.iter().filter_map(|i| i.deleted.as_deref()).map(short_id).collect::<Vec<_>>(),
                    "untagged": items.iter().filter_map(|i| i.untagged.clone()).collect::<Vec<_>>(),
                    "spaceReclaimedBytes": space,
                }),
            );
        }
        if request.volumes {
            let r = docker
                .prune_volumes(None::<PruneVolumesOptions>)
                .await
                .map_err(|e| self.map_err("prune volumes", e))?;
            let space = r.space_reclaimed.unwrap_or(0);
            reclaimed += space;
            out.insert(
                "volumes".into(),
                json!({
                    "deleted": r.volumes_deleted.unwrap_or_default(),
                    "spaceReclaimedBytes": space,
                }),
            );
        }
        if request.networks {
            let r = docker
                .prune_networks(None::<PruneNetworksOptions>)
                .await
                .map_err(|e| self.map_err("prune networks", e))?;
            out.insert(
                "networks".into(),
                json!({"deleted": r.networks_deleted.unwrap_or_default()}),
            );
        }
        out.insert("spaceReclaimedBytes".into(), reclaimed.into());
        Ok(Value::Object(out))
    }

    /// Turns a bollard error into one that names the endpoint and the actionable cause.
    fn map_err(&self, operation: &str, e: bollard::errors::Error) -> DockerError {
        use bollard::errors::Error as B;
        let endpoint = self.endpoint.clone();
        match e {
            B::DockerResponseServerError {
                status_code,
                message,
            } => DockerError::Api {
                endpoint,
                operation: operation.to_owned(),
                status: status_code,
                message,
            },
            B::RequestTimeoutError => DockerError::Timeout {
                endpoint,
                seconds: REQUEST_TIMEOUT_SECS,
            },
            B::SocketNotFoundError(path) => DockerError::Unreachable {
                endpoint,
                reason: format!("socket {path} does not exist (is the Docker Engine running?)"),
            },
            other => match io_cause(&other) {
                Some(reason) => DockerError::Unreachable { endpoint, reason },
                None => DockerError::Other {
                    endpoint,
                    operation: operation.to_owned(),
                    message: crate::server::ai::error_chain(&other),
                },
            },
        }
    }
}

/// The I/O error at the bottom of a connection failure, as "connection refused" or
/// "no such file or directory" (the OS error number adds nothing for a user).
fn io_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            let text = io.to_string();
            let text = match text.find(" (os error") {
                Some(cut) => &text[..cut],
                None => &text,
            };
            return Some(text.to_lowercase());
        }
        current = err.source();
    }
    None
}

/// The 12-character id Docker shows, without a `sha256:` prefix.
fn short_id(id: &str) -> String {
    let id = id.trim_start_matches("sha256:");
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_paths_and_known_schemes() {
        let c = DockerClient::connect(Some("/tmp/x.sock")).expect("path");
        assert_eq!(c.endpoint(), "unix:///tmp/x.sock");
        let c = DockerClient::connect(Some("tcp://127.0.0.1:2375")).expect("tcp");
        assert_eq!(c.endpoint(), "tcp://127.0.0.1:2375");
        let err = DockerClient::connect(Some("ssh://host")).expect_err("ssh");
        assert!(err.to_string().contains("ssh://host"), "{err}");
        assert!(DockerClient::connect(Some("unix://")).is_err());
    }

    #[test]
    fn short_ids_drop_the_digest_prefix() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn io_causes_are_reported_without_os_error_numbers() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(io_cause(&e).as_deref(), Some("connection refused"));
    }
}
