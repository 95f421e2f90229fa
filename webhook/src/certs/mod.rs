//! Self-managed CA and serving certificate (`--cert-source=self-managed`).
//!
//! Every replica runs [`run`]: it reads the Secret `--tls-secret` (creating it
//! with a new CA and serving certificate when missing; of two replicas racing,
//! the loser adopts the winner's), serves what it holds, keeps the `caBundle`
//! of the webhook configurations equal to the Secret's `ca.crt`, and watches the
//! Secret so that a change made by any replica is served within a second.
//!
//! Time-driven steps (renewal, the three CA rotation steps of [`plan`]) are
//! taken by whichever replica sees them due first: every write is a replace
//! conditioned on the resourceVersion read, so the other one gets a conflict,
//! re-reads, and finds nothing left to do. No leader is needed.
//!
//! Forcing a rotation: annotate the Secret `lifecycle-jobs.dev/rotate=now`
//! (CA, every step and delay) or `=cert` (serving certificate only).
//!
//! Key material never reaches a log: only fingerprints (SHA-256 prefixes of
//! certificates) and dates do.

pub(crate) mod material;
pub(crate) mod pki;
pub(crate) mod plan;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use material::{ANNOTATION_ROTATE, Material, Trigger};
use plan::{Decision, Settings, Step};

use crate::state::AppState;

/// Longest sleep between two looks at the Secret and the webhook configurations,
/// whatever the watches say.
const MAX_IDLE: Duration = Duration::from_secs(300);
/// Writes attempted in one reconcile before giving the others a turn.
const MAX_STEPS: usize = 8;

/// Entry point, spawned by the server in self-managed mode. Never returns
/// unless the watches end.
pub(crate) async fn run(state: AppState) -> anyhow::Result<()> {
    let settings = Settings {
        cert_validity: state.config.cert_validity,
        ca_validity: state.config.ca_validity,
        ca_overlap: state.config.ca_overlap,
        dns_names: state.config.tls_dns_names.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
    };
    anyhow::ensure!(!settings.dns_names.is_empty(), "--tls-dns-names is empty: the serving certificate needs a name");
    for w in settings.warnings() {
        tracing::warn!("certificates: {w}");
    }
    tracing::info!(
        secret = %format!("{}/{}", state.config.namespace, state.config.tls_secret),
        cert_validity = %crate::runtime::duration::format_duration(settings.cert_validity),
        ca_validity = %crate::runtime::duration::format_duration(settings.ca_validity),
        ca_overlap = %crate::runtime::duration::format_duration(settings.ca_overlap),
        "self-managed certificates"
    );
    Manager::new(state, settings).run().await
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

struct Manager {
    state: AppState,
    settings: Settings,
    secrets: Api<Secret>,
    mutating: Api<MutatingWebhookConfiguration>,
    validating: Api<ValidatingWebhookConfiguration>,
}

impl Manager {
    fn new(state: AppState, settings: Settings) -> Self {
        let client = state.client.clone();
        Manager {
            secrets: Api::namespaced(client.clone(), &state.config.namespace),
            mutating: Api::all(client.clone()),
            validating: Api::all(client),
            state,
            settings,
        }
    }

    fn secret_name(&self) -> &str {
        &self.state.config.tls_secret
    }

    async fn run(self) -> anyhow::Result<()> {
        let by_name = |n: &str| crate::runtime::kube_client::watch_config().fields(&format!("metadata.name={n}"));
        let mut secret_events = watcher::watcher(self.secrets.clone(), by_name(self.secret_name())).default_backoff().boxed();
        let mut mutating_events =
            watcher::watcher(self.mutating.clone(), by_name(&self.state.config.mutating_webhook)).default_backoff().boxed();
        let mut validating_events =
            watcher::watcher(self.validating.clone(), by_name(&self.state.config.validating_webhook)).default_backoff().boxed();

        let mut next = tokio::time::Instant::now();
        let mut failures: u32 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {
                    match self.reconcile().await {
                        Ok(wait) => {
                            failures = 0;
                            next = tokio::time::Instant::now() + wait;
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            let wait = Duration::from_secs(1u64 << failures.min(5)); // 2s .. 32s
                            tracing::warn!(error = %format!("{e:#}"), retry_in = ?wait, "certificates: reconcile failed");
                            next = tokio::time::Instant::now() + wait;
                        }
                    }
                }
                ev = secret_events.next() => match ev {
                    Some(Ok(WatchEvent::Apply(s) | WatchEvent::InitApply(s))) => {
                        // Serve another replica's change at once, then look at it.
                        self.install_secret(&s);
                        next = next.min(tokio::time::Instant::now());
                    }
                    Some(Ok(WatchEvent::Delete(_))) => {
                        tracing::warn!(secret = self.secret_name(), "certificates: the Secret was deleted; creating a new CA");
                        next = next.min(tokio::time::Instant::now());
                    }
                    Some(Ok(WatchEvent::Init | WatchEvent::InitDone)) => {}
                    Some(Err(e)) => tracing::debug!(error = %e, "certificates: Secret watch error; retrying"),
                    None => anyhow::bail!("the Secret watch ended"),
                },
                ev = mutating_events.next() => match ev {
                    Some(Ok(WatchEvent::Apply(c) | WatchEvent::InitApply(c))) => {
                        if self.bundle_differs(&c) {
                            next = next.min(tokio::time::Instant::now());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::debug!(error = %e, "certificates: webhook configuration watch error; retrying"),
                    None => anyhow::bail!("the MutatingWebhookConfiguration watch ended"),
                },
                ev = validating_events.next() => match ev {
                    Some(Ok(WatchEvent::Apply(c) | WatchEvent::InitApply(c))) => {
                        if self.bundle_differs(&c) {
                            next = next.min(tokio::time::Instant::now());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::debug!(error = %e, "certificates: webhook configuration watch error; retrying"),
                    None => anyhow::bail!("the ValidatingWebhookConfiguration watch ended"),
                },
            }
        }
    }

    /// Installs what a Secret holds, when usable.
    fn install_secret(&self, secret: &Secret) {
        let (data, annotations) = secret_parts(secret);
        if let Ok(m) = Material::parse(&data, &annotations) {
            self.install(&m);
        }
    }

    fn install(&self, m: &Material) {
        let Some(pem) = m.cert_pem() else { return };
        if self.state.certs.current().is_some_and(|c| *c == pem) {
            return;
        }
        match self.state.certs.set(pem) {
            Ok(()) => tracing::info!(material = %m.summary(), "certificates: now serving"),
            Err(e) => tracing::warn!(error = %e, "certificates: stored certificate rejected; keeping the previous one"),
        }
    }

    /// Whether a webhook configuration's caBundles differ from what this replica holds.
    fn bundle_differs<K: Serialize>(&self, config: &K) -> bool {
        let Some(current) = self.state.certs.current() else { return true };
        let Ok(v) = serde_json::to_value(config) else { return true };
        webhook_bundles(&v).iter().any(|(_, b)| b.as_deref() != Some(current.ca_bundle.as_bytes()))
    }

    /// Brings the Secret one step at a time to where it should be, serves it,
    /// and syncs the caBundles. Returns how long to sleep.
    async fn reconcile(&self) -> anyhow::Result<Duration> {
        let s = &self.settings;
        let name = self.secret_name();
        for _ in 0..MAX_STEPS {
            let now = unix_now();
            let Some(secret) = self.secrets.get_opt(name).await.context("reading the TLS Secret")? else {
                let m = plan::generate(s, now).context("generating a CA")?;
                plan::check(&m, s, now).map_err(|e| anyhow::anyhow!("generated certificate does not verify: {e}"))?;
                match self.secrets.create(&PostParams::default(), &self.new_secret(&m)).await {
                    Ok(_) => {
                        tracing::info!(material = %m.summary(), "certificates: created a new CA and serving certificate");
                        self.install(&m);
                        self.sync_bundles().await?;
                    }
                    Err(e) if is_status(&e, 409) => {
                        tracing::info!("certificates: another replica created the Secret first; using it");
                    }
                    Err(e) => return Err(e).context("creating the TLS Secret"),
                }
                continue;
            };

            let (data, annotations) = secret_parts(&secret);
            let trigger = Trigger::from_annotations(&annotations);
            let (decision, current) = match Material::parse(&data, &annotations) {
                Ok(m) => (plan::decide(&m, &trigger, s, now), Some(m)),
                Err(e) => (
                    Decision {
                        step: Step::Regenerate { reason: format!("the stored data is unusable ({e})") },
                        clear_trigger: trigger != Trigger::None,
                    },
                    None,
                ),
            };

            if let (Step::Wait { until }, Some(m)) = (&decision.step, &current) {
                self.install(m);
                self.sync_bundles().await?;
                let secs = u64::try_from((*until - now).max(1)).unwrap_or(1);
                return Ok(Duration::from_secs(secs).min(MAX_IDLE));
            }

            // Step 2 switches signers: the webhook configurations must trust the
            // new CA first (they do after step 1 unless a sync failed since).
            if let (Step::Promote { .. }, Some(m)) = (&decision.step, &current) {
                self.sync_bundles().await.context("making sure the webhook configurations trust the new CA")?;
                self.require_bundles_trust(m).await?;
            }

            let next = match &current {
                Some(m) => plan::execute(&decision.step, m, s, now),
                None => plan::generate(s, now),
            }
            .context("issuing certificates")?;
            plan::check(&next, s, now).map_err(|e| anyhow::anyhow!("new certificate does not verify: {e}"))?;

            let mut updated = secret.clone();
            updated.data = Some(next.to_data().into_iter().map(|(k, v)| (k, ByteString(v))).collect());
            let ann = updated.metadata.annotations.get_or_insert_with(BTreeMap::new);
            next.write_annotations(ann);
            if decision.clear_trigger {
                ann.remove(ANNOTATION_ROTATE);
            }
            // `updated` carries the resourceVersion read: a concurrent change makes this a conflict.
            match self.secrets.replace(name, &PostParams::default(), &updated).await {
                Ok(_) => {
                    log_step(&decision.step, &next);
                    self.install(&next);
                    self.sync_bundles().await?;
                }
                Err(e) if is_status(&e, 409) => {
                    tracing::debug!("certificates: the Secret changed meanwhile; reading it again");
                }
                Err(e) => return Err(e).context("updating the TLS Secret"),
            }
        }
        Ok(Duration::from_secs(1))
    }

    fn new_secret(&self, m: &Material) -> Secret {
        let mut annotations = BTreeMap::new();
        m.write_annotations(&mut annotations);
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret_name().to_string()),
                namespace: Some(self.state.config.namespace.clone()),
                labels: Some(material::LABELS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                annotations: Some(annotations),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(m.to_data().into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
            ..Default::default()
        }
    }

    /// Sets every webhook's caBundle in both configurations to the Secret's `ca.crt`.
    async fn sync_bundles(&self) -> anyhow::Result<()> {
        self.sync_bundle(&self.mutating, &self.state.config.mutating_webhook).await?;
        self.sync_bundle(&self.validating, &self.state.config.validating_webhook).await?;
        Ok(())
    }

    /// The configuration is read before the Secret and patched conditioned on
    /// the configuration's resourceVersion: a replica holding an older Secret
    /// can never overwrite a newer bundle (its read of the configuration would
    /// predate the newer patch, and its patch would conflict).
    async fn sync_bundle<K>(&self, api: &Api<K>, name: &str) -> anyhow::Result<()>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        let kind = K::kind(&()).to_string();
        // Replicas race here after every change of the Secret: a conflict only
        // means another one patched first; read again.
        for _ in 0..5 {
            let Some(config) = api.get_opt(name).await.with_context(|| format!("reading {kind} {name}"))? else {
                tracing::debug!(%kind, name, "certificates: webhook configuration not found; nothing to sync");
                return Ok(());
            };
            let Some(secret) = self.secrets.get_opt(self.secret_name()).await.context("reading the TLS Secret")? else {
                return Ok(());
            };
            let (data, annotations) = secret_parts(&secret);
            let Ok(m) = Material::parse(&data, &annotations) else { return Ok(()) };
            let want = m.bundle_pem();
            let v = serde_json::to_value(&config)?;
            let stale: Vec<String> =
                webhook_bundles(&v).into_iter().filter(|(_, b)| b.as_deref() != Some(want.as_bytes())).map(|(n, _)| n).collect();
            if stale.is_empty() {
                return Ok(());
            }
            let b64 = base64::engine::general_purpose::STANDARD.encode(want.as_bytes());
            let patch = serde_json::json!({
                "metadata": { "resourceVersion": config.meta().resource_version },
                "webhooks": stale.iter().map(|n| serde_json::json!({"name": n, "clientConfig": {"caBundle": b64}})).collect::<Vec<_>>(),
            });
            match api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
                Ok(_) => {
                    let bundle = m.bundle().iter().map(|c| c.fingerprint()).collect::<Vec<_>>().join(",");
                    tracing::info!(%kind, name, webhooks = ?stale, %bundle, "certificates: caBundle updated");
                    return Ok(());
                }
                Err(e) if is_status(&e, 409) => {
                    tracing::debug!(%kind, name, "certificates: webhook configuration changed meanwhile; reading it again");
                }
                Err(e) => return Err(e).with_context(|| format!("patching the caBundle of {kind} {name}")),
            }
        }
        anyhow::bail!("{kind} {name} kept changing while its caBundle was being updated")
    }

    /// Before step 2: both configurations (when they exist) carry every CA of `m`'s bundle.
    async fn require_bundles_trust(&self, m: &Material) -> anyhow::Result<()> {
        let want: Vec<Vec<u8>> = m.bundle().iter().map(|c| c.der.clone()).collect();
        let mut configs = Vec::new();
        if let Some(c) = self.mutating.get_opt(&self.state.config.mutating_webhook).await? {
            configs.push(serde_json::to_value(c)?);
        }
        if let Some(c) = self.validating.get_opt(&self.state.config.validating_webhook).await? {
            configs.push(serde_json::to_value(c)?);
        }
        for v in &configs {
            for (webhook, bundle) in webhook_bundles(v) {
                let have = bundle
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|p| pki::pem_certificates(&p).ok())
                    .unwrap_or_default();
                if want.iter().any(|w| !have.contains(w)) {
                    anyhow::bail!("webhook {webhook} does not trust the new CA yet; postponing the switch");
                }
            }
        }
        Ok(())
    }
}

fn log_step(step: &Step, m: &Material) {
    let material = m.summary();
    match step {
        Step::Wait { .. } => {}
        Step::RenewLeaf { reason } => tracing::info!(%reason, %material, "certificates: serving certificate renewed"),
        Step::Introduce { reason } => {
            tracing::info!(%reason, %material, "certificates: CA rotation step 1/3: new CA trusted alongside the current one")
        }
        Step::Promote { reason } => {
            tracing::info!(%reason, %material, "certificates: CA rotation step 2/3: new CA now signs the serving certificate")
        }
        Step::Retire => tracing::info!(%material, "certificates: CA rotation step 3/3: previous CA no longer trusted"),
        Step::Restamp => tracing::info!(%material, "certificates: phase start recorded"),
        Step::Regenerate { reason } => tracing::warn!(%reason, %material, "certificates: started over with a new CA"),
        Step::ClearTrigger { value } => {
            tracing::warn!(%value, "certificates: unknown value of {ANNOTATION_ROTATE} cleared (use now, ca or cert)")
        }
    }
}

/// The Secret's data (decoded) and annotations.
fn secret_parts(secret: &Secret) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
    let data = secret.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    (data, annotations)
}

/// `(webhook name, decoded caBundle)` of every webhook of a configuration (as JSON).
fn webhook_bundles(config: &serde_json::Value) -> Vec<(String, Option<Vec<u8>>)> {
    config
        .get("webhooks")
        .and_then(|w| w.as_array())
        .map(|hooks| {
            hooks
                .iter()
                .filter_map(|h| {
                    let name = h.get("name")?.as_str()?.to_string();
                    let bundle = h
                        .pointer("/clientConfig/caBundle")
                        .and_then(|b| b.as_str())
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
                    Some((name, bundle))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_webhook_bundles() {
        let cfg = MutatingWebhookConfiguration {
            metadata: ObjectMeta { name: Some("lifecycle-jobs".into()), ..Default::default() },
            webhooks: Some(vec![
                k8s_openapi::api::admissionregistration::v1::MutatingWebhook {
                    name: "jobs.lifecycle-jobs.dev".into(),
                    client_config: k8s_openapi::api::admissionregistration::v1::WebhookClientConfig {
                        ca_bundle: Some(ByteString(b"PEM".to_vec())),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                k8s_openapi::api::admissionregistration::v1::MutatingWebhook {
                    name: "pods.lifecycle-jobs.dev".into(),
                    ..Default::default()
                },
            ]),
        };
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(
            webhook_bundles(&v),
            vec![("jobs.lifecycle-jobs.dev".to_string(), Some(b"PEM".to_vec())), ("pods.lifecycle-jobs.dev".to_string(), None)]
        );
    }
}
