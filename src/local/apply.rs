//! `kubectl apply --server-side` for YAML files: every document of every file, resolved
//! through API discovery, applied with one field manager.

use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};

/// One applied object, for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `kind/name`, with the namespace when namespaced (`ns/kind/name`).
    pub object: String,
    /// The file it came from.
    pub file: PathBuf,
}

/// The YAML files of `path`: the file itself, or every `*.yaml`/`*.yml` directly in the directory,
/// sorted. Like `kubectl apply -f DIR` without `-R`, sub-directories are not read, so
/// `examples/workflows/` (workflow definitions, not Kubernetes objects) stays out.
pub fn yaml_files(path: &Path) -> crate::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| crate::Error::io(format!("reading {}", path.display()), e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| crate::Error::io(format!("reading {}", path.display()), e))?;
        let p = entry.path();
        if p.is_file()
            && matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml") | Some("yml")
            )
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Parses a multi-document YAML stream into objects (empty documents skipped); each must
/// have `apiVersion`, `kind` and `metadata.name`.
pub fn parse_documents(text: &str, origin: &Path) -> crate::Result<Vec<DynamicObject>> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        crate::Error::InvalidSpec(format!("{}: invalid YAML: {e}", origin.display()))
    })?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        if let Some(items) = doc
            .get("kind")
            .and_then(|k| k.as_str())
            .filter(|k| *k == "List")
            .and(doc.get("items"))
            .and_then(|i| i.as_array())
        {
            for item in items {
                out.push(to_object(item.clone(), origin, i)?);
            }
            continue;
        }
        out.push(to_object(doc, origin, i)?);
    }
    Ok(out)
}

fn to_object(doc: serde_json::Value, origin: &Path, index: usize) -> crate::Result<DynamicObject> {
    let obj: DynamicObject = serde_json::from_value(doc).map_err(|e| {
        crate::Error::InvalidSpec(format!(
            "{} document {}: not a Kubernetes object: {e}",
            origin.display(),
            index + 1
        ))
    })?;
    if obj.types.is_none() || obj.metadata.name.is_none() {
        return Err(crate::Error::InvalidSpec(format!(
            "{} document {}: apiVersion, kind and metadata.name are required",
            origin.display(),
            index + 1
        )));
    }
    Ok(obj)
}

/// Applies every object of every file under `paths` with server-side apply (field manager
/// `field_manager`, forced). Namespaced objects without a namespace go to `default_namespace`.
pub async fn apply_paths(
    client: &kube::Client,
    paths: &[PathBuf],
    field_manager: &str,
    default_namespace: &str,
) -> crate::Result<Vec<Applied>> {
    let mut applied = Vec::new();
    let pp = PatchParams::apply(field_manager).force();
    for path in paths {
        for file in yaml_files(path)? {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| crate::Error::io(format!("reading {}", file.display()), e))?;
            for obj in parse_documents(&text, &file)? {
                let Some(types) = obj.types.clone() else {
                    continue;
                };
                let name = obj.metadata.name.clone().unwrap_or_default();
                let gvk = GroupVersionKind::try_from(&types).map_err(|e| {
                    crate::Error::InvalidSpec(format!("{}: {name}: {e}", file.display()))
                })?;
                let (resource, caps) = discovery::pinned_kind(client, &gvk).await.map_err(|e| {
                    crate::Error::Other(format!(
                        "{}: {} {name}: the API server does not serve this kind: {e}",
                        file.display(),
                        types.kind
                    ))
                })?;
                let (api, label): (Api<DynamicObject>, String) = match caps.scope {
                    Scope::Namespaced => {
                        let ns = obj
                            .metadata
                            .namespace
                            .clone()
                            .unwrap_or_else(|| default_namespace.to_string());
                        (
                            Api::namespaced_with(client.clone(), &ns, &resource),
                            format!("{ns}/{}/{name}", types.kind),
                        )
                    }
                    Scope::Cluster => (
                        Api::all_with(client.clone(), &resource),
                        format!("{}/{name}", types.kind),
                    ),
                };
                apply_with_retry(&api, &name, &pp, &obj)
                    .await
                    .map_err(|e| {
                        crate::Error::Other(format!("{}: applying {label}: {e}", file.display()))
                    })?;
                applied.push(Applied {
                    object: label,
                    file: file.clone(),
                });
            }
        }
    }
    Ok(applied)
}

/// Applies one object, retrying what a young cluster answers while it settles: 5xx (e.g. "No
/// API token found for service account", until the token controller catches up with a new
/// namespace), 429, and 404 for a namespace applied a moment earlier.
async fn apply_with_retry(
    api: &Api<DynamicObject>,
    name: &str,
    pp: &PatchParams,
    obj: &DynamicObject,
) -> Result<DynamicObject, kube::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match api.patch(name, pp, &Patch::Apply(obj)).await {
            Err(kube::Error::Api(s))
                if attempt < 60 && (s.code >= 500 || s.code == 429 || s.code == 404) =>
            {
                tracing::debug!(object = name, code = s.code, message = %s.message, "apply refused; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multi_document_yaml_and_skips_empty_documents() {
        let text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n---\n---\napiVersion: jsmcp.io/v1alpha1\nkind: McpInstance\nmetadata:\n  name: b\n  namespace: x\n";
        let objs = parse_documents(text, Path::new("t.yaml")).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].metadata.name.as_deref(), Some("a"));
        assert_eq!(objs[1].types.as_ref().unwrap().kind, "McpInstance");
        assert_eq!(objs[1].metadata.namespace.as_deref(), Some("x"));
    }

    #[test]
    fn objects_without_kind_or_name_are_rejected_with_the_file_name() {
        let err = parse_documents("apiVersion: v1\nkind: ConfigMap\n", Path::new("bad.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.yaml"), "{err}");
        assert!(err.contains("metadata.name"), "{err}");
    }
}
