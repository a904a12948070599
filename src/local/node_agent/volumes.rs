//! Materializes a Pod's volumes as local directories: configMap, secret, projected,
//! downwardAPI and emptyDir under the pod's directory, persistentVolumeClaim under a
//! per-claim directory that outlives pods, hostPath as the host path itself.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PersistentVolumeClaim, Pod, ServiceAccount, Volume,
};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::env::{PathRewriter, RefCache, field_value};

/// Where a pod's volumes live and what they need to know.
pub struct VolumeContext<'a> {
    /// Admin client.
    pub client: &'a kube::Client,
    /// The pod's own directory (`<work_dir>/pods/<uid>`).
    pub pod_dir: &'a Path,
    /// The agent's work dir (claims live in `<work_dir>/pvc/<namespace>/<claim>`).
    pub work_dir: &'a Path,
    /// The pod's IP (downward API).
    pub pod_ip: &'a str,
    /// The node's IP (downward API).
    pub host_ip: &'a str,
}

/// Creates every volume of `pod`, returning volume name -> local directory (or file).
pub async fn prepare(
    ctx: &VolumeContext<'_>,
    pod: &Pod,
    refs: &mut RefCache,
) -> crate::Result<HashMap<String, PathBuf>> {
    let mut dirs = HashMap::new();
    let Some(spec) = &pod.spec else {
        return Ok(dirs);
    };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    for volume in spec.volumes.iter().flatten() {
        let path = prepare_one(ctx, pod, &namespace, volume, refs).await?;
        dirs.insert(volume.name.clone(), path);
    }
    Ok(dirs)
}

async fn prepare_one(
    ctx: &VolumeContext<'_>,
    pod: &Pod,
    namespace: &str,
    volume: &Volume,
    refs: &mut RefCache,
) -> crate::Result<PathBuf> {
    let local = ctx.pod_dir.join("volumes").join(&volume.name);
    if let Some(claim) = &volume.persistent_volume_claim {
        let dir = ctx
            .work_dir
            .join("pvc")
            .join(namespace)
            .join(&claim.claim_name);
        mkdir(&dir)?;
        bind_claim(ctx.client, namespace, &claim.claim_name).await?;
        return Ok(dir);
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        if matches!(host.type_.as_deref(), Some("DirectoryOrCreate")) {
            mkdir(&path)?;
        }
        return Ok(path);
    }
    if volume.empty_dir.is_some() {
        mkdir(&local)?;
        return Ok(local);
    }
    // Content volumes are rewritten from scratch at every pod start so they reflect the
    // current ConfigMap/Secret.
    let mut files: BTreeMap<PathBuf, (Vec<u8>, u32)> = BTreeMap::new();
    if let Some(cm) = &volume.config_map {
        let mode = cm.default_mode.unwrap_or(0o644) as u32;
        match refs.config_map(&cm.name).await? {
            Some(data) => project(&mut files, &data, cm.items.as_deref(), mode, &volume.name)?,
            None if cm.optional == Some(true) => {}
            None => {
                return Err(crate::Error::MissingReference(format!(
                    "configmap {:?} (volume {:?}) not found",
                    cm.name, volume.name
                )));
            }
        }
    } else if let Some(secret) = &volume.secret {
        let mode = secret.default_mode.unwrap_or(0o644) as u32;
        let name = secret.secret_name.clone().unwrap_or_default();
        match refs.secret(&name).await? {
            Some(data) => project(
                &mut files,
                &data,
                secret.items.as_deref(),
                mode,
                &volume.name,
            )?,
            None if secret.optional == Some(true) => {}
            None => {
                return Err(crate::Error::MissingReference(format!(
                    "secret {name:?} (volume {:?}) not found",
                    volume.name
                )));
            }
        }
    } else if let Some(downward) = &volume.downward_api {
        let mode = downward.default_mode.unwrap_or(0o644) as u32;
        for item in downward.items.iter().flatten() {
            let value = match &item.field_ref {
                Some(f) => field_value(pod, ctx.pod_ip, ctx.host_ip, &f.field_path)?,
                None => String::new(),
            };
            let path = relative(&item.path, &volume.name)?;
            files.insert(
                path,
                (value.into_bytes(), item.mode.map_or(mode, |m| m as u32)),
            );
        }
    } else if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.unwrap_or(0o644) as u32;
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                match refs.config_map(&cm.name).await? {
                    Some(data) => {
                        project(&mut files, &data, cm.items.as_deref(), mode, &volume.name)?
                    }
                    None if cm.optional == Some(true) => {}
                    None => {
                        return Err(crate::Error::MissingReference(format!(
                            "configmap {:?} (projected volume {:?}) not found",
                            cm.name, volume.name
                        )));
                    }
                }
            }
            if let Some(s) = &source.secret {
                match refs.secret(&s.name).await? {
                    Some(data) => {
                        project(&mut files, &data, s.items.as_deref(), mode, &volume.name)?
                    }
                    None if s.optional == Some(true) => {}
                    None => {
                        return Err(crate::Error::MissingReference(format!(
                            "secret {:?} (projected volume {:?}) not found",
                            s.name, volume.name
                        )));
                    }
                }
            }
            if let Some(d) = &source.downward_api {
                for item in d.items.iter().flatten() {
                    let value = match &item.field_ref {
                        Some(f) => field_value(pod, ctx.pod_ip, ctx.host_ip, &f.field_path)?,
                        None => String::new(),
                    };
                    files.insert(
                        relative(&item.path, &volume.name)?,
                        (value.into_bytes(), item.mode.map_or(mode, |m| m as u32)),
                    );
                }
            }
            if let Some(token) = &source.service_account_token {
                let value = request_token(
                    ctx.client,
                    pod,
                    namespace,
                    token.audience.clone(),
                    token.expiration_seconds,
                )
                .await?;
                files.insert(
                    relative(&token.path, &volume.name)?,
                    (value.into_bytes(), 0o600),
                );
            }
        }
    } else {
        // csi, nfs, ephemeral...: nothing local can stand for them but an empty directory.
        tracing::warn!(
            volume = %volume.name,
            "volume type not supported by the local node agent; using an empty directory"
        );
        mkdir(&local)?;
        return Ok(local);
    }
    write_files(&local, &files)?;
    Ok(local)
}

/// Adds `data` (all keys, or only `items`) to `files`.
fn project(
    files: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    volume: &str,
) -> crate::Result<()> {
    match items {
        Some(items) => {
            for item in items {
                let Some(value) = data.get(&item.key) else {
                    return Err(crate::Error::MissingReference(format!(
                        "key {:?} (volume {volume:?}) not found",
                        item.key
                    )));
                };
                files.insert(
                    relative(&item.path, volume)?,
                    (value.clone(), item.mode.map_or(mode, |m| m as u32)),
                );
            }
        }
        None => {
            for (k, v) in data {
                files.insert(relative(k, volume)?, (v.clone(), mode));
            }
        }
    }
    Ok(())
}

/// A safe relative path (no `..`, not absolute), as the API server also demands.
fn relative(path: &str, volume: &str) -> crate::Result<PathBuf> {
    let p = PathBuf::from(path);
    if path.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(crate::Error::InvalidSpec(format!(
            "volume {volume:?}: item path {path:?} must be relative without '..'"
        )));
    }
    Ok(p)
}

fn write_files(dir: &Path, files: &BTreeMap<PathBuf, (Vec<u8>, u32)>) -> crate::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| crate::Error::io(format!("clearing {}", dir.display()), e))?;
    }
    mkdir(dir)?;
    for (rel, (content, mode)) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            mkdir(parent)?;
        }
        std::fs::write(&path, content)
            .map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(|e| crate::Error::io(format!("setting mode of {}", path.display()), e))?;
    }
    Ok(())
}

fn mkdir(path: &Path) -> crate::Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| crate::Error::io(format!("creating {}", path.display()), e))
}

/// Marks a claim Bound (no volume provisioner runs locally; its directory is the volume).
async fn bind_claim(client: &kube::Client, namespace: &str, claim: &str) -> crate::Result<()> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let Some(pvc) = api.get_opt(claim).await? else {
        return Err(crate::Error::MissingReference(format!(
            "persistentvolumeclaim {claim:?} not found"
        )));
    };
    let bound = pvc
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Bound");
    if !bound {
        let spec = pvc.spec.unwrap_or_default();
        let capacity = spec.resources.and_then(|r| r.requests).unwrap_or_default();
        let patch = serde_json::json!({
            "status": {
                "phase": "Bound",
                "accessModes": spec.access_modes.unwrap_or_default(),
                "capacity": capacity,
            }
        });
        api.patch_status(claim, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    namespace: &str,
    audience: Option<String>,
    expiration: Option<i64>,
) -> crate::Result<String> {
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: Some(expiration.unwrap_or(3600).max(600)),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let response: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &request)
        .await?;
    response
        .status
        .map(|s| s.token)
        .ok_or_else(|| crate::Error::Other(format!("token request for {sa} returned no token")))
}

/// The container's mounts: (mountPath, local path), subPath directories created.
pub fn container_mounts(
    container: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> crate::Result<Vec<(String, PathBuf)>> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some(base) = volumes.get(&mount.name) else {
            return Err(crate::Error::InvalidSpec(format!(
                "container {:?} mounts unknown volume {:?}",
                container.name, mount.name
            )));
        };
        let local = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let p = base.join(relative(sub, &mount.name)?);
                if !p.exists() {
                    mkdir(&p)?;
                }
                p
            }
            None => base.clone(),
        };
        mounts.push((mount.mount_path.clone(), local));
    }
    Ok(mounts)
}

/// The mount directory standing for the service-account token, if the container has one.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Writes a kubeconfig that logs in with the pod's service-account token (when mounted), so
/// in-cluster clients inside the "pod" (kube-rs, client-go, kubectl) reach the API server
/// as the pod's service account: the fixed in-cluster paths are not visible to a process.
pub fn service_account_kubeconfig(
    rewriter: &PathRewriter,
    api_server: &str,
    namespace: &str,
    out: &Path,
) -> crate::Result<Option<PathBuf>> {
    let Some(dir) = rewriter.local_path(SERVICE_ACCOUNT_MOUNT) else {
        return Ok(None);
    };
    let token = dir.join("token");
    let ca = dir.join("ca.crt");
    if !token.is_file() || !ca.is_file() {
        return Ok(None);
    }
    let yaml = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {api_server}
    certificate-authority: {ca}
users:
- name: serviceaccount
  user:
    tokenFile: {token}
contexts:
- name: local
  context:
    cluster: local
    user: serviceaccount
    namespace: {namespace}
current-context: local
",
        ca = ca.display(),
        token = token.display()
    );
    crate::local::certs::write_secret(out, &yaml)?;
    Ok(Some(out.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_paths_must_stay_inside_the_volume() {
        assert!(relative("a/b.txt", "v").is_ok());
        assert!(relative("../escape", "v").is_err());
        assert!(relative("/abs", "v").is_err());
        assert!(relative("", "v").is_err());
    }

    #[test]
    fn items_select_keys_and_modes() {
        let mut files = BTreeMap::new();
        let data: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into();
        let items = [KeyToPath {
            key: "b".into(),
            path: "sub/b.conf".into(),
            mode: Some(0o600),
        }];
        project(&mut files, &data, Some(&items), 0o644, "v").unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(
            files.get(Path::new("sub/b.conf")),
            Some(&(b"2".to_vec(), 0o600))
        );
        let missing = [KeyToPath {
            key: "zzz".into(),
            path: "z".into(),
            mode: None,
        }];
        assert!(project(&mut files, &data, Some(&missing), 0o644, "v").is_err());
    }
}
