//! The `IP:port` agents dial to reach the outputs API.
//!
//! The agent is a static binary without NSS and resolves no names: admission
//! gives it this address (`LIFECYCLE_SERVER_ADDR`) beside the URL, whose host
//! stays the name the server's certificate is checked against. The address is
//! `--server-addr` when set, else the ClusterIP of the Service that the URL's
//! host names, read once at startup: a Service's ClusterIP cannot change for
//! the Service's life, so admission uses it from memory and makes no API call.
//! (Service-link variables would make no API call at all, but the server's
//! pods run with `enableServiceLinks: false`, and they would also miss a
//! Service created after the pod.)

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Service;
use kube::Api;

use crate::runtime::backoff::Backoff;

/// Attempts to read the Service before the server gives up (and the kubelet restarts it).
const ATTEMPTS: u32 = 8;
/// First delay between attempts, doubled each time up to [`MAX_DELAY`] (~40 s in all).
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(10);

/// Where the agents' address comes from, decided from the server URL alone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The URL's host is already an IP address: dial it.
    Literal(String),
    /// The URL's host names this Service: dial its ClusterIP on `port`.
    Service { namespace: String, name: String, port: u16 },
}

/// Reads `server_url` (`https://<service>[.<namespace>[.svc[.<cluster domain>]]][:port][/path]`);
/// a host without a namespace means `own_namespace`.
pub(crate) fn source(server_url: &str, own_namespace: &str) -> Result<Source, String> {
    let hint = "set --server-addr (LIFECYCLE_SERVER_ADDR) to the Service's IP:port, or name a Service in the URL";
    let rest = server_url
        .trim()
        .strip_prefix("https://")
        .or_else(|| server_url.trim().strip_prefix("http://"))
        .ok_or_else(|| format!("--server-url {server_url:?} must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or_else(|| format!("--server-url {server_url:?}: bad IPv6 address"))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let default_port = if server_url.trim().starts_with("https://") { 443 } else { 80 };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("--server-url {server_url:?}: bad port"))?,
        None => default_port,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Source::Literal(socket_addr(ip, port)));
    }
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    let (name, namespace) = match labels.as_slice() {
        [name] => (*name, own_namespace),
        [name, ns] | [name, ns, "svc", ..] => (*name, *ns),
        _ => {
            return Err(format!(
                "--server-url {server_url:?}: its host does not name a Service (<name>.<namespace>.svc); {hint}"
            ));
        }
    };
    if name.is_empty() || namespace.is_empty() {
        return Err(format!("--server-url {server_url:?}: empty Service name or namespace; {hint}"));
    }
    Ok(Source::Service { namespace: namespace.into(), name: name.into(), port })
}

/// `ip:port`, with brackets around an IPv6 address.
fn socket_addr(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// The address from a Service's `spec.clusterIP`: none for a headless Service.
pub(crate) fn from_cluster_ip(cluster_ip: Option<&str>, port: u16) -> Result<String, String> {
    match cluster_ip.map(str::trim) {
        None | Some("") => Err("it has no ClusterIP yet".into()),
        Some("None") => Err("it is headless (clusterIP: None): agents need one address to dial".into()),
        Some(ip) => {
            ip.parse::<IpAddr>().map(|ip| socket_addr(ip, port)).map_err(|_| format!("its ClusterIP {ip:?} is not an IP address"))
        }
    }
}

/// `--server-addr` when set, else the ClusterIP of the URL's Service, read with
/// a bounded retry (the Service may be created just after the Deployment).
pub(crate) async fn resolve(
    client: &kube::Client,
    server_addr: Option<&str>,
    server_url: &str,
    own_namespace: &str,
) -> anyhow::Result<String> {
    if let Some(a) = server_addr.map(str::trim).filter(|a| !a.is_empty()) {
        a.parse::<std::net::SocketAddr>()
            .with_context(|| format!("--server-addr {a:?} is not an IP address and port (e.g. 10.96.12.34:443)"))?;
        return Ok(a.to_string());
    }
    let (namespace, name, port) = match source(server_url, own_namespace).map_err(anyhow::Error::msg)? {
        Source::Literal(addr) => return Ok(addr),
        Source::Service { namespace, name, port } => (namespace, name, port),
    };
    let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let mut delays = Backoff::new(FIRST_DELAY, MAX_DELAY, ATTEMPTS);
    let mut attempt = 1;
    let why = loop {
        let why = match api.get(&name).await {
            Ok(svc) => match from_cluster_ip(svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()), port) {
                Ok(addr) => {
                    tracing::info!(service = %format!("{namespace}/{name}"), addr = %addr, "agents dial the server at this address");
                    return Ok(addr);
                }
                Err(e) => e,
            },
            Err(e) => e.to_string(),
        };
        let Some(delay) = delays.next() else { break why };
        tracing::warn!(service = %format!("{namespace}/{name}"), attempt, error = %why, "reading the server's Service; retrying");
        tokio::time::sleep(delay).await;
        attempt += 1;
    };
    bail!(
        "cannot read the address of Service {namespace}/{name} (named by --server-url) for the agents: {why}; \
         the server needs `get` on that Service (manifests/base/rbac.yaml), or set --server-addr"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, port: u16) -> Result<Source, String> {
        Ok(Source::Service { namespace: ns.into(), name: name.into(), port })
    }

    #[test]
    fn the_url_names_the_service() {
        let own = "lifecycle-jobs-system";
        assert_eq!(source("https://lifecycle-webhook.lifecycle-jobs-system.svc:443", own), svc(own, "lifecycle-webhook", 443));
        assert_eq!(source("https://lifecycle-webhook.other.svc.cluster.local/api", own), svc("other", "lifecycle-webhook", 443));
        assert_eq!(source("https://hook.ns:8443", own), svc("ns", "hook", 8443));
        assert_eq!(source("https://hook", own), svc(own, "hook", 443));
    }

    #[test]
    fn an_ip_in_the_url_is_dialled_as_is() {
        assert_eq!(source("https://10.0.0.7:8443", "x"), Ok(Source::Literal("10.0.0.7:8443".into())));
        assert_eq!(source("https://[fd00::1]", "x"), Ok(Source::Literal("[fd00::1]:443".into())));
    }

    #[test]
    fn urls_that_name_no_service_say_what_to_set() {
        for bad in ["https://webhook.example.com", "https://a.b.c.d", "ftp://x", "https://x:port", "https://.ns.svc"] {
            let e = source(bad, "ns").unwrap_err();
            assert!(e.contains("--server-url"), "{bad}: {e}");
        }
        assert!(source("https://webhook.example.com", "ns").unwrap_err().contains("--server-addr"));
    }

    #[test]
    fn the_address_is_the_cluster_ip_and_the_urls_port() {
        assert_eq!(from_cluster_ip(Some("10.96.12.34"), 443).as_deref(), Ok("10.96.12.34:443"));
        assert_eq!(from_cluster_ip(Some("fd00::1"), 443).as_deref(), Ok("[fd00::1]:443"));
        assert!(from_cluster_ip(Some("None"), 443).unwrap_err().contains("headless"));
        assert!(from_cluster_ip(None, 443).is_err());
        assert!(from_cluster_ip(Some("x"), 443).is_err());
    }
}
