//! The environment controller: lifecycle events (start, stop, delete, forced
//! runs) of every namespace labelled `lifecycle-jobs.dev/environment`.
//!
//! - [`leader`]: one replica runs it at a time (Lease `lifecycle-webhook-controller`).
//! - [`plan`], [`run_job`], [`scale`], [`model`]: the decisions, pure and unit-tested (which event is
//!   due and whether pods are gated: the contract's reader, `lifecycle_contract::environment`).
//! - [`reconcile`]: executes plans against the API, one environment at a time
//!   (a `kube::runtime::Controller` over Namespaces, woken by changes of their
//!   templates and runs).
//! - [`templates`]: a deleted template's outputs are removed (finalizer).
//!
//! See `plan.rs` for the exactly-once argument, the queue and the failure semantics.

pub(crate) mod gate;
pub(crate) mod keys;
pub(crate) mod leader;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod reconcile;
pub(crate) mod rollout;
pub(crate) mod run_job;
pub(crate) mod scale;
pub(crate) mod templates;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::Controller;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use lifecycle_contract::lifecycle_job;
use lifecycle_contract::names::{LABEL_GATED, never_environment};

use crate::runtime::supervisor::Shutdown;
use crate::state::AppState;
use crate::watches::jobs::{JobMeta, JobWatch};
use crate::watches::namespaces::{NamespaceWatch, NsMeta};
use keys::REPORTING_CONTROLLER;
use leader::Elector;
use reconcile::{KubeCluster, reconcile_env};

/// Look again at an environment with something in flight (a safety net: changes
/// of its runs wake it anyway).
const BUSY_REQUEUE: Duration = Duration::from_secs(30);
/// How long a change waits for others before its environment is reconciled:
/// long enough to take a burst (a directory applied at once, the echo of the
/// controller's own writes) in one reconcile, short beside what a person or
/// the next stage waits for (a stage hands over on the server's record of
/// the previous run's pod).
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Look again at a quiet environment.
const IDLE_REQUEUE: Duration = Duration::from_secs(600);

/// Runs the controller whenever this replica leads, until shutdown (the Lease
/// is then handed back, so that the other replica takes over at once).
pub(crate) async fn run(state: AppState, watches: Watches, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut elector = Elector::new(state.client.clone(), &state.config.namespace, &state.config.pod_name);
    loop {
        tokio::select! {
            _ = elector.acquire() => {}
            () = shutdown.requested() => return Ok(()),
        }
        tracing::info!(identity = %state.config.pod_name, "leading the environment controller");
        state.metrics.leader.set(1);
        enum End {
            Lost,
            Stopped(anyhow::Result<()>),
            Shutdown,
        }
        // Dropping the controllers' future aborts their reconciles at once.
        let end = tokio::select! {
            _ = elector.keep() => End::Lost,
            r = controllers(state.clone(), watches.clone()) => End::Stopped(r),
            () = shutdown.requested() => End::Shutdown,
        };
        state.metrics.leader.set(0);
        match end {
            End::Lost => tracing::warn!("lost the controller lease: controller stopped; waiting to lead again"),
            End::Stopped(r) => {
                r?;
                anyhow::bail!("the environment controller stopped");
            }
            End::Shutdown => {
                elector.release().await;
                return Ok(());
            }
        }
    }
}

/// The server's shared watches the controller follows (`crate::watches`).
#[derive(Clone)]
pub(crate) struct Watches {
    pub jobs: JobWatch,
    pub namespaces: NamespaceWatch,
}

struct EnvCtx {
    cluster: KubeCluster,
    /// The server's namespace: never an environment, whatever its labels.
    server_namespace: String,
}

/// An environment as the shared namespace watch keeps it (each reconcile
/// reads the namespace afresh).
type EnvMeta = NsMeta;

fn job_to_env(job: Arc<JobMeta>) -> Option<ObjectRef<EnvMeta>> {
    // A template or one of its runs (the contract's reader of a Job).
    let ours = lifecycle_job::kind(&job.metadata).is_lifecycle();
    let ns = job.namespace()?;
    ours.then(|| ObjectRef::new(&ns))
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn reconcile(ns: Arc<EnvMeta>, ctx: Arc<EnvCtx>) -> Result<Action, reconcile::Error> {
    let name = ns.name_any();
    if never_environment(&name, &ctx.server_namespace) {
        tracing::warn!(namespace = %name, "labelled as an environment, but this namespace never is one: ignored");
        return Ok(Action::await_change());
    }
    let done = reconcile_env(&ctx.cluster, &name, now).await?;
    Ok(Action::requeue(if done.busy { BUSY_REQUEUE } else { IDLE_REQUEUE }))
}

fn error_policy(ns: Arc<EnvMeta>, error: &reconcile::Error, _ctx: Arc<EnvCtx>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), %error, "environment reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn controllers(state: AppState, Watches { jobs, namespaces }: Watches) -> anyhow::Result<()> {
    let client = state.client.clone();
    let reporter = Reporter { controller: REPORTING_CONTROLLER.into(), instance: Some(state.config.pod_name.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let env_ctx = Arc::new(EnvCtx {
        cluster: KubeCluster { client: client.clone(), recorder, metrics: state.metrics.clone(), told: Default::default() },
        server_namespace: state.config.namespace.clone(),
    });

    // Per namespace, reconciles never overlap: one environment's events are handled in order.
    // Every environment at start, then each one that changes, from the server's one Namespace watch.
    let environments = Controller::for_shared_stream(namespaces.current_and_changes(), namespaces.store())
        // Templates and runs, from the server's one Job watch.
        .watches_shared_stream(jobs.changes(), job_to_env)
        // Gated pods: a pod gated just after its environment stopped gating is released at once.
        .watches(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            crate::runtime::kube_client::watch_config().labels(LABEL_GATED),
            |pod: PartialObjectMeta<Pod>| pod.namespace().map(|ns| ObjectRef::new(&ns)),
        )
        .with_config(ControllerConfig::default().concurrency(16).debounce(DEBOUNCE))
        .run(reconcile, error_policy, env_ctx)
        .for_each(|r| {
            if let Err(e) = r {
                tracing::debug!(error = %e, "environment controller");
            }
            futures::future::ready(())
        });

    // Deleted templates, from the same watch: at start those already being
    // deleted, then each one whose deletion is asked.
    let deleted = jobs.current_and_changes().filter(|job| futures::future::ready(templates::being_deleted(job)));
    let templates = Controller::for_shared_stream(deleted, jobs.store())
        .with_config(ControllerConfig::default().concurrency(8))
        .run(templates::reconcile, templates::error_policy, Arc::new(templates::Ctx { client }))
        .for_each(|r| {
            if let Err(e) = r {
                tracing::debug!(error = %e, "template cleanup controller");
            }
            futures::future::ready(())
        });

    // Project variables are mirrored by the same leader (crate::project_vars).
    let project_vars = crate::project_vars::run(state.clone(), namespaces.clone());

    futures::join!(environments, templates, project_vars);
    Ok(())
}
