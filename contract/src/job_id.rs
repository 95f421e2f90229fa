//! JOBIDs: the job part of `QOVERY_OUTPUT_JOB_<JOBID>_<KEY>`.
//!
//! A JOBID is decided once, when a Job is admitted to an environment, and
//! recorded in the Job's `job-id` annotation; every other part reads it from
//! there, through the contract's reader of a Job
//! (`lifecycle_job::job_id`, feature `k8s`, which also says whether it was
//! recorded or, for a Job with none recorded, derived). The source it is
//! decided from, in order: the `job-id` annotation; for a run, its template's
//! JOBID; for a Job of a CronJob, the CronJob's; else the Job's name (or its
//! `generateName` prefix) — named once, in `lifecycle_job::JobFacts::job_id_source`.

use std::fmt;

/// Longest JOBID: it is a label value (`capture`), at most 63 characters.
pub const MAX_LEN: usize = 63;

/// A JOBID: uppercase ASCII letters, digits and `_` only, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

/// Why a JOBID cannot serve: it must be a label value and part of a field
/// manager name. The message names the rule and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobIdError {
    #[error(
        "JOBID {id} is {len} characters long; a JOBID is at most {MAX_LEN} (it is a label value): \
         set annotation lifecycle-jobs.dev/job-id to a shorter name"
    )]
    TooLong { id: String, len: usize },
    #[error(
        "JOBID {id} starts or ends with `_` (from a character outside [A-Za-z0-9]); a JOBID must start and \
         end with a letter or digit (it is a label value): set annotation lifecycle-jobs.dev/job-id, e.g. {suggestion}"
    )]
    Edge { id: String, suggestion: String },
    #[error("the JOBID is empty: name the Job or set annotation lifecycle-jobs.dev/job-id")]
    Empty,
}

impl JobId {
    /// Normalises a JOBID source: the `job-id` annotation if set, else `name`
    /// (the Job's name, its template's or CronJob's, or a `generateName`
    /// prefix): uppercased, every character outside `[A-Z0-9]` replaced by
    /// `_`. The result may break [`JobId::check`]'s rules; admission uses
    /// [`JobId::decide`], which refuses those.
    pub fn derive(annotation: Option<&str>, name: &str) -> JobId {
        let source = match annotation.map(str::trim) {
            Some(a) if !a.is_empty() => a,
            _ => name,
        };
        let mut s: String = source
            .chars()
            .map(|c| {
                let u = c.to_ascii_uppercase();
                if u.is_ascii_uppercase() || u.is_ascii_digit() { u } else { '_' }
            })
            .collect();
        if s.is_empty() {
            s.push('_');
        }
        JobId(s)
    }

    /// [`JobId::derive`], refused when the result cannot serve as a label
    /// value and a field manager name.
    pub fn decide(annotation: Option<&str>, name: &str) -> Result<JobId, JobIdError> {
        let source = annotation.map(str::trim).filter(|a| !a.is_empty()).unwrap_or(name);
        if source.is_empty() {
            return Err(JobIdError::Empty);
        }
        let id = JobId::derive(annotation, name);
        id.check()?;
        Ok(id)
    }

    /// The rules of a usable JOBID: at most [`MAX_LEN`] characters, first and
    /// last a letter or digit.
    pub fn check(&self) -> Result<(), JobIdError> {
        let s = self.0.as_str();
        if s.len() > MAX_LEN {
            return Err(JobIdError::TooLong { id: s.to_string(), len: s.len() });
        }
        if s.starts_with('_') || s.ends_with('_') {
            let trimmed = s.trim_matches('_');
            let suggestion = if trimmed.is_empty() { "JOB1".to_string() } else { trimmed.to_string() };
            return Err(JobIdError::Edge { id: s.to_string(), suggestion });
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses an already decided JOBID (a `capture` label value, a recorded
    /// `job-id` annotation, a field manager's suffix): `None` unless it is
    /// normalised and follows [`JobId::check`]'s rules.
    pub fn parse(s: &str) -> Option<JobId> {
        let id = JobId(s.to_string());
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') && id.check().is_ok())
            .then_some(id)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_from_name_or_annotation() {
        assert_eq!(JobId::derive(None, "seed-db.v2").as_str(), "SEED_DB_V2");
        assert_eq!(JobId::derive(Some("zf138d9c8"), "seed").as_str(), "ZF138D9C8");
        assert_eq!(JobId::derive(Some("  "), "seed").as_str(), "SEED");
        assert_eq!(JobId::derive(None, "é").as_str(), "_");
    }

    #[test]
    fn a_recorded_job_id_derives_to_itself() {
        let id = JobId::decide(Some("zf138d9c8"), "seed").unwrap();
        assert_eq!(JobId::derive(Some(id.as_str()), "other"), id);
    }

    #[test]
    fn decide_refuses_what_cannot_be_a_label_value() {
        assert!(matches!(JobId::decide(Some(&"a".repeat(64)), "x"), Err(JobIdError::TooLong { len: 64, .. })));
        assert!(JobId::decide(Some(&"a".repeat(63)), "x").is_ok());
        let err = JobId::decide(Some("-seed"), "x").unwrap_err();
        assert!(matches!(&err, JobIdError::Edge { suggestion, .. } if suggestion == "SEED"), "{err}");
        assert!(err.to_string().contains("start and end with a letter or digit"));
        assert!(JobId::decide(None, "seed-").is_err());
        assert!(JobId::decide(None, "é").is_err());
        assert_eq!(JobId::decide(None, ""), Err(JobIdError::Empty));
    }

    #[test]
    fn parses_decided_only() {
        assert!(JobId::parse("SEED_1").is_some());
        assert!(JobId::parse("seed").is_none());
        assert!(JobId::parse("").is_none());
        assert!(JobId::parse("_SEED").is_none());
        assert!(JobId::parse(&"A".repeat(64)).is_none());
    }
}
