//! Built-in variables: what every pod of an environment is told about where it
//! runs, under the names Qovery gives its services for the same facts, so that
//! images written for Qovery (a Terraform job keying its state with the
//! environment, a script naming its namespace) work unchanged.
//!
//! Two sets, injected without any API call at admission:
//! - **environment facts** ([`EnvironmentFacts::variables`]), in every pod of
//!   an environment, workloads and jobs alike: the server writes them to the
//!   ConfigMap [`crate::names::BUILTINS_OBJECT`] of each environment, and
//!   admission puts that ConfigMap first in every container's `envFrom`
//!   ([`crate::names::INJECTED_SOURCES`]), so that every other scope (project,
//!   environment, outputs, the pod's own `envFrom` and `env`) overrides them;
//! - **run facts** ([`run_variables`]), in the pods of a lifecycle run only:
//!   the event and the `deploy-id` the run was made for, and its JOBID, put
//!   first in each container's `env` by the controller when it creates the
//!   run, so that the job's own `env` still wins.
//!
//! Qovery's names that mean nothing here are left out on purpose; the list
//! and the reasons are in `docs/variables.md`.

use std::collections::BTreeMap;

use crate::{Event, JobId};

/// The environment's stable id: the Namespace's UID. It never changes for
/// the namespace's life and is never reused, so an IaC job keys its state
/// with it (a namespace deleted and re-created with the same name is another
/// environment, with another id).
pub const ENVIRONMENT_ID: &str = "QOVERY_ENVIRONMENT_ID";
/// The environment's name: label `environment`'s value, the namespace's name when empty.
pub const ENVIRONMENT_NAME: &str = "QOVERY_ENVIRONMENT_NAME";
/// The project's id. A project is nothing but its label value here, so its
/// id is its name. Absent when the namespace has no `project` label.
pub const PROJECT_ID: &str = "QOVERY_PROJECT_ID";
/// The project's name (label `project`). Absent when the namespace has none.
pub const PROJECT_NAME: &str = "QOVERY_PROJECT_NAME";
/// The namespace the pod runs in.
pub const NAMESPACE_NAME: &str = "QOVERY_KUBERNETES_NAMESPACE_NAME";

/// Run pods: the JOBID of the template the run was made from. Qovery's
/// Terraform and CloudFormation recipes key their state with it
/// (`secret_suffix=qovery-${QOVERY_JOB_ID}`): stable for the template's life.
pub const JOB_ID: &str = "QOVERY_JOB_ID";
/// Run pods: the event that started the run, `start`, `stop` or `delete`
/// (for a forced run too: the forced event).
pub const EVENT: &str = "LIFECYCLE_EVENT";
/// Run pods: the environment's `deploy-id` the run was made for. Absent when
/// the environment has none.
pub const DEPLOY_ID: &str = "LIFECYCLE_DEPLOY_ID";

/// Every name the environment facts may hold, in the order of the docs.
pub const ENVIRONMENT_VARIABLES: [&str; 5] = [ENVIRONMENT_ID, ENVIRONMENT_NAME, PROJECT_ID, PROJECT_NAME, NAMESPACE_NAME];
/// Every name the run facts may hold, in the order they are put in `env`.
pub const RUN_VARIABLES: [&str; 3] = [EVENT, DEPLOY_ID, JOB_ID];

/// The facts of one environment that its pods get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFacts {
    /// The Namespace's name.
    pub namespace: String,
    /// The Namespace's UID.
    pub uid: String,
    /// The environment's name (label `environment`, or the namespace's name).
    pub name: String,
    /// Label `project`, when set and not empty.
    pub project: Option<String>,
}

impl EnvironmentFacts {
    /// The variables, as the data of the built-ins ConfigMap.
    pub fn variables(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([
            (ENVIRONMENT_ID.to_string(), self.uid.clone()),
            (ENVIRONMENT_NAME.to_string(), self.name.clone()),
            (NAMESPACE_NAME.to_string(), self.namespace.clone()),
        ]);
        if let Some(project) = &self.project {
            out.insert(PROJECT_ID.to_string(), project.clone());
            out.insert(PROJECT_NAME.to_string(), project.clone());
        }
        out
    }
}

#[cfg(feature = "k8s")]
impl EnvironmentFacts {
    /// The facts of a Namespace, read the way every part reads an environment
    /// ([`crate::environment::Environment::read`]). `None` when it is no
    /// environment, or has no name or UID (not yet created).
    pub fn read(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<EnvironmentFacts> {
        let env = crate::environment::Environment::read(meta);
        let uid = meta.uid.clone().filter(|u| !u.is_empty())?;
        (env.is_environment && !env.namespace.is_empty()).then_some(EnvironmentFacts {
            namespace: env.namespace,
            uid,
            name: env.name,
            project: env.project,
        })
    }
}

/// The variables of a run's pods, in the order they go first in `env`:
/// [`EVENT`], [`DEPLOY_ID`] (when the environment has one), [`JOB_ID`].
pub fn run_variables(job_id: &JobId, event: Event, deploy_id: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = vec![(EVENT, event.as_str().to_string())];
    if let Some(d) = deploy_id {
        out.push((DEPLOY_ID, d.to_string()));
    }
    out.push((JOB_ID, job_id.as_str().to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(project: Option<&str>) -> EnvironmentFacts {
        EnvironmentFacts {
            namespace: "shop-pr-42".into(),
            uid: "6f1c1c2e-2b0c-4a57-9d2c-0c5e7e3b9a10".into(),
            name: "pr-42".into(),
            project: project.map(str::to_string),
        }
    }

    #[test]
    fn environment_variables_under_qoverys_names() {
        let vars = facts(Some("shop")).variables();
        assert_eq!(
            vars,
            BTreeMap::from([
                ("QOVERY_ENVIRONMENT_ID".to_string(), "6f1c1c2e-2b0c-4a57-9d2c-0c5e7e3b9a10".to_string()),
                ("QOVERY_ENVIRONMENT_NAME".to_string(), "pr-42".to_string()),
                ("QOVERY_KUBERNETES_NAMESPACE_NAME".to_string(), "shop-pr-42".to_string()),
                ("QOVERY_PROJECT_ID".to_string(), "shop".to_string()),
                ("QOVERY_PROJECT_NAME".to_string(), "shop".to_string()),
            ])
        );
        assert!(vars.keys().all(|k| ENVIRONMENT_VARIABLES.contains(&k.as_str())));
    }

    #[test]
    fn no_project_no_project_variables() {
        let vars = facts(None).variables();
        assert!(!vars.contains_key(PROJECT_ID) && !vars.contains_key(PROJECT_NAME));
        assert_eq!(vars.len(), 3);
    }

    #[test]
    fn run_variables_in_order() {
        let id = JobId::derive(None, "tofu-db");
        assert_eq!(
            run_variables(&id, Event::Delete, Some("v7")),
            [(EVENT, "delete".to_string()), (DEPLOY_ID, "v7".to_string()), (JOB_ID, "TOFU_DB".to_string())]
        );
        assert_eq!(run_variables(&id, Event::Start, None), [(EVENT, "start".to_string()), (JOB_ID, "TOFU_DB".to_string())]);
    }

    #[test]
    fn every_name_is_a_portable_variable_name() {
        for name in ENVIRONMENT_VARIABLES.iter().chain(&RUN_VARIABLES) {
            assert!(name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{name}");
        }
    }

    #[cfg(feature = "k8s")]
    #[test]
    fn facts_from_a_namespace() {
        use crate::names::{LABEL_ENVIRONMENT, LABEL_PROJECT};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let meta = |labels: &[(&str, &str)], uid: Option<&str>| ObjectMeta {
            name: Some("shop-pr-42".into()),
            uid: uid.map(str::to_string),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        };
        let f = EnvironmentFacts::read(&meta(&[(LABEL_ENVIRONMENT, "pr-42"), (LABEL_PROJECT, "shop")], Some("u-1"))).unwrap();
        assert_eq!(
            f,
            EnvironmentFacts {
                namespace: "shop-pr-42".into(),
                uid: "u-1".into(),
                name: "pr-42".into(),
                project: Some("shop".into())
            }
        );
        // Empty environment label: the namespace's name; empty project label: no project.
        let f = EnvironmentFacts::read(&meta(&[(LABEL_ENVIRONMENT, ""), (LABEL_PROJECT, "")], Some("u-1"))).unwrap();
        assert_eq!((f.name.as_str(), f.project), ("shop-pr-42", None));
        assert_eq!(EnvironmentFacts::read(&meta(&[(LABEL_PROJECT, "shop")], Some("u-1"))), None, "not an environment");
        assert_eq!(EnvironmentFacts::read(&meta(&[(LABEL_ENVIRONMENT, "")], None)), None, "no uid yet");
    }
}
