//! Only a successful job publishes: every main container (`spec.containers`,
//! not init containers nor native sidecars such as the agent) must have ended
//! with exit code 0, and the Job must not have failed.
//!
//! The agent posts as soon as it gets SIGTERM, which can be before the kubelet
//! has reported the main containers' end: [`wait_for_main_containers`] reads
//! the pod again for a short while before it gives up with a 503 (the agent
//! tries again).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use super::error::Error;
use super::identity::Identity;
use super::retry::retry;

/// How long to wait for the kubelet to report the main containers' end.
pub(crate) const STATUS_WAIT: Duration = Duration::from_secs(10);
/// How often to read the pod while waiting.
pub(crate) const STATUS_POLL: Duration = Duration::from_millis(500);

/// Where the main containers of a pod stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MainContainers {
    /// All ended with exit code 0.
    Succeeded,
    /// One ended with another code (the first in spec order).
    Failed { container: String, exit_code: i32, reason: Option<String> },
    /// Some have not ended (or their status is not reported yet).
    Running { containers: Vec<String> },
}

/// Pure: the state of `pod`'s main containers from its status.
pub(crate) fn main_containers(pod: &Pod) -> MainContainers {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
    let mut running = Vec::new();
    for c in pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default() {
        let terminated =
            statuses.iter().find(|s| s.name == c.name).and_then(|s| s.state.as_ref()).and_then(|s| s.terminated.as_ref());
        match terminated {
            Some(t) if t.exit_code == 0 => {}
            Some(t) => {
                return MainContainers::Failed { container: c.name.clone(), exit_code: t.exit_code, reason: t.reason.clone() };
            }
            None => running.push(c.name.clone()),
        }
    }
    if running.is_empty() { MainContainers::Succeeded } else { MainContainers::Running { containers: running } }
}

/// Pure: the 409 for a failed main container.
pub(crate) fn failed_error(container: &str, exit_code: i32, reason: Option<&str>) -> Error {
    let why = match reason {
        Some(r) if !r.is_empty() && r != "Error" && r != "Completed" => format!(" ({r})"),
        _ => String::new(),
    };
    Error::JobNotSuccessful(format!(
        "main container {container} exited with code {exit_code}{why}: outputs are only published by a successful job; nothing was published and the job's earlier outputs stay"
    ))
}

/// Pure: why the Job has failed (conditions `Failed` or `FailureTarget`), if it has.
pub(crate) fn job_failure(job: &Job) -> Option<String> {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    conditions.iter().find(|c| (c.type_ == "Failed" || c.type_ == "FailureTarget") && c.status == "True").map(|c| {
        match c.reason.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => r.to_string(),
            None => "failed".to_string(),
        }
    })
}

/// Pure: the 409 for a failed Job.
pub(crate) fn job_failed_error(job_name: &str, why: &str) -> Error {
    Error::JobNotSuccessful(format!(
        "Job {job_name} has failed ({why}): outputs are only published by a successful job; nothing was published and the job's earlier outputs stay"
    ))
}

/// Pure: whether the job may publish, from the main containers' state (after
/// waiting) and the Job's failure, if any. `Ok` when all main containers ended
/// with 0 and the Job has not failed; 409 when the job did not succeed; 503
/// (try again) while main containers still run.
pub(crate) fn verdict(state: &MainContainers, job_failure: Option<&str>, job_name: &str, pod: &str) -> Result<(), Error> {
    match (state, job_failure) {
        (MainContainers::Failed { container, exit_code, reason }, _) => {
            Err(failed_error(container, *exit_code, reason.as_deref()))
        }
        (_, Some(why)) => Err(job_failed_error(job_name, why)),
        (MainContainers::Succeeded, None) => Ok(()),
        (MainContainers::Running { containers }, None) => Err(Error::Unavailable(format!(
            "main container{} {} of pod {pod} {} not ended yet (as the kubelet reports it): the agent publishes once the job's main containers have ended; try again",
            if containers.len() == 1 { "" } else { "s" },
            containers.join(", "),
            if containers.len() == 1 { "has" } else { "have" },
        ))),
    }
}

/// Reads the pod again every [`STATUS_POLL`], for up to [`STATUS_WAIT`], while
/// some main container has not ended; returns the last state seen.
pub(crate) async fn wait_for_main_containers(client: &Client, id: &Identity, pod: &Pod) -> Result<MainContainers, Error> {
    let deadline = tokio::time::Instant::now() + STATUS_WAIT;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &id.namespace);
    let mut state = main_containers(pod);
    while matches!(state, MainContainers::Running { .. }) && tokio::time::Instant::now() + STATUS_POLL <= deadline {
        tokio::time::sleep(STATUS_POLL).await;
        let pod = retry("reading the pod", || pods.get_opt(&id.pod_name))
            .await
            .map_err(|e| Error::from_kube(&format!("reading pod {}", id.pod()), e))?
            .filter(|p| p.metadata.uid.as_deref() == Some(id.pod_uid.as_str()))
            .ok_or_else(|| Error::Forbidden(format!("pod {} no longer exists", id.pod())))?;
        state = main_containers(&pod);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, PodSpec, PodStatus,
    };

    fn container(name: &str) -> Container {
        Container { name: name.into(), ..Default::default() }
    }

    fn status(name: &str, exit: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(match exit {
                Some(code) => ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: code,
                        reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                None => ContainerState { running: Some(ContainerStateRunning::default()), ..Default::default() },
            }),
            ..Default::default()
        }
    }

    fn pod(containers: &[&str], statuses: Vec<ContainerStatus>, init: Vec<ContainerStatus>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: containers.iter().map(|c| container(c)).collect(),
                init_containers: Some(vec![container("lifecycle-agent")]),
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(statuses),
                init_container_statuses: Some(init),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn all_main_containers_zero_is_success_whatever_the_sidecar_does() {
        // The agent (a native sidecar) is still running: it is not a main container.
        let p = pod(
            &["main", "helper"],
            vec![status("main", Some(0)), status("helper", Some(0))],
            vec![status("lifecycle-agent", None)],
        );
        assert_eq!(main_containers(&p), MainContainers::Succeeded);
    }

    #[test]
    fn a_non_zero_exit_fails_even_if_others_still_run() {
        let p = pod(&["main", "helper"], vec![status("main", None), status("helper", Some(3))], vec![]);
        assert_eq!(
            main_containers(&p),
            MainContainers::Failed { container: "helper".into(), exit_code: 3, reason: Some("Error".into()) }
        );
        let e = failed_error("helper", 3, Some("Error"));
        assert_eq!(e.status(), 409);
        assert_eq!(
            e.to_string(),
            "main container helper exited with code 3: outputs are only published by a successful job; nothing was published and the job's earlier outputs stay"
        );
        assert!(failed_error("main", 137, Some("OOMKilled")).to_string().contains("code 137 (OOMKilled)"));
    }

    #[test]
    fn running_or_unreported_containers_are_waited_for() {
        let p = pod(&["main", "helper"], vec![status("main", Some(0))], vec![]);
        assert_eq!(main_containers(&p), MainContainers::Running { containers: vec!["helper".into()] });
        let p = pod(&["main"], vec![status("main", None)], vec![]);
        assert_eq!(main_containers(&p), MainContainers::Running { containers: vec!["main".into()] });
        let mut p = pod(&["main"], vec![], vec![]);
        p.status = None;
        assert_eq!(main_containers(&p), MainContainers::Running { containers: vec!["main".into()] });
    }

    #[test]
    fn failed_jobs_are_detected_by_condition() {
        let cond = |t: &str, s: &str, r: &str| JobCondition {
            type_: t.into(),
            status: s.into(),
            reason: Some(r.into()),
            ..Default::default()
        };
        let mut job = Job::default();
        assert_eq!(job_failure(&job), None);
        job.status = Some(JobStatus { conditions: Some(vec![cond("Complete", "True", "")]), ..Default::default() });
        assert_eq!(job_failure(&job), None);
        job.status =
            Some(JobStatus { conditions: Some(vec![cond("FailureTarget", "True", "DeadlineExceeded")]), ..Default::default() });
        assert_eq!(job_failure(&job).as_deref(), Some("DeadlineExceeded"));
        job.status =
            Some(JobStatus { conditions: Some(vec![cond("Failed", "False", "BackoffLimitExceeded")]), ..Default::default() });
        assert_eq!(job_failure(&job), None);
        assert_eq!(job_failed_error("seed", "DeadlineExceeded").status(), 409);
    }

    #[test]
    fn verdict_combines_containers_and_job() {
        let failed = MainContainers::Failed { container: "main".into(), exit_code: 143, reason: Some("Error".into()) };
        let running = MainContainers::Running { containers: vec!["main".into()] };
        assert!(verdict(&MainContainers::Succeeded, None, "seed", "env/p").is_ok());
        // The container's exit code says more than the Job's condition.
        assert!(verdict(&failed, Some("DeadlineExceeded"), "seed", "env/p").unwrap_err().to_string().contains("code 143"));
        // A failed Job publishes nothing, even if its containers exited 0 (SIGTERM handled).
        let e = verdict(&MainContainers::Succeeded, Some("DeadlineExceeded"), "seed", "env/p").unwrap_err();
        assert_eq!(e.status(), 409);
        assert!(e.to_string().contains("Job seed has failed (DeadlineExceeded)"), "{e}");
        // ... and a still running pod of a failed Job is not worth a retry.
        assert_eq!(verdict(&running, Some("BackoffLimitExceeded"), "seed", "env/p").unwrap_err().status(), 409);
        let e = verdict(&running, None, "seed", "env/p").unwrap_err();
        assert_eq!(e.status(), 503);
        assert!(e.to_string().starts_with("main container main of pod env/p has not ended yet"), "{e}");
    }
}
