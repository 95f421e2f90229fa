#!/usr/bin/env bash
# Proves that the Helm chart and manifests/ install the same objects, so that
# neither drifts from the other:
#   1. the chart's generated templates are up to date with manifests/base
#      (charts/sync-manifests.py --check);
#   2. for each pair below, `kubectl kustomize DIR` and `helm template` with the
#      values file render the same kinds, names and specs (Helm's own labels
#      aside); a difference is printed as a diff of one JSON line per object;
#   3. `helm lint --strict` and `helm template` pass for every documented values
#      combination (charts/lifecycle-jobs/ci/*-values.yaml and the defaults);
#   4. installed into another namespace (`-n platform`), every object and every
#      reference follows it: no rendered object says lifecycle-jobs-system, every
#      namespaced object is in platform, the webhooks call the Service there,
#      the RBAC subjects and the admission policies name the server as
#      system:serviceaccount:platform:lifecycle-webhook.
#
# manifests/ installs into lifecycle-jobs-system, so the comparison renders the
# chart with `-n lifecycle-jobs-system` and the Namespace object (namespace.create).
#
# Needs kubectl (kustomize) and python3 with PyYAML; helm is built from the Go
# module proxy by tests/tools/build-tools.sh (cached by version) unless HELM is set.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
CHART=charts/lifecycle-jobs
KUBECTL=${KUBECTL:-$(command -v kubectl || echo "$(tests/cluster/build-binaries.sh | tail -n1)/kubectl")}
HELM=${HELM:-$(tests/tools/build-tools.sh | tail -n1)/helm}

log() { printf 'test-render: %s\n' "$*" >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

charts/sync-manifests.py --check
# The namespace manifests/base installs into (the chart's documented default).
BASE_NAMESPACE=lifecycle-jobs-system

# manifests directory | chart values file ("" = the defaults)
pairs=(
  "manifests|"
  "manifests/overlays/local|$CHART/ci/local-values.yaml"
  "manifests/overlays/cert-manager|$CHART/ci/cert-manager-values.yaml"
)
failed=0
for pair in "${pairs[@]}"; do
  dir=${pair%%|*} values=${pair#*|}
  args=()
  [ -z "$values" ] || args=(-f "$values")
  "$KUBECTL" kustomize "$dir" | charts/normalize.py >"$tmp/kustomize.jsonl"
  "$HELM" template lifecycle-jobs "$CHART" -n "$BASE_NAMESPACE" --set namespace.create=true "${args[@]}" |
    charts/normalize.py >"$tmp/helm.jsonl"
  if diff -u --label "kubectl kustomize $dir" --label "helm template ${values:-(defaults)}" \
    "$tmp/kustomize.jsonl" "$tmp/helm.jsonl" >"$tmp/diff"; then
    log "ok: $dir and the chart with ${values:-the defaults} render the same $(wc -l <"$tmp/helm.jsonl") objects"
  else
    log "FAIL: $dir and the chart with ${values:-the defaults} differ (- manifests, + chart):"
    # One object per line: show which objects differ, then the lines.
    python3 - "$tmp/kustomize.jsonl" "$tmp/helm.jsonl" <<'PY' >&2
import json, sys
def objs(p):
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in map(json.loads, open(p))}
a, b = objs(sys.argv[1]), objs(sys.argv[2])
for k in sorted(a.keys() - b.keys()):
    print(f"  only in manifests: {k[0]} {k[1]}/{k[2]}")
for k in sorted(b.keys() - a.keys()):
    print(f"  only in the chart: {k[0]} {k[1]}/{k[2]}")
for k in sorted(a.keys() & b.keys()):
    if a[k] != b[k]:
        print(f"  differs: {k[0]} {k[1]}/{k[2]}")
PY
    cat "$tmp/diff" >&2
    log "hint: after a change of manifests/base, run charts/sync-manifests.py; objects it does not generate"
    log "      (namespace, serviceaccount, service, deployment, pdb, webhooks, cert-manager's) are templated"
    log "      by hand in charts/lifecycle-jobs/templates/: make the same change there (values if it varies)"
    failed=1
  fi
done

# Every documented values combination lints and renders.
combos=("")
for f in "$CHART"/ci/*-values.yaml; do combos+=("$f"); done
for values in "${combos[@]}"; do
  args=()
  [ -z "$values" ] || args=(-f "$values")
  "$HELM" lint --strict "$CHART" "${args[@]}" >"$tmp/lint" 2>&1 || { cat "$tmp/lint" >&2; log "FAIL: helm lint ${values:-(defaults)}"; failed=1; continue; }
  "$HELM" template lifecycle-jobs "$CHART" "${args[@]}" >"$tmp/out.yaml" || { log "FAIL: helm template ${values:-(defaults)}"; failed=1; continue; }
  python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$tmp/out.yaml" ||
    { log "FAIL: helm template ${values:-(defaults)} is not YAML"; failed=1; continue; }
  log "ok: helm lint and template ${values:-(defaults)}"
done
# Another namespace: nothing may still point at the default one.
for values in "${combos[@]}"; do
  args=()
  [ -z "$values" ] || args=(-f "$values")
  "$HELM" template lifecycle-jobs "$CHART" -n platform --set namespace.create=true "${args[@]}" >"$tmp/platform.yaml" ||
    { log "FAIL: helm template -n platform ${values:-(defaults)}"; failed=1; continue; }
  if python3 - "$tmp/platform.yaml" platform "$BASE_NAMESPACE" <<'PY' >&2; then
import json, re, sys, yaml
path, ns, base = sys.argv[1:]
server = f"system:serviceaccount:{ns}:lifecycle-webhook"
objs = [o for o in yaml.safe_load_all(open(path)) if o]
cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                  "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
bad = []
def where(o):
    return f"{o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}"
for o in objs:
    text = json.dumps(o)
    if base in text:
        bad.append(f"{where(o)} still says {base}")
    meta_ns = o["metadata"].get("namespace")
    if o["kind"] == "Namespace":
        if o["metadata"]["name"] != ns:
            bad.append(f"{where(o)}: the Namespace object is not {ns}")
    elif o["kind"] not in cluster_scoped and meta_ns != ns:
        # The dashboard ConfigMap may go to a namespace of its own (metrics.dashboard.namespace).
        if not (o["kind"] == "ConfigMap" and o["metadata"]["name"] == "lifecycle-jobs-dashboard"):
            bad.append(f"{where(o)} is not in {ns}")
    for hook in o.get("webhooks", []):
        svc = hook.get("clientConfig", {}).get("service", {})
        if svc.get("namespace") != ns:
            bad.append(f"{where(o)}: webhook {hook['name']} calls the Service in {svc.get('namespace')!r}")
    for s in o.get("subjects", []) or []:
        if s.get("kind") == "ServiceAccount" and s.get("namespace") != ns:
            bad.append(f"{where(o)}: subject {s['name']} in {s.get('namespace')!r}")
    for named in set(re.findall(r"system:serviceaccount:([a-z0-9-]*):lifecycle-webhook", text)):
        if named != ns:
            bad.append(f"{where(o)} names the server as system:serviceaccount:{named}:lifecycle-webhook")
policies = [o for o in objs if o["kind"] == "ValidatingAdmissionPolicy" and server in json.dumps(o)]
if len(policies) < 4:
    bad.append(f"only {len(policies)} admission policies name {server} (the creates policy and three trust policies do)")
for b in bad:
    print(f"  {b}")
sys.exit(1 if bad else 0)
PY
    log "ok: helm template -n platform ${values:-(defaults)}: every object and reference in platform"
  else
    log "FAIL: helm template -n platform ${values:-(defaults)} still refers to $BASE_NAMESPACE (see above)"
    failed=1
  fi
done

[ "$failed" = 0 ] || { log "the chart and manifests/ disagree (see above)"; exit 1; }
log "the chart and manifests/ agree"
