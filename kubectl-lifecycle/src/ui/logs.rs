//! A run's log, followed as it is written, as server-sent events: the main
//! containers of the run's latest pod, then its lifecycle-agent (where a
//! rejected output file says why), as `kubectl lifecycle logs -f` prints them.
//!
//! A job's log is its own text, but this view promises no sensitive value in
//! the browser: every sensitive output value the person may read (the
//! environment's Secret `lifecycle-outputs`) is masked in each line.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::LogParams;
use kube::{Api, Client};
use lifecycle_contract::names;
use tokio::sync::mpsc;

use super::Shared;
use crate::jobs;
use crate::logs::{job_pods, no_pod, started};
use crate::variable::MASK;

/// Events buffered for a slow page before the reader waits.
const BUFFER: usize = 256;
/// How long a log is followed at most (a run has its own deadline; this bounds a stuck one).
const FOLLOW_AT_MOST: Duration = Duration::from_secs(3600);
/// Shorter sensitive values are not masked in logs: they would mask ordinary words.
const MASK_MIN_LEN: usize = 4;

pub(crate) async fn stream(State(ui): State<Shared>, Path((ns, run)): Path<(String, String)>) -> Response {
    let (tx, rx) = mpsc::channel::<SseEvent>(BUFFER);
    let client = ui.client.clone();
    tokio::spawn(async move {
        let out = Out(tx);
        let followed = tokio::time::timeout(FOLLOW_AT_MOST, follow(&client, &ns, &run, &out)).await;
        match followed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => out.note(&format!("{e:#}")).await,
            Err(_) => out.note("stopped following after an hour: reload to follow again").await,
        }
        out.send(SseEvent::default().event("end").data("end")).await;
    });
    let events = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    Sse::new(events.take_until(ui.closing())).keep_alive(KeepAlive::default()).into_response()
}

struct Out(mpsc::Sender<SseEvent>);

impl Out {
    /// False once the page went away.
    async fn send(&self, e: SseEvent) -> bool {
        self.0.send(e).await.is_ok()
    }

    async fn note(&self, text: &str) {
        self.send(SseEvent::default().event("note").data(text)).await;
    }

    /// Container `container` waits to start, and why: the page shows one such line per container,
    /// until the event `started`.
    async fn waiting(&self, container: &str, why: &str) {
        let data = serde_json::json!({ "c": container, "why": why }).to_string();
        self.send(SseEvent::default().event("waiting").data(data)).await;
    }

    async fn started(&self, container: &str) {
        self.send(SseEvent::default().event("started").data(container)).await;
    }

    async fn line(&self, container: &str, text: &str) -> bool {
        let data = serde_json::json!({ "c": container, "t": text }).to_string();
        self.send(SseEvent::default().event("line").data(data)).await
    }
}

async fn follow(client: &Client, ns: &str, run: &str, out: &Out) -> anyhow::Result<()> {
    let job = Api::<Job>::namespaced(client.clone(), ns)
        .get_opt(run)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run {run} not found in namespace {ns} (deleted with its Job?)"))?;
    let secrets = sensitive_values(client, ns).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut told = false;
    let pod = loop {
        let list = job_pods(&pods, &job).await?;
        if let Some(p) = list.into_iter().next() {
            break p;
        }
        let now = Api::<Job>::namespaced(client.clone(), ns).get_opt(run).await?;
        match now {
            Some(j) if jobs::state(&j).phase.is_finished() => anyhow::bail!("run {run} has no pod: {}", no_pod(&j, ns)),
            None => anyhow::bail!("run {run} was deleted"),
            Some(_) if !told => {
                out.note("waiting for the run's pod…").await;
                told = true;
            }
            Some(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut containers: Vec<(String, bool)> = spec.containers.iter().map(|c| (c.name.clone(), false)).collect();
    if spec.init_containers.iter().flatten().any(|c| c.name == names::injected::AGENT_CONTAINER) {
        containers.push((names::injected::AGENT_CONTAINER.to_string(), true));
    }
    for (container, init) in containers {
        if !container_log(&pods, &pod_name, &container, init, &secrets, out).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Follows one container's log to its end; false when the page went away.
async fn container_log(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    init: bool,
    secrets: &[String],
    out: &Out,
) -> anyhow::Result<bool> {
    let mut told = String::new();
    loop {
        let Some(p) = pods.get_opt(pod).await? else {
            out.note(&format!("pod {pod} is gone")).await;
            return Ok(true);
        };
        match started(&p, container, init) {
            Ok(()) => {
                if !told.is_empty() {
                    out.started(container).await;
                }
                break;
            }
            Err(why) => {
                if why != told {
                    out.waiting(container, &why).await;
                    told = why;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let lp = LogParams { container: Some(container.to_string()), follow: true, ..Default::default() };
    let mut lines = pods.log_stream(pod, &lp).await?.lines();
    while let Some(line) = lines.try_next().await? {
        if !out.line(container, &masked(&line, secrets)).await {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The environment's sensitive output values the person may read, longest first.
async fn sensitive_values(client: &Client, ns: &str) -> Vec<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns).get_opt(names::OUTPUTS_OBJECT).await.ok().flatten();
    let mut values: Vec<String> = secret
        .and_then(|s| s.data)
        .unwrap_or_default()
        .into_values()
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .filter(|v| v.chars().count() >= MASK_MIN_LEN)
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

/// `line` with every sensitive value replaced by the mask.
fn masked(line: &str, secrets: &[String]) -> String {
    let mut line = line.to_string();
    for s in secrets {
        if line.contains(s.as_str()) {
            line = line.replace(s.as_str(), MASK);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_values_are_masked_in_lines() {
        let secrets = vec!["s3cr3t-longer".to_string(), "s3cr3t".to_string()];
        assert_eq!(masked("password=s3cr3t-longer and s3cr3t", &secrets), format!("password={MASK} and {MASK}"));
        assert_eq!(masked("nothing here", &secrets), "nothing here");
    }
}
