//! Finds the control-plane binaries (etcd, kube-apiserver, kube-controller-manager) the way
//! envtest users expect: `$KUBEBUILDER_ASSETS`, setup-envtest's store, js-mcp's cache, `PATH`.

use std::path::{Path, PathBuf};

/// Paths of the three control-plane programs.
#[derive(Debug, Clone)]
pub struct Assets {
    /// etcd (3.4 or newer).
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
    /// kube-controller-manager.
    pub kube_controller_manager: PathBuf,
}

/// The binaries, in the order they are looked up.
pub const BINARIES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];

impl Assets {
    /// Finds every binary, or fails naming each one that is missing, where it looked, and how
    /// to get it.
    pub fn discover() -> crate::Result<Assets> {
        Self::find_in(&search_dirs())
    }

    /// Finds every binary in `dirs` (first hit wins), or fails naming each missing one.
    pub fn find_in(dirs: &[PathBuf]) -> crate::Result<Assets> {
        let mut missing = Vec::new();
        let mut found = Vec::new();
        for name in BINARIES {
            match find_binary(name, dirs) {
                Some(path) => found.push(path),
                None => missing.push(name),
            }
        }
        if !missing.is_empty() {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            return Err(crate::Error::Other(format!(
                "control-plane binaries not found: {}. Looked in $KUBEBUILDER_ASSETS, \
                 setup-envtest's store, the js-mcp cache and PATH ({}). Get them with \
                 `bash .ci/setup-envtest.sh` in a js-mcp checkout (unpacks kube-apiserver and \
                 kube-controller-manager and installs etcd), or with setup-envtest \
                 (`setup-envtest use` then `export KUBEBUILDER_ASSETS=...`; setup-envtest ships \
                 etcd and kube-apiserver but not kube-controller-manager, which then must be put \
                 beside them or on PATH); etcd alone: `apt-get install etcd-server`",
                missing.join(", "),
                looked.join(", ")
            )));
        }
        let mut it = found.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(etcd), Some(kube_apiserver), Some(kube_controller_manager)) => Ok(Assets {
                etcd,
                kube_apiserver,
                kube_controller_manager,
            }),
            _ => Err(crate::Error::Other(
                "internal error: binary lookup lost a result".into(),
            )),
        }
    }
}

/// Directories searched, most specific first (PATH last).
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(assets) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(assets));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    // setup-envtest's default store: $XDG_DATA_HOME/kubebuilder-envtest/k8s/<version>-<os>-<arch>/
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".local/share")));
    if let Some(data) = data_home {
        dirs.extend(versioned_subdirs(&data.join("kubebuilder-envtest/k8s"), ""));
    }
    // js-mcp's cache, filled by .ci/setup-envtest.sh: ~/.cache/js-mcp/envtest-<version>/
    let mut caches = Vec::new();
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        caches.push(PathBuf::from(cache).join("js-mcp"));
    }
    if let Some(h) = &home {
        caches.push(h.join(".cache/js-mcp"));
    }
    for cache in caches {
        for dir in versioned_subdirs(&cache, "envtest-") {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// Subdirectories of `parent` whose names start with `prefix` then a version, newest first.
fn versioned_subdirs(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut dirs: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(prefix)?;
            Some((parse_version(rest), e.path()))
        })
        .collect();
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    dirs.into_iter().map(|(_, p)| p).collect()
}

/// `1.30.0-linux-amd64` -> [1, 30, 0]; anything unparsable sorts last.
fn parse_version(s: &str) -> Vec<u64> {
    s.split(['-', '+'])
        .next()
        .unwrap_or("")
        .trim_start_matches('v')
        .split('.')
        .map_while(|p| p.parse().ok())
        .collect()
}

fn find_binary(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        for v in [
            "1.9.0-linux-amd64",
            "1.30.2-linux-amd64",
            "1.20.2-linux-amd64",
        ] {
            std::fs::create_dir(dir.path().join(v)).unwrap();
        }
        let names: Vec<String> = versioned_subdirs(dir.path(), "")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "1.30.2-linux-amd64",
                "1.20.2-linux-amd64",
                "1.9.0-linux-amd64"
            ]
        );
    }

    #[test]
    fn missing_binaries_are_named_with_how_to_get_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let etcd = dir.path().join("etcd");
        std::fs::write(&etcd, "").unwrap();
        std::fs::set_permissions(&etcd, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = Assets::find_in(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not found: kube-apiserver, kube-controller-manager"),
            "{err}"
        );
        assert!(err.contains("setup-envtest"), "{err}");
        assert!(err.contains(".ci/setup-envtest.sh"), "{err}");
    }

    #[test]
    fn finds_only_executable_files() {
        use std::os::unix::fs::PermissionsExt;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let plain = a.path().join("etcd");
        std::fs::write(&plain, "").unwrap();
        let exe = b.path().join("etcd");
        std::fs::write(&exe, "").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_binary("etcd", &dirs), Some(exe));
        assert_eq!(find_binary("kube-apiserver", &dirs), None);
    }
}
