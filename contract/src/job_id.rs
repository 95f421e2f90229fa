//! JOBIDs: the job part of `QOVERY_OUTPUT_JOB_<JOBID>_<KEY>`.

use std::fmt;

/// A JOBID: uppercase ASCII letters, digits and `_` only, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    /// Derives the JOBID from the `job-id` annotation if set, else the Job's
    /// name (for a run: its template's): uppercased, every character outside
    /// `[A-Z0-9]` replaced by `_`.
    pub fn derive(annotation: Option<&str>, job_name: &str) -> JobId {
        let source = match annotation.map(str::trim) {
            Some(a) if !a.is_empty() => a,
            _ => job_name,
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

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses an already normalised JOBID (for example a `capture` label value).
    pub fn parse(s: &str) -> Option<JobId> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
            .then(|| JobId(s.to_string()))
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
    fn parses_normalised_only() {
        assert!(JobId::parse("SEED_1").is_some());
        assert!(JobId::parse("seed").is_none());
        assert!(JobId::parse("").is_none());
    }
}
