//! Pure builders: McpInstance (+ resolved references) -> the children the operator applies.
//! Nothing here talks to the API server, so every rule is unit-tested on plain values.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, HostPathVolumeSource, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecretKeySelector, SecurityContext,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::api::instance::{McpInstance, McpInstanceSpec, SecretKeyRef, SessionStoreType};

/// Label every child carries with the instance's name; also the pod selector.
pub const INSTANCE_LABEL: &str = "jsmcp.io/instance";
/// Pod-template annotation with the hash of the rendered config and referenced data.
pub const CONFIG_HASH_ANNOTATION: &str = "jsmcp.io/config-hash";
/// Pod-template annotation with the revision (hash of the pod template).
pub const REVISION_ANNOTATION: &str = "jsmcp.io/revision";
/// Name of the server container.
pub const CONTAINER_NAME: &str = "js-mcp";
/// Where the server config is mounted.
pub const CONFIG_DIR: &str = "/etc/js-mcp";
/// Where workflow ConfigMaps are mounted, one sub-directory each.
pub const WORKFLOWS_DIR: &str = "/etc/js-mcp/workflows";
/// Where the embedded session store keeps its data.
pub const DATA_DIR: &str = "/var/lib/js-mcp";
/// Key of the server config in the ConfigMap.
pub const CONFIG_KEY: &str = "config.json";
/// UID the server runs as (non-root, distroless convention).
const RUN_AS_USER: i64 = 65532;

/// What the reconciler resolved before building: facts that come from the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Image used when the spec names none (the operator's own).
    pub default_image: String,
    /// Hash over the data of every referenced Secret key and workflow ConfigMap.
    pub references_hash: String,
    /// `policy/v1` or `policy/v1beta1`, whichever the API server serves.
    pub pdb_api_version: String,
}

/// Every child of one McpInstance, ready to apply.
#[derive(Clone, Debug)]
pub struct Children {
    /// Server config.
    pub config_map: ConfigMap,
    /// The pods.
    pub deployment: Deployment,
    /// The Service in front of them.
    pub service: Service,
    /// Volume of the embedded store, when persistence is on.
    pub pvc: Option<PersistentVolumeClaim>,
    /// PodDisruptionBudget as JSON (its API version depends on the server), when replicas > 1.
    pub pdb: Option<serde_json::Value>,
    /// The revision (hash of the pod template) the Deployment carries.
    pub revision: String,
}

/// Names of the children of an instance called `name`.
pub mod names {
    /// ConfigMap with the server config.
    pub fn config_map(name: &str) -> String {
        format!("{name}-config")
    }
    /// PVC of the embedded store.
    pub fn pvc(name: &str) -> String {
        format!("{name}-data")
    }
}

/// Labels on every child and on the pods.
pub fn labels(instance_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "js-mcp".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            instance_name.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "js-mcp-operator".to_string(),
        ),
        (INSTANCE_LABEL.to_string(), instance_name.to_string()),
    ])
}

/// The pod selector: stable for the life of the instance (Deployment selectors are immutable).
pub fn selector_labels(instance_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "js-mcp".to_string()),
        (INSTANCE_LABEL.to_string(), instance_name.to_string()),
    ])
}

/// First 16 hex digits of the SHA-256 of `bytes`.
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(&digest[..8])
}

/// The `config.json` the server reads, from the spec's `config` block (deterministic key order).
pub fn server_config_json(spec: &McpInstanceSpec) -> Result<String, serde_json::Error> {
    let value = serde_json::to_value(&spec.config)?;
    serde_json::to_string_pretty(&value)
}

/// Builds every child. `instance` must have a name, namespace and uid (it came from the API server).
pub fn build(instance: &McpInstance, resolved: &Resolved) -> Result<Children, crate::Error> {
    let name = instance.name_any();
    let namespace = instance
        .namespace()
        .ok_or_else(|| crate::Error::Other("McpInstance has no namespace".into()))?;
    let owner = instance
        .controller_owner_ref(&())
        .ok_or_else(|| crate::Error::Other("McpInstance has no uid yet".into()))?;
    let spec = &instance.spec;

    let config_json = server_config_json(spec)?;
    let config_map = build_config_map(&name, &namespace, &owner, &config_json);
    let config_hash = short_hash(format!("{config_json}\n{}", resolved.references_hash).as_bytes());
    let (deployment, revision) =
        build_deployment(&name, &namespace, &owner, spec, resolved, &config_hash)?;
    let service = build_service(&name, &namespace, &owner, spec);
    let pvc = persistent(spec).then(|| build_pvc(&name, &namespace, &owner, spec));
    let pdb = (spec.replicas.unwrap_or(0) > 1)
        .then(|| build_pdb(&name, &namespace, &owner, &resolved.pdb_api_version));
    Ok(Children {
        config_map,
        deployment,
        service,
        pvc,
        pdb,
        revision,
    })
}

fn persistent(spec: &McpInstanceSpec) -> bool {
    spec.session_store.type_ == SessionStoreType::Embedded
        && spec
            .session_store
            .persistence
            .as_ref()
            .is_some_and(|p| p.enabled)
}

fn meta(name: &str, namespace: &str, owner: &OwnerReference, instance_name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(instance_name)),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

fn build_config_map(
    name: &str,
    namespace: &str,
    owner: &OwnerReference,
    config_json: &str,
) -> ConfigMap {
    ConfigMap {
        metadata: meta(&names::config_map(name), namespace, owner, name),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_string(),
            config_json.to_string(),
        )])),
        ..Default::default()
    }
}

fn env_value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn env_secret(name: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    }
}

/// DNS names clients may put in the Host header to reach the instance through its Service.
pub fn service_hosts(name: &str, namespace: &str) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.cluster.local"),
    ]
}

fn container_env(name: &str, namespace: &str, spec: &McpInstanceSpec) -> Vec<EnvVar> {
    let mut env = vec![
        env_value("JSMCP_PORT", spec.port().to_string()),
        env_value("JSMCP_BIND", "0.0.0.0"),
        EnvVar {
            name: "POD_IP".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.podIP".into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
        },
        env_value(
            "JSMCP_STORE",
            match spec.session_store.type_ {
                SessionStoreType::Embedded => "embedded",
                SessionStoreType::Redis => "redis",
            },
        ),
        env_value("JSMCP_DATA_DIR", DATA_DIR),
    ];
    let mut hosts = service_hosts(name, namespace);
    hosts.extend(spec.config.allowed_hosts.iter().cloned());
    env.push(env_value("JSMCP_ALLOWED_HOSTS", hosts.join(",")));
    if let Some(secret) = &spec.session_store.redis_url_secret_ref {
        env.push(env_secret("JSMCP_REDIS_URL", secret));
    }
    if let Some(ai) = &spec.ai {
        env.push(env_value("JSMCP_AI_BASE_URL", ai.base_url.clone()));
        env.push(env_value("JSMCP_AI_MODEL", ai.model.clone()));
        if let Some(secret) = &ai.api_key_secret_ref {
            env.push(env_secret("JSMCP_AI_API_KEY", secret));
        }
    }
    if let Some(secret) = &spec.auth_token_secret_ref {
        env.push(env_secret("JSMCP_AUTH_TOKEN", secret));
    }
    if !spec.workflows.is_empty() {
        let dirs: Vec<String> = spec
            .workflows
            .iter()
            .map(|w| format!("{WORKFLOWS_DIR}/{}", w.name))
            .collect();
        env.push(env_value("JSMCP_WORKFLOWS_DIR", dirs.join(":")));
    }
    if spec.docker.as_ref().is_some_and(|d| d.enabled) {
        env.push(env_value("JSMCP_DOCKER_HOST", "/var/run/docker.sock"));
    }
    // User env last: the API server keeps the last duplicate, so the user's value wins.
    for user in &spec.env {
        env.retain(|e| e.name != user.name);
        env.push(user.clone());
    }
    env
}

fn volumes_and_mounts(name: &str, spec: &McpInstanceSpec) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(name),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    ];
    let data = if persistent(spec) {
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names::pvc(name),
                read_only: None,
            }),
            ..Default::default()
        }
    } else {
        Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }
    };
    volumes.push(data);
    mounts.push(VolumeMount {
        name: "data".into(),
        mount_path: DATA_DIR.into(),
        ..Default::default()
    });
    for (i, workflow) in spec.workflows.iter().enumerate() {
        let volume_name = format!("workflows-{i}");
        volumes.push(Volume {
            name: volume_name.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: workflow.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: volume_name,
            mount_path: format!("{WORKFLOWS_DIR}/{}", workflow.name),
            read_only: Some(true),
            ..Default::default()
        });
    }
    if let Some(docker) = spec.docker.as_ref().filter(|d| d.enabled) {
        volumes.push(Volume {
            name: "docker-socket".into(),
            host_path: Some(HostPathVolumeSource {
                path: docker
                    .socket_path
                    .clone()
                    .unwrap_or_else(|| "/var/run/docker.sock".into()),
                type_: Some("Socket".into()),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "docker-socket".into(),
            mount_path: "/var/run/docker.sock".into(),
            ..Default::default()
        });
    }
    (volumes, mounts)
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn build_pod_template(
    name: &str,
    namespace: &str,
    spec: &McpInstanceSpec,
    image: String,
) -> PodTemplateSpec {
    let (volumes, volume_mounts) = volumes_and_mounts(name, spec);
    let container = Container {
        name: CONTAINER_NAME.into(),
        image: Some(image),
        args: Some(vec![
            "serve".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/{CONFIG_KEY}"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: spec.port(),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(container_env(name, namespace, spec)),
        liveness_probe: Some(http_probe("/health", 10, 3)),
        readiness_probe: Some(http_probe("/ready", 5, 2)),
        resources: spec.resources.clone(),
        volume_mounts: Some(volume_mounts),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(name)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
            tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(30),
            security_context: Some(PodSecurityContext {
                fs_group: Some(RUN_AS_USER),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn build_deployment(
    name: &str,
    namespace: &str,
    owner: &OwnerReference,
    spec: &McpInstanceSpec,
    resolved: &Resolved,
    config_hash: &str,
) -> Result<(Deployment, String), crate::Error> {
    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| resolved.default_image.clone());
    let mut template = build_pod_template(name, namespace, spec, image);
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    metadata.annotations = Some(BTreeMap::from([(
        CONFIG_HASH_ANNOTATION.to_string(),
        config_hash.to_string(),
    )]));
    // The revision names exactly what the pods run: the template with the config hash in it.
    let revision = short_hash(&serde_json::to_vec(&template)?);
    if let Some(annotations) = template
        .metadata
        .as_mut()
        .and_then(|m| m.annotations.as_mut())
    {
        annotations.insert(REVISION_ANNOTATION.to_string(), revision.clone());
    }
    let strategy = persistent(spec).then(|| DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    let deployment = Deployment {
        metadata: meta(name, namespace, owner, name),
        spec: Some(DeploymentSpec {
            // Unset replicas stays out of the apply, so an HPA or a person owns scaling.
            replicas: spec.replicas,
            selector: LabelSelector {
                match_labels: Some(selector_labels(name)),
                match_expressions: None,
            },
            template,
            strategy,
            revision_history_limit: Some(10),
            ..Default::default()
        }),
        status: None,
    };
    Ok((deployment, revision))
}

fn build_service(
    name: &str,
    namespace: &str,
    owner: &OwnerReference,
    spec: &McpInstanceSpec,
) -> Service {
    Service {
        metadata: meta(name, namespace, owner, name),
        spec: Some(ServiceSpec {
            type_: Some(spec.service.type_.as_str().into()),
            selector: Some(selector_labels(name)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: spec.service_port(),
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

fn build_pvc(
    name: &str,
    namespace: &str,
    owner: &OwnerReference,
    spec: &McpInstanceSpec,
) -> PersistentVolumeClaim {
    let persistence = spec.session_store.persistence.clone().unwrap_or_default();
    let size = persistence.size.unwrap_or_else(|| "1Gi".into());
    PersistentVolumeClaim {
        metadata: meta(&names::pvc(name), namespace, owner, name),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: persistence.storage_class_name,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                limits: None,
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn build_pdb(
    name: &str,
    namespace: &str,
    owner: &OwnerReference,
    api_version: &str,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": api_version,
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(name),
            "ownerReferences": [owner],
        },
        "spec": {
            "maxUnavailable": 1,
            "selector": { "matchLabels": selector_labels(name) },
        }
    })
}

/// The MCP endpoint clients use inside the cluster.
pub fn endpoint(instance: &McpInstance) -> Option<String> {
    let namespace = instance.namespace()?;
    Some(format!(
        "http://{}.{namespace}.svc:{}/mcp",
        instance.name_any(),
        instance.spec.service_port()
    ))
}

/// Hash over referenced data. Inputs are `(kind/name/key, value)` pairs; order does not matter.
pub fn references_hash(mut entries: Vec<(String, Vec<u8>)>) -> String {
    entries.sort();
    let mut hasher = Sha256::new();
    for (id, value) in entries {
        hasher.update(id.as_bytes());
        hasher.update([0]);
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(&value);
    }
    hex::encode(&hasher.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::instance::{
        AiProviderSpec, ConfigMapRef, PersistenceSpec, SessionStoreSpec, SessionStoreType,
    };
    use k8s_openapi::api::core::v1::EnvVar;

    fn instance(spec: McpInstanceSpec) -> McpInstance {
        let mut instance = McpInstance::new("demo", spec);
        instance.metadata.namespace = Some("team-a".into());
        instance.metadata.uid = Some("0000-uid".into());
        instance
    }

    #[test]
    fn every_config_field_the_operator_writes_is_one_the_server_reads() {
        use crate::api::instance::{LogLevel, ServerConfig};
        let spec = McpInstanceSpec {
            config: ServerConfig {
                log_level: Some(LogLevel::Debug),
                max_sessions: Some(500),
                session_ttl_seconds: Some(3600),
                idle_timeout_seconds: Some(120),
                allowed_origins: vec!["https://app.example.com".into()],
                allowed_hosts: vec!["mcp.example.com".into()],
                max_body_bytes: Some(65_536),
                http_allowed_hosts: vec!["*.svc.cluster.local".into()],
            },
            ..Default::default()
        };
        let json = server_config_json(&spec).expect("json");
        // The server refuses unknown keys: a field it cannot read would stop the pod.
        let file: crate::server::FileConfig = serde_json::from_str(&json).expect(&json);
        assert_eq!(file.max_sessions, Some(500));
        assert_eq!(file.log_level.as_deref(), Some("debug"));
        assert_eq!(
            file.http_allowed_hosts,
            Some(vec!["*.svc.cluster.local".to_string()])
        );
    }

    fn resolved() -> Resolved {
        Resolved {
            default_image: "js-mcp:dev".into(),
            references_hash: "abc".into(),
            pdb_api_version: "policy/v1beta1".into(),
        }
    }

    fn container(children: &Children) -> &Container {
        &children
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn env<'a>(children: &'a Children, name: &str) -> Option<&'a EnvVar> {
        container(children)
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
    }

    #[test]
    fn every_child_has_a_controller_owner_reference_to_the_instance() {
        let children = build(
            &instance(McpInstanceSpec {
                replicas: Some(2),
                ..Default::default()
            }),
            &resolved(),
        )
        .unwrap();
        let owners = [
            children.config_map.metadata.owner_references.clone(),
            children.deployment.metadata.owner_references.clone(),
            children.service.metadata.owner_references.clone(),
        ];
        for owner in owners {
            let owner = &owner.unwrap()[0];
            assert_eq!(owner.kind, "McpInstance");
            assert_eq!(owner.name, "demo");
            assert_eq!(owner.controller, Some(true));
        }
        let pdb = children.pdb.unwrap();
        assert_eq!(pdb["apiVersion"], "policy/v1beta1");
        assert_eq!(pdb["metadata"]["ownerReferences"][0]["uid"], "0000-uid");
    }

    #[test]
    fn unset_replicas_stay_out_of_the_deployment_so_others_can_scale() {
        let children = build(&instance(McpInstanceSpec::default()), &resolved()).unwrap();
        let body = serde_json::to_value(&children.deployment).unwrap();
        assert!(body["spec"].get("replicas").is_none(), "{body}");
        assert!(children.pdb.is_none());
    }

    #[test]
    fn pod_runs_serve_with_probes_non_root_and_read_only_root() {
        let children = build(&instance(McpInstanceSpec::default()), &resolved()).unwrap();
        let c = container(&children);
        assert_eq!(c.image.as_deref(), Some("js-mcp:dev"));
        assert_eq!(c.args.as_ref().unwrap()[0], "serve");
        assert_eq!(
            c.liveness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/health")
        );
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/ready")
        );
        let security = c.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 3000);
        assert_eq!(
            env(&children, "JSMCP_PORT").unwrap().value.as_deref(),
            Some("3000")
        );
    }

    #[test]
    fn config_change_changes_the_revision_and_the_config_hash() {
        let a = build(&instance(McpInstanceSpec::default()), &resolved()).unwrap();
        let mut spec = McpInstanceSpec::default();
        spec.config.max_sessions = Some(10);
        let b = build(&instance(spec), &resolved()).unwrap();
        assert_ne!(a.revision, b.revision);
        let same = build(&instance(McpInstanceSpec::default()), &resolved()).unwrap();
        assert_eq!(
            a.revision, same.revision,
            "building twice must be deterministic"
        );
    }

    #[test]
    fn referenced_data_change_changes_the_revision() {
        let a = build(&instance(McpInstanceSpec::default()), &resolved()).unwrap();
        let other = Resolved {
            references_hash: "def".into(),
            ..resolved()
        };
        let b = build(&instance(McpInstanceSpec::default()), &other).unwrap();
        assert_ne!(a.revision, b.revision);
    }

    #[test]
    fn secrets_reach_the_pod_as_secret_refs_never_as_values() {
        let spec = McpInstanceSpec {
            session_store: SessionStoreSpec {
                type_: SessionStoreType::Redis,
                redis_url_secret_ref: Some(SecretKeyRef {
                    name: "redis".into(),
                    key: "url".into(),
                }),
                ..Default::default()
            },
            ai: Some(AiProviderSpec {
                base_url: "http://127.0.0.1:9/v1".into(),
                model: "m".into(),
                api_key_secret_ref: Some(SecretKeyRef {
                    name: "ai".into(),
                    key: "key".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let children = build(&instance(spec), &resolved()).unwrap();
        let redis = env(&children, "JSMCP_REDIS_URL").unwrap();
        assert!(redis.value.is_none());
        assert_eq!(
            redis
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .name,
            "redis"
        );
        assert_eq!(
            env(&children, "JSMCP_STORE").unwrap().value.as_deref(),
            Some("redis")
        );
        assert!(
            env(&children, "JSMCP_AI_API_KEY")
                .unwrap()
                .value_from
                .is_some()
        );
    }

    #[test]
    fn persistence_adds_a_pvc_and_recreate_strategy() {
        let spec = McpInstanceSpec {
            session_store: SessionStoreSpec {
                persistence: Some(PersistenceSpec {
                    enabled: true,
                    size: Some("2Gi".into()),
                    storage_class_name: None,
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let children = build(&instance(spec), &resolved()).unwrap();
        let pvc = children.pvc.as_ref().unwrap();
        assert_eq!(pvc.metadata.name.as_deref(), Some("demo-data"));
        let strategy = children
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .strategy
            .as_ref()
            .unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    }

    #[test]
    fn workflow_config_maps_are_mounted_and_listed_for_the_server() {
        let spec = McpInstanceSpec {
            workflows: vec![
                ConfigMapRef {
                    name: "wf-a".into(),
                },
                ConfigMapRef {
                    name: "wf-b".into(),
                },
            ],
            ..Default::default()
        };
        let children = build(&instance(spec), &resolved()).unwrap();
        assert_eq!(
            env(&children, "JSMCP_WORKFLOWS_DIR")
                .unwrap()
                .value
                .as_deref(),
            Some("/etc/js-mcp/workflows/wf-a:/etc/js-mcp/workflows/wf-b")
        );
    }

    #[test]
    fn user_env_overrides_operator_env() {
        let spec = McpInstanceSpec {
            env: vec![EnvVar {
                name: "JSMCP_PORT".into(),
                value: Some("4000".into()),
                value_from: None,
            }],
            ..Default::default()
        };
        let children = build(&instance(spec), &resolved()).unwrap();
        let ports: Vec<_> = container(&children)
            .env
            .as_ref()
            .unwrap()
            .iter()
            .filter(|e| e.name == "JSMCP_PORT")
            .collect();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].value.as_deref(), Some("4000"));
    }

    #[test]
    fn references_hash_ignores_order_but_not_content() {
        let a = references_hash(vec![
            ("a".into(), b"1".to_vec()),
            ("b".into(), b"2".to_vec()),
        ]);
        let b = references_hash(vec![
            ("b".into(), b"2".to_vec()),
            ("a".into(), b"1".to_vec()),
        ]);
        let c = references_hash(vec![
            ("a".into(), b"1".to_vec()),
            ("b".into(), b"3".to_vec()),
        ]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
