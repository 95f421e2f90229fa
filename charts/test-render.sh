#!/usr/bin/env bash
# Proves that the Helm chart and manifests/ install the same objects, so that
# neither drifts from the other:
#   1. the chart's generated templates are up to date with manifests/base
#      (charts/sync-manifests.py --check);
#   2. for each pair below, `kubectl kustomize DIR` and `helm template` with the
#      values file render the same kinds, names and specs (Helm's own labels
#      aside); a difference is printed as a diff of one JSON line per object;
#   3. `helm lint --strict` and `helm template` pass for every documented values
#      combination (charts/lifecycle-jobs/ci/*-values.yaml and the defaults).
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
  "$HELM" template lifecycle-jobs "$CHART" "${args[@]}" | charts/normalize.py >"$tmp/helm.jsonl"
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
[ "$failed" = 0 ] || { log "the chart and manifests/ disagree (see above)"; exit 1; }
log "the chart and manifests/ agree"
