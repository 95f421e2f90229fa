#!/usr/bin/env bash
# `make cluster-test`: the cluster scripts are safe to repeat, and a checkout
# touches only its own cluster.
#
#  1. `make cluster-up` three times in a row: each exits 0, the API server answers.
#  2. A second checkout's cluster (another cluster directory, as LJ_CLUSTER_DIR or
#     another clone gives): its `cluster-up` fails at once, naming the running
#     cluster's directory, and creates nothing; its `cluster-down` exits 0 and
#     changes nothing on the machine, both when its directory does not exist and
#     when it holds a previous run's leftovers (logs, and stale pid files whose
#     pids now belong to the first cluster). The first cluster keeps its
#     processes, pods, node address, bridge, iptables chains, kernel settings
#     and ownership, and still answers /readyz.
#  3. `make cluster-down` twice: each exits 0, and nothing of the cluster is left
#     (processes, node address, bridge, owner file).
#  4. A cluster that was up when the test began is brought back up, so that a
#     shared cluster stays usable (the product must be deployed again).
#
# Run as root, alone on the cluster (it stops it): in CI before the e2e suite.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LOG_PREFIX=cluster-test
# shellcheck source=lib.sh
source "$REPO/tests/cluster/lib.sh"
[ "$(id -u)" -eq 0 ] || die "run as root"

FIRST=$LC
work=$(mktemp -d)
OTHER=$work/second-checkout/.local-cluster
trap 'rm -rf "$work"' EXIT

failures=0
fail() {
  log "FAIL: $*"
  failures=$((failures + 1))
}
step() { log "---- $*"; }

# Runs a make target for a cluster directory, recording its output and time.
run_make() { # out-file cluster-dir target
  local out=$1 dir=$2 target=$3 t0 rc=0 ms
  t0=${EPOCHREALTIME/./}
  LJ_CLUSTER_DIR=$dir make -C "$REPO" --no-print-directory "$target" >"$out" 2>&1 || rc=$?
  ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
  LAST_SECONDS=$((ms / 1000)).$(((ms % 1000) / 100))
  return "$rc"
}
expect_ok() { # cluster-dir target
  local out="$work/out.$RANDOM"
  if run_make "$out" "$1" "$2"; then
    log "make $2 ($1): exit 0 in ${LAST_SECONDS}s"
  else
    fail "make $2 ($1) failed after ${LAST_SECONDS}s; its last lines:"
    tail -n 30 "$out" >&2
  fi
}

readyz() { # cluster-dir
  [ -f "$1/pki/admin.crt" ] || return 1
  curl -sf --max-time 5 --cacert "$1/pki/ca.crt" --cert "$1/pki/admin.crt" --key "$1/pki/admin.key" \
    "$APISERVER_URL/readyz" >/dev/null
}

# What a second checkout must not change: the first cluster's processes and
# pods, and the host state a cluster holds. Per-Service and per-pod iptables
# chains (KUBE-SVC-*, CNI-<hash>, ...) are left out: they follow the pods.
host_state() {
  local c pid kubectl=("$FIRST/bin/kubectl" --kubeconfig "$FIRST/kubeconfig" --request-timeout=20s)
  echo "## processes of $FIRST"
  for c in "${COMPONENTS[@]}"; do
    if pid=$(pid_of "$c" "$FIRST"); then echo "$c $pid"; else echo "$c -"; fi
  done
  echo "## kube-system pods (uid, restarts)"
  "${kubectl[@]}" -n kube-system get pods \
    -o 'jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.status.containerStatuses[*].restartCount}{"\n"}{end}' |
    grep -v '^dns-check ' | sort || echo "(kubectl failed)"
  echo "## node address"
  ip -o -4 addr show dev lo | awk '{ print $4 }' | sort
  echo "## bridge"
  ip -o link show "$CNI_BRIDGE" 2>/dev/null | awk '{ print $2 }' || echo "(none)"
  echo "## iptables chains"
  local t saved
  for t in filter nat mangle; do
    saved=$(iptables-save -t "$t" 2>/dev/null) || continue
    grep -E '^:KUBE-' <<<"$saved" | grep -vE '^:KUBE-(SVC|SEP|SVL|EXT|FW)-' | sed "s/^/$t /" || true
    grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-' <<<"$saved" | sort || true
  done
  echo "## kernel settings"
  local s
  for s in net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables vm/overcommit_memory kernel/panic; do
    [ -r "/proc/sys/$s" ] && echo "$s $(cat "/proc/sys/$s")"
  done
  echo "## owner"
  owner_dir
}

expect_unchanged() { # what before-file
  local after="$work/after.$RANDOM"
  host_state >"$after"
  if ! diff -u "$2" "$after" >"$work/diff"; then
    fail "$1 changed the machine:"
    cat "$work/diff" >&2
  fi
  readyz "$FIRST" || fail "$1: the first cluster ($FIRST) no longer answers /readyz"
}

was_up=false
if readyz "$FIRST" && [ -n "$(live_components "$FIRST")" ]; then was_up=true; fi
log "first cluster: $FIRST (up at start: $was_up); second checkout's: $OTHER"

# --- 1. up, three times ---------------------------------------------------------------
step "make cluster-up, three times"
for _ in 1 2 3; do expect_ok "$FIRST" cluster-up; done
readyz "$FIRST" || die "the cluster does not answer /readyz after three cluster-up runs"
before="$work/before"
host_state >"$before"
log "the first cluster's state, to be left alone: $(grep -c . "$before") lines (processes, kube-system pods, node address, bridge, iptables chains, sysctls, owner)"
procs=$(sed -n '/^## processes/,/^## kube-system/p' "$before")
[[ $procs != *" -"* ]] || fail "a component is not running: $procs"

# --- 2. a second checkout -----------------------------------------------------------
step "cluster-up from a second checkout while the first runs"
out="$work/second-up"
if run_make "$out" "$OTHER" cluster-up; then
  fail "cluster-up from $OTHER succeeded while $FIRST runs"
else
  msg=$(cat "$out")
  log "refused in ${LAST_SECONDS}s:"
  grep -A4 'ERROR' "$out" >&2 || cat "$out" >&2
  [[ $msg == *"$FIRST"* ]] || fail "the refusal does not name the running cluster's directory $FIRST: $msg"
  [ ! -e "$OTHER" ] || fail "the refused cluster-up created $OTHER: $(ls -R "$OTHER")"
fi
expect_unchanged "the refused cluster-up" "$before"

step "cluster-down from the second checkout (nothing there)"
expect_ok "$OTHER" cluster-down
expect_unchanged "cluster-down of a checkout without a cluster" "$before"

step "cluster-down from the second checkout (a previous run's leftovers, pids now reused)"
mkdir -p "$OTHER/logs" "$OTHER/run" "$OTHER/pki"
ln -sfn "$(readlink "$FIRST/bin")" "$OTHER/bin"
# Stale pid files naming the first cluster's live processes: as if the pids
# had been reused, by the very same programs.
for c in "${COMPONENTS[@]}"; do
  if pid=$(pid_of "$c" "$FIRST"); then echo "$pid" >"$OTHER/run/$c.pid"; fi
done
cp "$RUN/sysctl.saved" "$OTHER/run/" 2>/dev/null || true
expect_ok "$OTHER" cluster-down
expect_unchanged "cluster-down of a checkout whose cluster is not running" "$before"

# --- 3. down, twice -------------------------------------------------------------------
step "make cluster-down, twice"
for _ in 1 2; do expect_ok "$FIRST" cluster-down; done
left=$(live_components "$FIRST")
[ -z "$left" ] || fail "still running after cluster-down: $left"
lo_addrs=$(ip -o -4 addr show dev lo)
[[ $lo_addrs != *" $NODE_IP/32 "* ]] || fail "the node address $NODE_IP is still on lo"
! ip link show "$CNI_BRIDGE" >/dev/null 2>&1 || fail "the bridge $CNI_BRIDGE is still there"
[ ! -e "$OWNER_FILE" ] || fail "the owner file is still there: $(cat "$OWNER_FILE")"
! readyz "$FIRST" || fail "the API server still answers after cluster-down"

# --- 4. leave it as found -------------------------------------------------------------
if $was_up; then
  step "bringing the cluster back up (it was up when the test began)"
  expect_ok "$FIRST" cluster-up
fi

if [ "$failures" -gt 0 ]; then die "$failures check(s) failed"; fi
log "PASS: up x3, second checkout refused and harmless, down x2"
