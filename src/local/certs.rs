//! The local control plane's PKI: a CA, the API server's serving certificate, the
//! service-account signing key pair, an admin token, and the kubeconfig that uses them.
//!
//! Files already present in the directory are kept, so a `js-mcp local` directory can be
//! restarted without invalidating the service-account tokens stored in etcd.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Names and addresses the API server's certificate is valid for.
pub const SERVING_SANS: [&str; 7] = [
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.96.0.1",
];

/// Paths of the generated files and the admin token.
#[derive(Debug, Clone)]
pub struct Pki {
    /// CA certificate (PEM): the API server's clients trust it.
    pub ca_cert: PathBuf,
    /// API server serving certificate (PEM).
    pub server_cert: PathBuf,
    /// API server serving key (PEM).
    pub server_key: PathBuf,
    /// Service-account signing key (PKCS#8 PEM).
    pub sa_key: PathBuf,
    /// Service-account verification key (SPKI PEM).
    pub sa_pub: PathBuf,
    /// Static token file (`token,user,uid,"groups"`).
    pub tokens_csv: PathBuf,
    /// The admin bearer token (group system:masters).
    pub admin_token: String,
}

impl Pki {
    /// Creates (or reuses) every file under `dir`.
    pub fn ensure(dir: &Path) -> crate::Result<Pki> {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::Error::io(format!("creating {}", dir.display()), e))?;
        let pki = Pki {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
            tokens_csv: dir.join("tokens.csv"),
            admin_token: String::new(),
        };
        let ca_key_path = dir.join("ca.key");
        let all_present = [
            &pki.ca_cert,
            &ca_key_path,
            &pki.server_cert,
            &pki.server_key,
            &pki.sa_key,
            &pki.sa_pub,
        ]
        .iter()
        .all(|p| p.is_file());
        if !all_present {
            generate(dir, &pki, &ca_key_path)?;
        }
        let admin_token = ensure_token_file(&pki.tokens_csv)?;
        Ok(Pki { admin_token, ..pki })
    }

    /// The CA certificate's PEM text.
    pub fn ca_pem(&self) -> crate::Result<String> {
        read(&self.ca_cert)
    }
}

fn generate(dir: &Path, pki: &Pki, ca_key_path: &Path) -> crate::Result<()> {
    let err = |what: &str, e: rcgen::Error| crate::Error::Other(format!("{what}: {e}"));

    let ca_key = KeyPair::generate().map_err(|e| err("generating the CA key", e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| err("building the CA certificate", e))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "js-mcp-local-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|e| err("self-signing the CA", e))?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate().map_err(|e| err("generating the server key", e))?;
    let sans: Vec<String> = SERVING_SANS.iter().map(|s| s.to_string()).collect();
    let mut server_params =
        CertificateParams::new(sans).map_err(|e| err("building the server certificate", e))?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    server_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(|e| err("signing the server certificate", e))?;

    let sa_key = KeyPair::generate().map_err(|e| err("generating the service-account key", e))?;

    write_secret(ca_key_path, &ca_key.serialize_pem())?;
    write_secret(&pki.server_key, &server_key.serialize_pem())?;
    write_secret(&pki.sa_key, &sa_key.serialize_pem())?;
    write(&pki.sa_pub, &sa_key.public_key_pem())?;
    write(&pki.server_cert, &server_cert.pem())?;
    // The CA goes last: its presence marks a complete set (see `all_present`).
    write(&pki.ca_cert, &ca_cert.pem())?;
    tracing::debug!(dir = %dir.display(), "generated local control-plane PKI");
    Ok(())
}

fn ensure_token_file(path: &Path) -> crate::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path)
        && let Some(token) = text
            .lines()
            .find(|l| l.contains("system:masters"))
            .and_then(|l| l.split(',').next())
            .filter(|t| !t.is_empty())
    {
        return Ok(token.to_string());
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_secret(path, &format!("{token},admin,admin,\"system:masters\"\n"))?;
    Ok(token)
}

/// A kubeconfig with one cluster/user/context named `js-mcp-local`.
pub fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str) -> crate::Result<String> {
    let ca_data = base64(ca_pem.as_bytes())?;
    Ok(format!(
        "apiVersion: v1
kind: Config
clusters:
- name: js-mcp-local
  cluster:
    server: {server}
    certificate-authority-data: {ca_data}
users:
- name: js-mcp-local-admin
  user:
    token: {token}
contexts:
- name: js-mcp-local
  context:
    cluster: js-mcp-local
    user: js-mcp-local-admin
    namespace: default
current-context: js-mcp-local
"
    ))
}

/// Standard base64, through k8s-openapi's `ByteString` (the encoding Kubernetes uses for
/// `data` fields) so no extra crate is needed.
pub fn base64(bytes: &[u8]) -> crate::Result<String> {
    match serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(crate::Error::Other(format!(
            "base64 encoding produced {other} instead of a string"
        ))),
    }
}

fn read(path: &Path) -> crate::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| crate::Error::io(format!("reading {}", path.display()), e))
}

fn write(path: &Path, text: &str) -> crate::Result<()> {
    std::fs::write(path, text)
        .map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))
}

/// Writes a file readable by its owner only (keys, tokens).
pub fn write_secret(path: &Path, text: &str) -> crate::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_existing_pki_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::ensure(dir.path()).unwrap();
        let ca = first.ca_pem().unwrap();
        let second = Pki::ensure(dir.path()).unwrap();
        assert_eq!(first.admin_token, second.admin_token);
        assert_eq!(ca, second.ca_pem().unwrap());
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let csv = std::fs::read_to_string(&first.tokens_csv).unwrap();
        assert_eq!(
            csv.trim(),
            format!("{},admin,admin,\"system:masters\"", first.admin_token)
        );
    }

    #[test]
    fn kubeconfig_parses_with_kube() {
        let yaml = kubeconfig_yaml("https://127.0.0.1:6443", "PEM", "tok").unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("js-mcp-local"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("UEVN"));
    }
}
