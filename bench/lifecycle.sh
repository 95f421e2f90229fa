#!/usr/bin/env bash
# How fast an environment gets ready, on the local cluster with the product
# deployed: per environment (ENVS, default 5, one after another, each in its
# own namespace bench-lc-<n>-<suffix>), two staged start jobs and a gated
# two-replica Deployment applied at once, then a redeploy that changes the
# outputs. Times are when the bench's own watches observe each change. Prints
# a Markdown table (one row per environment, then the medians) on stdout,
# progress on stderr. Fails only when it cannot measure (a phase over
# BENCH_TIMEOUT seconds, default 120), never on a slow figure. BENCH_TIMELINE=1
# also prints every pod's observed timeline on stderr.
#
# Holds the cluster for a few minutes: run it under the lock,
#   flock /tmp/lj-e2e.lock bench/lifecycle.sh        (or: make bench-lifecycle)
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBECONFIG="${LJ_CLUSTER_DIR:-$PWD/.local-cluster}/kubeconfig"
ENVS=${ENVS:-5}
[ "$ENVS" -ge 1 ] && [ "$ENVS" -le 50 ] 2>/dev/null || { echo "bench/lifecycle.sh: ENVS must be 1..50" >&2; exit 2; }
# kubectl: from PATH, else the local cluster's own binaries.
if ! command -v kubectl >/dev/null; then
  PATH="$(tests/cluster/build-binaries.sh 2>/dev/null | tail -1):$PATH"
fi
[ -f "$KUBECONFIG" ] && kubectl get --raw /version >/dev/null 2>&1 ||
  { echo "bench/lifecycle.sh: no cluster at $KUBECONFIG (make cluster-up, or tests/run-e2e.sh)" >&2; exit 1; }
# The server's namespace: where the installed webhooks call it (LIFECYCLE_NAMESPACE overrides).
SYSTEM_NS=${LIFECYCLE_NAMESPACE:-$(kubectl get mutatingwebhookconfiguration lifecycle-jobs \
  -o jsonpath='{.webhooks[0].clientConfig.service.namespace}' 2>/dev/null || true)}
[ -n "$SYSTEM_NS" ] || { echo "bench/lifecycle.sh: lifecycle-jobs is not installed (no webhook configuration lifecycle-jobs); set LIFECYCLE_NAMESPACE" >&2; exit 2; }
kubectl rollout status -n "$SYSTEM_NS" deployment/lifecycle-webhook --timeout=60s >/dev/null ||
  { echo "bench/lifecycle.sh: lifecycle-jobs is not deployed and ready in $SYSTEM_NS (tests/run-e2e.sh or make deploy)" >&2; exit 1; }
cargo build --release --locked -p lifecycle-bench 2>&1 | tail -1 >&2
suffix=$(date +%s)
cleanup() {
  # The bench deletes its namespaces itself; this catches an interrupted run.
  kubectl get namespaces -o name 2>/dev/null | sed -n "s|^namespace/\(bench-lc-[0-9]*-$suffix\)$|\1|p" |
    xargs -r kubectl delete namespace --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "Lifecycle speed, $ENVS environments one after another (Kubernetes $(kubectl get --raw /version | awk -F'"' '/gitVersion/{print $4}'), lifecycle-jobs $(git describe --always --dirty 2>/dev/null || echo '?'))" >&2
target/release/lifecycle-bench lifecycle --envs "$ENVS" --timeout "${BENCH_TIMEOUT:-120}" --suffix "$suffix" ${BENCH_TIMELINE:+--timeline}
