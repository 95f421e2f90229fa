#!/usr/bin/env bash
# make uninstall: remove lifecycle-jobs from the current kube context, leaving
# no webhook configuration behind.
#
#   scripts/uninstall.sh [KUSTOMIZE_DIR]      (default: manifests/)
#   scripts/uninstall.sh --only-finalizers    only step 2 below
#
# 1. kubectl delete -k KUSTOMIZE_DIR --ignore-not-found --wait: the server, its
#    namespace, RBAC, the admission policy and both webhook configurations.
# 2. Lifecycle templates carry the finalizer lifecycle-jobs.dev/outputs-cleanup,
#    which the server removes when a template is deleted. With the server gone,
#    deleting such a Job would hang, so that finalizer (and only that one: other
#    tools' finalizers stay) is removed from every Job in the cluster.
# 3. Checks that no MutatingWebhookConfiguration / ValidatingWebhookConfiguration
#    named lifecycle-jobs remains; fails loudly otherwise.
#
# The lifecycle-outputs ConfigMaps and Secrets stay in their namespaces.
#
# Environment:
#   KUBECTL      kubectl to use (default: kubectl on PATH)
#   KUBECONFIG   as for kubectl
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

FINALIZER=lifecycle-jobs.dev/outputs-cleanup
WEBHOOK_NAME=lifecycle-jobs

log() { printf 'uninstall: %s\n' "$*" >&2; }
die() {
  printf 'uninstall: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

KUBECTL=${KUBECTL:-kubectl}
if ! command -v "$KUBECTL" >/dev/null 2>&1; then
  die "kubectl not found (set KUBECTL, or put kubectl on PATH)"
fi
kc() { "$KUBECTL" "$@"; }

# The index of $FINALIZER in the finalizers of Job $1/$2 (empty when it has none).
finalizer_index() {
  local ns=$1 name=$2 list i=0 f
  list=$(kc -n "$ns" get job "$name" --ignore-not-found \
    -o jsonpath='{range .metadata.finalizers[*]}{@}{"\n"}{end}')
  while IFS= read -r f; do
    if [ "$f" = "$FINALIZER" ]; then
      echo "$i"
      return
    fi
    i=$((i + 1))
  done <<<"$list"
}

# Removes $FINALIZER from Job $1/$2. The JSON patch tests the value at the index
# first, so a concurrent change of the list makes it fail rather than remove
# another finalizer; then the index is looked up again.
remove_finalizer() {
  local ns=$1 name=$2 i attempt patch
  for attempt in 1 2 3 4 5; do
    i=$(finalizer_index "$ns" "$name")
    if [ -z "$i" ]; then
      return 0 # gone already (or the Job is)
    fi
    patch=$(printf '[{"op":"test","path":"/metadata/finalizers/%s","value":"%s"},{"op":"remove","path":"/metadata/finalizers/%s"}]' \
      "$i" "$FINALIZER" "$i")
    if kc -n "$ns" patch job "$name" --type=json -p "$patch" >/dev/null; then
      log "removed finalizer $FINALIZER from job $ns/$name"
      return 0
    fi
    log "patch of job $ns/$name failed (attempt $attempt), retrying"
    sleep 1
  done
  die "could not remove finalizer $FINALIZER from job $ns/$name"
}

# Step 2: free every Job carrying $FINALIZER.
remove_finalizers() {
  local jobs ns name fins n=0
  # namespace, name and space-separated finalizers of every Job that has any.
  jobs=$(kc get jobs --all-namespaces \
    -o jsonpath='{range .items[?(@.metadata.finalizers)]}{.metadata.namespace}{"\t"}{.metadata.name}{"\t"}{.metadata.finalizers[*]}{"\n"}{end}')
  while IFS=$'\t' read -r ns name fins; do
    [ -n "$ns" ] || continue
    case " $fins " in
      *" $FINALIZER "*) ;;
      *) continue ;;
    esac
    remove_finalizer "$ns" "$name"
    n=$((n + 1))
  done <<<"$jobs"
  log "$n job(s) carried finalizer $FINALIZER"
}

# Step 3: no webhook configuration of ours may remain.
check_no_webhook() {
  local kind left=()
  for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
    if [ -n "$(kc get "$kind" "$WEBHOOK_NAME" --ignore-not-found -o name)" ]; then
      left+=("$kind/$WEBHOOK_NAME")
    fi
  done
  if [ "${#left[@]}" -gt 0 ]; then
    die "still present: ${left[*]}; admissions in environments would keep going to a server that is gone. Delete with: $KUBECTL delete ${left[*]}"
  fi
  log "no MutatingWebhookConfiguration/ValidatingWebhookConfiguration named $WEBHOOK_NAME remains"
}

main() {
  local dir=$REPO/manifests
  case "${1:-}" in
    -h | --help)
      usage
      return 0
      ;;
    --only-finalizers)
      remove_finalizers
      return 0
      ;;
    "") ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) dir=$1 ;;
  esac
  [ $# -le 1 ] || die "too many arguments (see --help)"
  [ -d "$dir" ] || die "no kustomize directory $dir"

  log "deleting the objects of $dir"
  kc delete -k "$dir" --ignore-not-found --wait
  remove_finalizers
  check_no_webhook
  log "done; the lifecycle-outputs ConfigMaps and Secrets stay in their namespaces"
}

main "$@"
