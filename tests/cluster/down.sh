#!/usr/bin/env bash
# `make cluster-down`: stops the local cluster and removes what it left on the
# host. Processes are stopped by the pid files up.sh wrote (never by name), pods
# through containerd's CRI (which also tears their network down), then anything
# mounted under .local-cluster/ is unmounted and the cluster's state removed.
# Kept: logs/ (for a post-mortem) and pki/ (saves a second on the next start).
# Safe to run when nothing runs; running it twice is harmless.
#
# Only this checkout's cluster (its directory, LJ_CLUSTER_DIR or .local-cluster/)
# is touched: its own pids, the pods of its own containerd, processes whose
# container root lies in its directory. The host's shared state (node address,
# CNI bridge, KUBE-* and CNI iptables chains, kernel settings, the kubelet's pod
# cgroups) is cleaned only when the host's owner file (see lib.sh) names this
# directory: a cluster-down from a checkout whose cluster is not running
# changes nothing on the machine.
set -euo pipefail
LOG_PREFIX=cluster-down
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root"
if [ ! -d "$LC" ]; then
  log "no local cluster (${LC#"$REPO"/} does not exist)"
  exit 0
fi

running=$(live_components "$LC")
if owns_host; then
  host_ours=true
else
  host_ours=false
  owner=$(owner_dir)
  if [ -n "$owner" ] && cluster_active "$owner"; then
    log "the local cluster running on this machine is the one in $owner: it and the host's network state are left alone"
  fi
fi
if [ -z "$running" ]; then
  log "the cluster in $LC is not running"
fi

# The binaries up.sh used (kube-proxy, crictl); never build them just to stop.
K8S_BIN=$(readlink "$LC/bin" 2>/dev/null || true)
have_bin() { [ -n "$K8S_BIN" ] && [ -x "$K8S_BIN/$1" ]; }

# Nothing may recreate pods while they are removed.
stop_daemons 20 kube-controller-manager kube-scheduler kubelet

# --- pods ------------------------------------------------------------------------------
# Stopping and removing every pod sandbox through the CRI kills its containers,
# runs the CNI DEL (addresses, masquerade rules, veths) and unmounts its network
# namespace, exactly as the kubelet would.
if is_running containerd && have_bin crictl; then
  mapfile -t pods < <(crictl_ pods -q 2>/dev/null || true)
  if [ ${#pods[@]} -gt 0 ]; then
    log "removing ${#pods[@]} pod sandbox(es)"
    # Remember the network namespaces, to unmount any that a failed CNI DEL leaves.
    for p in "${pods[@]}"; do
      crictl_ inspectp "$p" 2>/dev/null | grep -o '"/var/run/netns/[A-Za-z0-9-]*"' | tr -d '"' || true
    done | sort -u >"$RUN/netns.list"
    crictl_ stopp "${pods[@]}" >/dev/null 2>&1 || log "WARNING: crictl stopp failed for some pods"
    crictl_ rmp -f "${pods[@]}" >/dev/null 2>&1 || log "WARNING: crictl rmp failed for some pods"
  fi
fi

stop_daemons 15 kube-proxy
# kube-proxy removes its own iptables (and ipvs/nftables) rules: host-wide
# chains, so only when this cluster made them.
if $host_ours && have_bin kube-proxy; then
  timeout 60 "$K8S_BIN/kube-proxy" --cleanup >>"$LOGS/kube-proxy.log" 2>&1 ||
    log "WARNING: kube-proxy --cleanup reported errors (see logs/kube-proxy.log)"
fi

# containerd-shim processes belong to our containerd when they were started
# with its socket as -address (shims outlive containerd by design).
our_shims() {
  local d cmd
  for d in /proc/[0-9]*; do
    cmd=$(tr '\0' '\n' 2>/dev/null <"$d/cmdline") || continue
    case $(head -n1 <<<"$cmd") in
      */containerd | containerd) continue ;;
    esac
    if grep -qxF "$CONTAINERD_SOCK" <<<"$cmd"; then echo "${d#/proc/}"; fi
  done
}
stop_daemons 20 containerd
mapfile -t shims < <(our_shims)
if [ ${#shims[@]} -gt 0 ]; then
  log "killing leftover containerd shims of this cluster: ${shims[*]}"
  kill -KILL "${shims[@]}" 2>/dev/null || true
fi
# Container processes whose shim was gone: in the kubelet's pod cgroups, and
# ours when their mounts (the container's root overlay) lie in our directory.
# (The pod cgroups are shared by every kubelet of the host.)
our_pod_processes() {
  local procs pid mounts pids=()
  for procs in /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/*/cgroup.procs \
    /sys/fs/cgroup/*/kubepods/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods/*/*/*/cgroup.procs; do
    [ -f "$procs" ] || continue
    mapfile -t pids <"$procs" 2>/dev/null || continue
    for pid in "${pids[@]}"; do
      mounts=$(cat "/proc/$pid/mountinfo" 2>/dev/null) || continue
      if [[ $mounts == *[\ =:]"$LC/"* ]]; then echo "$pid"; fi
    done
  done | sort -un
}
mapfile -t leftover < <(our_pod_processes)
if [ ${#leftover[@]} -gt 0 ]; then
  log "killing leftover pod processes of this cluster: ${leftover[*]}"
  kill -KILL "${leftover[@]}" 2>/dev/null || true
fi

stop_daemons 20 kube-apiserver
stop_daemons 15 etcd

# --- mounts -----------------------------------------------------------------------------
mounts_under() { # dir: mount points below it, deepest first
  awk -v p="$1/" '{ m = $5; gsub(/\\040/, " ", m); if (index(m, p) == 1) print m }' /proc/self/mountinfo | sort -r
}
for round in 1 2 3; do
  left=$(mounts_under "$LC")
  [ -n "$left" ] || break
  while IFS= read -r m; do
    if [ "$round" -lt 3 ]; then umount "$m" 2>/dev/null || true; else umount -l "$m" 2>/dev/null || true; fi
  done <<<"$left"
done
if [ -f "$RUN/netns.list" ]; then
  while IFS= read -r ns; do
    if [ -z "$ns" ] || [ ! -e "$ns" ]; then continue; fi
    umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
    rm -f "$ns"
  done <"$RUN/netns.list"
fi

# --- host network -------------------------------------------------------------------------
# Shared by every cluster of the host: cleaned only by the one that owns it.
clean_host_state() {
  # Masquerade rules of the CNI bridge plugin that a missed CNI DEL left behind:
  # they carry the network's name in their comment.
  if command -v iptables-save >/dev/null; then
    rules=$(iptables-save -t nat 2>/dev/null | grep -F "\"$CNI_NETWORK\"" | grep '^-A POSTROUTING' || true)
    if [ -n "$rules" ]; then
      log "removing leftover CNI masquerade rules"
      while IFS= read -r rule; do
        chain=$(grep -o -- '-j CNI-[A-Za-z0-9]*' <<<"$rule" | cut -d' ' -f2 || true)
        eval "iptables -t nat ${rule/#-A/-D}" 2>/dev/null || true
        if [ -n "$chain" ]; then
          iptables -t nat -F "$chain" 2>/dev/null || true
          iptables -t nat -X "$chain" 2>/dev/null || true
        fi
      done <<<"$rules"
    fi
  fi
  # The kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY,
  # KUBE-IPTABLES-HINT), which kube-proxy --cleanup leaves: unhook them from the
  # built-in chains, then flush and delete. KUBE-* chains are Kubernetes' own by
  # convention, and a host runs one node's worth of them.
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    for table in filter nat mangle; do
      saved=$("$ipt-save" -t "$table" 2>/dev/null) || continue
      while IFS= read -r rule; do
        if [ -n "$rule" ]; then eval "$ipt -t $table ${rule/#-A/-D}" 2>/dev/null || true; fi
      done < <(grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-' <<<"$saved" || true)
      chains=$(grep -oE '^:KUBE-[^ ]+' <<<"$saved" | tr -d ':' || true)
      for c in $chains; do "$ipt" -t "$table" -F "$c" 2>/dev/null || true; done
      for c in $chains; do "$ipt" -t "$table" -X "$c" 2>/dev/null || true; done
    done
  done
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
    log "removing bridge $CNI_BRIDGE"
    ip link delete "$CNI_BRIDGE" || true
  fi
  lo_addrs=$(ip -o -4 addr show dev lo)
  if [[ $lo_addrs == *" $NODE_IP/32 "* ]]; then
    ip addr del "$NODE_IP/32" dev lo || true
  fi
  if [ -f "$RUN/sysctl.saved" ]; then
    log "restoring kernel settings the cluster changed"
    while read -r key value; do
      if [ -w "/proc/sys/$key" ]; then echo "$value" >"/proc/sys/$key" 2>/dev/null || true; fi
    done <"$RUN/sysctl.saved"
  fi

  # The kubelet's (now empty) pod cgroups, deepest first.
  for sub in /sys/fs/cgroup/*/kubepods; do
    if [ -d "$sub" ]; then find "$sub" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
  done
  # containerd 1.6 puts shim sockets in /run/containerd/s whatever its state dir.
  rmdir /run/containerd/s /run/containerd 2>/dev/null || true # only if empty
  rmdir /var/log/containers 2>/dev/null || true                  # only if empty
}
# Container log links that point into our state.
if [ -d /var/log/containers ]; then
  find /var/log/containers -maxdepth 1 -type l -lname "$LC/*" -delete 2>/dev/null || true
fi
if $host_ours; then
  clean_host_state
fi

# --- state ---------------------------------------------------------------------------------
problems=0
for c in "${COMPONENTS[@]}"; do
  if is_running "$c"; then
    log "ERROR: $c is still running (pid $(pid_of "$c"))"
    problems=1
  fi
done
if [ -n "$(our_shims)" ]; then
  log "ERROR: containerd shims still running: $(our_shims | xargs)"
  problems=1
fi
if [ -n "$(mounts_under "$LC")" ]; then
  log "ERROR: still mounted under $LC:"
  mounts_under "$LC" >&2
  problems=1
fi
[ "$problems" -eq 0 ] || die "the cluster was not fully stopped; state kept in ${LC#"$REPO"/}"
rm -rf "${LC:?}/data" "${LC:?}/kubelet" "${LC:?}/containerd" "${LC:?}/cni" "${LC:?}/etc" "${LC:?}/run" \
  "${LC:?}/kubeconfig" "${LC:?}/bin"
# The host is free again for any checkout's cluster.
release_host() {
  if [ "$(owner_dir)" = "$LC" ]; then rm -f "$OWNER_FILE"; fi
}
with_owner_lock release_host
if [ -n "$running" ]; then
  log "cluster stopped; logs kept in ${LOGS#"$REPO"/}"
else
  if $host_ours; then
    log "nothing was running in $LC; removed what it had left on the host"
  else
    log "nothing was running in $LC; nothing else on the machine was touched"
  fi
fi
