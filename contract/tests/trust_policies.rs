//! The policies that keep the server's names the server's
//! (`manifests/base/trust-policies.yaml`) name every one of them: a name added
//! to the contract's list without its policy fails here.

use lifecycle_contract::names::server_owned;

fn policies() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/base/trust-policies.yaml");
    std::fs::read_to_string(path).expect("manifests/base/trust-policies.yaml")
}

#[test]
fn every_server_owned_name_has_its_policy() {
    let text = policies();
    let names = server_owned::NAMESPACE_ANNOTATIONS
        .iter()
        .chain(&server_owned::JOB_ANNOTATIONS)
        .chain(&server_owned::RUN_LABELS)
        .chain(&server_owned::ADMISSION_LABELS)
        .chain(&server_owned::FINALIZERS)
        .chain(&server_owned::WORKLOAD_NAMES);
    for name in names {
        assert!(text.contains(&format!("'{name}'")), "no policy in trust-policies.yaml names {name}");
    }
}

#[test]
fn labels_are_checked_on_every_path_that_writes_them() {
    let text = policies();
    for subresource in ["namespaces/status", "namespaces/finalize", "jobs/status", "pods/status"] {
        assert!(text.contains(&format!("\"{subresource}\"")), "the policies do not look at {subresource}");
    }
}
