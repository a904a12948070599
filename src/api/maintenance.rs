//! MaintenancePolicy (`mcpmp`): alert rules over live metrics and the actions they trigger.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired maintenance behaviour for the McpInstances a selector matches.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "jsmcp.io",
    version = "v1alpha1",
    kind = "MaintenancePolicy",
    plural = "maintenancepolicies",
    shortname = "mcpmp",
    category = "jsmcp",
    namespaced,
    status = "MaintenancePolicyStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct MaintenancePolicySpec {
    /// Selects McpInstances by label.
    #[serde(default)]
    pub selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
}

/// Observed state of a MaintenancePolicy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenancePolicyStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
