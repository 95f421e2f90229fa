//! Project variables: ConfigMaps and Secrets labelled
//! `lifecycle-jobs.dev/project-variables=<project>` in the configured source
//! namespaces (`--project-variables-namespaces`, default the server's own)
//! are mirrored into every environment labelled `lifecycle-jobs.dev/project=<project>`
//! as the ConfigMap and the Secret `lifecycle-project`, which pod admission
//! puts in every container's `envFrom` right after the built-in variables
//! (`lifecycle_contract::names::INJECTED_SOURCES`).
//!
//! - [`plan`]: merge order, targets, what to write or delete (pure, unit-tested);
//! - [`builtins`]: the built-in variables of every environment, ConfigMap
//!   `lifecycle-builtins` (pure, unit-tested), written by the same loop;
//! - [`sync`]: watches, lists and server-side applies (field managers
//!   `lifecycle-jobs.dev/project-variables` and `lifecycle-jobs.dev/builtins`),
//!   run by the controller leader.
//!
//! Merge order: sources are taken by source namespace (in the flag's order),
//! then by object name; a key defined twice takes the later source's value,
//! and a Warning log names the key and both objects. ConfigMap keys go to the
//! ConfigMap mirror, Secret keys to the Secret mirror; in a pod the Secret
//! comes after the ConfigMap, so it wins a key both define. A project with no
//! data of a kind has no mirror of that kind. `binaryData` is not mirrored
//! (`envFrom` ignores it).

pub(crate) mod builtins;
pub(crate) mod plan;
pub(crate) mod sync;

use crate::state::AppState;
use crate::watches::namespaces::NamespaceWatch;

/// Runs the mirror while this replica leads (the future is dropped when the
/// lease is lost); environments come from the server's one Namespace watch.
pub(crate) async fn run(state: AppState, namespaces: NamespaceWatch) {
    let sources = state.config.project_variables_sources();
    sync::run(state.client.clone(), namespaces, sources, state.config.namespace.clone()).await
}
