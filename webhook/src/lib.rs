//! lifecycle-jobs server: admission webhooks, the outputs API and the
//! environment controller in one process.
//!
//! Pure logic (patches, rules, decisions) lives apart from the Kubernetes glue
//! so that it is unit-tested without a cluster; the glue is tested end to end
//! on a real one (`tests/`).

pub mod admin;
pub mod admission;
pub mod backoff;
pub mod certs;
pub mod config;
pub mod controller;
pub mod env_index;
pub mod index;
pub mod job_watch;
pub mod kube_client;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod outputs;
pub mod project_vars;
pub mod routable;
pub mod server;
pub mod server_addr;
pub mod state;
pub mod supervisor;
pub mod telemetry;
pub mod tls;
pub mod watch_store;
