//! `clone JOB --to NS`: copy a lifecycle job to another environment with Qovery's clone rules.
//! This module talks to the cluster (reads the source, reads the target into a [`Target`],
//! creates the copy) and decides from what it read ([`check_target`], [`after_notes`], pure);
//! [`decide`] makes the copy and its report, [`render`] writes the report.

mod decide;
mod render;
#[cfg(test)]
mod tests;

use anyhow::{anyhow, bail};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use lifecycle_contract::Event;
use lifecycle_contract::environment::WantedState;

use crate::cli::{CloneArgs, ObjectFormat};
use crate::client::{Ctx, FIELD_MANAGER, KubeResultExt, get_environment, is_forbidden};
use crate::environment::{self, EnvironmentExt};
use crate::jobs;
use decide::{CloneOptions, Cloned, Reference, clone_job};
use render::render_report;

/// Whether a referenced object exists in the target namespace (`None`: cannot tell).
async fn exists(client: &Client, ns: &str, r: &Reference) -> Option<bool> {
    let found = match r.kind {
        "Secret" => Api::<Secret>::namespaced(client.clone(), ns).get_metadata_opt(&r.name).await.map(|o| o.is_some()),
        "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), ns).get_metadata_opt(&r.name).await.map(|o| o.is_some()),
        _ => Api::<ServiceAccount>::namespaced(client.clone(), ns).get_metadata_opt(&r.name).await.map(|o| o.is_some()),
    };
    found.ok()
}

/// What the target environment has, read before the copy is made.
#[derive(Debug, Default)]
pub(crate) struct Target {
    /// The target's wanted state lets its start jobs run (started).
    pub(crate) started: bool,
    /// A Job of the copy's name exists there.
    pub(crate) name_taken: bool,
    /// The lifecycle job there that has the copy's JOBID, if the Jobs could be listed.
    pub(crate) same_job_id: Option<String>,
    /// Whether each referenced object exists there (`None`: cannot tell), in [`Cloned::references`]' order.
    pub(crate) presence: Vec<Option<bool>>,
}

pub async fn run(ctx: &Ctx, args: &CloneArgs) -> anyhow::Result<()> {
    let src_ns = &ctx.namespace;
    let src = Api::<Job>::namespaced(ctx.client.clone(), src_ns)
        .get_opt(&args.job)
        .await
        .doing(format_args!("get job {} in namespace {src_ns}", args.job))?
        .ok_or_else(|| anyhow!("job {} not found in namespace {src_ns}\n  hint: give the source namespace with -n", args.job))?;
    let opts = CloneOptions { namespace: args.to.clone(), name: args.name.clone(), keep_job_id: args.keep_job_id };
    let cloned = clone_job(&src, &opts)?;
    if args.to == *src_ns && jobs::name(&cloned.job) == args.job {
        bail!("the copy would replace job {} in its own namespace\n  hint: give the copy another name with --name", args.job);
    }
    let target = read_target(&ctx.client, &args.to, &cloned).await?;
    check_target(&cloned, &target, args.keep_job_id)?;
    if !args.dry_run {
        let new_name = jobs::name(&cloned.job);
        Api::<Job>::namespaced(ctx.client.clone(), &args.to)
            .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &cloned.job)
            .await
            .doing(format_args!("create job {new_name} in namespace {}", args.to))?;
    }

    let report = render_report(&args.job, src_ns, &cloned, &target.presence, args.dry_run);
    match args.output {
        Some(format) => {
            crate::err!("{report}");
            let text = match format {
                ObjectFormat::Json => crate::output::json(&cloned.job)?,
                ObjectFormat::Yaml => crate::output::yaml(&cloned.job)?,
            };
            crate::out!("{text}");
        }
        None => crate::out!("{report}"),
    }
    for line in after_notes(&cloned, &target, args.dry_run) {
        crate::errln!("{line}");
    }
    Ok(())
}

/// Reads what the target environment has: it must be one.
async fn read_target(client: &Client, to: &str, cloned: &Cloned) -> anyhow::Result<Target> {
    let target_ns = get_environment(client, to).await?;
    let new_name = jobs::name(&cloned.job);
    let target_jobs = Api::<Job>::namespaced(client.clone(), to);
    let name_taken =
        target_jobs.get_metadata_opt(new_name).await.doing(format_args!("get job {new_name} in namespace {to}"))?.is_some();
    let same_job_id = match target_jobs.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .find(|j| jobs::held_job_id(j).as_ref() == Some(&cloned.job_id_copy))
            .map(|j| jobs::name(j).to_string()),
        Err(e) if is_forbidden(&e) => None,
        Err(e) => return Err(crate::client::explain(e, format_args!("list jobs in namespace {to}"))),
    };
    let mut presence = Vec::new();
    for r in &cloned.references {
        presence.push(exists(client, to, r).await);
    }
    let started = environment::read(&target_ns).wanted_state() == Some(WantedState::Started);
    Ok(Target { started, name_taken, same_job_id, presence })
}

/// The copy must not take a name or a JOBID the target has (the webhook would refuse the JOBID).
pub(crate) fn check_target(cloned: &Cloned, target: &Target, keep_job_id: bool) -> anyhow::Result<()> {
    let to = cloned.job.metadata.namespace.as_deref().unwrap_or_default();
    let new_name = jobs::name(&cloned.job);
    if target.name_taken {
        bail!("a job {new_name} already exists in namespace {to}\n  hint: give the copy another name with --name");
    }
    if let Some(other) = &target.same_job_id {
        bail!(
            "job {other} in namespace {to} already has JOBID {}: the webhook would refuse the copy\n  hint: give the copy another name with --name{}",
            cloned.job_id_copy,
            if keep_job_id { ", or drop --keep-job-id" } else { "" }
        );
    }
    Ok(())
}

/// What follows the copy, for people: its start command runs now in a started
/// environment; the objects it needs that the target lacks.
pub(crate) fn after_notes(cloned: &Cloned, target: &Target, dry_run: bool) -> Vec<String> {
    let to = cloned.job.metadata.namespace.as_deref().unwrap_or_default();
    let mut notes = Vec::new();
    let on_start = jobs::template_events(&cloned.job).is_ok_and(|on| on.contains(&Event::Start));
    if target.started && on_start && !dry_run {
        notes.push(format!(
            "note: {to} is started: its controller runs the copy's start command now (a lifecycle job with start created in a started environment is a start event)"
        ));
    }
    let missing: Vec<String> = cloned
        .references
        .iter()
        .zip(target.presence.iter().copied().chain(std::iter::repeat(None)))
        .filter(|(r, p)| *p != Some(true) && !r.optional)
        .map(|(r, _)| format!("{} {}", r.kind, r.name))
        .collect();
    if !missing.is_empty() {
        notes.push(format!(
            "warning: not copied, and not (known to be) in {to}: {}: create them in {to} before the job runs",
            missing.join(", ")
        ));
    }
    notes
}
