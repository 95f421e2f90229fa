//! The machinery the server runs on, whatever it serves: settings, the TLS
//! listener and its limits, the admin port and metrics, the supervisor of
//! long-lived tasks, logs, and helpers for the Kubernetes API (client, paging,
//! backoff).

pub(crate) mod admin;
pub(crate) mod backoff;
pub mod config;
pub(crate) mod duration;
pub(crate) mod kube_client;
pub(crate) mod limits;
pub(crate) mod listener;
pub(crate) mod metrics;
pub mod routable;
pub(crate) mod server_addr;
pub(crate) mod supervisor;
pub mod telemetry;
pub(crate) mod text;
pub(crate) mod tls;
