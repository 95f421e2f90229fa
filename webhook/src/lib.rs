//! lifecycle-jobs server: admission webhooks, the outputs API and the
//! environment controller in one process.
//!
//! What the server does, one module each: [`admission`] (the webhooks),
//! [`outputs`] (the API agents publish to), [`controller`] (lifecycle events,
//! runs, gates, scaling), [`project_vars`] (mirroring project variables) and
//! [`certs`] (its own CA and serving certificate). They read the cluster
//! through [`watches`] and run on [`runtime`]; [`server`] wires them together.
//!
//! Conventions, the same in every module: a `plan` module (or function) is
//! pure: typed inputs in, a decision out, unit-tested without a cluster;
//! `reconcile`, `sync` and `store` are the glue that reads and writes the API
//! and is tested end to end on a real cluster (`tests/`). Items are
//! `pub(crate)` unless the binary, the benchmark or the fuzz targets need
//! them: the re-exports below are the crate's whole public surface.
#![warn(unreachable_pub)]

mod admission;
mod certs;
mod controller;
mod outputs;
mod project_vars;
mod runtime;
mod server;
mod state;
mod watches;

// The binary.
pub use runtime::{config, routable, telemetry};
pub use server::run;

// The benchmark runs the real TLS application; the fuzz targets and the
// benchmark drive the pure admission functions.
pub use runtime::listener::tls_server;
pub use runtime::metrics::Metrics;
pub use runtime::tls::{CertPem, CertStore};
pub use server::app;
pub use state::AppState;
pub use watches::{env_index::EnvIndex, job_index::JobIndex};

/// The admission functions, pure: a review's bytes in, a verdict out.
pub mod admit {
    pub use crate::admission::{job, pod, review};
}
