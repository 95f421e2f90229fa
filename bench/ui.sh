#!/usr/bin/env bash
# The web view (`kubectl lifecycle ui`) with many environments, on the local cluster with the
# product deployed: ENVS namespaces (default 100, bench-ui-<n>-<suffix>, project bench-ui) made
# environments, the plugin's ui started, and its environments page loaded in headless Chromium
# (Debian's chromium and chromium-driver, tests/cluster/install-deps.sh) through chromedriver.
# Prints on stdout: the time to first contentful paint of the environments page (median and
# range of LOADS loads, default 5; performance.getEntriesByType('paint')) and the plugin's
# resident memory (VmRSS): started, after the loads, and with the page's live stream open.
# Progress on stderr. The namespaces are deleted at the end (also when interrupted).
#
# Holds the cluster for a minute or two: run it under the lock,
#   flock /tmp/lj-e2e.lock bench/ui.sh        (or: make bench-ui)
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBECONFIG="${LJ_CLUSTER_DIR:-$PWD/.local-cluster}/kubeconfig"
ENVS=${ENVS:-100}
LOADS=${LOADS:-5}
[ "$ENVS" -ge 1 ] && [ "$ENVS" -le 1000 ] 2>/dev/null || { echo "bench/ui.sh: ENVS must be 1..1000" >&2; exit 2; }
[ "$LOADS" -ge 1 ] && [ "$LOADS" -le 50 ] 2>/dev/null || { echo "bench/ui.sh: LOADS must be 1..50" >&2; exit 2; }
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
for p in "$CHROMIUM" "$CHROMEDRIVER"; do
  [ -x "$p" ] || { echo "bench/ui.sh: no $p (tests/cluster/install-deps.sh as root installs chromium and chromium-driver)" >&2; exit 2; }
done
# kubectl: from PATH, else the local cluster's own binaries.
if ! command -v kubectl >/dev/null; then
  PATH="$(tests/cluster/build-binaries.sh 2>/dev/null | tail -1):$PATH"
fi
[ -f "$KUBECONFIG" ] && kubectl get --raw /version >/dev/null 2>&1 ||
  { echo "bench/ui.sh: no cluster at $KUBECONFIG (make cluster-up, or tests/run-e2e.sh)" >&2; exit 1; }
PLUGIN=${KUBECTL_LIFECYCLE:-$PWD/target/release/kubectl-lifecycle}
if [ -z "${KUBECTL_LIFECYCLE:-}" ]; then
  cargo build --release --locked -p kubectl-lifecycle 2>&1 | tail -1 >&2
fi

suffix=$(date +%s)
work=$(mktemp -d)
plugin_pid="" driver_pid=""
cleanup() {
  [ -z "$plugin_pid" ] || kill "$plugin_pid" 2>/dev/null || true
  # chromedriver runs in a process group of its own (setsid), with the Chromium it started.
  [ -z "$driver_pid" ] || kill -KILL -- "-$driver_pid" 2>/dev/null || true
  kubectl delete namespace -l "bench.lifecycle-jobs.dev/ui=$suffix" --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "bench/ui.sh: $ENVS environments (Kubernetes $(kubectl get --raw /version | awk -F'"' '/gitVersion/{print $4}'), lifecycle-jobs $(git describe --always --dirty 2>/dev/null || echo '?'))" >&2
for i in $(seq 1 "$ENVS"); do
  cat <<EOF
---
apiVersion: v1
kind: Namespace
metadata:
  name: bench-ui-$i-$suffix
  labels:
    lifecycle-jobs.dev/environment: ""
    lifecycle-jobs.dev/project: bench-ui
    bench.lifecycle-jobs.dev/ui: "$suffix"
EOF
done >"$work/namespaces.yaml"
kubectl apply -f "$work/namespaces.yaml" >/dev/null
# Wait (up to 120 s) until the controller reports every one started.
deadline=$((SECONDS + 120))
while :; do
  started=$(kubectl get namespaces -l "bench.lifecycle-jobs.dev/ui=$suffix" \
    -o 'jsonpath={range .items[*]}{.metadata.annotations.lifecycle-jobs\.dev/status}{"\n"}{end}' | grep -c '^started' || true)
  [ "$started" -lt "$ENVS" ] || break
  [ "$SECONDS" -lt "$deadline" ] || { echo "bench/ui.sh: only $started of $ENVS environments started within 120 s" >&2; exit 1; }
  sleep 1
done
echo "bench/ui.sh: $ENVS environments started" >&2

"$PLUGIN" --kubeconfig "$KUBECONFIG" ui --port 0 --no-browser >"$work/ui.out" 2>"$work/ui.err" &
plugin_pid=$!
for _ in $(seq 1 600); do
  [ -s "$work/ui.out" ] && break
  kill -0 "$plugin_pid" 2>/dev/null || { echo "bench/ui.sh: the ui exited: $(cat "$work/ui.err")" >&2; exit 1; }
  sleep 0.1
done
url=$(head -n1 "$work/ui.out")
case $url in http://127.0.0.1:*token=*) ;; *) echo "bench/ui.sh: the ui printed no URL: $url $(cat "$work/ui.err")" >&2; exit 1 ;; esac
rss() { awk '/^VmRSS:/{printf "%.1f MiB", $2/1024}' "/proc/$plugin_pid/status"; }
rss_started=$(rss)

driver_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
setsid "$CHROMEDRIVER" --port="$driver_port" >"$work/chromedriver.log" 2>&1 &
driver_pid=$!
disown "$driver_pid"  # killed with its group at exit; no "Killed" notice

# The browser's part, over WebDriver's HTTP protocol: one session, LOADS loads of the page. It
# writes $work/loads.json after the loads, then $work/live once the page's live stream is open,
# and keeps the page open until $work/done exists.
python3 - "$driver_port" "$CHROMIUM" "$work" "$url" "$LOADS" "$ENVS" <<'PY' &
import json, os, sys, time, urllib.request

port, chromium, work, url, loads, envs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
wd = f"http://127.0.0.1:{port}"

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(wd + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)["value"]

def wait(what, fn, timeout=30):
    end = time.time() + timeout
    while True:
        try:
            v = fn()
        except Exception as e:
            v = None
            err = e
        if v:
            return v
        if time.time() > end:
            sys.exit(f"bench/ui.sh: timed out waiting for {what}")
        time.sleep(0.05)

wait("chromedriver", lambda: call("GET", "/status").get("ready"))
args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={work}/profile"]
caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}}}
sid = call("POST", "/session", caps)["sessionId"]
s = f"/session/{sid}"
js = lambda script: call("POST", f"{s}/execute/sync", {"script": script, "args": []})

base = url.split("/?")[0]
call("POST", f"{s}/url", {"url": url})  # the one-time token: the session cookie, then /
rows_js = "return document.querySelectorAll('table#environments tr[data-env]').length"
fcps = []
for i in range(loads):
    call("POST", f"{s}/url", {"url": base + "/"})
    rows = wait("the environments table", lambda: js(rows_js) >= envs and js(rows_js))
    fcp = wait("first-contentful-paint", lambda: js(
        "const e = performance.getEntriesByType('paint').find(p => p.name === 'first-contentful-paint');"
        " return e ? e.startTime : null;"))
    fcps.append(fcp)
    print(f"bench/ui.sh: load {i + 1}: first contentful paint {fcp:.0f} ms, {rows} rows", file=sys.stderr)
with open(f"{work}/loads.json", "w") as f:
    json.dump(fcps, f)
wait("the live stream open", lambda: js("return document.body.dataset.ready === '1' && document.body.dataset.liveState === 'open'"))
open(f"{work}/live", "w").close()
wait("the shell", lambda: os.path.exists(f"{work}/done"), timeout=120)
call("DELETE", s)
PY
browser_pid=$!
# The plugin's peak RSS while it serves the loads (sampled every 0.1 s).
peak=0
until [ -e "$work/loads.json" ]; do
  kill -0 "$browser_pid" 2>/dev/null || { wait "$browser_pid" || true; echo "bench/ui.sh: the browser part failed; chromedriver: $(tail -5 "$work/chromedriver.log")" >&2; exit 1; }
  kb=$(awk '/^VmRSS:/{print $2}' "/proc/$plugin_pid/status")
  [ "$kb" -le "$peak" ] || peak=$kb
  sleep 0.1
done
rss_loaded=$(rss)
until [ -e "$work/live" ]; do
  kill -0 "$browser_pid" 2>/dev/null || { wait "$browser_pid" || true; echo "bench/ui.sh: the live stream did not open" >&2; exit 1; }
  sleep 0.1
done
sleep 2
rss_live=$(rss)
touch "$work/done"
wait "$browser_pid"

python3 - "$work/loads.json" <<PY
import json, statistics, sys
f = json.load(open(sys.argv[1]))
print(f"Environments page, $ENVS environments, {len(f)} loads (headless Chromium $("$CHROMIUM" --version 2>/dev/null | awk '{print $2}')):")
print(f"  first contentful paint: median {statistics.median(f):.0f} ms (min {min(f):.0f}, max {max(f):.0f}; all: {', '.join(f'{x:.0f}' for x in f)})")
PY
echo "kubectl-lifecycle ui resident memory (VmRSS):"
echo "  started, before any request:      $rss_started"
echo "  peak while serving the loads:     $(awk -v k="$peak" 'BEGIN{printf "%.1f MiB", k/1024}')"
echo "  after the loads:                  $rss_loaded"
echo "  with the page's live stream open: $rss_live"
