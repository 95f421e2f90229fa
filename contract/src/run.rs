//! How a Job of an environment ended: the one rule the controller (which
//! records a run's result and moves a transition on) and the plugin (which
//! waits for a run and prints it) both read, so they never disagree.
//!
//! - Only the terminal conditions end a Job: `Complete` and `Failed`
//!   (`Failed` covers `BackoffLimitExceeded`, `DeadlineExceeded` for
//!   `activeDeadlineSeconds`, pod failure policies...). The intermediate
//!   `SuccessCriteriaMet` / `FailureTarget` conditions are no end: its pods may
//!   still be terminating.
//! - A `Complete` Job whose outputs the server could not publish has failed
//!   (reason [`OUTPUTS_NOT_PUBLISHED_REASON`]): the server records the loss in
//!   the Job's `outputs` annotation as `outputs not published: <why>`
//!   ([`OUTPUTS_NOT_PUBLISHED`]), a name only the server writes.

use k8s_openapi::api::batch::v1::{Job, JobCondition};

use crate::names::{ANNOTATION_OUTPUTS, OUTPUTS_NOT_PUBLISHED};

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
    /// The terminal condition, for its times.
    pub condition: JobCondition,
}

/// The loss the server recorded on a Job (its `outputs` annotation), if any.
pub fn recorded_loss(job: &Job) -> Option<&str> {
    let value = job.metadata.annotations.as_ref()?.get(ANNOTATION_OUTPUTS)?;
    value.starts_with(OUTPUTS_NOT_PUBLISHED).then_some(value.as_str())
}

/// How `job` ended, once it has (see the module's doc); `None` while it runs.
pub fn outcome(job: &Job) -> Option<Outcome> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let ended = |t: &str| conditions.iter().find(|c| c.status == "True" && c.type_ == t);
    if let Some(c) = ended("Failed") {
        return Some(Outcome { succeeded: false, reason: c.reason.clone(), message: c.message.clone(), condition: c.clone() });
    }
    let c = ended("Complete")?;
    Some(match recorded_loss(job) {
        Some(why) => Outcome {
            succeeded: false,
            reason: Some(OUTPUTS_NOT_PUBLISHED_REASON.into()),
            message: Some(why.into()),
            condition: c.clone(),
        },
        None => Outcome { succeeded: true, reason: c.reason.clone(), message: c.message.clone(), condition: c.clone() },
    })
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
        assert_eq!(outcome(&job(&[("SuccessCriteriaMet", "True")], None)), None);
        assert!(ending(&job(&[("SuccessCriteriaMet", "True")], None)));
        assert!(ending(&job(&[("FailureTarget", "True")], None)));
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
}
