#!/usr/bin/env bash
# Cost per pod through the real API server, on the local cluster with the
# product deployed: BENCH_PODS pods (default 100, at most 1000) created one
# after another in an environment (the webhook admits each) and in a plain
# namespace (no webhook is called), on one keep-alive connection, then deleted
# with their namespaces. Prints the create latency of each (p50, p99, max),
# what the webhook adds, and the server's CPU per admission: the CPU time of
# the server's processes on this host (every replica, every thread) over the
# environment's creates, minus their idle rate, over the admissions the server
# counted. Unscheduled pods (a node selector no node has): nothing runs.
#
# Holds the cluster for a minute or two: run it under the lock,
#   flock /tmp/lj/cluster.lock env LJ_CLUSTER_DIR=/work/main/.local-cluster bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBECONFIG="${LJ_CLUSTER_DIR:-$PWD/.local-cluster}/kubeconfig"
N=${BENCH_PODS:-100}
[ "$N" -ge 1 ] && [ "$N" -le 1000 ] || { echo "bench/cluster.sh: BENCH_PODS must be 1..1000" >&2; exit 2; }
# The server's namespace: where the installed webhooks call it (LIFECYCLE_NAMESPACE overrides).
SYSTEM_NS=${LIFECYCLE_NAMESPACE:-$(kubectl get mutatingwebhookconfiguration lifecycle-jobs \
  -o jsonpath='{.webhooks[0].clientConfig.service.namespace}' 2>/dev/null || true)}
[ -n "$SYSTEM_NS" ] || { echo "$0: lifecycle-jobs is not installed (no webhook configuration lifecycle-jobs); set LIFECYCLE_NAMESPACE" >&2; exit 2; }
cargo build --release --locked -p lifecycle-bench 2>&1 | tail -1
bin=target/release/lifecycle-bench
suffix=$(date +%s)
env_ns="bench-env-$suffix"
plain_ns="bench-plain-$suffix"
work=$(mktemp -d)
cleanup() {
  kubectl delete namespace "$env_ns" "$plain_ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

kubectl get deployment -n "$SYSTEM_NS" lifecycle-webhook >/dev/null ||
  { echo "bench/cluster.sh: lifecycle-jobs is not deployed (tests/run-e2e.sh or make deploy)" >&2; exit 1; }
kubectl create namespace "$env_ns" >/dev/null
kubectl label namespace "$env_ns" lifecycle-jobs.dev/environment= >/dev/null
kubectl create namespace "$plain_ns" >/dev/null
for ns in "$env_ns" "$plain_ns"; do
  for _ in $(seq 60); do kubectl get serviceaccount -n "$ns" default >/dev/null 2>&1 && break; sleep 1; done
done

# The server's processes on this host (the kubelet runs its containers here).
server_pids() { for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = "lifecycle-webho" ] && echo "${p#/proc/}"; done; }
# CPU time, in ns, of every thread of those processes.
server_cpu_ns() {
  local total=0 p
  for p in $(server_pids); do
    total=$((total + $(cat /proc/"$p"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "%d", s}')))
  done
  echo "$total"
}
[ -n "$(server_pids)" ] || { echo "bench/cluster.sh: no lifecycle-webhook process on this host" >&2; exit 1; }
# Pod admissions the server answered, every replica (through the pod proxy).
admissions() {
  local total=0 pod n
  for pod in $(kubectl get pods -n "$SYSTEM_NS" -l app.kubernetes.io/name=lifecycle-webhook -o name); do
    n=$(kubectl get --raw "/api/v1/namespaces/$SYSTEM_NS/pods/${pod#pod/}:9090/proxy/metrics" |
      awk '/^lifecycle_admission_requests_total\{kind="Pod"/{s+=$2} END{printf "%d", s}')
    total=$((total + n))
  done
  echo "$total"
}
now_ns() { date +%s%N; }
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END{i=int(NR*p); if (i < 1) i=1; printf "%.2f", a[i]/1000}'; }
maxof() { sort -n "$1" | tail -1 | awk '{printf "%.2f", $1/1000}'; }

# Warm up both paths (connections, caches), then measure the server's idle rate.
"$bin" pods --namespace "$env_ns" --count 5 --prefix warm >/dev/null
"$bin" pods --namespace "$plain_ns" --count 5 --prefix warm >/dev/null
c0=$(server_cpu_ns); t0=$(now_ns); sleep 10; c1=$(server_cpu_ns); t1=$(now_ns)
idle_rate=$(awk -v c="$((c1 - c0))" -v t="$((t1 - t0))" 'BEGIN{printf "%.6f", c/t}')

a0=$(admissions); c0=$(server_cpu_ns); t0=$(now_ns)
"$bin" pods --namespace "$env_ns" --count "$N" >"$work/env.us"
c1=$(server_cpu_ns); t1=$(now_ns)
a1=$(admissions)
"$bin" pods --namespace "$plain_ns" --count "$N" >"$work/plain.us"

adm=$((a1 - a0))
per=$(awk -v c="$((c1 - c0))" -v t="$((t1 - t0))" -v r="$idle_rate" -v n="$adm" \
  'BEGIN{if (n > 0) printf "%.0f", (c - r*t)/n/1000; else print "-"}')
idle_pct=$(awk -v r="$idle_rate" 'BEGIN{printf "%.2f", r*100}')
echo
echo "Pod creation through the API server, $N pods one after another on one connection (Kubernetes $(kubectl get --raw /version | awk -F'"' '/gitVersion/{print $4}'))"
echo
echo "| namespace | p50 ms | p99 ms | max ms |"
echo "|---|---:|---:|---:|"
echo "| environment (webhook called) | $(pct "$work/env.us" 0.50) | $(pct "$work/env.us" 0.99) | $(maxof "$work/env.us") |"
echo "| plain (no webhook) | $(pct "$work/plain.us" 0.50) | $(pct "$work/plain.us" 0.99) | $(maxof "$work/plain.us") |"
echo "| added by the webhook | $(awk -v a="$(pct "$work/env.us" 0.50)" -v b="$(pct "$work/plain.us" 0.50)" 'BEGIN{printf "%.2f", a-b}') | $(awk -v a="$(pct "$work/env.us" 0.99)" -v b="$(pct "$work/plain.us" 0.99)" 'BEGIN{printf "%.2f", a-b}') | |"
echo
echo "server CPU per pod created in the environment (admission, and both replicas handling the pod's watch events): ${per} µs ($adm admissions counted by the server; its idle CPU, ${idle_pct}% of a core over $(server_pids | wc -w) processes, subtracted)"
kubectl delete pods -n "$env_ns" -l bench.lifecycle-jobs.dev/pod --wait=false >/dev/null
kubectl delete pods -n "$plain_ns" -l bench.lifecycle-jobs.dev/pod --wait=false >/dev/null
kubectl delete namespace "$env_ns" "$plain_ns" --wait=true --timeout=120s >/dev/null
echo "deleted the pods and namespaces $env_ns, $plain_ns"
