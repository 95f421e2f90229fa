#!/usr/bin/env bash
# make run: install and run lifecycle-jobs. With a usable kube context it
# installs into that cluster from manifests/; with none it starts the local
# cluster first and installs the locally built images there.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(tests/cluster/build-binaries.sh 2>/dev/null | tail -n1 || true)
kubectl=${KUBECTL:-$(command -v kubectl || echo "$bin/kubectl")}
if [ -z "${KUBECONFIG:-}" ] && "$kubectl" version --request-timeout=5s >/dev/null 2>&1; then
  echo "installing into the current context: $("$kubectl" config current-context)"
  KUBECTL=$kubectl scripts/deploy.sh manifests
else
  echo "no reachable kube context: starting the local cluster"
  tests/cluster/install-deps.sh
  tests/cluster/images.sh
  tests/cluster/up.sh
  export KUBECONFIG="$PWD/.local-cluster/kubeconfig"
  KUBECTL="$bin/kubectl" scripts/deploy.sh manifests/overlays/local
  echo
  echo "lifecycle-jobs runs on the local cluster. Try:"
  echo "  export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH"
  echo "  kubectl create namespace demo && kubectl label namespace demo lifecycle-jobs.dev/environment="
fi
