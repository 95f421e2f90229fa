//! Kubernetes Events on Jobs about their outputs: published, rejected (and
//! why), a variable taken over from another job, an alias withheld for a
//! reserved name. Notes name keys and rules,
//! never a value, and fit the API's 1 KiB limit.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use lifecycle_contract::JobId;
use lifecycle_contract::names::{VARIABLE_PREFIX, never_environment};
use lifecycle_contract::output::Output;

use super::error::Error;
use super::plan::Takeover;

/// `reportingController` of the Events.
pub(crate) const REPORTER: &str = "lifecycle-jobs.dev/outputs-api";
pub(crate) const REASON_PUBLISHED: &str = "OutputsPublished";
pub(crate) const REASON_REJECTED: &str = "OutputsRejected";
pub(crate) const REASON_TAKEN_OVER: &str = "OutputAliasTakenOver";
pub(crate) const REASON_RESERVED: &str = "OutputAliasReserved";
const ACTION: &str = "PublishOutputs";
/// The API server refuses a longer note.
pub(crate) use crate::runtime::text::EVENT_NOTE_MAX_BYTES as NOTE_MAX_BYTES;
use crate::runtime::text::event_note as fit;

/// Pure: `head` followed by as many `items` as fit (joined by `sep`), then
/// `… and N more` for the rest, then `tail`; at most [`NOTE_MAX_BYTES`].
pub(crate) fn fit_list(head: &str, items: &[String], sep: &str, tail: &str) -> String {
    let mut out = head.to_string();
    for (i, item) in items.iter().enumerate() {
        let more = items.len() - i - 1;
        let reserve = if more > 0 { format!("{sep}… and {more} more").len() } else { 0 } + tail.len();
        let piece = if i == 0 { item.clone() } else { format!("{sep}{item}") };
        if out.len() + piece.len() + reserve > NOTE_MAX_BYTES {
            let left = items.len() - i;
            out.push_str(&format!("{}… and {left} more", if i == 0 { "" } else { sep }));
            out.push_str(tail);
            return fit(&out);
        }
        out.push_str(&piece);
    }
    out.push_str(tail);
    fit(&out)
}

/// Pure: `published 5 outputs of job SEED as QOVERY_OUTPUT_JOB_SEED_<KEY> and <KEY>: A, B, ... (1 sensitive)`.
pub(crate) fn published_note(job_id: &JobId, entries: &[Output]) -> String {
    let n = entries.len();
    let sensitive = entries.iter().filter(|o| o.sensitive).count();
    let head = format!(
        "published {n} output{} of job {job_id} as {VARIABLE_PREFIX}{job_id}_<KEY> and <KEY>: ",
        if n == 1 { "" } else { "s" }
    );
    let names: Vec<String> = entries.iter().map(|o| o.key.clone()).collect();
    fit_list(&head, &names, ", ", &format!(" ({sensitive} sensitive)"))
}

/// Pure: `no alias for PATH, LD_PRELOAD: reserved names; …`.
pub(crate) fn reserved_note(job_id: &JobId, keys: &[String]) -> String {
    let head = "no alias published for ";
    let tail = format!(
        ": reserved names (system, loader and runtime variables); workloads get only {VARIABLE_PREFIX}{job_id}_<KEY> \
         for them. Rename the output to publish an alias"
    );
    fit_list(head, keys, ", ", &tail)
}

/// Pure: the note of a refusal: its message, then every error that fits.
pub(crate) fn rejected_note(e: &Error) -> String {
    let errors = e.errors();
    if errors.is_empty() {
        return fit(&e.to_string());
    }
    let n = errors.len();
    let head = format!(
        "output file rejected ({n} error{}), nothing published, the job's earlier outputs stay: ",
        if n == 1 { "" } else { "s" }
    );
    fit_list(&head, errors, "; ", "")
}

/// Variables one job took from another, grouped by the job that had them.
pub(crate) fn group_takeovers(takeovers: &[Takeover]) -> BTreeMap<JobId, Vec<String>> {
    let mut by_job: BTreeMap<JobId, Vec<String>> = BTreeMap::new();
    for t in takeovers {
        let keys = by_job.entry(t.previous.clone()).or_default();
        if !keys.contains(&t.key) {
            keys.push(t.key.clone());
        }
    }
    by_job
}

/// Pure: `variable HOST, written by job OTHER (Job env/other) until now, is now written by job SEED (Job env/seed): the later publish wins`.
pub(crate) fn takeover_note(keys: &[String], previous: &JobId, previous_job: Option<&str>, now: &JobId, now_job: &str) -> String {
    let previous_job = match previous_job {
        Some(name) => format!("Job {name}"),
        None => "no such Job exists any more".to_string(),
    };
    let head = format!("variable{} ", if keys.len() == 1 { "" } else { "s" });
    let tail = format!(
        ", written by job {previous} ({previous_job}) until now, {} now written by job {now} (Job {now_job}): the later publish wins",
        if keys.len() == 1 { "is" } else { "are" }
    );
    fit_list(&head, keys, ", ", &tail)
}

/// Publishes one Event on each of `refs`; failures are logged, never fatal
/// (the outputs are already published, or already refused).
pub(crate) async fn emit(
    client: &Client,
    instance: &str,
    refs: &[ObjectReference],
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event { type_, reason: reason.into(), note: Some(fit(&note)), action: ACTION.into(), secondary: None };
    for r in refs {
        // Never about an object of the cluster's own namespaces, whoever asks
        // (the callers only act in environments; this holds even if one did not).
        let ns = r.namespace.as_deref().unwrap_or_default();
        if never_environment(ns, client.default_namespace()) {
            tracing::warn!(namespace = ns, reason, "no Event written outside the environments");
            continue;
        }
        // A fresh recorder each time: the recorder's cache would fold a new
        // note into an earlier Event of the same reason (keeping the old note).
        let recorder = Recorder::new(client.clone(), Reporter { controller: REPORTER.into(), instance: Some(instance.into()) });
        if let Err(e) = recorder.publish(&event, r).await {
            tracing::warn!(error = %super::error::short(&e), job = r.name.as_deref().unwrap_or(""), reason, "could not record an Event on the Job");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::plan::Object;

    fn out(key: &str, sensitive: bool) -> Output {
        Output { key: key.into(), value: "secret-value".into(), sensitive }
    }

    #[test]
    fn published_note_lists_names_never_values() {
        let id = JobId::parse("SEED").unwrap();
        let note = published_note(&id, &[out("POSTGRES_DB_HOST", false), out("POSTGRES_DB_PASS", true)]);
        assert_eq!(
            note,
            "published 2 outputs of job SEED as QOVERY_OUTPUT_JOB_SEED_<KEY> and <KEY>: POSTGRES_DB_HOST, POSTGRES_DB_PASS (1 sensitive)"
        );
        assert!(!note.contains("secret-value"));
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let id = JobId::parse("SEED").unwrap();
        let entries: Vec<Output> = (0..500).map(|i| out(&format!("KEY_NUMBER_{i:04}"), i % 2 == 0)).collect();
        let note = published_note(&id, &entries);
        assert!(note.len() <= NOTE_MAX_BYTES, "{}", note.len());
        assert!(note.contains("KEY_NUMBER_0000, KEY_NUMBER_0001"));
        assert!(note.contains(" more (250 sensitive)"), "{note}");
        let shown = note.matches("KEY_NUMBER_").count();
        assert!(note.contains(&format!("… and {} more", 500 - shown)), "{note}");
    }

    #[test]
    fn rejected_note_names_every_error_that_fits() {
        let e = Error::Invalid {
            message: "output file rejected (2 errors)".into(),
            errors: vec![
                "line 3, column 14: key POSTGRES_DB_PASS: expected a JSON value, found `False` (rule: syntax). hint: `False` is not JSON: write `false`".into(),
                "line 4, column 3: key X: bad (rule: value-type)".into(),
            ],
        };
        let note = rejected_note(&e);
        assert!(
            note.starts_with("output file rejected (2 errors), nothing published, the job's earlier outputs stay: line 3, column 14: key POSTGRES_DB_PASS"),
            "{note}"
        );
        assert!(note.contains("write `false`; line 4"));

        let many = Error::Invalid {
            message: "rejected".into(),
            errors: (0..100).map(|i| format!("line {i}: {}", "x".repeat(40))).collect(),
        };
        let note = rejected_note(&many);
        assert!(note.len() <= NOTE_MAX_BYTES);
        assert!(note.contains(" more"));

        assert_eq!(
            rejected_note(&Error::AgentRefused("the agent could not read the file".into())),
            "the agent could not read the file"
        );
        assert!(rejected_note(&Error::AgentRefused("é".repeat(1000))).len() <= NOTE_MAX_BYTES);
    }

    #[test]
    fn takeovers_are_grouped_and_described() {
        let other = JobId::parse("OTHER").unwrap();
        let seed = JobId::parse("SEED").unwrap();
        let t = |key: &str| Takeover { key: key.into(), previous: other.clone(), into: Object::ConfigMap, remove_from: None };
        let grouped = group_takeovers(&[t("HOST"), t("PORT"), t("HOST")]);
        assert_eq!(grouped[&other], ["HOST", "PORT"]);
        assert_eq!(
            takeover_note(&grouped[&other], &other, Some("env/other"), &seed, "env/seed"),
            "variables HOST, PORT, written by job OTHER (Job env/other) until now, are now written by job SEED (Job env/seed): the later publish wins"
        );
        assert!(
            takeover_note(&["HOST".into()], &other, None, &seed, "env/seed")
                .contains("variable HOST, written by job OTHER (no such Job exists any more) until now, is now")
        );
    }

    #[test]
    fn fit_cuts_on_a_character_boundary() {
        let s = fit(&"é".repeat(600));
        assert!(s.len() <= NOTE_MAX_BYTES && s.ends_with('…'));
        assert_eq!(fit("short"), "short");
    }
}
