//! What every request handler shares.

use std::sync::Arc;

use crate::admission::pod::AgentTemplate;
use crate::runtime::config::Config;
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
    pub agent_template: Arc<AgentTemplate>,
}
