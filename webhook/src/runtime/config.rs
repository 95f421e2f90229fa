//! Command-line flags (each also readable from an environment variable).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "lifecycle-webhook",
    version,
    about = "lifecycle-jobs server: admission webhooks, outputs API and environment controller"
)]
pub struct Config {
    /// TLS address of the webhooks and the outputs API.
    #[arg(long, env = "LIFECYCLE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// Plain HTTP admin address: /healthz, /readyz, /metrics.
    #[arg(long, env = "LIFECYCLE_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,

    /// Where the serving certificate comes from.
    #[arg(long, env = "LIFECYCLE_CERT_SOURCE", value_enum, default_value_t = CertSource::SelfManaged)]
    pub cert_source: CertSource,

    /// Directory of tls.crt, tls.key and (optional) ca.crt, with --cert-source=files.
    #[arg(long, env = "LIFECYCLE_TLS_DIR", default_value = "/var/run/lifecycle-jobs/tls")]
    pub tls_dir: PathBuf,

    /// Secret (in --namespace) that holds the self-managed CA and serving certificate.
    #[arg(long, env = "LIFECYCLE_TLS_SECRET", default_value = "lifecycle-webhook-tls")]
    pub tls_secret: String,

    /// DNS names of the serving certificate (self-managed mode). Default: the names of the
    /// Service lifecycle-webhook in --namespace (`lifecycle-webhook.<namespace>.svc`,
    /// `….svc.cluster.local`, `lifecycle-webhook.<namespace>`, `lifecycle-webhook`).
    #[arg(long, env = "LIFECYCLE_TLS_DNS_NAMES", value_delimiter = ',')]
    pub tls_dns_names: Vec<String>,

    /// Names of the webhook configurations whose caBundle the server keeps current (self-managed mode).
    #[arg(long, env = "LIFECYCLE_MUTATING_WEBHOOK", default_value = "lifecycle-jobs")]
    pub mutating_webhook: String,
    #[arg(long, env = "LIFECYCLE_VALIDATING_WEBHOOK", default_value = "lifecycle-jobs")]
    pub validating_webhook: String,

    /// Namespace the server runs in. Default: the pod's own, from $POD_NAMESPACE (the
    /// downward API) or else the service account's namespace file; the server does not
    /// start when neither tells it (see [`Config::resolve`]).
    #[arg(long, env = "LIFECYCLE_NAMESPACE", default_value = "")]
    pub namespace: String,

    /// The server's own service account (in --namespace): only it creates lifecycle runs.
    #[arg(long, env = "LIFECYCLE_SERVICE_ACCOUNT", default_value = "lifecycle-webhook")]
    pub service_account: String,

    /// This replica's identity for leader election (the pod name).
    #[arg(long, env = "POD_NAME", default_value = "lifecycle-webhook")]
    pub pod_name: String,

    /// Image of the agent sidecar injected into job pods.
    #[arg(long, env = "LIFECYCLE_AGENT_IMAGE", default_value = "ghcr.io/lifecycle-jobs/lifecycle-agent:v0.1.0")]
    pub agent_image: String,

    /// Pull policy of the agent image.
    #[arg(long, env = "LIFECYCLE_AGENT_IMAGE_PULL_POLICY", default_value = "IfNotPresent")]
    pub agent_image_pull_policy: String,

    /// URL agents use to reach the outputs API. Default:
    /// `https://lifecycle-webhook.<namespace>.svc:443` (the Service in --namespace).
    #[arg(long, env = "LIFECYCLE_SERVER_URL", default_value = "")]
    pub server_url: String,

    /// `IP:port` agents dial to reach the outputs API (they resolve no names; the URL's
    /// host still names the server for TLS). Default: the ClusterIP of the Service that
    /// --server-url's host names, read once at startup, and the URL's port.
    #[arg(long, env = "LIFECYCLE_SERVER_ADDR")]
    pub server_addr: Option<String>,

    /// Default CPU request and limit of lifecycle job containers without resources (empty: none).
    #[arg(long, env = "LIFECYCLE_DEFAULT_CPU", default_value = "500m")]
    pub default_cpu: String,

    /// Default memory request and limit of lifecycle job containers without resources (empty: none).
    #[arg(long, env = "LIFECYCLE_DEFAULT_MEMORY", default_value = "512Mi")]
    pub default_memory: String,

    /// Run the environment controller (leader-elected).
    #[arg(long, env = "LIFECYCLE_CONTROLLER", default_value_t = true, action = clap::ArgAction::Set)]
    pub controller: bool,

    /// Namespaces whose ConfigMaps and Secrets labelled
    /// `lifecycle-jobs.dev/project-variables=<project>` are mirrored into that
    /// project's environments (comma list; empty: the server's own namespace).
    /// Earlier namespaces lose a key to later ones. The server needs to read
    /// ConfigMaps and Secrets there (a Role in each).
    #[arg(long, env = "LIFECYCLE_PROJECT_VARIABLES_NAMESPACES", value_delimiter = ',', default_value = "")]
    pub project_variables_namespaces: Vec<String>,

    /// Log format.
    #[arg(long, env = "LIFECYCLE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Lifetime of the self-managed serving certificate (renewed after two thirds of it),
    /// e.g. 90d, 12h, 10m, 30s.
    #[arg(long, env = "LIFECYCLE_CERT_VALIDITY", default_value = "90d", value_parser = crate::runtime::duration::parse_duration)]
    pub cert_validity: std::time::Duration,

    /// Lifetime of the self-managed CA (rotated after two thirds of it).
    #[arg(long, env = "LIFECYCLE_CA_VALIDITY", default_value = "365d", value_parser = crate::runtime::duration::parse_duration)]
    pub ca_validity: std::time::Duration,

    /// Delay between the steps of a CA rotation: how long a new CA is trusted before it
    /// signs, and an old one after it stopped signing.
    #[arg(long, env = "LIFECYCLE_CA_OVERLAP", default_value = "10m", value_parser = crate::runtime::duration::parse_duration)]
    pub ca_overlap: std::time::Duration,
}

/// The Service in front of the server (manifests/base/service.yaml, the chart's
/// service.yaml): the default server URL and certificate names are its names.
pub(crate) const SERVICE_NAME: &str = "lifecycle-webhook";

/// Where the kubelet mounts the namespace of the pod's service account.
const SERVICE_ACCOUNT_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl Config {
    /// Fills in what depends on where the server runs: its namespace (the flag,
    /// else the pod's own) and, when not given, the server URL and the
    /// certificate names derived from it. The namespace is never a built-in
    /// name: installed elsewhere (`helm install -n platform`), a default would
    /// make the server watch, sign and advertise the wrong namespace.
    pub fn resolve(self) -> anyhow::Result<Self> {
        let pod_env = std::env::var("POD_NAMESPACE").ok();
        let file = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE).ok();
        self.resolved(pod_env.as_deref(), file.as_deref()).map_err(anyhow::Error::msg)
    }

    /// Pure part of [`Config::resolve`]: `pod_env` is $POD_NAMESPACE, `file` the
    /// service account's namespace file (each `None` when absent).
    pub(crate) fn resolved(mut self, pod_env: Option<&str>, file: Option<&str>) -> Result<Self, String> {
        self.namespace = own_namespace(&self.namespace, pod_env, file)?;
        if self.server_url.trim().is_empty() {
            self.server_url = format!("https://{SERVICE_NAME}.{}.svc:443", self.namespace);
        }
        self.tls_dns_names.retain(|n| !n.trim().is_empty());
        if self.tls_dns_names.is_empty() {
            let ns = &self.namespace;
            self.tls_dns_names = vec![
                format!("{SERVICE_NAME}.{ns}.svc"),
                format!("{SERVICE_NAME}.{ns}.svc.cluster.local"),
                format!("{SERVICE_NAME}.{ns}"),
                SERVICE_NAME.to_string(),
            ];
        }
        Ok(self)
    }

    /// The variables source namespaces, in merge order (see the flag).
    pub fn project_variables_sources(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for ns in self.project_variables_namespaces.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if !out.iter().any(|o| o == ns) {
                out.push(ns.to_string());
            }
        }
        if out.is_empty() {
            out.push(self.namespace.clone());
        }
        out
    }

    /// The username the API server gives this server's requests.
    pub fn server_username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.service_account)
    }
}

/// The namespace the server runs in: `flag` (--namespace / $LIFECYCLE_NAMESPACE)
/// when set, else $POD_NAMESPACE, else the service account's namespace file.
fn own_namespace(flag: &str, pod_env: Option<&str>, file: Option<&str>) -> Result<String, String> {
    let found = [("--namespace", Some(flag)), ("$POD_NAMESPACE", pod_env), (SERVICE_ACCOUNT_NAMESPACE_FILE, file)]
        .into_iter()
        .find_map(|(from, v)| v.map(str::trim).filter(|v| !v.is_empty()).map(|v| (from, v)));
    match found {
        Some((_, ns)) if valid_namespace(ns) => Ok(ns.to_string()),
        Some((from, ns)) => Err(format!("namespace {ns:?} (from {from}) is not a Kubernetes namespace name (a DNS label)")),
        None => Err(format!(
            "cannot tell which namespace the server runs in: no --namespace (LIFECYCLE_NAMESPACE), no $POD_NAMESPACE \
             and no {SERVICE_ACCOUNT_NAMESPACE_FILE}; in a pod, set POD_NAMESPACE from the downward API \
             (fieldRef metadata.namespace), elsewhere pass --namespace"
        )),
    }
}

/// A DNS label (RFC 1123), as namespace names are: it ends up in URLs, DNS
/// names and the admission policies' usernames.
fn valid_namespace(ns: &str) -> bool {
    (1..=63).contains(&ns.len())
        && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CertSource {
    /// The server creates and rotates its own CA and certificate, stored in --tls-secret.
    SelfManaged,
    /// Read from --tls-dir (e.g. a cert-manager Secret), reloaded on change.
    Files,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("lifecycle-webhook").chain(args.iter().copied()))
    }

    #[test]
    fn the_namespace_is_the_flag_else_the_pods() {
        let ns = |flag: &[&str], env, file| parsed(flag).resolved(env, file).map(|c| c.namespace);
        assert_eq!(ns(&["--namespace", "ops"], Some("platform"), Some("x")), Ok("ops".into()));
        assert_eq!(ns(&[], Some("platform"), Some("other")), Ok("platform".into()));
        assert_eq!(ns(&[], Some(" "), Some("platform\n")), Ok("platform".into()), "the file, trimmed");
        let e = ns(&[], None, None).unwrap_err();
        assert!(e.contains("POD_NAMESPACE") && e.contains("--namespace"), "no silent default: {e}");
        let e = ns(&["--namespace", "Not_A_Namespace"], None, None).unwrap_err();
        assert!(e.contains("--namespace") && e.contains("DNS label"), "{e}");
    }

    #[test]
    fn the_url_and_the_certificate_names_follow_the_namespace() {
        let c = parsed(&[]).resolved(Some("platform"), None).unwrap();
        assert_eq!(c.server_url, "https://lifecycle-webhook.platform.svc:443");
        assert_eq!(
            c.tls_dns_names,
            [
                "lifecycle-webhook.platform.svc",
                "lifecycle-webhook.platform.svc.cluster.local",
                "lifecycle-webhook.platform",
                "lifecycle-webhook"
            ]
        );
        assert_eq!(c.server_username(), "system:serviceaccount:platform:lifecycle-webhook");
        // Set explicitly, they stay as given.
        let c = parsed(&["--server-url", "https://10.0.0.7:8443", "--tls-dns-names", "a.example,b.example"])
            .resolved(Some("platform"), None)
            .unwrap();
        assert_eq!(
            (c.server_url.as_str(), c.tls_dns_names.as_slice()),
            ("https://10.0.0.7:8443", &["a.example".to_string(), "b.example".into()][..])
        );
    }

    #[test]
    fn project_variables_sources_default_to_the_servers_namespace() {
        let c = parsed(&[]).resolved(Some("platform"), None).unwrap();
        assert_eq!(c.project_variables_sources(), ["platform"]);
        let c = Config::parse_from(["lifecycle-webhook", "--project-variables-namespaces", "vars, team-vars,,vars"]);
        assert_eq!(c.project_variables_sources(), ["vars", "team-vars"]);
    }
}
