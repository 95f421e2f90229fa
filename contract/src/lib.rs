//! The lifecycle-jobs contract (`docs/contract.md`) as code: the public names,
//! JOBIDs, lifecycle events, variable names and the output file rules. The
//! agent, the server and the kubectl plugin all use this crate, so a name or a
//! rule lives in exactly one place. Feature `k8s` adds the rules on Kubernetes
//! objects that the server and the plugin share, among them the one reader of
//! an environment Namespace (`environment`) and of a Job (`lifecycle_job`);
//! feature `time` (which `k8s` enables) adds schedules and expiry
//! (`schedule`), with Jiff and its time zone database. The agent goes without
//! both.

pub mod annotation;
pub mod builtins;
pub mod environment;
pub mod event;
#[cfg(feature = "k8s")]
pub mod job_copy;
pub mod job_id;
pub mod last_runs;
#[cfg(feature = "k8s")]
pub mod lifecycle_job;
pub mod names;
pub mod output;
pub mod reserved;
#[cfg(feature = "k8s")]
pub mod run;
#[cfg(feature = "time")]
pub mod schedule;
pub mod transition;

pub use event::Event;
pub use job_id::{JobId, JobIdError};
