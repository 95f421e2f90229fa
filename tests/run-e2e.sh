#!/usr/bin/env bash
# make e2e: the end-to-end suite on the real local cluster, against the product
# installed from manifests/ (server pods behind their Service, agents reaching
# its ClusterIP). Brings the cluster up if needed, builds and imports the images,
# deploys, then runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The checkout's own target dir: the binaries below are looked up there.
unset CARGO_TARGET_DIR
export KUBECONFIG="${LJ_CLUSTER_DIR:-$PWD/.local-cluster}/kubeconfig"

LJ_OPENTOFU_IMAGE=1 tests/cluster/images.sh
tests/cluster/up.sh
scripts/deploy.sh manifests/overlays/local
cargo build --release --locked -p kubectl-lifecycle
export KUBECTL_LIFECYCLE="$PWD/target/release/kubectl-lifecycle"
k8s_bin=$(tests/cluster/build-binaries.sh 2>/dev/null | tail -n1)
export PATH="$k8s_bin:$PATH"
# Each test makes its own namespaces, so they run side by side.
cargo test --locked -p lifecycle-e2e --test e2e -- --test-threads="${E2E_THREADS:-4}" "$@"
# Tests that restart, kill or uninstall the server run alone, afterwards.
if grep -q '^name = "disruptive"' tests/Cargo.toml; then
  cargo test --locked -p lifecycle-e2e --test disruptive -- --test-threads=1 "$@"
fi
