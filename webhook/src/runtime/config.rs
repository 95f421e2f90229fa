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

    /// DNS names of the serving certificate (self-managed mode).
    #[arg(
        long,
        env = "LIFECYCLE_TLS_DNS_NAMES",
        value_delimiter = ',',
        default_value = "lifecycle-webhook.lifecycle-jobs-system.svc,lifecycle-webhook.lifecycle-jobs-system.svc.cluster.local,lifecycle-webhook.lifecycle-jobs-system,lifecycle-webhook"
    )]
    pub tls_dns_names: Vec<String>,

    /// Names of the webhook configurations whose caBundle the server keeps current (self-managed mode).
    #[arg(long, env = "LIFECYCLE_MUTATING_WEBHOOK", default_value = "lifecycle-jobs")]
    pub mutating_webhook: String,
    #[arg(long, env = "LIFECYCLE_VALIDATING_WEBHOOK", default_value = "lifecycle-jobs")]
    pub validating_webhook: String,

    /// Namespace the server runs in.
    #[arg(long, env = "LIFECYCLE_NAMESPACE", default_value = lifecycle_contract::names::SYSTEM_NAMESPACE)]
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

    /// URL agents use to reach the outputs API.
    #[arg(long, env = "LIFECYCLE_SERVER_URL", default_value = "https://lifecycle-webhook.lifecycle-jobs-system.svc:443")]
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

impl Config {
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

    #[test]
    fn project_variables_sources_default_to_the_servers_namespace() {
        let c = Config::parse_from(["lifecycle-webhook"]);
        assert_eq!(c.project_variables_sources(), [lifecycle_contract::names::SYSTEM_NAMESPACE]);
        let c = Config::parse_from(["lifecycle-webhook", "--project-variables-namespaces", "vars, team-vars,,vars"]);
        assert_eq!(c.project_variables_sources(), ["vars", "team-vars"]);
    }
}
