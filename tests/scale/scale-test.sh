#!/usr/bin/env bash
# make scale-test: the server at scale on the local cluster. Creates ENVS
# environments holding TEMPLATES lifecycle templates each (on: stop, so that
# nothing runs while they stay started), restarts the server so that each
# replica lists everything from scratch, then measures, per replica, the
# resident memory (kubelet stats summary), the CPU of the leader while nothing
# changes, and pod admission latency in those environments as the API server
# sees it (apiserver_admission_webhook_admission_duration_seconds, server-side
# dry-run pod creations). Prints a Markdown table; cleans up after itself.
#
#   ENVS=1000 TEMPLATES=10 ADMISSIONS=300 IDLE_SECONDS=60 tests/scale/scale-test.sh
#
# Before measuring, it waits (at most SETTLE_TIMEOUT seconds) for the
# controller's first pass (every environment observed, every template given its
# finalizer), then restarts the server and waits AFTER_RESTART_SECONDS, so that
# the numbers are those of a replica that started at that scale and of an idle
# leader. Clean-up waits (at most CLEANUP_TIMEOUT seconds) for the namespaces
# to be gone. Run it under the cluster lock, against an installed product
# (make deploy).
set -euo pipefail
cd "$(dirname "$0")/../.."
export KUBECONFIG="${KUBECONFIG:-${LJ_CLUSTER_DIR:-$PWD/.local-cluster}/kubeconfig}"
ENVS="${ENVS:-1000}"
TEMPLATES="${TEMPLATES:-10}"
ADMISSIONS="${ADMISSIONS:-300}"
IDLE_SECONDS="${IDLE_SECONDS:-60}"
PARALLEL="${PARALLEL:-3}"
SETTLE_TIMEOUT="${SETTLE_TIMEOUT:-600}"
AFTER_RESTART_SECONDS="${AFTER_RESTART_SECONDS:-90}"
CLEANUP_TIMEOUT="${CLEANUP_TIMEOUT:-900}"
# The server's namespace: where the installed webhooks call it (LIFECYCLE_NAMESPACE overrides).
SYS=${LIFECYCLE_NAMESPACE:-$(kubectl get mutatingwebhookconfiguration lifecycle-jobs \
  -o jsonpath='{.webhooks[0].clientConfig.service.namespace}' 2>/dev/null || true)}
[ -n "$SYS" ] || { echo "$0: lifecycle-jobs is not installed (no webhook configuration lifecycle-jobs); set LIFECYCLE_NAMESPACE" >&2; exit 2; }
MARK=scale.lifecycle-jobs.dev/run
WORK="$(mktemp -d)"
log() { echo "[scale +${SECONDS}s] $*" >&2; }
cleanup() {
  log "cleaning up (the leader removes the templates' finalizers as their namespaces go)"
  kubectl delete namespace -l "$MARK" --wait=false >/dev/null 2>&1 || true
  kubectl wait --for=delete namespace -l "$MARK" --timeout="${CLEANUP_TIMEOUT}s" >/dev/null 2>&1 ||
    log "WARNING: namespaces labelled $MARK still terminating after ${CLEANUP_TIMEOUT}s"
  rm -rf "$WORK"
  log "done"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "generating $ENVS environments x $TEMPLATES templates"
for ((e = 0; e < ENVS; e++)); do
  f="$WORK/env-$((e / 100)).yaml"
  ns="scale-env-$e"
  cat >>"$f" <<YAML
---
apiVersion: v1
kind: Namespace
metadata: {name: $ns, labels: {lifecycle-jobs.dev/environment: "", $MARK: "true"}}
YAML
  for ((t = 0; t < TEMPLATES; t++)); do
    cat >>"$f" <<YAML
---
apiVersion: batch/v1
kind: Job
metadata: {name: tpl-$t, namespace: $ns, annotations: {lifecycle-jobs.dev/on: stop}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox:local, imagePullPolicy: IfNotPresent, command: ["true"]}]
YAML
  done
done
log "creating them (kubectl create, $PARALLEL files at a time)"
# create, not apply: no last-applied annotation, one request per object.
ls "$WORK"/env-*.yaml | xargs -P "$PARALLEL" -n 1 kubectl create -f >/dev/null 2>"$WORK/create.err" || true
grep -v AlreadyExists "$WORK/create.err" | tail -n 5 >&2 || true
created="$(kubectl get jobs -A -l lifecycle-jobs.dev/admitted --no-headers 2>/dev/null | grep -c ' tpl-' || true)"
log "created: $created lifecycle Jobs"

# The controller's first pass: every environment observed, every template
# given its finalizer. Bounded: the table says if it did not finish.
settle() {
  local deadline=$((SECONDS + SETTLE_TIMEOUT)) observed=0 finalized=0
  while ((SECONDS < deadline)); do
    observed="$(kubectl get ns -l "$MARK" -o jsonpath='{range .items[*]}{.metadata.annotations.lifecycle-jobs\.dev/observed}{"\n"}{end}' | grep -c . || true)"
    finalized="$(kubectl get jobs -A -l lifecycle-jobs.dev/admitted -o jsonpath='{range .items[*]}{.metadata.finalizers}{"\n"}{end}' | grep -c outputs-cleanup || true)"
    log "settling: $observed/$ENVS environments observed, $finalized/$created templates with their finalizer"
    if ((observed >= ENVS && finalized >= created)); then return 0; fi
    sleep 15
  done
  return 1
}
settled="yes"
settle || settled="no (after ${SETTLE_TIMEOUT}s)"
log "settled: $settled; restarting the server (each replica lists everything again)"
kubectl -n "$SYS" rollout restart deployment/lifecycle-webhook >/dev/null
kubectl -n "$SYS" rollout status deployment/lifecycle-webhook --timeout=600s >/dev/null
node="$(kubectl get nodes -o jsonpath='{.items[0].metadata.name}')"
summary() { kubectl get --raw "/api/v1/nodes/$node/proxy/stats/summary"; }
log "letting the new leader take over and make its first pass (RSS sampled every 5 s)"
mkdir -p "$WORK/samples"
for ((i = 0; i < AFTER_RESTART_SECONDS / 5; i++)); do
  summary >"$WORK/samples/$i.json" 2>/dev/null || true
  sleep 5
done
leader="$(kubectl -n "$SYS" get lease lifecycle-webhook-controller -o jsonpath='{.spec.holderIdentity}')"
summary >"$WORK/s1.json"; sleep "$IDLE_SECONDS"; summary >"$WORK/s2.json"
rows="$(python3 - "$SYS" "$leader" "$IDLE_SECONDS" "$WORK" <<'PY'
import json, sys
sys_ns, leader, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
a = json.load(open(sys.argv[4] + "/s1.json"))
b = json.load(open(sys.argv[4] + "/s2.json"))
def pods(s):
    return {p["podRef"]["name"]: p for p in s["pods"] if p["podRef"]["namespace"] == sys_ns}
pa, pb = pods(a), pods(b)
import glob
peak = {}
for f in glob.glob(sys.argv[4] + "/samples/*.json") + [sys.argv[4] + "/s1.json", sys.argv[4] + "/s2.json"]:
    try:
        for name, p in pods(json.load(open(f))).items():
            peak[name] = max(peak.get(name, 0), p["containers"][0]["memory"].get("rssBytes", 0))
    except (ValueError, KeyError, IndexError):
        pass
for name, p in sorted(pb.items()):
    c = p["containers"][0]
    rss = c["memory"].get("rssBytes", 0) / 2**20
    ws = c["memory"].get("workingSetBytes", 0) / 2**20
    cpu = ""
    if name in pa:
        d = c["cpu"]["usageCoreNanoSeconds"] - pa[name]["containers"][0]["cpu"]["usageCoreNanoSeconds"]
        cpu = f"{d / secs / 1e6:.1f}"
    role = "leader" if name == leader else "follower"
    print(f"| {name} ({role}) | {rss:.1f} | {peak.get(name, 0) / 2**20:.1f} | {ws:.1f} | {cpu} |")
PY
)"

log "admitting $ADMISSIONS pods (server-side dry run) in the environments"
kubectl get --raw /metrics | grep 'apiserver_admission_webhook_admission_duration_seconds_bucket{.*name="pods.lifecycle-jobs.dev"' >"$WORK/m0" || true
pf="$WORK/pods.yaml"
for ((i = 0; i < ADMISSIONS; i++)); do
  cat >>"$pf" <<YAML
---
apiVersion: v1
kind: Pod
metadata: {name: probe-$i, namespace: scale-env-$((i % ENVS))}
spec: {containers: [{name: main, image: busybox:local, command: ["true"]}]}
YAML
done
start=$(date +%s.%N)
kubectl create --dry-run=server -f "$pf" >/dev/null
end=$(date +%s.%N)
kubectl get --raw /metrics | grep 'apiserver_admission_webhook_admission_duration_seconds_bucket{.*name="pods.lifecycle-jobs.dev"' >"$WORK/m1" || true
quantiles="$(python3 - "$WORK" <<'PY'
import re, sys
def buckets(text):
    out = {}
    for line in text.splitlines():
        m = re.search(r'le="([^"]+)"\}\s+([0-9.e+]+)', line)
        if m and 'operation="CREATE"' in line:
            le = float('inf') if m.group(1) == '+Inf' else float(m.group(1))
            out[le] = out.get(le, 0) + float(m.group(2))
    return out
b0, b1 = buckets(open(sys.argv[1] + "/m0").read()), buckets(open(sys.argv[1] + "/m1").read())
d = sorted((le, b1[le] - b0.get(le, 0)) for le in b1)
total = d[-1][1] if d else 0
def q(p):
    for le, n in d:
        if total and n >= p * total:
            return f"<= {le * 1000:g} ms"
    return "n/a"
print(f"{q(0.5)} | {q(0.99)} | {int(total)}")
PY
)"
echo
restarts="$(kubectl -n "$SYS" get pods -l app.kubernetes.io/name=lifecycle-webhook -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}')"
echo "Scale: $ENVS environments x $TEMPLATES templates ($created lifecycle Jobs), $(nproc) CPUs; first pass settled: $settled; server restarts since the rollout: $restarts; total ${SECONDS}s before clean-up"
echo
echo "| replica | RSS MiB | highest RSS MiB seen since its start | working set MiB | CPU millicores over ${IDLE_SECONDS}s idle |"
echo "|---|---|---|---|---|"
echo "$rows"
echo
echo "| pod admission webhook p50 | p99 | calls | wall time of $ADMISSIONS dry-run creations |"
echo "|---|---|---|---|"
echo "| $quantiles | $(python3 -c "print(f'{$end - $start:.1f} s')") |"
