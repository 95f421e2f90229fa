//! Who owns which data key of the ConfigMap / Secret `lifecycle-outputs`,
//! read from `metadata.managedFields` (server-side apply bookkeeping): each
//! job's outputs are applied with its own field manager
//! `lifecycle-jobs.dev/job-<JOBID>`, whose entry lists the keys it owns as
//! `fieldsV1: {"f:data": {"f:KEY": {}, ...}}`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use lifecycle_contract::JobId;
use lifecycle_contract::names::DOMAIN;

/// Data key → the field managers that own it.
pub(crate) type Owners = BTreeMap<String, BTreeSet<String>>;

/// Prefix of the field managers of job outputs (`lifecycle-jobs.dev/job-`).
pub(crate) fn job_manager_prefix() -> String {
    format!("{DOMAIN}/job-")
}

/// The JOBID of a job outputs field manager, `None` for any other manager.
pub(crate) fn manager_job_id(manager: &str) -> Option<JobId> {
    manager.strip_prefix(&job_manager_prefix()).and_then(JobId::parse)
}

/// The data keys of `entries` (the main resource, not subresources) with their owners.
pub(crate) fn data_key_owners(entries: Option<&[ManagedFieldsEntry]>) -> Owners {
    let mut owners = Owners::new();
    for e in entries.unwrap_or_default() {
        if e.subresource.as_deref().is_some_and(|s| !s.is_empty()) {
            continue;
        }
        let Some(manager) = e.manager.as_deref() else { continue };
        for key in data_keys(e) {
            owners.entry(key).or_default().insert(manager.to_string());
        }
    }
    owners
}

/// The data keys one managed-fields entry owns.
pub(crate) fn data_keys(e: &ManagedFieldsEntry) -> Vec<String> {
    let data = e.fields_v1.as_ref().and_then(|f| f.0.get("f:data")).and_then(|d| d.as_object());
    data.into_iter().flat_map(|d| d.keys()).filter_map(|k| k.strip_prefix("f:")).map(str::to_string).collect()
}

/// The data keys `manager` owns.
pub(crate) fn owned_by(owners: &Owners, manager: &str) -> BTreeSet<String> {
    owners.iter().filter(|(_, m)| m.contains(manager)).map(|(k, _)| k.clone()).collect()
}

/// Whether `manager` has any entry (owns any field at all, data or not).
pub(crate) fn has_manager(entries: Option<&[ManagedFieldsEntry]>, manager: &str) -> bool {
    entries.unwrap_or_default().iter().any(|e| e.manager.as_deref() == Some(manager))
}

/// The other jobs (JOBIDs, not `own`) whose field managers own `key`.
pub(crate) fn other_jobs_owning(owners: &Owners, key: &str, own: &JobId) -> Vec<JobId> {
    owners.get(key).into_iter().flatten().filter_map(|m| manager_job_id(m)).filter(|id| id != own).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    fn entry(manager: &str, op: &str, fields: serde_json::Value, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            subresource: subresource.map(Into::into),
            time: None,
        }
    }

    fn sample() -> Vec<ManagedFieldsEntry> {
        vec![
            entry(
                "lifecycle-jobs.dev/job-SEED",
                "Apply",
                json!({"f:data": {"f:QOVERY_OUTPUT_JOB_SEED_HOST": {}, "f:HOST": {}}, "f:metadata": {"f:labels": {"f:app.kubernetes.io/managed-by": {}}}}),
                None,
            ),
            entry(
                "lifecycle-jobs.dev/job-MIGRATE",
                "Apply",
                json!({"f:data": {"f:QOVERY_OUTPUT_JOB_MIGRATE_HOST": {}, "f:HOST": {}}}),
                None,
            ),
            entry("kubectl-edit", "Update", json!({"f:data": {".": {}, "f:MANUAL": {}}}), None),
            entry("lifecycle-jobs.dev/job-ODD", "Update", json!({"f:data": {"f:SUB": {}}}), Some("status")),
            entry("lifecycle-jobs.dev/job-NODATA", "Apply", json!({"f:metadata": {"f:labels": {}}}), None),
        ]
    }

    #[test]
    fn parses_data_key_owners() {
        let entries = sample();
        let owners = data_key_owners(Some(&entries));
        assert_eq!(
            owners.keys().cloned().collect::<Vec<_>>(),
            ["HOST", "MANUAL", "QOVERY_OUTPUT_JOB_MIGRATE_HOST", "QOVERY_OUTPUT_JOB_SEED_HOST"]
        );
        assert_eq!(owners["HOST"].len(), 2);
        assert_eq!(owners["MANUAL"], BTreeSet::from(["kubectl-edit".to_string()]));
        assert_eq!(
            owned_by(&owners, "lifecycle-jobs.dev/job-SEED"),
            BTreeSet::from(["HOST".to_string(), "QOVERY_OUTPUT_JOB_SEED_HOST".to_string()])
        );
        assert!(owned_by(&owners, "lifecycle-jobs.dev/job-NODATA").is_empty());
        assert!(has_manager(Some(&entries), "lifecycle-jobs.dev/job-NODATA"));
        assert!(!has_manager(Some(&entries), "lifecycle-jobs.dev/job-OTHER"));
        assert!(data_key_owners(None).is_empty());
    }

    #[test]
    fn finds_other_jobs_owning_a_key() {
        let entries = sample();
        let owners = data_key_owners(Some(&entries));
        let seed = JobId::parse("SEED").unwrap();
        assert_eq!(other_jobs_owning(&owners, "HOST", &seed), vec![JobId::parse("MIGRATE").unwrap()]);
        assert!(other_jobs_owning(&owners, "MANUAL", &seed).is_empty(), "not a job's manager");
        assert!(other_jobs_owning(&owners, "QOVERY_OUTPUT_JOB_SEED_HOST", &seed).is_empty(), "own key");
        assert!(other_jobs_owning(&owners, "ABSENT", &seed).is_empty());
    }

    #[test]
    fn recognises_job_managers_only() {
        assert_eq!(manager_job_id("lifecycle-jobs.dev/job-SEED_1").unwrap().as_str(), "SEED_1");
        assert_eq!(manager_job_id("lifecycle-jobs.dev/job-seed"), None);
        assert_eq!(manager_job_id("lifecycle-jobs.dev/job-"), None);
        assert_eq!(manager_job_id("kubectl"), None);
        let id = JobId::parse("SEED").unwrap();
        assert_eq!(manager_job_id(&lifecycle_contract::names::field_manager(&id)), Some(id));
    }
}
