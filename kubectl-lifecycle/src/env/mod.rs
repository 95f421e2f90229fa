//! `env list|status|create|start|stop|redeploy|delete`. This module talks to
//! the cluster (reads the environment and its Jobs, writes the change, waits);
//! [`decide`] holds what the commands decide and report, pure (an action's
//! [`decide::TransitionPlan`], the status report), and [`render`] what they
//! print for people.

mod decide;
mod render;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use anyhow::bail;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use lifecycle_contract::lifecycle_job::{self, JobKind};
use lifecycle_contract::names;
use lifecycle_contract::names::SERVER_POD_SELECTOR as SERVER_PODS;
use serde_json::json;

use crate::cli::{CreateArgs, ListArgs, OutputFormat, StatusArgs, TransitionArgs};
use crate::client::{Ctx, FIELD_MANAGER, KubeResultExt, explain, get_environment, is_forbidden};
use crate::environment::{self, Environment};
use crate::jobs;
use crate::table::human_duration;
use crate::wait::{self, Observed, Progress, Target, TransitionGoal, Watch};
pub use decide::Action;
pub(crate) use decide::{EnvList, EnvRow, EnvStatus, RunRow, TemplateRow};
use decide::{Step, TemplatesRead, build_status, check_transition, env_row, ns_name, plan_transition, then_what};
use render::{or_none, render_list, render_status};

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

pub async fn list(ctx: &Ctx, args: &ListArgs) -> anyhow::Result<()> {
    let list = read_list(&ctx.client).await?;
    if list.environments.is_empty() && matches!(args.output, None | Some(OutputFormat::Wide)) {
        crate::errln!(
            "No environments found.\n  hint: make a namespace an environment with `kubectl lifecycle env create NAMESPACE`"
        );
        return Ok(());
    }
    crate::out!("{}", crate::output::report(&list, args.output, |wide| render_list(&list, wide, now()))?);
    Ok(())
}

/// Every environment the caller may list, by name, with its number of lifecycle jobs.
pub(crate) async fn read_list(client: &Client) -> anyhow::Result<EnvList> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut namespaces = api.list(&ListParams::default().labels(names::LABEL_ENVIRONMENT)).await.doing("list namespaces")?.items;
    namespaces.sort_by(|a, b| ns_name(a).cmp(ns_name(b)));
    let counts = template_counts(client, &namespaces).await;
    let environments = namespaces.iter().map(|ns| env_row(ns, counts.get(ns_name(ns)).cloned().flatten())).collect();
    Ok(EnvList { environments })
}

/// The lifecycle jobs of each namespace: one cluster-wide list of Job metadata, else one per namespace.
async fn template_counts(client: &Client, namespaces: &[Namespace]) -> HashMap<String, Option<TemplatesRead>> {
    let is_template = |m: &ObjectMeta| matches!(lifecycle_job::kind(m), JobKind::Template { .. });
    let mut counts: HashMap<String, Option<TemplatesRead>> = HashMap::new();
    match Api::<Job>::all(client.clone()).list_metadata(&ListParams::default()).await {
        Ok(list) => {
            for ns in namespaces {
                counts.insert(ns_name(ns).to_string(), Some(TemplatesRead::default()));
            }
            for m in list.items.iter().map(|j| &j.metadata).filter(|m| is_template(m)) {
                if let Some(Some(read)) = m.namespace.as_ref().and_then(|ns| counts.get_mut(ns)) {
                    read.add(m);
                }
            }
        }
        Err(_) => {
            for ns in namespaces {
                let name = ns_name(ns);
                let read =
                    Api::<Job>::namespaced(client.clone(), name).list_metadata(&ListParams::default()).await.ok().map(|l| {
                        let mut read = TemplatesRead::default();
                        l.items.iter().map(|j| &j.metadata).filter(|m| is_template(m)).for_each(|m| read.add(m));
                        read
                    });
                counts.insert(name.to_string(), read);
            }
        }
    }
    counts
}

pub async fn status(ctx: &Ctx, args: &StatusArgs) -> anyhow::Result<()> {
    let name = args.env.clone().unwrap_or_else(|| ctx.namespace.clone());
    let report = read_status(&ctx.client, &name).await?;
    crate::out!("{}", crate::output::report(&report, args.output, |wide| render_status(&report, wide, now()))?);
    Ok(())
}

/// An environment as `env status` reports it.
pub(crate) async fn read_status(client: &Client, name: &str) -> anyhow::Result<EnvStatus> {
    let ns = get_environment(client, name).await?;
    let mut all = Api::<Job>::namespaced(client.clone(), name)
        .list(&ListParams::default())
        .await
        .doing(format_args!("list jobs in namespace {name}"))?
        .items;
    all.sort_by(|a, b| jobs::name(a).cmp(jobs::name(b)));

    let cm_keys: Vec<String> = Api::<ConfigMap>::namespaced(client.clone(), name)
        .get_opt(names::OUTPUTS_OBJECT)
        .await
        .doing(format_args!("get configmap {} in namespace {name}", names::OUTPUTS_OBJECT))?
        .and_then(|c| c.data)
        .map(|d| d.into_keys().collect())
        .unwrap_or_default();
    let secret_keys: Option<Vec<String>> =
        match Api::<Secret>::namespaced(client.clone(), name).get_opt(names::OUTPUTS_OBJECT).await {
            Ok(s) => Some(s.and_then(|s| s.data).map(|d| d.into_keys().collect()).unwrap_or_default()),
            Err(e) if is_forbidden(&e) => None,
            Err(e) => return Err(explain(e, format_args!("get secret {} in namespace {name}", names::OUTPUTS_OBJECT))),
        };

    Ok(build_status(&ns, &all, &cm_keys, secret_keys.as_deref()))
}

pub async fn create(ctx: &Ctx, args: &CreateArgs) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let name = &args.env;
    let env_value = args.environment.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    if let Some(p) = &args.project {
        labels.insert(names::LABEL_PROJECT.to_string(), p.clone());
    }
    match api.get_opt(name).await.doing(format_args!("get namespace {name}"))? {
        None => {
            labels.insert(names::LABEL_ENVIRONMENT.to_string(), env_value);
            let ns = Namespace {
                metadata: ObjectMeta { name: Some(name.clone()), labels: Some(labels), ..Default::default() },
                ..Default::default()
            };
            api.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &ns)
                .await
                .doing(format_args!("create namespace {name}"))?;
            crate::outln!("namespace {name} created as an environment");
        }
        Some(ns) => {
            if ns.metadata.deletion_timestamp.is_some() {
                bail!("namespace {name} is being deleted: wait until it is gone, then create it again");
            }
            let already = environment::is_environment(&ns);
            if !already || args.environment.is_some() {
                labels.insert(names::LABEL_ENVIRONMENT.to_string(), env_value);
            }
            if labels.is_empty() {
                crate::outln!("namespace {name} is already an environment (nothing to change)");
                return Ok(());
            }
            patch_namespace(&ctx.client, name, json!({ "metadata": { "labels": labels } })).await?;
            if already {
                crate::outln!("environment {name} updated");
            } else {
                crate::outln!("namespace {name} is now an environment");
                crate::errln!(
                    "note: jobs and workloads created from now on are captured and get the variables; pods already running get them once restarted"
                );
            }
        }
    }
    crate::outln!("  see it with `kubectl lifecycle env status {name}`");
    Ok(())
}

async fn patch_namespace(client: &Client, name: &str, patch: serde_json::Value) -> anyhow::Result<Namespace> {
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &Patch::Merge(&patch))
        .await
        .doing(format_args!("update namespace {name}"))
}

pub async fn transition(ctx: &Ctx, action: Action, name: &str, args: &TransitionArgs) -> anyhow::Result<()> {
    let req = request(&ctx.client, action, name).await?;
    crate::outln!("{}", req.summary());
    if let Some(hint) = req.hint() {
        crate::errln!("  hint: {hint}");
    }
    if let Step::Already { settled, .. } = req.step
        && (settled || !args.wait.wait)
    {
        return Ok(());
    }
    // Already under way: wait for its end, with no new run expected (and no deploy-id).
    if let Some(next) = req.then_what() {
        crate::outln!("  {next}");
    }
    if !args.wait.wait {
        crate::outln!("  follow it with `kubectl lifecycle env status {name}` (or add --wait)");
        return Ok(());
    }
    let goal = TransitionGoal {
        namespace: name.to_string(),
        target: action.target(),
        event: action.event(),
        baseline_seq: req.baseline_seq,
        deploy_id: req.deploy_id.clone(),
        expected_runs: req.expected_runs,
    };
    wait_transition(ctx, &req.env, goal, req.before, args).await
}

/// What an action did to an environment: the change written (or none), and
/// what a wait needs to know of the environment before it.
pub(crate) struct Requested {
    pub(crate) action: Action,
    pub(crate) env: Environment,
    pub(crate) step: Step,
    /// The lifecycle jobs that run on the action's event.
    pub(crate) templates: Vec<String>,
    /// The runs that existed before the request (UIDs).
    pub(crate) before: HashSet<String>,
    pub(crate) baseline_seq: u64,
    /// How many new runs a wait expects.
    pub(crate) expected_runs: usize,
    /// The `deploy-id` a redeploy wrote.
    pub(crate) deploy_id: Option<String>,
}

impl Requested {
    /// One line for people: what was written, or why nothing was.
    pub(crate) fn summary(&self) -> String {
        let name = &self.env.namespace;
        match &self.step {
            Step::Already { state, .. } => {
                let state = if self.action == Action::Delete { "being deleted" } else { state.as_str() };
                format!("environment {name} is already {state} (status: {})", or_none(self.env.status.as_deref()))
            }
            Step::SetState { state, was } => format!("environment {name}: state {} (was {was})", state.as_str()),
            Step::Redeploy => format!(
                "environment {name}: redeploy requested ({} {})",
                names::ANNOTATION_DEPLOY_ID,
                self.deploy_id.as_deref().unwrap_or_default()
            ),
        }
    }

    /// What to do instead, when the action changed nothing.
    pub(crate) fn hint(&self) -> Option<String> {
        (matches!(self.step, Step::Already { .. }) && self.action == Action::Start)
            .then(|| format!("to run the start jobs again, redeploy: `kubectl lifecycle env redeploy {}`", self.env.namespace))
    }

    /// What happens next (the event's jobs, then scaling or the namespace's delete), when the
    /// request changed something.
    pub(crate) fn then_what(&self) -> Option<String> {
        if let Step::Already { .. } = self.step {
            return None;
        }
        let templates: Vec<&str> = self.templates.iter().map(String::as_str).collect();
        Some(then_what(self.action, &templates))
    }
}

/// Checks and writes an action on environment `name`: its `state` label, or a new `deploy-id`.
pub(crate) async fn request(client: &Client, action: Action, name: &str) -> anyhow::Result<Requested> {
    let env = environment::read(&get_environment(client, name).await?);
    check_transition(action, &env)?;
    let all = Api::<Job>::namespaced(client.clone(), name)
        .list(&ListParams::default())
        .await
        .doing(format_args!("list jobs in namespace {name}"))?
        .items;
    let plan = plan_transition(action, &env, &all);
    let deploy_id = match &plan.step {
        Step::Already { .. } => None,
        Step::SetState { state, .. } => {
            let state = state.as_str();
            patch_namespace(client, name, json!({ "metadata": { "labels": { names::LABEL_STATE: state } } })).await?;
            None
        }
        Step::Redeploy => {
            let deploy_id = jiff::Timestamp::now().to_string();
            let patch = json!({ "metadata": { "annotations": { names::ANNOTATION_DEPLOY_ID: deploy_id } } });
            patch_namespace(client, name, patch).await?;
            Some(deploy_id)
        }
    };
    Ok(Requested {
        action,
        templates: plan.templates.iter().map(|t| t.to_string()).collect(),
        expected_runs: plan.expected_runs(),
        step: plan.step,
        before: plan.before,
        baseline_seq: plan.baseline_seq,
        deploy_id,
        env,
    })
}

/// Waits until the transition is over (or failed), and says so.
async fn wait_transition(
    ctx: &Ctx,
    env: &Environment,
    goal: TransitionGoal,
    before: HashSet<String>,
    args: &TransitionArgs,
) -> anyhow::Result<()> {
    let name = &env.namespace;
    let watch = Watch {
        client: ctx.client.clone(),
        namespace: name.clone(),
        watch_namespace: true,
        run_selector: names::LABEL_JOB.to_string(),
        before,
        event: Some(goal.event),
        template: None,
        baseline_status: env.status.clone(),
        deadline: Instant::now() + args.wait.timeout,
        timeout: args.wait.timeout,
        what: match goal.target {
            Target::Gone => format!("environment {name} to be deleted"),
            t => format!("environment {name} to be {}", t.word()),
        },
        hint: format!(
            "the controller goes on: follow it with `kubectl lifecycle env status {name}`, or wait longer with --timeout; is the lifecycle-webhook controller running (`kubectl get pods -A -l {SERVER_PODS}`)?"
        ),
    };
    let mut progress = Progress::new();
    let mut obs = Observed::default();
    let done = wait::wait(&watch, &mut obs, &mut progress, |o| wait::transition_verdict(&goal, o)).await?;
    crate::outln!("{done} after {}", human_duration(obs.elapsed));
    Ok(())
}
