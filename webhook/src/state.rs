//! What every request handler shares.

use std::sync::Arc;

use crate::admission::pod::AgentTemplate;
use crate::outputs::fair::Gate;
use crate::runtime::config::Config;
use crate::runtime::limits::BodyPools;
use crate::runtime::metrics::Metrics;
use crate::runtime::tls::CertStore;
use crate::watches::env_index::EnvIndex;
use crate::watches::job_index::JobIndex;

/// Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    /// Serving certificate and the CA bundle handed to agents.
    pub certs: CertStore,
    /// Jobs by namespace and JOBID, fed by a watch (no API call on admission).
    pub jobs: JobIndex,
    /// Environments whose new pods are gated now, fed by a watch (no API call on admission).
    pub envs: EnvIndex,
    /// The agent container pod admission injects, made once per settings and CA bundle.
    pub(crate) agent_template: Arc<AgentTemplate>,
    /// The request bodies this server holds, by endpoint.
    pub(crate) bodies: Arc<BodyPools>,
    /// Fair shares of the outputs API between environments.
    pub(crate) outputs_gate: Arc<Gate>,
}

impl AppState {
    /// The state of one server: what it is given, and its own caches and limits.
    pub fn new(
        config: Arc<Config>,
        client: kube::Client,
        metrics: Arc<Metrics>,
        certs: CertStore,
        jobs: JobIndex,
        envs: EnvIndex,
    ) -> Self {
        AppState {
            config,
            client,
            metrics,
            certs,
            jobs,
            envs,
            agent_template: Default::default(),
            bodies: Default::default(),
            outputs_gate: Default::default(),
        }
    }
}
