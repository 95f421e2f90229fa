//! The server's view of the cluster: watches feeding in-memory indexes, so
//! that admission and the outputs API never call the API server.
//!
//! Every watch the server runs is listed in [`crate::server`]'s table (WATCHES).

pub(crate) mod env_index;
pub(crate) mod job_index;
pub(crate) mod jobs;
pub(crate) mod store;
