//! The environment's outputs: the ConfigMap (non-sensitive) and the Secret
//! (sensitive) `lifecycle-outputs`, written with server-side apply, one field
//! manager per JOBID (`lifecycle-jobs.dev/job-<JOBID>`).
//!
//! Each publication applies the job's whole set to both objects (an object
//! with none of the job's keys is applied without `data`), so the API server
//! removes every key the job owned and no longer writes, and leaves the other
//! jobs' keys alone. Applies are forced: of two jobs writing the same key, the
//! later publish wins (and takes the field's ownership).
//!
//! Both applies are first run as dry runs, so that a refusal (an object over
//! the 1 MiB limit, an admission policy) leaves everything as it was.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use lifecycle_contract::JobId;
use lifecycle_contract::names::{OUTPUTS_OBJECT, field_manager};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{Error, is_transient, short};
use super::identity::one_line;
use super::managed_fields::has_manager;
use super::plan::{Current, Object, Plan, Takeover, takeovers};
use super::retry::retry;

/// Label on both objects.
pub(crate) const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub(crate) const MANAGED_BY: &str = "lifecycle-jobs";

/// What a publication did besides writing the job's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Published {
    /// Keys other jobs had, now this job's.
    pub takeovers: Vec<Takeover>,
}

/// Pure: the apply configuration of one object. `Some(data)`: the job's whole
/// set for it (the `data` field is left out when the set is empty); `None`: the
/// job owns nothing in it any more (removal).
pub(crate) fn apply_body(object: Object, namespace: &str, data: Option<&BTreeMap<String, String>>) -> Value {
    let mut body = json!({
        "apiVersion": "v1",
        "kind": object.kind(),
        "metadata": { "name": OUTPUTS_OBJECT, "namespace": namespace },
    });
    let Some(data) = data else { return body };
    body["metadata"]["labels"] = json!({ MANAGED_BY_LABEL: MANAGED_BY });
    if object == Object::Secret {
        body["type"] = json!("Opaque");
    }
    if !data.is_empty() {
        body["data"] = match object {
            Object::ConfigMap => json!(data),
            Object::Secret => {
                let b64 = base64::engine::general_purpose::STANDARD;
                Value::Object(data.iter().map(|(k, v)| (k.clone(), Value::String(b64.encode(v)))).collect())
            }
        };
    }
    body
}

/// Reads both objects (absent ones are `None`).
pub(crate) async fn load(client: &Client, namespace: &str) -> Result<Current, Error> {
    let config_map = get_opt::<ConfigMap>(client, namespace).await?;
    let secret = get_opt::<Secret>(client, namespace).await?;
    Ok(Current { config_map, secret })
}

async fn get_opt<K>(client: &Client, namespace: &str) -> Result<Option<K>, Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&());
    retry("reading the outputs", || api.get_opt(OUTPUTS_OBJECT))
        .await
        .map_err(|e| Error::from_kube(&format!("reading {kind} {namespace}/{OUTPUTS_OBJECT}"), e))
}

/// Applies `plan` as the whole set of job `job_id` in `namespace`, given the
/// objects as `current`ly read (for the takeover bookkeeping). A key another
/// job had in the other object (its sensitivity differs) is removed from
/// there, so workloads see only the later value.
pub(crate) async fn publish(
    client: &Client,
    namespace: &str,
    job_id: &JobId,
    plan: &Plan,
    current: &Current,
) -> Result<Published, Error> {
    let manager = field_manager(job_id);
    let taken = takeovers(job_id, plan, current);
    let secret = apply_body(Object::Secret, namespace, Some(&plan.secret));
    let config = apply_body(Object::ConfigMap, namespace, Some(&plan.config));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);

    for dry_run in [true, false] {
        apply(&secrets, Object::Secret, namespace, &manager, &secret, dry_run).await?;
        apply(&config_maps, Object::ConfigMap, namespace, &manager, &config, dry_run).await?;
    }

    for t in &taken {
        let Some(from) = t.remove_from else { continue };
        let patch = Patch::Merge(json!({ "data": { t.key.as_str(): null } }));
        let params = PatchParams { field_manager: Some(manager.clone()), ..Default::default() };
        let result = match from {
            Object::ConfigMap => {
                retry("removing a taken-over key", || config_maps.patch(OUTPUTS_OBJECT, &params, &patch)).await.map(drop)
            }
            Object::Secret => {
                retry("removing a taken-over key", || secrets.patch(OUTPUTS_OBJECT, &params, &patch)).await.map(drop)
            }
        };
        if let Err(e) = result {
            return Err(store_error(from, namespace, "removing a variable taken over by another job from", e));
        }
    }
    Ok(Published { takeovers: taken })
}

/// Removes every key job `job_id` still owns in `namespace` (keys another job
/// also writes stay). For the controller, when a lifecycle job is deleted.
/// Absent objects, an absent namespace or one being deleted are not errors.
pub(crate) async fn remove_job_outputs(client: &Client, namespace: &str, job_id: &JobId) -> Result<(), Error> {
    let manager = field_manager(job_id);
    let current = load(client, namespace).await?;
    let owns = |fields: Option<&[ManagedFieldsEntry]>| has_manager(fields, &manager);
    if current.secret.as_ref().is_some_and(|o| owns(o.metadata.managed_fields.as_deref())) {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        tolerate_gone(
            apply(&secrets, Object::Secret, namespace, &manager, &apply_body(Object::Secret, namespace, None), false).await,
        )?;
    }
    if current.config_map.as_ref().is_some_and(|o| owns(o.metadata.managed_fields.as_deref())) {
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        tolerate_gone(
            apply(&config_maps, Object::ConfigMap, namespace, &manager, &apply_body(Object::ConfigMap, namespace, None), false)
                .await,
        )?;
    }
    Ok(())
}

/// A namespace that is gone or going takes the outputs with it.
fn tolerate_gone(r: Result<(), Error>) -> Result<(), Error> {
    match r {
        Err(Error::NamespaceTerminating(_)) => Ok(()),
        other => other,
    }
}

async fn apply<K>(api: &Api<K>, object: Object, namespace: &str, manager: &str, body: &Value, dry_run: bool) -> Result<(), Error>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut params = PatchParams::apply(manager).force();
    if dry_run {
        params = params.dry_run();
    }
    let body = crate::runtime::kube_client::apply_body(body);
    let patch = Patch::Apply(&body);
    retry("applying the outputs", || api.patch(OUTPUTS_OBJECT, &params, &patch))
        .await
        .map(drop)
        .map_err(|e| store_error(object, namespace, "writing", e))
}

/// Maps a refused write. The API server's message is shown for the
/// ConfigMap only: nothing of a Secret's refusal is echoed, to be safe.
fn store_error(object: Object, namespace: &str, doing: &str, e: kube::Error) -> Error {
    let what = format!("{} {namespace}/{OUTPUTS_OBJECT}", object.kind());
    if is_transient(&e) {
        return Error::Unavailable(format!("the Kubernetes API failed while {doing} {what} ({}); try again", short(&e)));
    }
    let kube::Error::Api(s) = &e else {
        return Error::Internal(format!("unexpected error while {doing} {what}: {}", short(&e)));
    };
    match s.code {
        403 if s.message.contains("being terminated") => {
            Error::NamespaceTerminating(format!("namespace {namespace} is being deleted: outputs are no longer published there"))
        }
        404 => {
            Error::NamespaceTerminating(format!("namespace {namespace} no longer exists: outputs are no longer published there"))
        }
        403 => Error::Internal(format!("the server is not allowed to write {what} ({}): check its RBAC", one_line(&s.message))),
        _ => {
            let detail = match object {
                Object::ConfigMap => format!(": {}", one_line(&s.message)),
                Object::Secret => String::new(),
            };
            // The hint is chosen from the refusal without echoing it (a Secret's may quote a value).
            let message = s.message.to_ascii_lowercase();
            let size =
                s.code == 413 || ["too long", "too large", "exceed", "must have at most"].iter().any(|w| message.contains(w));
            let hint = if size {
                " The cause is size: all jobs' outputs of an environment share one ConfigMap and one Secret of at most 1 MiB each, \
                 and every value is stored twice (full name and alias)"
            } else {
                ""
            };
            Error::StoreRefused(format!(
                "the API server refused {doing} {what} ({} {}){detail}. Nothing was published and the job's earlier outputs stay.{hint}",
                s.code, s.reason
            ))
        }
    }
}

/// The API calls are glue; the pure parts are tested here.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_bodies_carry_the_whole_set() {
        let data = BTreeMap::from([
            ("HOST".to_string(), "db".to_string()),
            ("QOVERY_OUTPUT_JOB_SEED_HOST".to_string(), "db".to_string()),
        ]);
        assert_eq!(
            apply_body(Object::ConfigMap, "env", Some(&data)),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "lifecycle-outputs", "namespace": "env", "labels": { "app.kubernetes.io/managed-by": "lifecycle-jobs" } },
                "data": { "HOST": "db", "QOVERY_OUTPUT_JOB_SEED_HOST": "db" }
            })
        );
        let secret = apply_body(Object::Secret, "env", Some(&BTreeMap::from([("PASS".to_string(), "mypassword".to_string())])));
        assert_eq!(secret["type"], "Opaque");
        assert_eq!(secret["data"]["PASS"], "bXlwYXNzd29yZA==");
    }

    #[test]
    fn an_empty_set_has_no_data_and_a_removal_owns_nothing() {
        let empty = apply_body(Object::Secret, "env", Some(&BTreeMap::new()));
        assert!(empty.get("data").is_none());
        assert_eq!(empty["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(
            apply_body(Object::ConfigMap, "env", None),
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "lifecycle-outputs", "namespace": "env" } })
        );
    }

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn write_refusals_map_to_status_codes_without_secret_details() {
        let e = store_error(Object::Secret, "env", "writing", api(422, "Invalid", "Secret is invalid: data: Too long"));
        assert_eq!(e.status(), 422);
        assert!(!e.to_string().contains("Too long"), "{e}");
        let e = store_error(Object::ConfigMap, "env", "writing", api(422, "Invalid", "ConfigMap is invalid: data: Too long"));
        assert!(e.to_string().contains("Too long"), "{e}");
        let e = store_error(
            Object::ConfigMap,
            "env",
            "writing",
            api(403, "Forbidden", "unable to create new content in namespace env because it is being terminated"),
        );
        assert_eq!(e.status(), 409);
        assert_eq!(store_error(Object::ConfigMap, "env", "writing", api(403, "Forbidden", "rbac")).status(), 500);
        assert_eq!(store_error(Object::ConfigMap, "env", "writing", api(500, "InternalError", "etcd")).status(), 503);
    }
}
