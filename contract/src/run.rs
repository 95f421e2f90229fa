//! How a Job of an environment ended: the one rule the controller (which
//! records a run's result and moves a transition on) and the plugin (which
//! waits for a run and prints it) both read, so they never disagree.
//!
//! A run's outcome is taken as soon as it is certain, not when the Job
//! controller gets round to its final condition (it batches pod updates for
//! about a second):
//! - `Failed`, or `FailureTarget` (the Job controller decided the Job fails and
//!   is terminating its pods: `BackoffLimitExceeded`, `DeadlineExceeded` for
//!   `activeDeadlineSeconds`, pod failure policies...): failed.
//! - A Job of one pod (`completions` and `parallelism` 1, the default) whose
//!   pod the server recorded in `outputs-published-by`: succeeded. The server
//!   records only a pod of that Job whose main containers all ended with 0
//!   (after publishing its outputs, or finding it had none), and refuses one of
//!   a Job that failed; that pod's success completes the Job.
//! - `Complete`: succeeded, unless the server could not publish the outputs
//!   (reason [`OUTPUTS_NOT_PUBLISHED_REASON`]): it records the loss in the
//!   Job's `outputs` annotation as `outputs not published: <why>`
//!   ([`OUTPUTS_NOT_PUBLISHED`]), a name only the server writes. (A Job whose
//!   pods do not report to the server, opted out of capture, ends here.)
//! - `SuccessCriteriaMet` is no end: the agent of its pod may still be
//!   publishing.

use k8s_openapi::api::batch::v1::{Job, JobCondition};

use crate::names::{ANNOTATION_OUTPUTS, ANNOTATION_OUTPUTS_PUBLISHED_BY, OUTPUTS_NOT_PUBLISHED};

/// The reason of a run that completed but whose outputs were lost.
pub const OUTPUTS_NOT_PUBLISHED_REASON: &str = "OutputsNotPublished";

/// How a Job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub succeeded: bool,
    /// The terminal condition's reason, or [`OUTPUTS_NOT_PUBLISHED_REASON`].
    pub reason: Option<String>,
    /// The terminal condition's message, or the recorded loss.
    pub message: Option<String>,
    /// The condition that ended it, for its times; `None` when the server's
    /// record of the pod's end came first.
    pub condition: Option<JobCondition>,
}

/// The loss the server recorded on a Job (its `outputs` annotation), if any.
pub fn recorded_loss(job: &Job) -> Option<&str> {
    let value = job.metadata.annotations.as_ref()?.get(ANNOTATION_OUTPUTS)?;
    value.starts_with(OUTPUTS_NOT_PUBLISHED).then_some(value.as_str())
}

/// How `job` ended, once that is certain (see the module's doc); `None`
/// while it runs.
pub fn outcome(job: &Job) -> Option<Outcome> {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let ended = |t: &str| conditions.iter().find(|c| c.status == "True" && c.type_ == t);
    if let Some(c) = ended("Failed").or_else(|| ended("FailureTarget")) {
        return Some(Outcome {
            succeeded: false,
            reason: c.reason.clone(),
            message: c.message.clone(),
            condition: Some(c.clone()),
        });
    }
    if let Some(c) = ended("Complete") {
        return Some(match recorded_loss(job) {
            Some(why) => Outcome {
                succeeded: false,
                reason: Some(OUTPUTS_NOT_PUBLISHED_REASON.into()),
                message: Some(why.into()),
                condition: Some(c.clone()),
            },
            None => Outcome { succeeded: true, reason: c.reason.clone(), message: c.message.clone(), condition: Some(c.clone()) },
        });
    }
    (single_pod(job) && publisher(job).is_some()).then(|| Outcome {
        succeeded: true,
        reason: Some(POD_REPORTED_REASON.into()),
        message: None,
        condition: None,
    })
}

/// The reason of a run that succeeded by the server's record of its pod
/// (before the Job controller's `Complete`).
pub const POD_REPORTED_REASON: &str = "OutputsPublished";

/// A Job that completes with its first successful pod: one completion, one pod at a time.
fn single_pod(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    let one = |n: Option<i32>| n.is_none_or(|n| n == 1);
    one(spec.and_then(|s| s.completions)) && one(spec.and_then(|s| s.parallelism))
}

/// The pod the server recorded as the publisher of `job`'s outputs
/// (`outputs-published-by: <pod>/<uid>`), as (name, UID).
pub fn publisher(job: &Job) -> Option<(&str, &str)> {
    let value = job.metadata.annotations.as_ref()?.get(ANNOTATION_OUTPUTS_PUBLISHED_BY)?;
    value.rsplit_once('/').filter(|(pod, uid)| !pod.is_empty() && !uid.is_empty())
}

/// Whether `job` is ending (a `SuccessCriteriaMet` or `FailureTarget`
/// condition) without having ended yet.
pub fn ending(job: &Job) -> bool {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    outcome(job).is_none()
        && conditions.iter().any(|c| c.status == "True" && matches!(c.type_.as_str(), "SuccessCriteriaMet" | "FailureTarget"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobStatus;

    fn job(conditions: &[(&str, &str)], outputs: Option<&str>) -> Job {
        let mut j = Job::default();
        j.metadata.annotations = outputs.map(|o| [(ANNOTATION_OUTPUTS.to_string(), o.to_string())].into());
        j.status = Some(JobStatus {
            conditions: Some(
                conditions
                    .iter()
                    .map(|(t, s)| JobCondition {
                        type_: t.to_string(),
                        status: s.to_string(),
                        reason: Some(format!("{t}Reason")),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        j
    }

    #[test]
    fn only_terminal_conditions_end_a_job() {
        assert_eq!(outcome(&job(&[], None)), None);
        assert_eq!(outcome(&job(&[("SuccessCriteriaMet", "True")], None)), None, "its agent may still publish");
        assert!(ending(&job(&[("SuccessCriteriaMet", "True")], None)));
        let failing = outcome(&job(&[("FailureTarget", "True")], None)).unwrap();
        assert!(!failing.succeeded, "the Job controller decided: failed for good");
        assert!(!ending(&job(&[("FailureTarget", "True")], None)));
        assert_eq!(outcome(&job(&[("Complete", "False")], None)), None);
        let done = outcome(&job(&[("SuccessCriteriaMet", "True"), ("Complete", "True")], None)).unwrap();
        assert!(done.succeeded && !ending(&job(&[("Complete", "True")], None)));
        let failed = outcome(&job(&[("FailureTarget", "True"), ("Failed", "True")], None)).unwrap();
        assert!(!failed.succeeded);
        assert_eq!(failed.reason.as_deref(), Some("FailedReason"));
    }

    #[test]
    fn a_complete_job_whose_outputs_were_lost_has_failed() {
        let lost = "outputs not published: the agent was stopped before it could publish";
        let o = outcome(&job(&[("Complete", "True")], Some(lost))).unwrap();
        assert!(!o.succeeded);
        assert_eq!(o.reason.as_deref(), Some(OUTPUTS_NOT_PUBLISHED_REASON));
        assert_eq!(o.message.as_deref(), Some(lost));
        // A published summary is no loss.
        assert!(outcome(&job(&[("Complete", "True")], Some(r#"{"KEY":"v"}"#))).unwrap().succeeded);
        assert_eq!(recorded_loss(&job(&[], Some(lost))), Some(lost));
    }

    #[test]
    fn a_single_pod_run_whose_pod_the_server_recorded_has_succeeded() {
        use crate::names::ANNOTATION_OUTPUTS_PUBLISHED_BY;
        use k8s_openapi::api::batch::v1::JobSpec;
        let mut j = job(&[], None);
        j.metadata.annotations =
            Some([(ANNOTATION_OUTPUTS_PUBLISHED_BY.to_string(), "seed-start-x-abcde/pod-uid".to_string())].into());
        let o = outcome(&j).unwrap();
        assert!(o.succeeded && o.condition.is_none());
        assert_eq!(o.reason.as_deref(), Some(POD_REPORTED_REASON));
        // The Job controller's verdict wins when it has one.
        j.status.as_mut().unwrap().conditions = Some(vec![JobCondition {
            type_: "FailureTarget".into(),
            status: "True".into(),
            reason: Some("DeadlineExceeded".into()),
            ..Default::default()
        }]);
        assert!(!outcome(&j).unwrap().succeeded);
        j.status = None;
        // Several pods: one pod's end is not the Job's.
        j.spec = Some(JobSpec { completions: Some(3), ..Default::default() });
        assert_eq!(outcome(&j), None);
        j.spec = Some(JobSpec { parallelism: Some(2), ..Default::default() });
        assert_eq!(outcome(&j), None);
        j.spec = Some(JobSpec { completions: Some(1), parallelism: Some(1), ..Default::default() });
        assert!(outcome(&j).unwrap().succeeded);
        j.metadata.annotations = Some([(ANNOTATION_OUTPUTS_PUBLISHED_BY.to_string(), "garbage".to_string())].into());
        assert_eq!(outcome(&j), None);
    }
}
