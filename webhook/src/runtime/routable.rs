//! `lifecycle-webhook wait-routable`: waits until the server's Service accepts
//! connections, and exits 0 (1 after `--timeout`).
//!
//! The Helm chart runs it as a post-install/post-upgrade hook. A Deployment is
//! available as soon as its pods are ready, but the Service routes to them only
//! once kube-proxy has programmed the new endpoints, a few seconds later; until
//! then the API server's calls to the webhooks are refused, and the webhooks
//! fail closed inside environments. With the hook, `helm install --wait`
//! returns once the Service routes (as seen from the hook's node; every node's
//! kube-proxy follows the same endpoints within moments of each other).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

/// The environment variables the kubelet sets for the Service `lifecycle-webhook`.
const SERVICE_HOST: &str = "LIFECYCLE_WEBHOOK_SERVICE_HOST";
const SERVICE_PORT: &str = "LIFECYCLE_WEBHOOK_SERVICE_PORT";

#[derive(Debug, Parser)]
#[command(name = "lifecycle-webhook wait-routable", about = "Wait until the server's Service accepts connections")]
pub struct Args {
    /// host:port to connect to (default: the Service from $LIFECYCLE_WEBHOOK_SERVICE_HOST and _PORT).
    #[arg(long)]
    pub address: Option<String>,
    /// How long to wait at most (e.g. 90s, 2m).
    #[arg(long, default_value = "120s", value_parser = crate::runtime::duration::parse_duration)]
    pub timeout: Duration,
    /// Connections in a row that must succeed (spread over the Service's endpoints).
    #[arg(long, default_value_t = 3)]
    pub successes: u32,
    /// Namespace of the server, named in the hint of a failure (the chart sets it
    /// from the downward API: the check runs beside the server).
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
}

/// The address to check: `--address`, else the Service's variables.
pub fn address(args: &Args, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    if let Some(a) = &args.address {
        return Ok(a.clone());
    }
    match (env(SERVICE_HOST), env(SERVICE_PORT)) {
        (Some(host), Some(port)) if host.contains(':') => Ok(format!("[{host}]:{port}")),
        (Some(host), Some(port)) => Ok(format!("{host}:{port}")),
        _ => bail!(
            "no --address and no ${SERVICE_HOST}/${SERVICE_PORT}: run this in a pod created after the Service \
             lifecycle-webhook, with enableServiceLinks left on"
        ),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let address = address(&args, |k| std::env::var(k).ok())?;
    let started = Instant::now();
    let mut in_a_row = 0;
    let mut last_error = String::new();
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(&address)).await;
        match attempt {
            Ok(Ok(_)) => in_a_row += 1,
            Ok(Err(e)) => (in_a_row, last_error) = (0, e.to_string()),
            Err(_) => (in_a_row, last_error) = (0, "no answer within 2s".into()),
        }
        if in_a_row >= args.successes {
            println!("the Service at {address} accepts connections ({in_a_row} in a row, after {:?})", started.elapsed());
            return Ok(());
        }
        if started.elapsed() >= args.timeout {
            return Err(anyhow::anyhow!("last attempt: {last_error}")).with_context(|| {
                format!(
                    "the Service at {address} does not accept connections after {:?}; check that the server's pods are \
                     ready and listed: kubectl -n {} get pods,endpointslices",
                    args.timeout,
                    args.namespace.as_deref().unwrap_or("<the server's namespace>")
                )
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(address: Option<&str>) -> Args {
        Args {
            address: address.map(String::from),
            timeout: Duration::from_secs(1),
            successes: 1,
            namespace: Some("platform".into()),
        }
    }

    #[test]
    fn the_address_comes_from_the_flag_or_the_service_variables() {
        let env = |host: &'static str| move |k: &str| (if k == SERVICE_HOST { host } else { "443" }).to_string().into();
        assert_eq!(address(&args(Some("1.2.3.4:8443")), env("x")).unwrap(), "1.2.3.4:8443");
        assert_eq!(address(&args(None), env("10.96.0.7")).unwrap(), "10.96.0.7:443");
        assert_eq!(address(&args(None), env("fd00::7")).unwrap(), "[fd00::7]:443");
        let e = address(&args(None), |_| None).unwrap_err().to_string();
        assert!(e.contains("enableServiceLinks"), "{e}");
    }

    #[tokio::test]
    async fn a_listening_address_is_routable_and_a_closed_one_times_out_with_a_hint() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { while listener.accept().await.is_ok() {} });
        run(Args { successes: 3, ..args(Some(&open)) }).await.unwrap();

        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
        let e = format!("{:#}", run(args(Some(&closed))).await.unwrap_err());
        assert!(e.contains("does not accept connections") && e.contains("kubectl -n platform get pods,endpointslices"), "{e}");
    }
}
