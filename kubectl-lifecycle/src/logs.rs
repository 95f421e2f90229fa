//! `logs JOB`: the main containers of a job's pod, then its lifecycle-agent.

use std::io::Write;
use std::time::Duration;

use anyhow::anyhow;
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};
use lifecycle_contract::{Event, names};

use crate::cli::LogsArgs;
use crate::client::{Ctx, KubeResultExt};
use crate::jobs;
use crate::table::age;

pub async fn run(ctx: &Ctx, args: &LogsArgs) -> anyhow::Result<()> {
    let ns = &ctx.namespace;
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let job = api
        .get_opt(&args.job)
        .await
        .doing(format_args!("get job {} in namespace {ns}", args.job))?
        .ok_or_else(|| anyhow!("job {} not found in namespace {ns}\n  hint: give its namespace with -n", args.job))?;

    let target = if jobs::is_template(&job) {
        // All the runs of the template: when the event asked for has none, the runs of its other
        // events tell what to suggest.
        let selector = format!("{}={}", names::LABEL_JOB, args.job);
        let runs = api
            .list(&ListParams::default().labels(&selector))
            .await
            .doing(format_args!("list runs of {} in namespace {ns}", args.job))?
            .items;
        let Some(run) = jobs::latest_run(&runs, &args.job, args.event).cloned() else {
            return Err(no_run(&job, args.event, &runs, ns));
        };
        crate::errln!(
            "run {} (event {}, created {} ago)",
            jobs::name(&run),
            jobs::run_event(&run).map_or_else(|| "?".to_string(), |e| e.to_string()),
            age(jobs::created(&run), jiff::Timestamp::now())
        );
        run
    } else {
        if let Some(e) = args.event
            && jobs::run_event(&job) != Some(e)
        {
            return Err(anyhow!(
                "--event {e}: job {} is not a lifecycle job (no annotation {}), so it has no runs per event\n  hint: drop --event",
                args.job,
                names::ANNOTATION_ON
            ));
        }
        job
    };
    stream_job(&ctx.client, ns, &target, args.follow, args.tail).await
}

/// Why a lifecycle job has no run to show (of `event` if given), and what to do instead. `runs`
/// are the template's runs of any event.
pub fn no_run(template: &Job, event: Option<Event>, runs: &[Job], ns: &str) -> anyhow::Error {
    let name = jobs::name(template);
    let of = event.map(|e| format!(" of event {e}")).unwrap_or_default();
    let on = match jobs::template_events(template) {
        Ok(on) => on,
        Err(e) => {
            return anyhow!(
                "lifecycle job {name} has no run{of}: {e}\n  hint: write start, stop, delete or a comma list of them"
            );
        }
    };
    if let Some(e) = event.filter(|e| !on.contains(e)) {
        let its_events =
            if on.is_empty() { "no event".to_string() } else { on.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",") };
        // Its latest run of an event it runs on, if any is left.
        let latest = on
            .iter()
            .filter_map(|&o| jobs::latest_run(runs, name, Some(o)).map(|r| (o, r)))
            .max_by(|(_, a), (_, b)| jobs::created(a).cmp(&jobs::created(b)).then_with(|| jobs::name(a).cmp(jobs::name(b))));
        let hint = match (latest, on.first()) {
            (Some((o, _)), _) => {
                format!("see the logs of its latest {o} run: `kubectl lifecycle logs {name} --event {o} -n {ns}`")
            }
            (None, Some(o)) => {
                format!("force a run of one of its events: `kubectl lifecycle run {name} --event {o} -n {ns} --logs`")
            }
            (None, None) => format!("add {e} to its annotation {}", names::ANNOTATION_ON),
        };
        return anyhow!(
            "lifecycle job {name} has no run of event {e}: it does not run on {e} (it runs on {its_events})\n  hint: {hint}"
        );
    }
    let event = event.or_else(|| on.first().copied()).unwrap_or(Event::Start);
    anyhow!(
        "lifecycle job {name} has no run{of} (yet, or any more)\n  hint: force one with `kubectl lifecycle run {name} --event {event} -n {ns} --logs`"
    )
}

/// Why a Job has no pod, when not following it.
pub fn no_pod(job: &Job, ns: &str) -> String {
    let name = jobs::name(job);
    match jobs::state(job).phase {
        jobs::Phase::Suspended if jobs::is_template(job) => {
            "it is suspended (a lifecycle job template never runs itself: look at its runs)".to_string()
        }
        jobs::Phase::Suspended => format!(
            "it is suspended (spec.suspend is true), so it starts no pod\n  hint: resume it with `kubectl patch job {name} -n {ns} -p '{{\"spec\":{{\"suspend\":false}}}}'`"
        ),
        p if p.is_finished() => "its pods were removed (ttlSecondsAfterFinished, or deleted)".to_string(),
        _ => format!("it has not started one yet: follow it with `kubectl lifecycle logs {name} -n {ns} -f`"),
    }
}

/// The pods of a Job, newest first.
pub(crate) async fn job_pods(pods: &Api<Pod>, job: &Job) -> anyhow::Result<Vec<Pod>> {
    let uid = job.metadata.uid.as_deref().unwrap_or_default();
    let mut items = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={uid}")))
        .await
        .doing(format_args!("list the pods of job {}", jobs::name(job)))?
        .items;
    items.sort_by(|a, b| {
        b.metadata.creation_timestamp.cmp(&a.metadata.creation_timestamp).then_with(|| b.metadata.name.cmp(&a.metadata.name))
    });
    Ok(items)
}

fn status_of<'a>(pod: &'a Pod, container: &str, init: bool) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    let list = if init { status.init_container_statuses.as_ref() } else { status.container_statuses.as_ref() };
    list?.iter().find(|s| s.name == container)
}

/// Whether the container has started (its logs can be read), else why not.
pub(crate) fn started(pod: &Pod, container: &str, init: bool) -> Result<(), String> {
    let Some(st) = status_of(pod, container, init) else { return Err("not created yet".into()) };
    let state = st.state.as_ref();
    if state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        || st.last_state.as_ref().is_some_and(|s| s.terminated.is_some())
    {
        return Ok(());
    }
    let waiting = state.and_then(|s| s.waiting.as_ref());
    Err(match waiting {
        Some(w) => match (&w.reason, &w.message) {
            (Some(r), Some(m)) => format!("{r}: {m}"),
            (Some(r), None) => r.clone(),
            _ => "waiting".into(),
        },
        None => "waiting".into(),
    })
}

/// Prints the logs of the main containers of the Job's latest pod, then those of its agent.
pub async fn stream_job(client: &Client, ns: &str, job: &Job, follow: bool, tail: Option<i64>) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let name = jobs::name(job);
    let mut list = job_pods(&pods, job).await?;
    if list.is_empty() {
        if !follow {
            return Err(anyhow!("job {name} has no pod: {}", no_pod(job, ns)));
        }
        crate::errln!("waiting for a pod of job {name}...");
        while list.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            list = job_pods(&pods, job).await?;
        }
    }
    if list.len() > 1 {
        let others: Vec<&str> = list[1..].iter().filter_map(|p| p.metadata.name.as_deref()).collect();
        crate::errln!("job {name} has {} pods (retries); showing the latest (earlier: {})", list.len(), others.join(", "));
    }
    let pod_name = list[0].metadata.name.clone().unwrap_or_default();
    let spec = list[0].spec.clone().unwrap_or_default();
    let mains: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let has_agent = spec.init_containers.iter().flatten().any(|c| c.name == names::injected::AGENT_CONTAINER);

    for c in &mains {
        if mains.len() > 1 {
            crate::outln!("==> container {c} <==");
        }
        container_logs(&pods, &pod_name, c, false, follow, tail).await?;
    }
    crate::outln!();
    crate::outln!("==> {} (output capture) <==", names::injected::AGENT_CONTAINER);
    if has_agent {
        container_logs(&pods, &pod_name, names::injected::AGENT_CONTAINER, true, follow, tail).await?;
    } else {
        crate::outln!(
            "(no {} in pod {pod_name}: output capture is off for this job, or the pod was not admitted in an environment)",
            names::injected::AGENT_CONTAINER
        );
    }
    Ok(())
}

async fn container_logs(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    init: bool,
    follow: bool,
    tail: Option<i64>,
) -> anyhow::Result<()> {
    let mut told = String::new();
    loop {
        let p = pods.get(pod).await.doing(format_args!("get pod {pod}"))?;
        match started(&p, container, init) {
            Ok(()) => break,
            Err(why) if !follow => {
                crate::outln!("(container {container} has not started: {why})");
                return Ok(());
            }
            Err(why) => {
                if why != told {
                    crate::errln!("container {container} of pod {pod} has not started: {why}; waiting...");
                    told = why;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    // The container's own output is written unchanged, as `kubectl logs` does:
    // it is what the job printed, asked for by name, piped to files and tools,
    // with colours people expect (see crate::sanitize). Our lines around it are sanitized.
    let lp = LogParams { container: Some(container.to_string()), follow, tail_lines: tail, ..Default::default() };
    if follow {
        let reader = pods.log_stream(pod, &lp).await.doing(format_args!("stream the logs of {pod}/{container}"))?;
        let mut lines = reader.lines();
        while let Some(line) = lines.try_next().await.map_err(|e| anyhow!("log stream of {pod}/{container} broke: {e}"))? {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()?;
        }
    } else {
        let text = pods.logs(pod, &lp).await.doing(format_args!("get the logs of {pod}/{container}"))?;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.is_empty() && !text.ends_with('\n') {
            writeln!(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::{job, run, with_condition};

    fn text(e: anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn no_run_of_an_event_the_job_does_not_run_on_suggests_its_own_events() {
        let seed = job("seed", &[], &[(names::ANNOTATION_ON, "start")]);
        let e = text(no_run(&seed, Some(Event::Stop), &[], "env"));
        assert!(e.contains("lifecycle job seed has no run of event stop: it does not run on stop (it runs on start)"), "{e}");
        assert!(e.contains("`kubectl lifecycle run seed --event start -n env --logs`"), "{e}");
        assert!(!e.contains("--event stop"), "never suggests what the plugin refuses: {e}");

        // With a run of one of its events left, its logs are the suggestion.
        let runs = vec![
            run("seed-start-a", "seed", "start", "2025-01-01T00:00:00Z"),
            run("seed-delete-b", "seed", "delete", "2025-01-01T00:09:00Z"),
            run("other-start-c", "other", "start", "2025-01-01T00:09:00Z"),
        ];
        let two = job("seed", &[], &[(names::ANNOTATION_ON, "start,delete")]);
        let e = text(no_run(&two, Some(Event::Stop), &runs, "env"));
        assert!(e.contains("it does not run on stop (it runs on start,delete)"), "{e}");
        assert!(e.contains("`kubectl lifecycle logs seed --event delete -n env`"), "the latest run's event: {e}");

        let none = job("seed", &[], &[(names::ANNOTATION_ON, " ")]);
        let e = text(no_run(&none, Some(Event::Stop), &[], "env"));
        assert!(e.contains("it runs on no event") && e.contains("add stop to its annotation lifecycle-jobs.dev/on"), "{e}");
    }

    #[test]
    fn no_run_yet_of_an_event_it_runs_on_suggests_forcing_one() {
        let seed = job("seed", &[], &[(names::ANNOTATION_ON, "stop,start")]);
        let e = text(no_run(&seed, Some(Event::Start), &[], "env"));
        assert!(e.contains("lifecycle job seed has no run of event start (yet, or any more)"), "{e}");
        assert!(e.contains("`kubectl lifecycle run seed --event start -n env --logs`"), "{e}");
        let e = text(no_run(&seed, None, &[], "env"));
        assert!(e.contains("lifecycle job seed has no run (yet"), "{e}");
        assert!(e.contains("`kubectl lifecycle run seed --event stop -n env --logs`"), "its first event: {e}");

        let bad = job("seed", &[], &[(names::ANNOTATION_ON, "deploy")]);
        let e = text(no_run(&bad, Some(Event::Start), &[], "env"));
        assert!(e.contains("deploy") && !e.contains("kubectl lifecycle run"), "{e}");
    }

    #[test]
    fn no_pod_of_a_suspended_job_says_how_to_resume_it() {
        let mut plain = job("plain", &[], &[]);
        plain.spec.as_mut().unwrap().suspend = Some(true);
        let hint = no_pod(&plain, "env");
        assert!(hint.starts_with("it is suspended"), "{hint}");
        assert!(hint.contains(r#"`kubectl patch job plain -n env -p '{"spec":{"suspend":false}}'`"#), "{hint}");
        assert!(!hint.contains("template"), "{hint}");

        let mut template = job("seed", &[], &[(names::ANNOTATION_ON, "start")]);
        template.spec.as_mut().unwrap().suspend = Some(true);
        assert!(no_pod(&template, "env").contains("a lifecycle job template never runs itself"));

        let done = with_condition(job("a", &[], &[]), "Complete", None, "2025-01-01T00:02:00Z");
        assert!(no_pod(&done, "env").contains("its pods were removed"));
        assert!(no_pod(&job("a", &[], &[]), "env").contains("`kubectl lifecycle logs a -n env -f`"));
    }
}
