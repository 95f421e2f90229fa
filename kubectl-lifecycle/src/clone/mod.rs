//! `clone JOB --to NS`: copy a lifecycle job to another environment with Qovery's clone rules.
//! This module talks to the cluster (reads the source, checks the target, creates the copy);
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
use lifecycle_contract::names;

use crate::cli::{CloneArgs, ObjectFormat};
use crate::client::{Ctx, FIELD_MANAGER, KubeResultExt, get_environment, is_forbidden};
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

pub async fn run(ctx: &Ctx, args: &CloneArgs) -> anyhow::Result<()> {
    let src_ns = &ctx.namespace;
    let to = &args.to;
    let src = Api::<Job>::namespaced(ctx.client.clone(), src_ns)
        .get_opt(&args.job)
        .await
        .doing(format_args!("get job {} in namespace {src_ns}", args.job))?
        .ok_or_else(|| anyhow!("job {} not found in namespace {src_ns}\n  hint: give the source namespace with -n", args.job))?;
    let opts = CloneOptions { namespace: to.clone(), name: args.name.clone(), keep_job_id: args.keep_job_id };
    let cloned = clone_job(&src, &opts)?;
    let new_name = jobs::name(&cloned.job).to_string();
    if to == src_ns && new_name == args.job {
        bail!("the copy would replace job {} in its own namespace\n  hint: give the copy another name with --name", args.job);
    }
    let target_ns = get_environment(&ctx.client, to).await?;

    let target_jobs = Api::<Job>::namespaced(ctx.client.clone(), to);
    if target_jobs.get_metadata_opt(&new_name).await.doing(format_args!("get job {new_name} in namespace {to}"))?.is_some() {
        bail!("a job {new_name} already exists in namespace {to}\n  hint: give the copy another name with --name");
    }
    match target_jobs.list(&ListParams::default()).await {
        Ok(list) => {
            if let Some(other) = list.items.iter().find(|j| jobs::run_of(j).is_none() && jobs::job_id(j) == cloned.job_id_copy) {
                bail!(
                    "job {} in namespace {to} already has JOBID {}: the webhook would refuse the copy\n  hint: give the copy another name with --name{}",
                    jobs::name(other),
                    cloned.job_id_copy,
                    if args.keep_job_id { ", or drop --keep-job-id" } else { "" }
                );
            }
        }
        Err(e) if is_forbidden(&e) => {}
        Err(e) => return Err(crate::client::explain(e, format_args!("list jobs in namespace {to}"))),
    }

    let mut presence = Vec::new();
    for r in &cloned.references {
        presence.push(exists(&ctx.client, to, r).await);
    }

    if !args.dry_run {
        target_jobs
            .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &cloned.job)
            .await
            .doing(format_args!("create job {new_name} in namespace {to}"))?;
    }

    let report = render_report(&args.job, src_ns, &cloned, &presence, args.dry_run);
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

    let missing: Vec<String> = cloned
        .references
        .iter()
        .zip(&presence)
        .filter(|(r, p)| **p != Some(true) && !r.optional)
        .map(|(r, _)| format!("{} {}", r.kind, r.name))
        .collect();
    let started =
        target_ns.metadata.labels.as_ref().and_then(|l| l.get(names::LABEL_STATE)).is_none_or(|s| s.is_empty() || s == "started");
    let on_start = jobs::template_events(&cloned.job).is_ok_and(|on| on.contains(&lifecycle_contract::Event::Start));
    if started && on_start && !args.dry_run {
        crate::errln!(
            "note: {to} is started: its controller runs the copy's start command now (a lifecycle job with start created in a started environment is a start event)"
        );
    }
    if !missing.is_empty() {
        crate::errln!(
            "warning: not copied, and not (known to be) in {to}: {}: create them in {to} before the job runs",
            missing.join(", ")
        );
    }
    Ok(())
}
