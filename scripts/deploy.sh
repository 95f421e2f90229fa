#!/usr/bin/env bash
# make deploy: install lifecycle-jobs into the current kube context and wait
# until it serves: the Deployment is Available AND an end-to-end admission
# probe comes back mutated (API server -> Service -> server pod over TLS, with
# the caBundle in place).
#
#   scripts/deploy.sh [OVERLAY]
#
# OVERLAY: a kustomize directory (manifests/, manifests/overlays/local, ...) or
# the name of an overlay (local, cert-manager). Default: manifests/overlays/local
# when the current context is the local test cluster (.local-cluster/kubeconfig),
# else manifests/.
#
# Environment:
#   KUBECTL          kubectl to use (default: kubectl on PATH, else the local cluster's)
#   KUBECONFIG       as for kubectl; when no context is configured at all and the
#                    local cluster is up, its kubeconfig is used
#   DEPLOY_TIMEOUT   seconds to wait for the rollout and the probe (default 300)
#   DEPLOY_PROBE_LABELS  extra labels (k=v ...) of the probe namespace, for overlays whose
#                        webhooks select more than lifecycle-jobs.dev/environment
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

SELECTOR=app.kubernetes.io/name=lifecycle-webhook
LOCAL_KUBECONFIG=$REPO/.local-cluster/kubeconfig
TIMEOUT=${DEPLOY_TIMEOUT:-300}

log() { printf 'deploy: %s\n' "$*" >&2; }
die() { printf 'deploy: error: %s\n' "$*" >&2; exit 1; }

# --- kubectl -------------------------------------------------------------------
find_kubectl() {
  if [ -n "${KUBECTL:-}" ]; then echo "$KUBECTL"; return; fi
  if command -v kubectl >/dev/null 2>&1; then command -v kubectl; return; fi
  if [ -x "$REPO/.local-cluster/bin/kubectl" ]; then echo "$REPO/.local-cluster/bin/kubectl"; return; fi
  local bin
  bin=$(tests/cluster/build-binaries.sh 2>/dev/null | tail -n1 || true)
  if [ -n "$bin" ] && [ -x "$bin/kubectl" ]; then echo "$bin/kubectl"; return; fi
  die "kubectl not found: put it on PATH or set KUBECTL"
}
KUBECTL=$(find_kubectl)
k() { "$KUBECTL" --request-timeout=30s "$@"; }

# No context configured at all, and the local cluster is up: use it.
if ! "$KUBECTL" config current-context >/dev/null 2>&1 && [ -z "${KUBECONFIG:-}" ] && [ -f "$LOCAL_KUBECONFIG" ]; then
  export KUBECONFIG=$LOCAL_KUBECONFIG
  log "no kube context configured; using the local cluster ($LOCAL_KUBECONFIG)"
fi
context=$("$KUBECTL" config current-context 2>/dev/null) ||
  die "no current kube context: set KUBECONFIG (for the local cluster: export KUBECONFIG=$LOCAL_KUBECONFIG after make cluster-up)"

# The current context is the local cluster when it points at the same API
# server with the same CA as the local cluster's kubeconfig.
is_local_cluster() {
  [ -f "$LOCAL_KUBECONFIG" ] || return 1
  local q='{.clusters[0].cluster.server} {.clusters[0].cluster.certificate-authority-data}'
  local mine theirs
  mine=$("$KUBECTL" config view --minify --raw -o jsonpath="$q" 2>/dev/null) || return 1
  theirs=$("$KUBECTL" --kubeconfig "$LOCAL_KUBECONFIG" config view --minify --raw -o jsonpath="$q" 2>/dev/null) || return 1
  [ -n "$mine" ] && [ "$mine" = "$theirs" ]
}

# --- overlay -------------------------------------------------------------------
overlay=${1:-}
if [ -z "$overlay" ]; then
  if is_local_cluster; then overlay=manifests/overlays/local; else overlay=manifests; fi
elif [ ! -d "$overlay" ] && [ -d "manifests/overlays/$overlay" ]; then
  overlay=manifests/overlays/$overlay
fi
[ -f "$overlay/kustomization.yaml" ] || die "$overlay is not a kustomize directory (try manifests/, local or cert-manager)"

if grep -rqs 'cert-manager.io/v1' "$overlay"/*.yaml && ! k get crd certificates.cert-manager.io >/dev/null 2>&1; then
  die "$overlay needs cert-manager, which is not installed in $context (https://cert-manager.io/docs/installation/)"
fi

# The server's Deployment as this overlay names it (overlays may move or prefix it).
rendered=$("$KUBECTL" kustomize "$overlay") || die "kubectl kustomize $overlay failed"
read -r NS DEPLOYMENT < <(printf '%s\n' "$rendered" |
  "$KUBECTL" create --dry-run=client -f - -o 'jsonpath={.kind} {.metadata.namespace} {.metadata.name}{"\n"}' 2>/dev/null |
  awk '$1 == "Deployment" && !found { print $2, $3; found = 1 }') || true
[ -n "${DEPLOYMENT:-}" ] || die "$overlay has no Deployment"

log "context $context: applying $overlay"
k apply -k "$overlay" >&2 || die "kubectl apply -k $overlay failed"
# The local cluster runs the images that `make images` built here, under a tag
# that never changes (:dev). So that the server runs the image just imported
# (and not the one a previous deploy started, maybe from another checkout), the
# pod template carries the image's ID: a new image rolls the Deployment, the same
# one changes nothing.
images_dir=${LJ_IMAGES_DIR:-$REPO/target/images}
case $overlay in
  *overlays/local*)
    if [ -f "$images_dir/lifecycle-webhook.tar" ]; then
      image_manifest=$(tar -xOf "$images_dir/lifecycle-webhook.tar" manifest.json) ||
        die "cannot read $images_dir/lifecycle-webhook.tar"
      [[ $image_manifest =~ \"Config\":\"([0-9a-f]{64})\.json\" ]] || die "no image ID in $images_dir/lifecycle-webhook.tar"
      image_id=sha256:${BASH_REMATCH[1]}
      log "server image: $image_id ($images_dir/lifecycle-webhook.tar)"
      k -n "$NS" patch deployment "$DEPLOYMENT" --type merge \
        -p "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"local-cluster.lifecycle-jobs.dev/image-id\":\"$image_id\"}}}}}" >&2 ||
        die "cannot record the image ID on deployment/$DEPLOYMENT"
    fi
    ;;
esac

# --- diagnostics -----------------------------------------------------------------
diagnose() {
  {
    echo "---- pods in $NS"
    k -n "$NS" get pods -l "$SELECTOR" -o wide 2>&1 || true
    echo "---- recent events in $NS"
    k -n "$NS" get events --sort-by=.lastTimestamp 2>&1 | tail -n 15 || true
    echo "---- server logs (last 40 lines per pod)"
    k -n "$NS" logs -l "$SELECTOR" --all-containers --prefix --tail=40 2>&1 || true
    echo "---- previous server logs (crashed containers)"
    k -n "$NS" logs -l "$SELECTOR" --all-containers --prefix --tail=20 --previous 2>/dev/null || echo "(none)"
  } >&2
}
fail() {
  printf 'deploy: error: %s\n' "$*" >&2
  diagnose
  exit 1
}

deadline=$((SECONDS + TIMEOUT))
remaining() { local r=$((deadline - SECONDS)); [ "$r" -gt 1 ] && echo "$r" || echo 1; }

# --- rollout -------------------------------------------------------------------
log "waiting for deployment/$DEPLOYMENT to roll out (up to ${TIMEOUT}s)"
hint="see the pods and logs below"
case $overlay in
  *overlays/local*) hint="images not imported? run make images, then make cluster-up; or see below" ;;
esac
# (no --request-timeout on these two: they are long watches)
"$KUBECTL" -n "$NS" rollout status "deployment/$DEPLOYMENT" --timeout="$(remaining)s" >&2 ||
  fail "deployment/$DEPLOYMENT did not roll out within ${TIMEOUT}s ($hint)"
"$KUBECTL" -n "$NS" wait --for=condition=Available "deployment/$DEPLOYMENT" --timeout="$(remaining)s" >/dev/null ||
  fail "deployment/$DEPLOYMENT is not Available"

# --- end-to-end admission probe ----------------------------------------------------
# A throwaway environment namespace; a Pod and a Job created with
# --dry-run=server must come back mutated by the webhook (nothing is persisted).
probe_ns=lifecycle-deploy-probe-$(date +%s)-$RANDOM
cleanup() { "$KUBECTL" --request-timeout=20s delete namespace "$probe_ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
k create namespace "$probe_ns" >/dev/null || fail "cannot create the probe namespace $probe_ns"
# shellcheck disable=SC2086 # DEPLOY_PROBE_LABELS is a list of k=v words
k label namespace "$probe_ns" lifecycle-jobs.dev/environment= app.kubernetes.io/managed-by=lifecycle-jobs-deploy ${DEPLOY_PROBE_LABELS:-} >/dev/null ||
  fail "cannot label the probe namespace $probe_ns"

# The probe's pod spec, shared by the Pod and the Job's template (indented by `spec N`).
PROBE_SPEC='restartPolicy: Never
securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
containers:
  - name: probe
    image: busybox:local
    command: ["true"]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}'
spec() { printf '%s\n' "$PROBE_SPEC" | sed "s/^/$(printf '%*s' "$1" '')/"; }
probe_pod() {
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe\nspec:\n%s\n' "$(spec 2)" |
    k -n "$probe_ns" create --dry-run=server -o 'jsonpath={.spec.containers[0].envFrom[*].configMapRef.name}' -f -
}
probe_job() {
  printf 'apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: probe\nspec:\n  template:\n    spec:\n%s\n' "$(spec 6)" |
    k -n "$probe_ns" create --dry-run=server -o 'jsonpath={.spec.template.metadata.labels.lifecycle-jobs\.dev/capture}' -f -
}

log "probing admission end to end in namespace $probe_ns"
last=""
while :; do
  if out=$(probe_pod 2>&1); then
    if [[ " $out " == *" lifecycle-outputs "* ]]; then
      if job=$(probe_job 2>&1) && [ -n "$job" ]; then
        break
      fi
      last="Job admitted without the capture label: ${job:-<none>}"
    else
      last="Pod admitted but not mutated (no envFrom lifecycle-outputs): is the MutatingWebhookConfiguration lifecycle-jobs in place?"
    fi
  else
    last=$out
  fi
  [ "$SECONDS" -lt "$deadline" ] || fail "admission probe failed for ${TIMEOUT}s; last result: $last"
  sleep 2
done
log "admission works: pods get the outputs envFrom, jobs the capture label (JOBID $job)"
log "lifecycle-jobs is installed ($overlay, context $context)"
