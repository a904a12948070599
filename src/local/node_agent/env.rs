//! A container's process environment and command line, as a kubelet would build them, plus
//! the rewriting of in-container mount paths to the local directories that stand for them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

/// Looks ConfigMaps and Secrets up once per container start.
pub struct RefCache {
    client: kube::Client,
    namespace: String,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl RefCache {
    /// A cache for objects of `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        RefCache {
            client,
            namespace: namespace.to_string(),
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
        }
    }

    /// The ConfigMap's data (text and binary), or `None` when it does not exist.
    pub async fn config_map(
        &mut self,
        name: &str,
    ) -> crate::Result<Option<BTreeMap<String, Vec<u8>>>> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let cm = api.get_opt(name).await?;
            self.config_maps.insert(name.to_string(), cm);
        }
        Ok(self
            .config_maps
            .get(name)
            .and_then(|cm| cm.as_ref())
            .map(|cm| {
                let mut data: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                    .collect();
                for (k, v) in cm.binary_data.iter().flatten() {
                    data.insert(k.clone(), v.0.clone());
                }
                data
            }))
    }

    /// The Secret's data (stringData is merged into data by the API server), or `None` when it
    /// does not exist.
    pub async fn secret(&mut self, name: &str) -> crate::Result<Option<BTreeMap<String, Vec<u8>>>> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let s = api.get_opt(name).await?;
            self.secrets.insert(name.to_string(), s);
        }
        Ok(self.secrets.get(name).and_then(|s| s.as_ref()).map(|s| {
            s.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect()
        }))
    }
}

/// Error for a reference that cannot be resolved yet (kubelet: CreateContainerConfigError).
fn missing(what: String) -> crate::Error {
    crate::Error::MissingReference(what)
}

/// Values of `fieldRef` paths a kubelet supports.
pub fn field_value(pod: &Pod, pod_ip: &str, host_ip: &str, path: &str) -> crate::Result<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        other => {
            let lookup = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
                other
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix("']"))
                    .map(|key| map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
            };
            if let Some(v) = lookup("metadata.labels['", meta.labels.as_ref()) {
                v
            } else if let Some(v) = lookup("metadata.annotations['", meta.annotations.as_ref()) {
                v
            } else {
                return Err(crate::Error::InvalidSpec(format!(
                    "fieldRef.fieldPath {other:?} is not supported"
                )));
            }
        }
    };
    Ok(value)
}

/// `key="value"` lines, the downward API's format for labels and annotations.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The container's own environment (`envFrom` first, then `env`, later entries win), with
/// `$(VAR)` references expanded, in definition order.
pub async fn container_env(
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    host_ip: &str,
    refs: &mut RefCache,
) -> crate::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = env.iter_mut().find(|(name, _)| *name == k) {
            slot.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        // (kind, name, optional): a ConfigMap and a Secret source read the same way.
        let sources = [
            from.config_map_ref
                .as_ref()
                .map(|r| ("configmap", r.name.as_str(), r.optional)),
            from.secret_ref
                .as_ref()
                .map(|r| ("secret", r.name.as_str(), r.optional)),
        ];
        for (kind, name, optional) in sources.into_iter().flatten() {
            let data = if kind == "configmap" {
                refs.config_map(name).await?
            } else {
                refs.secret(name).await?
            };
            match data {
                Some(data) => {
                    for (k, v) in data {
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into_owned(),
                        );
                    }
                }
                None if optional == Some(true) => {}
                None => {
                    return Err(missing(format!(
                        "{kind} {name:?} (envFrom of container {:?}) not found",
                        container.name
                    )));
                }
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(sel) = &from.config_map_key_ref {
                let data = refs.config_map(&sel.name).await?;
                match data.as_ref().and_then(|d| d.get(&sel.key)) {
                    Some(v) => String::from_utf8_lossy(v).into_owned(),
                    None if sel.optional == Some(true) => continue,
                    None => {
                        return Err(missing(format!(
                            "key {:?} of configmap {:?} (env {}) not found",
                            sel.key, sel.name, var.name
                        )));
                    }
                }
            } else if let Some(sel) = &from.secret_key_ref {
                let data = refs.secret(&sel.name).await?;
                match data.as_ref().and_then(|d| d.get(&sel.key)) {
                    Some(v) => String::from_utf8_lossy(v).into_owned(),
                    None if sel.optional == Some(true) => continue,
                    None => {
                        return Err(missing(format!(
                            "key {:?} of secret {:?} (env {}) not found",
                            sel.key, sel.name, var.name
                        )));
                    }
                }
            } else if let Some(field) = &from.field_ref {
                field_value(pod, pod_ip, host_ip, &field.field_path)?
            } else if let Some(res) = &from.resource_field_ref {
                resource_value(container, &res.resource)
            } else {
                String::new()
            }
        } else {
            let raw = var.value.clone().unwrap_or_default();
            expand(&raw, |name| {
                env.iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// `limits.cpu`, `requests.memory`...: the quantity as written in the container's resources
/// (a kubelet would also apply the divisor; local processes rarely read these).
fn resource_value(container: &Container, resource: &str) -> String {
    let resources = container.resources.as_ref();
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let map = match kind {
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => resources.and_then(|r| r.limits.as_ref()),
    };
    map.and_then(|m| m.get(name))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "0".into())
}

/// Kubernetes `$(VAR)` expansion: `$(NAME)` becomes the value when `lookup` knows NAME and
/// stays as written otherwise; `$$` is an escaped `$`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Maps in-container mount paths to local directories. Processes cannot see mounts, so every
/// path under a mount path in args and env values is rewritten to the local directory.
#[derive(Debug, Clone, Default)]
pub struct PathRewriter {
    /// (mountPath without trailing slash, local path), longest mount path first.
    mounts: Vec<(String, String)>,
}

impl PathRewriter {
    /// A rewriter for `(mountPath, local dir)` pairs.
    pub fn new(mounts: impl IntoIterator<Item = (String, PathBuf)>) -> Self {
        let mut mounts: Vec<(String, String)> = mounts
            .into_iter()
            .map(|(m, l)| {
                let m = m.trim_end_matches('/').to_string();
                (m, l.display().to_string())
            })
            .filter(|(m, _)| !m.is_empty())
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        PathRewriter { mounts }
    }

    /// The local path for an absolute in-container path, when it is under a mount.
    pub fn local_path(&self, path: &str) -> Option<PathBuf> {
        self.mounts.iter().find_map(|(m, l)| {
            let rest = path.strip_prefix(m.as_str())?;
            if rest.is_empty() || rest.starts_with('/') {
                Some(PathBuf::from(format!("{l}{rest}")))
            } else {
                None
            }
        })
    }

    /// Rewrites every whole-path occurrence of a mount path in `s` (one pass, so a local path
    /// that itself contains a mount path is never rewritten twice).
    pub fn rewrite(&self, s: &str) -> String {
        if self.mounts.is_empty() {
            return s.to_string();
        }
        let bytes = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            let boundary_before = i == 0 || !is_path_char(bytes[i - 1]);
            if boundary_before && bytes[i] == b'/' {
                let hit = self.mounts.iter().find(|(m, _)| {
                    s[i..].starts_with(m.as_str())
                        && s.as_bytes()
                            .get(i + m.len())
                            .is_none_or(|&c| c == b'/' || !is_path_char(c))
                });
                if let Some((m, l)) = hit {
                    out.push_str(l);
                    i += m.len();
                    continue;
                }
            }
            // Copy one UTF-8 character.
            let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&s[i..i + ch_len]);
            i += ch_len;
        }
        out
    }
}

/// Characters that continue a path or name (a mount path must not be glued to them).
fn is_path_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'_' | b'-' | b'~')
}

/// Whether an image stands for js-mcp itself (its repository name ends in `js-mcp`).
pub fn is_js_mcp_image(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let repo = last.split(':').next().unwrap_or(last);
    repo.ends_with("js-mcp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_mcp_images_are_recognised_by_repository_name() {
        assert!(is_js_mcp_image("ghcr.io/js-mcp/js-mcp:0.1.0"));
        assert!(is_js_mcp_image("js-mcp:dev"));
        assert!(is_js_mcp_image("registry:5000/team/js-mcp@sha256:abc"));
        assert!(!is_js_mcp_image("ghcr.io/js-mcp/other:1"));
        assert!(!is_js_mcp_image("busybox"));
    }

    #[test]
    fn expands_known_variables_and_keeps_unknown_ones() {
        let lookup = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)/$(B)/$$(A)/$", lookup), "x/$(B)/$(A)/$");
    }

    #[test]
    fn rewrites_mount_paths_only_at_path_boundaries() {
        let r = PathRewriter::new([
            ("/etc/x".to_string(), PathBuf::from("/tmp/p/vol/x")),
            ("/data/".to_string(), PathBuf::from("/tmp/pvc/data")),
            ("/tmp".to_string(), PathBuf::from("/tmp/p/vol/tmp")),
        ]);
        assert_eq!(
            r.rewrite("--config=/etc/x/file.yaml"),
            "--config=/tmp/p/vol/x/file.yaml"
        );
        assert_eq!(r.rewrite("/data"), "/tmp/pvc/data");
        assert_eq!(r.rewrite("/etc/xyz /database"), "/etc/xyz /database");
        assert_eq!(r.rewrite("http://h/data"), "http://h/data");
        // One pass: the replacement, which starts with /tmp, is not rewritten again.
        assert_eq!(r.rewrite("cat /etc/x/f"), "cat /tmp/p/vol/x/f");
        assert_eq!(r.rewrite("/tmp/a"), "/tmp/p/vol/tmp/a");
        assert_eq!(
            r.local_path("/etc/x/a"),
            Some(PathBuf::from("/tmp/p/vol/x/a"))
        );
        assert_eq!(r.local_path("/etc/xa"), None);
    }
}
