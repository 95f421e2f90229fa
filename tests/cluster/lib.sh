# shellcheck shell=bash disable=SC2034  # (settings are used by the scripts that source this)
# Shared settings and helpers of the local cluster scripts (up.sh, down.sh,
# images.sh). Sourced, never run. Every wait has a deadline: a component that
# does not come up fails the script with its name and the tail of its log.

# --- layout ------------------------------------------------------------------
CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$CLUSTER_DIR/../.." && pwd)
# Everything the cluster writes lives here (git-ignored), so down.sh knows what
# is ours: mounts, pid files, data. The path is canonical: it is the cluster's
# identity (in the host's owner file and in every daemon's command line), so one
# directory must have one spelling however LJ_CLUSTER_DIR is written.
LC=$(realpath -m "${LJ_CLUSTER_DIR:-$REPO/.local-cluster}")
PKI=$LC/pki
ETC=$LC/etc
LOGS=$LC/logs
RUN=$LC/run
IMAGES_DIR=${LJ_IMAGES_DIR:-$REPO/target/images}

# --- network -------------------------------------------------------------------
# The node's address. Pods cannot reach the host's 127.0.0.1 (it is their own
# loopback inside their network namespace), yet they must reach the apiserver
# through the `kubernetes` Service. So the node gets a private /32 on the host's
# loopback device: reachable from the host and, routed through the CNI bridge,
# from every pod; never exposed on a real interface. (A dummy interface would be
# the textbook choice, but some sandbox kernels lack the dummy driver.)
NODE_IP=${LJ_NODE_IP:-10.79.0.1}
NODE_NAME=${LJ_NODE_NAME:-lifecycle-node}
POD_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
CNI_BRIDGE=lj-cni0
CNI_NETWORK=lifecycle-local
APISERVER_PORT=6443
ETCD_CLIENT_PORT=${LJ_ETCD_PORT:-2379}
ETCD_PEER_PORT=${LJ_ETCD_PEER_PORT:-2380}
APISERVER_URL="https://$NODE_IP:$APISERVER_PORT"

CONTAINERD_SOCK=$LC/containerd/containerd.sock
# Image names as the pods write them; containerd stores them normalized
# (docker.io/library/busybox:local), which is exactly what a pod's
# `image: busybox:local` resolves to.
PAUSE_IMAGE=lifecycle-jobs/pause:local
BUSYBOX_IMAGE=busybox:local
COREDNS_IMAGE=lifecycle-jobs/coredns:local

# Components in start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)

# --- messages ------------------------------------------------------------------
_t0=${_t0:-$(date +%s)}
log() { printf '[%s +%3ss] %s\n' "${LOG_PREFIX:-cluster}" "$(($(date +%s) - _t0))" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "${LOG_PREFIX:-cluster}" "$*" >&2
  exit 1
}

# Fails the script naming the component and showing the end of its log.
component_failed() { # name reason
  local name=$1 reason=$2
  {
    printf '[%s] ERROR: %s %s\n' "${LOG_PREFIX:-cluster}" "$name" "$reason"
    if [ -f "$LOGS/$name.log" ]; then
      printf -- '--- last 40 lines of %s (this start) ---\n' "$LOGS/$name.log"
      # Logs are appended across starts: show this start's lines only (from
      # the last "==== " header). awk reads the whole log: no reader quits early.
      awk '/^==== / { n = 0 } { line[++n] = $0 }
        END { for (i = (n > 40 ? n - 39 : 1); i <= n; i++) print line[i] }' "$LOGS/$name.log"
      printf -- '--- end of %s ---\n' "$name"
    fi
  } >&2
  exit 1
}

# --- processes -----------------------------------------------------------------
# A note on pipes: every script runs under `set -o pipefail`, where a reader that
# quits early (`grep -q`, `head`, `sed q`) can kill the writer with SIGPIPE and
# fail the pipeline although the match was found. So output is captured first
# and the captured text is matched.

pid_of() { # name [cluster-dir] -> prints the pid if its pid file names a live process of that cluster
  local name=$1 lc=${2:-$LC} f pid a
  f="$lc/run/$name.pid"
  [ -f "$f" ] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # A pid file can outlive its process and the pid be reused, even by the same
  # component of another cluster: accept it only if the process runs that binary
  # with an argument naming this cluster's directory (every component is started
  # with one: its data dir, configuration or certificates).
  local args=()
  { mapfile -d '' -t args <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
  [ ${#args[@]} -gt 1 ] && [ "$(basename "${args[0]}")" = "$name" ] || return 1
  for a in "${args[@]:1}"; do
    case $a in
      "$lc"/* | *="$lc"/*)
        echo "$pid"
        return 0
        ;;
    esac
  done
  return 1
}

is_running() { pid_of "$1" >/dev/null; }

# Starts a daemon in its own session (so it outlives this script and the caller's
# process group), logging to logs/<name>.log, and records its pid.
start_daemon() { # name binary args...
  local name=$1 bin=$2
  shift 2
  mkdir -p "$LOGS" "$RUN"
  log "starting $name"
  {
    printf '==== %s: %s %s\n' "$(date -u +%FT%TZ)" "$bin" "$*"
  } >>"$LOGS/$name.log"
  # Only stdin, stdout and stderr go to the daemon: an inherited descriptor
  # would live as long as the cluster, and one that holds a lock (as
  # `flock LOCK make cluster-up` gives its command) would hold it forever.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$bin" "$@"
  ) </dev/null >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

# What a daemon was started with: its command line and the content of every
# file the command line names (configuration, kubeconfigs, certificates).
daemon_fingerprint() { # binary args...
  local a f
  {
    printf '%s\n' "$@"
    for a in "$@"; do
      f=${a#*=}
      if [[ $f == /* ]] && [ -f "$f" ]; then sha256sum "$f"; fi
    done
  } | sha256sum | cut -d' ' -f1
}

# Starts a daemon unless it already runs with the same command line and files;
# one that runs with another configuration is restarted, so that a second
# cluster-up applies changed settings and leaves unchanged components alone.
ensure_daemon() { # name binary args...
  local name=$1
  shift
  local fp
  fp=$(daemon_fingerprint "$@")
  if is_running "$name"; then
    if [ "$(cat "$RUN/$name.fingerprint" 2>/dev/null)" = "$fp" ]; then
      return 0
    fi
    log "$name: configuration changed, restarting"
    stop_daemons 20 "$name"
  fi
  start_daemon "$name" "$@"
  echo "$fp" >"$RUN/$name.fingerprint"
}

# Stops the processes of pid files: SIGTERM to all, then SIGKILL to those still
# alive after a deadline.
stop_daemons() { # seconds name...
  local grace=$1 name pid pids=()
  shift
  for name in "$@"; do
    if pid=$(pid_of "$name"); then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$(($(date +%s) + grace))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        log "pid $pid did not stop within ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
        break
      fi
      sleep 0.1
    done
  done
  for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

# Polls `check` until it succeeds; on the deadline, or when the component's
# process has died, fails with the component's log.
wait_for() { # component seconds description check-command...
  local name=$1 secs=$2 what=$3
  shift 3
  local deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if [ -f "$RUN/$name.pid" ] && ! is_running "$name"; then
      component_failed "$name" "exited while waiting for: $what"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      component_failed "$name" "not ready after ${secs}s: $what"
    fi
    sleep 0.5
  done
  log "$name: $what"
}

port_in_use() { # port on 127.0.0.1 / NODE_IP / any
  [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# The cluster directory a process was started for, read from its arguments
# (`--data-dir=DIR/data/etcd`, `--config=DIR/etc/...`, `DIR/containerd/...`,
# `DIR/pki/...`); prints nothing for a process that is no cluster component.
cluster_dir_of_pid() { # pid
  local args=() a v
  { mapfile -d '' -t args <"/proc/$1/cmdline"; } 2>/dev/null || return 0
  for a in "${args[@]:1}"; do
    v=${a#*=}
    if [[ $v =~ ^(/.+)/(pki|etc|data|containerd|kubelet)/ ]]; then
      echo "${BASH_REMATCH[1]}"
      return 0
    fi
  done
}

# Who listens on a port, for error messages: the process and, when it is a
# component of a local cluster, that cluster's directory.
port_user() { # port
  local out pid dir
  out=$(ss -Hltnp "sport = :$1" 2>/dev/null) || true
  [[ $out =~ pid=([0-9]+) ]] || {
    echo "${out:-an unknown process}"
    return 0
  }
  pid=${BASH_REMATCH[1]}
  dir=$(cluster_dir_of_pid "$pid")
  printf '%s (pid %s)%s' "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null || echo unknown)")" "$pid" \
    "${dir:+, a component of the local cluster in $dir}"
}

# --- ownership of the host ----------------------------------------------------------
# Two local clusters cannot run on one machine at once: they share the ports, the
# node address, the CNI bridge, the KUBE-* iptables chains and kernel settings.
# The owner file, outside every checkout, names the cluster directory that holds
# that shared state: up.sh claims it (refusing while another directory's cluster
# runs), down.sh touches the shared state only when the file names its own
# directory, and releases it at the end.
OWNER_DIR=${LJ_OWNER_DIR:-/run/lifecycle-jobs}
OWNER_FILE=$OWNER_DIR/cluster.owner

# Runs "$@" holding the owner lock (short critical sections only).
with_owner_lock() {
  mkdir -p "$OWNER_DIR"
  (
    flock -w 30 9 || die "could not lock $OWNER_DIR/owner.lock within 30s"
    "$@"
  ) 9>"$OWNER_DIR/owner.lock"
}

# The recorded owner: line 1 its cluster directory, line 2 the pid of the
# cluster-up that claimed it (so that a cluster still starting, with no daemon
# yet, counts as running).
owner_dir() { if [ -f "$OWNER_FILE" ]; then sed -n 1p "$OWNER_FILE"; fi; }
owner_claimer() { if [ -f "$OWNER_FILE" ]; then sed -n 2p "$OWNER_FILE"; fi; }

# The live components of the cluster in a directory: "name (pid N), ...".
live_components() { # dir
  local c pid found=()
  for c in "${COMPONENTS[@]}"; do
    if pid=$(pid_of "$c" "$1"); then found+=("$c (pid $pid)"); fi
  done
  local IFS=,
  echo "${found[*]}"
}

# Whether the cluster in a directory runs, or its cluster-up is starting it.
cluster_active() { # dir
  [ -n "$(live_components "$1")" ] && return 0
  local claimer args=()
  [ "$(owner_dir)" = "$1" ] || return 1
  claimer=$(owner_claimer)
  [[ $claimer =~ ^[0-9]+$ ]] || return 1
  { mapfile -d '' -t args <"/proc/$claimer/cmdline"; } 2>/dev/null || return 1
  [[ " ${args[*]} " == *"/up.sh "* ]]
}

# Whether this checkout's cluster holds the host's shared state: the owner file
# names its directory, or no live owner is recorded and its own components run.
owns_host() {
  local owner
  owner=$(owner_dir)
  [ "$owner" = "$LC" ] && return 0
  if [ -n "$owner" ] && cluster_active "$owner"; then return 1; fi
  [ -n "$(live_components "$LC")" ]
}

# Writes stdin to a file only when the content differs: kube-proxy exits when
# its configuration file changes, and a second cluster-up must not disturb it.
write_file() { # path [mode]
  local tmp="$1.tmp.$$"
  cat >"$tmp"
  [ -z "${2:-}" ] || chmod "$2" "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

# --- binaries -----------------------------------------------------------------
# The Go-built binaries (cached by version; built on first use).
k8s_bin_dir() {
  if [ -z "${K8S_BIN:-}" ]; then
    K8S_BIN=$("$CLUSTER_DIR/build-binaries.sh" | tail -n1)
    [ -x "$K8S_BIN/kube-apiserver" ] || die "build-binaries.sh did not produce binaries in '$K8S_BIN'"
  fi
  echo "$K8S_BIN"
}

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$LC/kubeconfig" --request-timeout=20s "$@"; }
ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }
crictl_() {
  "$K8S_BIN/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --image-endpoint "unix://$CONTAINERD_SOCK" \
    --timeout 20s "$@"
}

# --- host packages --------------------------------------------------------------
# Debian packages the cluster runs on. Installed only when missing, so a machine
# that has them never touches apt (and apt-get update runs at most once).
HOST_PACKAGES=(runc containerd containernetworking-plugins busybox-static iptables conntrack socat
  ethtool iproute2 ipset openssl curl ca-certificates gcc libc6-dev)

ensure_packages() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}) and not root to install them"
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}
