#!/usr/bin/env bash
# Builds the local cluster's Go components from the Go module proxy and caches
# them by version outside the checkout, so a machine that has them skips this.
#
#   KUBERNETES_VERSION  Kubernetes release (1.35.x pairs with Debian's containerd 1.6)
#   ETCD_VERSION        etcd server release
#   COREDNS_VERSION     CoreDNS release
#   CRICTL_VERSION      cri-tools release (crictl: down.sh removes pods through the CRI)
#   LJ_CACHE            cache root (default ~/.cache/lifecycle-jobs)
#
# Prints the directory that holds the binaries on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${LJ_CACHE:-$HOME/.cache/lifecycle-jobs}
bin="$cache/bin/k8s-v$KUBERNETES_VERSION-etcd-v$ETCD_VERSION-coredns-v$COREDNS_VERSION"
# shellcheck disable=SC2034  # read by go-build.sh
LOG_TAG=build-binaries
# shellcheck source=../tools/go-build.sh
source "$here/../tools/go-build.sh"

k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
want=("${k8s_cmds[@]}" etcd coredns crictl)

have_all() {
  for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done
}
if have_all; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"

# --- Kubernetes ------------------------------------------------------------
build_kubernetes() {
  local minor=${KUBERNETES_VERSION#*.}; minor=${minor%%.*}
  local staging_version="v0.$minor.${KUBERNETES_VERSION##*.}"
  local src="$cache/src/kubernetes-v$KUBERNETES_VERSION"
  local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
    cloud-provider cluster-bootstrap code-generator component-base component-helpers
    controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
    endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
    sample-apiserver sample-cli-plugin sample-controller)
  if [ "$minor" -ge 36 ]; then staging+=(cri-streaming streaming); fi
  mkdir -p "$src"
  {
    echo "module lifecycle-jobs.dev/local-cluster/kubernetes"
    echo
    echo "go 1.25.0"
    echo
    echo "require k8s.io/kubernetes v$KUBERNETES_VERSION"
    echo
    for m in "${staging[@]}"; do echo "replace k8s.io/$m => k8s.io/$m $staging_version"; done
    echo
    for c in "${k8s_cmds[@]}"; do echo "tool k8s.io/kubernetes/cmd/$c"; done
  } >"$src/go.mod"
  log "resolving k8s.io/kubernetes v$KUBERNETES_VERSION"
  (cd "$src" && go mod tidy >&2)
  local v="v$KUBERNETES_VERSION"
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local pkgs=()
  for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "building ${k8s_cmds[*]} (several minutes on 2 cores)"
  (cd "$src" && go build -trimpath -ldflags "$ld" -o "$bin/" "${pkgs[@]}")
}

for c in "${k8s_cmds[@]}"; do
  [ -x "$bin/$c" ] || { build_kubernetes; break; }
done
[ -x "$bin/etcd" ] || build_wrapped etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
[ -x "$bin/coredns" ] || build_wrapped coredns github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns
[ -x "$bin/crictl" ] || build_wrapped crictl sigs.k8s.io/cri-tools "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl \
  "-X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION"

have_all
echo "$bin"
