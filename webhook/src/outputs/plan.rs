//! What one job's publication writes, decided before anything is written:
//! the data of the ConfigMap and of the Secret, the aliases taken over from
//! other jobs, and whether the same pod already published exactly this.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use lifecycle_contract::JobId;
use lifecycle_contract::names::variable_name;
use lifecycle_contract::output::Output;
use lifecycle_contract::reserved::is_reserved_alias;

use super::managed_fields::{Owners, data_key_owners, other_jobs_owning, owned_by};

/// One of the two objects named `lifecycle-outputs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Object {
    ConfigMap,
    Secret,
}

impl Object {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Object::ConfigMap => "ConfigMap",
            Object::Secret => "Secret",
        }
    }
}

/// The whole set of data keys one job writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Non-sensitive: `QOVERY_OUTPUT_JOB_<JOBID>_<KEY>` and `<KEY>` → value.
    pub config: BTreeMap<String, String>,
    /// Sensitive: same names → value (base64-encoded only when applied).
    pub secret: BTreeMap<String, String>,
    /// Aliases not written because the name is reserved
    /// ([`lifecycle_contract::reserved`]): `PATH`, `LD_PRELOAD`, … The full name is written.
    /// (`QOVERY_OUTPUT_JOB_*` is reserved too, so an alias never shadows a full name.)
    pub reserved_aliases: Vec<String>,
}

impl Plan {
    pub(crate) fn get(&self, object: Object) -> &BTreeMap<String, String> {
        match object {
            Object::ConfigMap => &self.config,
            Object::Secret => &self.secret,
        }
    }

    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.config.len() + self.secret.len()
    }
}

/// Pure: the data a job's outputs become. Full names first, then aliases.
pub(crate) fn plan(job_id: &JobId, entries: &[Output]) -> Plan {
    let mut p = Plan::default();
    for o in entries {
        let map = if o.sensitive { &mut p.secret } else { &mut p.config };
        map.insert(variable_name(job_id, &o.key), o.value.clone());
    }
    for o in entries {
        if is_reserved_alias(&o.key) {
            p.reserved_aliases.push(o.key.clone());
            continue;
        }
        let map = if o.sensitive { &mut p.secret } else { &mut p.config };
        map.insert(o.key.clone(), o.value.clone());
    }
    p
}

/// The two objects as they are now (`None`: absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct Current {
    pub config_map: Option<ConfigMap>,
    pub secret: Option<Secret>,
}

impl Current {
    pub(crate) fn owners(&self, object: Object) -> Owners {
        match object {
            Object::ConfigMap => data_key_owners(self.config_map.as_ref().and_then(|o| o.metadata.managed_fields.as_deref())),
            Object::Secret => data_key_owners(self.secret.as_ref().and_then(|o| o.metadata.managed_fields.as_deref())),
        }
    }

    /// The current value of a data key (`None` when absent or, in the
    /// Secret, not UTF-8: then it cannot equal an output value).
    pub(crate) fn value(&self, object: Object, key: &str) -> Option<String> {
        match object {
            Object::ConfigMap => self.config_map.as_ref()?.data.as_ref()?.get(key).cloned(),
            Object::Secret => String::from_utf8(self.secret.as_ref()?.data.as_ref()?.get(key)?.0.clone()).ok(),
        }
    }
}

/// A data key that another job wrote and this publication takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Takeover {
    pub key: String,
    /// The job that had it.
    pub previous: JobId,
    /// Where this job writes it.
    pub into: Object,
    /// Set when the other job has it in the other object (its sensitivity
    /// differs): it is removed from there, so that only the later value is
    /// seen by workloads.
    pub remove_from: Option<Object>,
}

/// Pure: the keys this job is about to write that other jobs' field managers own.
pub(crate) fn takeovers(job_id: &JobId, plan: &Plan, current: &Current) -> Vec<Takeover> {
    let owners = [(Object::ConfigMap, current.owners(Object::ConfigMap)), (Object::Secret, current.owners(Object::Secret))];
    let mut out = Vec::new();
    for into in [Object::ConfigMap, Object::Secret] {
        for key in plan.get(into).keys() {
            for (object, owners) in &owners {
                for previous in other_jobs_owning(owners, key, job_id) {
                    let remove_from = (*object != into).then_some(*object);
                    out.push(Takeover { key: key.clone(), previous, into, remove_from });
                }
            }
        }
    }
    out
}

/// Pure: whether what `manager` owns now is exactly `plan` (a replay of the
/// same publication). Compares the stored values, so that no digest of a
/// sensitive value is ever written anywhere.
pub(crate) fn same_as_published(plan: &Plan, manager: &str, current: &Current) -> bool {
    [Object::ConfigMap, Object::Secret].into_iter().all(|object| {
        let owned = owned_by(&current.owners(object), manager);
        let want = plan.get(object);
        owned.len() == want.len()
            && want.iter().all(|(k, v)| owned.contains(k) && current.value(object, k).as_deref() == Some(v.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use kube::core::ObjectMeta;
    use serde_json::json;

    fn out(key: &str, value: &str, sensitive: bool) -> Output {
        Output { key: key.into(), value: value.into(), sensitive }
    }

    fn id(s: &str) -> JobId {
        JobId::parse(s).unwrap()
    }

    fn mf(manager: &str, keys: &[&str]) -> ManagedFieldsEntry {
        let data: serde_json::Map<String, serde_json::Value> = keys.iter().map(|k| (format!("f:{k}"), json!({}))).collect();
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(json!({ "f:data": data }))),
            ..Default::default()
        }
    }

    fn config_map(data: &[(&str, &str)], fields: Vec<ManagedFieldsEntry>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta { managed_fields: Some(fields), ..Default::default() },
            data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }
    }

    fn secret(data: &[(&str, &str)], fields: Vec<ManagedFieldsEntry>) -> Secret {
        Secret {
            metadata: ObjectMeta { managed_fields: Some(fields), ..Default::default() },
            data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn splits_by_sensitivity_with_full_names_and_aliases() {
        let p = plan(&id("SEED"), &[out("HOST", "db", false), out("PASS", "pw", true)]);
        assert_eq!(p.config, BTreeMap::from([("HOST".into(), "db".into()), ("QOVERY_OUTPUT_JOB_SEED_HOST".into(), "db".into())]));
        assert_eq!(p.secret, BTreeMap::from([("PASS".into(), "pw".into()), ("QOVERY_OUTPUT_JOB_SEED_PASS".into(), "pw".into())]));
        assert!(p.reserved_aliases.is_empty());
        assert_eq!(p.keys(), 4);
    }

    #[test]
    fn reserved_names_get_their_full_name_only() {
        let p = plan(
            &id("SEED"),
            &[out("QOVERY_OUTPUT_JOB_SEED_X", "alias", true), out("X", "full", false), out("PATH", "/evil", false)],
        );
        assert_eq!(p.config["QOVERY_OUTPUT_JOB_SEED_X"], "full", "an alias never shadows a full name");
        assert_eq!(p.secret.keys().collect::<Vec<_>>(), ["QOVERY_OUTPUT_JOB_SEED_QOVERY_OUTPUT_JOB_SEED_X"]);
        assert_eq!(p.config["QOVERY_OUTPUT_JOB_SEED_PATH"], "/evil");
        assert!(!p.config.contains_key("PATH"));
        assert_eq!(p.reserved_aliases, ["QOVERY_OUTPUT_JOB_SEED_X", "PATH"]);
    }

    #[test]
    fn finds_aliases_taken_from_other_jobs_in_either_object() {
        let seed = id("SEED");
        let p = plan(&seed, &[out("HOST", "db", false), out("PASS", "pw", true)]);
        let current = Current {
            config_map: Some(config_map(
                &[("HOST", "old"), ("PASS", "old"), ("QOVERY_OUTPUT_JOB_SEED_HOST", "x")],
                vec![
                    mf("lifecycle-jobs.dev/job-OTHER", &["HOST", "PASS"]),
                    mf("lifecycle-jobs.dev/job-SEED", &["QOVERY_OUTPUT_JOB_SEED_HOST"]),
                    mf("kubectl-edit", &["HOST"]),
                ],
            )),
            secret: None,
        };
        let t = takeovers(&seed, &p, &current);
        assert_eq!(
            t,
            vec![
                Takeover { key: "HOST".into(), previous: id("OTHER"), into: Object::ConfigMap, remove_from: None },
                Takeover {
                    key: "PASS".into(),
                    previous: id("OTHER"),
                    into: Object::Secret,
                    remove_from: Some(Object::ConfigMap)
                },
            ]
        );
        assert!(takeovers(&seed, &p, &Current::default()).is_empty());
    }

    #[test]
    fn a_replay_matches_only_the_same_published_set() {
        let seed = id("SEED");
        let manager = "lifecycle-jobs.dev/job-SEED";
        let p = plan(&seed, &[out("HOST", "db", false), out("PASS", "pw", true)]);
        let current = |pass: &str, extra: bool| Current {
            config_map: Some(config_map(
                &[("HOST", "db"), ("QOVERY_OUTPUT_JOB_SEED_HOST", "db"), ("OLD", "1")],
                vec![mf(
                    manager,
                    if extra {
                        &["HOST", "QOVERY_OUTPUT_JOB_SEED_HOST", "OLD"]
                    } else {
                        &["HOST", "QOVERY_OUTPUT_JOB_SEED_HOST"]
                    },
                )],
            )),
            secret: Some(secret(
                &[("PASS", pass), ("QOVERY_OUTPUT_JOB_SEED_PASS", pass)],
                vec![mf(manager, &["PASS", "QOVERY_OUTPUT_JOB_SEED_PASS"])],
            )),
        };
        assert!(same_as_published(&p, manager, &current("pw", false)));
        assert!(!same_as_published(&p, manager, &current("other", false)), "a sensitive value changed");
        assert!(!same_as_published(&p, manager, &current("pw", true)), "a key is gone from the new set");
        assert!(!same_as_published(&p, manager, &Current::default()));
        assert!(same_as_published(&Plan::default(), manager, &Current::default()));
    }
}
