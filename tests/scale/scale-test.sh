#!/usr/bin/env bash
# make scale-test: the server at scale on the local cluster. Creates ENVS
# environments holding TEMPLATES lifecycle templates each (on: stop, so that
# nothing runs while they stay started), restarts the server so that each
# replica lists everything from scratch, then measures, per replica, the
# resident memory (kubelet stats summary), the CPU of the leader while nothing
# changes, and pod admission latency in those environments as the API server
# sees it (apiserver_admission_webhook_admission_duration_seconds, server-side
# dry-run pod creations). Prints Markdown tables; cleans up after itself.
#
#   ENVS=1000 TEMPLATES=10 ADMISSIONS=300 IDLE_SECONDS=60 tests/scale/scale-test.sh
#
# Right after the templates are created (before the controller has settled) it
# creates a new environment with a plain Job that publishes one output, and
# measures, from watches, Job created -> its pod exists and its main container
# ended -> the outputs published (each "> PROBE_TIMEOUT s" when it did not
# happen within PROBE_TIMEOUT seconds, 600 by default): what templates cost
# the cluster's other Jobs. It also prints how long the creation took.
#
# Before measuring memory, it waits (at most SETTLE_TIMEOUT seconds) for the
# controller's first pass (every environment observed, every template given its
# finalizer and shown Suspended), and prints how long that took after the
# creation (polled every 10 s: an upper bound); then it restarts the server and
# waits AFTER_RESTART_SECONDS, so that the numbers are those of a replica that
# started at that scale and of an idle leader. Clean-up waits (at most CLEANUP_TIMEOUT seconds) for the namespaces
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
PROBE_TIMEOUT="${PROBE_TIMEOUT:-600}"
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
create_start=$SECONDS
ls "$WORK"/env-*.yaml | xargs -P "$PARALLEL" -n 1 kubectl create -f >/dev/null 2>"$WORK/create.err" || true
created_at=$SECONDS
create_seconds=$((created_at - create_start))
grep -v AlreadyExists "$WORK/create.err" | tail -n 5 >&2 || true
log "created in ${create_seconds}s; a new Job in a new environment, at once (before the controller settles)"

# Right after the templates are created, what every user of the cluster
# notices first: does a new Job, in a new environment, get its pod and publish
# its outputs as fast as on an idle cluster? (Before templates were handed to
# our controller with spec.managedBy, the built-in Job controller spent
# minutes writing a Suspended status and an Event for each template, at its
# client rate limit, and every Job of the cluster waited behind that.)
# Watches, not polls: each moment is when the change reached a client, and
# both ends of each interval are seen the same way. Timeouts print "> N s".
probe_ns="scale-probe-$(date +%s)"
kubectl create -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $probe_ns, labels: {lifecycle-jobs.dev/environment: "", $MARK: "true"}}
YAML
# Pods are refused until the namespace's default ServiceAccount exists; that
# is another controller's delay, not the one measured here: wait for it.
for ((i = 0; i < 300; i++)); do
  kubectl -n "$probe_ns" get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.2
done
probe="$(python3 - "$probe_ns" "$PROBE_TIMEOUT" <<'PY'
import json, subprocess, sys, threading, time
from datetime import datetime, timezone

ns, timeout = sys.argv[1], float(sys.argv[2])
KEY, JOB = "SCALE_PROBE", "probe"
seen, finished_at, lock = {}, {}, threading.Lock()
ready, stopping = {}, threading.Event()

def mark(what, t):
    with lock:
        seen.setdefault(what, t)

def on_pod(pod, t):
    mark("pod", t)
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (c.get("state") or {}).get("terminated")
        if c.get("name") == "main" and term:
            mark("main_seen", t)
            finished_at.setdefault("main", term.get("finishedAt"))
            finished_at.setdefault("exit", term.get("exitCode"))

def on_cm(cm, t):
    if KEY in (cm.get("data") or {}):
        mark("published_cm", t)

def on_job(job, t):
    mark("job", t)
    if "lifecycle-jobs.dev/outputs-published-by" in ((job.get("metadata") or {}).get("annotations") or {}):
        mark("published_annotation", t)

procs = []

def watch(name, path, handle):
    # sendInitialEvents: the server says (a bookmark) when the watch is in
    # place, so that nothing is created before every watch listens. A server
    # without WatchList refuses it: then a plain watch.
    for q in ["watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", "watch=true"]:
        if stopping.is_set():
            return
        p = subprocess.Popen(["kubectl", "get", "--raw", f"{path}&{q}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(p)
        for line in p.stdout:
            t = time.time()
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("type") == "BOOKMARK":
                ready[name] = t
            elif ev.get("type") in ("ADDED", "MODIFIED"):
                handle(ev.get("object") or {}, t)
        if name in ready:
            return

base = f"/api/v1/namespaces/{ns}"
for name, path, handle in [
    ("pods", f"{base}/pods?labelSelector=batch.kubernetes.io%2Fjob-name%3D{JOB}", on_pod),
    ("configmaps", f"{base}/configmaps?fieldSelector=metadata.name%3Dlifecycle-outputs", on_cm),
    ("jobs", f"/apis/batch/v1/namespaces/{ns}/jobs?fieldSelector=metadata.name%3D{JOB}", on_job),
]:
    threading.Thread(target=watch, args=(name, path, handle), daemon=True).start()
start = time.time()
# Without the bookmark, 3 s is ample for a watch to connect.
while len(ready) < 3 and time.time() - start < 3:
    time.sleep(0.05)

# A plain Job: busybox, one non-sensitive output, then exit. Its main container
# prints the moment it ends (sub-second, unlike finishedAt; busybox's date has
# no %N, but stat shows a new file's mtime to the nanosecond).
job = {
    "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": JOB, "namespace": ns},
    "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
        "name": "main", "image": "busybox:local", "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", "printf '%s' \"$OUT\" > /qovery-output/qovery-output.json; touch /tmp/end; stat -c 'ended %y' /tmp/end"],
        "env": [{"name": "OUT", "value": json.dumps({KEY: {"value": "ok"}})}],
    }]}}},
}
before = time.time()
subprocess.run(["kubectl", "create", "-f", "-"], input=json.dumps(job), text=True, check=True, stdout=subprocess.DEVNULL)

def wait_any(whats, since, within):
    """The first moment one of `whats` was seen, waiting until `since + within` at most."""
    while True:
        with lock:
            found = [seen[w] for w in whats if w in seen]
        if found:
            return min(found)
        if time.time() >= since + within:
            return None
        time.sleep(0.05)

def wait(what, since):
    return wait_any((what,), since, timeout)

created = wait("job", before) or before
pod = wait("pod", created)
out = {"watch": "bookmark" if len(ready) == 3 else "3 s", "pod": None, "publish": None, "end": ""}
if pod is None:
    out["pod"] = f"> {timeout:g} s"
    out["publish"] = "n/a (no pod)"
else:
    out["pod"] = f"{pod - created:.1f} s"
    out["pod_detail"] = f"{pod - before:.1f} s after kubectl create began"
    main_seen = wait("main_seen", pod)
    if main_seen is None:
        out["publish"] = f"n/a (main not ended within {timeout:g} s)"
    else:
        # When main ended: its own clock (the same host's), else finishedAt
        # (whole seconds), else when its end was seen.
        ended, how = main_seen, "seen"
        log = subprocess.run(["kubectl", "-n", ns, "logs", f"job/{JOB}", "-c", "main"], capture_output=True, text=True).stdout
        try:
            # "ended 2026-12-07 23:02:42.805139577 +0000"
            _, day, clock, tz = [l for l in log.splitlines() if l.startswith("ended ")][-1].split()
            whole, frac = clock.split(".")
            ended = datetime.strptime(f"{day} {whole} {tz}", "%Y-%m-%d %H:%M:%S %z").timestamp() + float("0." + frac)
            how = "main's clock"
        except (IndexError, ValueError):
            if finished_at.get("main"):
                ended = datetime.strptime(finished_at["main"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
                how = "finishedAt, whole seconds"
        # Published: the ConfigMap holds the key, or the Job says who published
        # (the server writes both; the first one seen counts, both printed).
        first = wait_any(("published_cm", "published_annotation"), ended, timeout)
        if first is None:
            out["publish"] = f"> {timeout:g} s"
        else:
            wait_any(("published_cm",), first, 2)
            wait_any(("published_annotation",), first, 2)
            out["publish"] = f"{first - ended:.1f} s"
            both = [(w, seen.get(k)) for w, k in (("ConfigMap", "published_cm"), ("annotation", "published_annotation"))]
            out["publish_detail"] = ", ".join(f"{w} {t - ended:.1f} s" for w, t in both if t is not None)
        out["end"] = how
stopping.set()
for p in procs:
    p.kill()
print(json.dumps(out))
PY
)" || probe='{"pod": "error", "publish": "error", "end": "", "watch": ""}'
probe_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$probe" "$1"; }
probe_pod="$(probe_field pod)"
probe_publish="$(probe_field publish)"
log "new Job in a new environment: pod $probe_pod after the Job was created ($(probe_field pod_detail)); outputs published $probe_publish after main ended ($(probe_field publish_detail); main's end from: $(probe_field end); watches in place by: $(probe_field watch))"
created="$(kubectl get jobs -A -l lifecycle-jobs.dev/admitted --no-headers 2>/dev/null | grep -c ' tpl-' || true)"
log "created: $created lifecycle Jobs"

# The controller's first pass: every environment observed, every template
# given its finalizer and shown Suspended (its status condition, which the
# server writes for the templates it manages). Bounded: the table says if it
# did not finish. Timed from the end of the creation.
settle() {
  local deadline=$((SECONDS + SETTLE_TIMEOUT)) observed=0 finalized=0 suspended=0
  while ((SECONDS < deadline)); do
    observed="$(kubectl get ns -l "$MARK" -o jsonpath='{range .items[*]}{.metadata.annotations.lifecycle-jobs\.dev/observed}{"\n"}{end}' | grep -c . || true)"
    kubectl get jobs -A -l lifecycle-jobs.dev/admitted -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.metadata.finalizers}{" "}{.status.conditions[?(@.type=="Suspended")].status}{"\n"}{end}' |
      grep '^tpl-' >"$WORK/templates" || true
    finalized="$(grep -c outputs-cleanup "$WORK/templates" || true)"
    suspended="$(grep -c ' True$' "$WORK/templates" || true)"
    log "settling: $observed/$ENVS environments observed, $finalized/$created templates with their finalizer, $suspended/$created shown Suspended"
    if ((observed >= ENVS && finalized >= created && suspended >= created)); then
      settle_seconds=$((SECONDS - created_at))
      return 0
    fi
    sleep 10
  done
  return 1
}
settle_seconds=""
settled="yes"
settle || settled="no (after ${SETTLE_TIMEOUT}s)"
if [ -n "$settle_seconds" ]; then settle_text="within ${settle_seconds} s"; else settle_text="$settled"; fi
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
echo
echo "| templates created in | first pass settled (after the creation) | new Job in a new environment, right after: Job created → pod | its main container ended → outputs published |"
echo "|---|---|---|---|"
echo "| ${create_seconds} s ($created templates) | $settle_text | $probe_pod | $probe_publish |"
