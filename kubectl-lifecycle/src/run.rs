//! `run JOB --event E`: force-run one event of a lifecycle job. [`run`] reads
//! the template and writes the request, [`follow`] waits for the run; what
//! they decide is pure ([`check_runnable`], [`request`], [`not_found`],
//! [`took`]) and the verdict on the run is [`wait::run_verdict`]'s.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::anyhow;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use lifecycle_contract::lifecycle_job::ForceRun;
use lifecycle_contract::names::SERVER_POD_SELECTOR as SERVER_PODS;
use lifecycle_contract::{Event, names};
use serde_json::json;

use crate::cli::RunArgs;
use crate::client::{Ctx, FIELD_MANAGER, KubeResultExt, get_environment};
use crate::jobs;
use crate::table::human_duration;
use crate::wait::{self, Observed, Progress, RunInfo, Watch};

/// Checks that `job` may be force-run for `event`; the error says what to do instead.
pub fn check_runnable(job: &Job, event: Event, namespace: &str) -> anyhow::Result<()> {
    let name = jobs::name(job);
    if let Some(template) = jobs::run_of(job) {
        return Err(anyhow!(
            "job {name} is a run of lifecycle job {template}, not a lifecycle job\n  hint: force-run the lifecycle job: `kubectl lifecycle run {template} --event {event} -n {namespace}`"
        ));
    }
    if !jobs::is_template(job) {
        return Err(anyhow!(
            "job {name} is not a lifecycle job (it has no annotation {on}): only lifecycle jobs can be force-run\n  hint: add `{on}: {event}` to the Job's annotations in its manifest and create it again (a lifecycle job is a template: the webhook admits it suspended)",
            on = names::ANNOTATION_ON
        ));
    }
    let on = jobs::template_events(job).map_err(|e| anyhow!("{e}\n  hint: write start, stop, delete or a comma list of them"))?;
    if !on.contains(&event) {
        let list: Vec<&str> = on.iter().map(|e| e.as_str()).collect();
        return Err(anyhow!(
            "lifecycle job {name} runs on {}, not on {event}\n  hint: force-run one of its events (`--event {}`), or add {event} to its annotation {}",
            if list.is_empty() { "no event".to_string() } else { list.join(",") },
            list.first().copied().unwrap_or("start"),
            names::ANNOTATION_ON
        ));
    }
    Ok(())
}

/// What `run` does about the template's `force-run` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// The same event is already requested: nothing to write.
    AlreadyRequested,
    /// Write the request, replacing a pending one for another event, if any.
    New { replacing: Option<String> },
}

/// The request to make, given the template's pending `force-run` (not yet taken by the controller).
pub(crate) fn request(pending: Option<ForceRun>, event: Event) -> Request {
    match pending {
        Some(p) if p.event.as_ref().ok() == Some(&event) => Request::AlreadyRequested,
        other => Request::New { replacing: other.map(|p| p.value.to_string()) },
    }
}

/// The error for a Job that does not exist, naming the lifecycle jobs that do.
pub(crate) fn not_found(job: &str, namespace: &str, templates: &[String]) -> anyhow::Error {
    let known = if templates.is_empty() {
        format!("namespace {namespace} has no lifecycle job")
    } else {
        format!("lifecycle jobs in {namespace}: {}", templates.join(", "))
    };
    anyhow!("job {job} not found in namespace {namespace}\n  hint: {known}; give another namespace with -n")
}

/// How long a run took, for people (` in 1m5s`), when it has started and finished.
pub(crate) fn took(run: Option<&RunInfo>) -> String {
    run.and_then(|r| Some(r.state.finished?.as_second() - r.state.started?.as_second()))
        .map(|s| format!(" in {}", human_duration(std::time::Duration::from_secs(s.max(0) as u64))))
        .unwrap_or_default()
}

pub async fn run(ctx: &Ctx, args: &RunArgs) -> anyhow::Result<()> {
    let ns = &ctx.namespace;
    let event = args.event;
    let forced = force(&ctx.client, ns, &args.job, event).await?;
    if let Request::New { replacing: Some(p) } = &forced.request {
        crate::errln!("note: replacing the pending force-run of {p} (not yet taken by the controller)");
    }
    crate::outln!("{}", forced.summary());
    if !args.wait && !args.logs {
        crate::outln!("  follow it with `kubectl lifecycle logs {} --event {event} -n {ns} -f` (or add --wait)", args.job);
        return Ok(());
    }
    follow(ctx, args, forced.selector, forced.before).await
}

/// A force-run request written (or found already pending).
pub(crate) struct Forced {
    pub(crate) namespace: String,
    pub(crate) job: String,
    pub(crate) event: Event,
    pub(crate) request: Request,
    /// Selects the runs of this job and event.
    pub(crate) selector: String,
    /// Their UIDs before the request: the new run is the one not in here.
    pub(crate) before: HashSet<String>,
}

impl Forced {
    /// One line for people.
    pub(crate) fn summary(&self) -> String {
        let Forced { namespace, job, event, .. } = self;
        match self.request {
            Request::AlreadyRequested => {
                format!("a forced {event} run of lifecycle job {job} is already requested in namespace {namespace}")
            }
            Request::New { .. } => format!("forced {event} run of lifecycle job {job} requested in namespace {namespace}"),
        }
    }
}

/// Checks that lifecycle job `job` of environment `ns` runs on `event` and asks the controller
/// for a run (annotation `force-run`).
pub(crate) async fn force(client: &Client, ns: &str, job_name: &str, event: Event) -> anyhow::Result<Forced> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let Some(job) = api.get_opt(job_name).await.doing(format_args!("get job {job_name} in namespace {ns}"))? else {
        let templates: Vec<String> = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items.iter().filter(|j| jobs::is_template(j)).map(|j| jobs::name(j).to_string()).collect())
            .unwrap_or_default();
        return Err(not_found(job_name, ns, &templates));
    };
    check_runnable(&job, event, ns)?;
    get_environment(client, ns).await?;
    let selector = format!("{}={job_name},{}={event}", names::LABEL_JOB, names::LABEL_EVENT);
    let before: HashSet<String> = api
        .list(&ListParams::default().labels(&selector))
        .await
        .doing(format_args!("list runs of {job_name} in namespace {ns}"))?
        .items
        .into_iter()
        .filter_map(|j| j.metadata.uid)
        .collect();
    let request = request(jobs::force_run(&job), event);
    if let Request::New { .. } = request {
        api.patch(
            job_name,
            &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
            &Patch::Merge(&json!({ "metadata": { "annotations": { names::ANNOTATION_FORCE_RUN: event.as_str() } } })),
        )
        .await
        .doing(format_args!("annotate job {job_name} in namespace {ns}"))?;
    }
    Ok(Forced { namespace: ns.to_string(), job: job_name.to_string(), event, request, selector, before })
}

/// Waits for the new run (streaming its logs with `--logs`) until the
/// controller recorded how it ended, and says so.
async fn follow(ctx: &Ctx, args: &RunArgs, run_selector: String, before: HashSet<String>) -> anyhow::Result<()> {
    let (ns, event) = (&ctx.namespace, args.event);
    let deadline = Instant::now() + args.timeout;
    let watch = Watch {
        client: ctx.client.clone(),
        namespace: ns.clone(),
        watch_namespace: false,
        run_selector,
        before,
        event: Some(event),
        template: Some(args.job.clone()),
        baseline_status: None,
        deadline,
        timeout: args.timeout,
        what: format!("the forced {event} run of {}", args.job),
        hint: format!(
            "is the lifecycle-webhook controller running (`kubectl get pods -A -l {SERVER_PODS}`)? Does the job's Events say why (`kubectl describe job {} -n {ns}`)?",
            args.job
        ),
    };
    let mut progress = Progress::new();
    let mut obs = Observed::default();
    let run_name = wait::wait(&watch, &mut obs, &mut progress, |o| wait::run_verdict(ns, o, false)).await?;
    if args.logs {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        let run = api.get(&run_name).await.doing(format_args!("get job {run_name} in namespace {ns}"))?;
        let streamed = tokio::time::timeout_at(
            tokio::time::Instant::from_std(deadline),
            crate::logs::stream_job(&ctx.client, ns, &run, true, None),
        )
        .await;
        match streamed {
            Ok(r) => r?,
            Err(_) => {
                return Err(anyhow!("timed out after {} following the logs of run {run_name}", human_duration(args.timeout)));
            }
        }
    }
    let name = wait::wait(&watch, &mut obs, &mut progress, |o| wait::run_verdict(ns, o, true)).await?;
    crate::outln!("run {name} succeeded{}", took(obs.runs.get(&name)));
    crate::outln!("  its outputs: `kubectl lifecycle outputs {} -n {ns}`", args.job);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::{job, run};

    #[test]
    fn only_templates_run_and_only_their_events() {
        let t = job("seed", &[], &[(names::ANNOTATION_ON, "start")]);
        assert!(check_runnable(&t, Event::Start, "env").is_ok());
        let e = check_runnable(&t, Event::Stop, "env").unwrap_err().to_string();
        assert!(e.contains("runs on start, not on stop"), "{e}");
        assert!(e.contains("--event start"), "{e}");

        let plain = job("migrate", &[], &[]);
        let e = check_runnable(&plain, Event::Start, "env").unwrap_err().to_string();
        assert!(e.contains("not a lifecycle job"), "{e}");

        let r = run("seed-start-1", "seed", "start", "2025-01-01T00:00:00Z");
        let e = check_runnable(&r, Event::Start, "env").unwrap_err().to_string();
        assert!(e.contains("`kubectl lifecycle run seed --event start -n env`"), "{e}");

        let bad = job("seed", &[], &[(names::ANNOTATION_ON, "deploy")]);
        assert!(check_runnable(&bad, Event::Start, "env").is_err());
    }

    #[test]
    fn a_request_replaces_another_event_and_keeps_the_same_one() {
        let pending = |value: &'static str| Some(ForceRun { value, event: value.parse() });
        assert_eq!(request(None, Event::Stop), Request::New { replacing: None });
        assert_eq!(request(pending("stop"), Event::Stop), Request::AlreadyRequested);
        assert_eq!(request(pending("start"), Event::Stop), Request::New { replacing: Some("start".into()) });
        assert_eq!(request(pending("deploy"), Event::Stop), Request::New { replacing: Some("deploy".into()) });
    }

    #[test]
    fn a_missing_job_names_the_lifecycle_jobs_there_are() {
        let e = not_found("nope", "env", &["seed".into(), "db".into()]).to_string();
        assert_eq!(
            e,
            "job nope not found in namespace env\n  hint: lifecycle jobs in env: seed, db; give another namespace with -n"
        );
        assert!(not_found("nope", "env", &[]).to_string().contains("namespace env has no lifecycle job"));
    }

    #[test]
    fn a_run_took_from_its_start_to_its_end() {
        use crate::jobs::tests::ts;
        let mut r = RunInfo::from_job(&run("seed-start-1", "seed", "start", "2025-01-01T00:00:00Z"));
        assert_eq!(took(Some(&r)), "");
        r.state.started = Some(ts("2025-01-01T00:00:00Z"));
        r.state.finished = Some(ts("2025-01-01T00:01:05Z"));
        assert_eq!(took(Some(&r)), " in 65s");
        assert_eq!(took(None), "");
    }
}
