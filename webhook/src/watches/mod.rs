//! The server's view of the cluster: a few watches, each started once per
//! replica and shared by every reader, feeding in-memory indexes so that
//! admission and the outputs API never call the API server.
//!
//! Every watch the server runs, with what it selects and who reads it (the
//! Events, Leases and Secrets the server writes are not watched):
//!
//! | watch | selects | kept | readers |
//! |---|---|---|---|
//! | Jobs ([`jobs`]) | label `admitted`, metadata | [`jobs::slim`] | [`job_index`] (admission, outputs API); leader: environment controller, template cleanup |
//! | Namespaces ([`namespaces`]) | label `environment`, metadata | [`namespaces::slim`] | [`env_index`] (pod admission's gating); leader: environment controller, project variables |
//! | Pods, gated | label `gated`, metadata | kube-runtime's controller | leader: environment controller (release gates) |
//! | Pods, ended captures | label `capture`, `status.phase=Succeeded` | the few fields read | every replica: lost outputs (`crate::outputs::lost`) |
//! | ConfigMaps and Secrets | label `project-variables` in the variables source namespace | the objects | leader: project variables (`crate::project_vars`) |
//! | Secret and webhook configurations | by name | — | every replica: self-managed certificates (`crate::certs`) |
//!
//! [`shared`] is the one mechanism behind the Job and Namespace watches (a
//! store, an index and a fan-out of changes); [`store`] is the bookkeeping of
//! an index built from a watch's events.

pub(crate) mod env_index;
pub(crate) mod job_index;
pub(crate) mod jobs;
pub(crate) mod namespaces;
pub(crate) mod shared;
pub(crate) mod store;
