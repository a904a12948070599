//! The custom resources of group `jsmcp.io`, version `v1alpha1`, and their CRD YAML.

pub mod backup;
pub mod conditions;
pub mod instance;
pub mod maintenance;

pub use backup::BackupSchedule;
pub use instance::McpInstance;
pub use maintenance::MaintenancePolicy;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every js-mcp resource.
pub const GROUP: &str = "jsmcp.io";
/// API version of every js-mcp resource.
pub const VERSION: &str = "v1alpha1";

/// The three CRDs, in the order `crds/` lists them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        McpInstance::crd(),
        MaintenancePolicy::crd(),
        BackupSchedule::crd(),
    ]
}

/// The file name under `crds/` and the YAML of each CRD.
pub fn crd_files() -> crate::Result<Vec<(String, String)>> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.spec.names.plural);
            let yaml = serde_saphyr::to_string(&crd)
                .map_err(|e| crate::Error::Other(format!("rendering CRD {name}: {e}")))?;
            Ok((name, yaml))
        })
        .collect()
}

/// All CRDs as one multi-document YAML stream (what `js-mcp crds` prints).
pub fn crds_yaml() -> crate::Result<String> {
    let files = crd_files()?;
    Ok(files
        .into_iter()
        .map(|(_, yaml)| format!("---\n{yaml}"))
        .collect())
}
