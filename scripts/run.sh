#!/usr/bin/env bash
# make run: install and run lifecycle-jobs.
#
# With a reachable kube context (other than the local test cluster) it installs
# into that cluster from manifests/. Otherwise it starts the local cluster
# (tests/cluster/up.sh, in LJ_CLUSTER_DIR or .local-cluster/), installs the
# locally built images there, then applies the example environment
# (examples/preview-environment) and shows what it did and what to try next.
#
# Environment:
#   EXAMPLE=0     do not apply the example (default: apply it on the local cluster only)
#   EXAMPLE=1     apply it on a real cluster too (busybox from its registry)
#   KUBECTL       kubectl to use
set -euo pipefail
cd "$(dirname "$0")/.."
# The Kubernetes binaries (kubectl among them): built once, cached; the build says what it does.
bin=$(tests/cluster/build-binaries.sh | tail -n1 || true)
kubectl=${KUBECTL:-$(command -v kubectl || echo "$bin/kubectl")}
local_dir=${LJ_CLUSTER_DIR:-$PWD/.local-cluster}
node_url="https://${LJ_NODE_IP:-10.79.0.1}:6443"
target=${CARGO_TARGET_DIR:-$PWD/target}

# A reachable context that is not the local test cluster.
real_context() {
  [ -x "$kubectl" ] || command -v "$kubectl" >/dev/null 2>&1 || return 1
  local server
  server=$("$kubectl" config view --minify -o 'jsonpath={.clusters[0].cluster.server}' 2>/dev/null) || return 1
  [ -n "$server" ] && [ "$server" != "$node_url" ] || return 1
  "$kubectl" version --request-timeout=5s >/dev/null 2>&1
}

plugin() {
  cargo build --release --locked -p kubectl-lifecycle >&2
  export KUBECTL_LIFECYCLE=$target/release/kubectl-lifecycle
}

if real_context; then
  echo "installing into the current context: $("$kubectl" config current-context)"
  KUBECTL=$kubectl scripts/deploy.sh manifests
  if [ "${EXAMPLE:-0}" = 1 ]; then
    plugin
    KUBECTL=$kubectl EXAMPLE_VARIANT=base scripts/example.sh all
  else
    echo
    echo "lifecycle-jobs runs in $("$kubectl" config current-context). An example environment to watch:"
    echo "  kubectl apply -k examples/preview-environment     (see examples/preview-environment/README.md)"
  fi
  exit 0
fi

echo "no reachable kube context: starting the local cluster"
tests/cluster/install-deps.sh
tests/cluster/images.sh
tests/cluster/up.sh
export KUBECONFIG=$local_dir/kubeconfig
KUBECTL="$bin/kubectl" scripts/deploy.sh manifests/overlays/local
plugin
example=${EXAMPLE:-1}
if [ "$example" != 0 ]; then
  KUBECTL="$bin/kubectl" EXAMPLE_VARIANT=local scripts/example.sh apply
  KUBECTL="$bin/kubectl" scripts/example.sh show
fi
echo
echo "lifecycle-jobs runs on the local cluster. To use kubectl and the plugin from this shell:"
echo "  export KUBECONFIG=$KUBECONFIG PATH=$bin:$target/release:\$PATH"
if [ "$example" != 0 ]; then
  scripts/example.sh next
else
  echo "  kubectl create namespace demo && kubectl label namespace demo lifecycle-jobs.dev/environment="
  echo "  or watch the example environment: scripts/example.sh all"
fi
