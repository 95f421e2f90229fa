#!/usr/bin/env bash
# `make cluster-up`: a real single-node Kubernetes cluster on this machine.
#
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
# kubelet and kube-proxy run as host processes (as on a kubeadm node, minus the
# static pods), with a generated CA and certificates, RBAC and Node
# authorization, service-account token signing, pod networking through CNI
# (bridge + host-local), Services through kube-proxy (iptables) and CoreDNS
# deployed into the cluster. Everything lives under .local-cluster/:
#   kubeconfig   admin kubeconfig (system:masters)
#   logs/        one log per component
#   run/         pid files (down.sh stops by these, never by name)
#   bin          symlink to the cached Kubernetes binaries (kubectl, crictl, ...)
# Returns once the node is Ready and cluster DNS answers a pod. Running it
# again is harmless: components already running are kept, images re-imported.
set -euo pipefail
LOG_PREFIX=cluster-up
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root: the cluster's kubelet, containerd and network setup need it"
[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported"

# --- one cluster per machine ---------------------------------------------------------
# Checked first, so that a refusal comes at once (before any build or change).
claim_host() {
  local owner running
  owner=$(owner_dir)
  if [ -n "$owner" ] && [ "$owner" != "$LC" ] && cluster_active "$owner"; then
    running=$(live_components "$owner")
    die "another local cluster runs on this machine, from $owner (${running:-its cluster-up is starting it}).
  Two cannot run at once: they share ports, the node address and the pod network.
  Use it:       export LJ_CLUSTER_DIR=$owner KUBECONFIG=$owner/kubeconfig
  or stop it:   LJ_CLUSTER_DIR=$owner make cluster-down   (from any checkout)"
  fi
  if [ -n "$owner" ] && [ "$owner" != "$LC" ]; then
    log "the cluster recorded as running ($owner) is gone: this one takes over"
  fi
  printf '%s\n%s\n' "$LC" "$$" >"$OWNER_FILE.tmp"
  mv "$OWNER_FILE.tmp" "$OWNER_FILE"
}
with_owner_lock claim_host

# Ports the cluster listens on must be free (unless it is ours, already running).
check_port() { # component port
  if ! is_running "$1" && port_in_use "$2"; then
    die "port $2, needed by $1, is in use by $(port_user "$2")"
  fi
}
check_port etcd "$ETCD_CLIENT_PORT"
check_port etcd "$ETCD_PEER_PORT"
check_port kube-apiserver "$APISERVER_PORT"
check_port kube-controller-manager 10257
check_port kube-scheduler 10259
check_port kubelet 10250
check_port kubelet 10248
check_port kube-proxy 10256
check_port kube-proxy 10249

ensure_packages
K8S_BIN=$(k8s_bin_dir)
mkdir -p "$LC" "$PKI" "$ETC" "$LOGS" "$RUN"
ln -sfn "$K8S_BIN" "$LC/bin"

# --- PKI ---------------------------------------------------------------------------
# One CA signs everything (as kubeadm's, minus the separate etcd and front-proxy
# CAs, which nothing here needs). ECDSA P-256 keys: generated in milliseconds.
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null && chmod 0600 "$1"; }

sign_cert() { # name subject usage [san...]   usage: server | client | both
  local name=$1 subj=$2 usage=$3
  shift 3
  local eku
  case $usage in
    server) eku=serverAuth ;;
    client) eku=clientAuth ;;
    both) eku=serverAuth,clientAuth ;;
  esac
  new_key "$PKI/$name.key"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    if [ $# -gt 0 ]; then
      local IFS=,
      echo "subjectAltName=$*"
    fi
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -extfile "$PKI/$name.ext" \
    -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

generate_pki() {
  log "generating CA, certificates and service-account keys in ${PKI#"$REPO"/}"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  new_key "$PKI/ca.key"
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=lifecycle-local-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt" 2>/dev/null
  sign_cert apiserver "/CN=kube-apiserver" server \
    "IP:$NODE_IP" "IP:127.0.0.1" "IP:$KUBERNETES_SVC_IP" DNS:localhost DNS:kubernetes DNS:kubernetes.default \
    DNS:kubernetes.default.svc "DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
  sign_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  sign_cert admin "/O=system:masters/CN=kubernetes-admin" client
  sign_cert controller-manager "/CN=system:kube-controller-manager" client
  sign_cert scheduler "/CN=system:kube-scheduler" client
  sign_cert kube-proxy "/CN=system:kube-proxy" client
  sign_cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" client
  sign_cert kubelet "/CN=$NODE_NAME" server "IP:$NODE_IP" "DNS:$NODE_NAME" DNS:localhost IP:127.0.0.1
  # Service-account token signing: RSA as in every distribution.
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  chmod 0600 "$PKI/sa.key"
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  echo "$NODE_IP $NODE_NAME" >"$PKI/.identity"
}

# Regenerate when missing or made for another node address/name.
if [ ! -f "$PKI/sa.pub" ] || [ "$(cat "$PKI/.identity" 2>/dev/null)" != "$NODE_IP $NODE_NAME" ]; then
  is_running kube-apiserver && die "a cluster with other certificates is running: run tests/cluster/down.sh first"
  generate_pki
fi

write_kubeconfig() { # file cert-name
  local file=$1 cert=$2
  write_file "$file" 0600 <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: lifecycle-local
    cluster:
      server: $APISERVER_URL
      certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
  - name: $cert
    user:
      client-certificate-data: $(base64 -w0 <"$PKI/$cert.crt")
      client-key-data: $(base64 -w0 <"$PKI/$cert.key")
contexts:
  - name: lifecycle-local
    context:
      cluster: lifecycle-local
      user: $cert
current-context: lifecycle-local
EOF
}
write_kubeconfig "$LC/kubeconfig" admin
for c in controller-manager scheduler kube-proxy kubelet-client; do write_kubeconfig "$ETC/$c.kubeconfig" "$c"; done

# --- host network ---------------------------------------------------------------
# Kernel settings the cluster changes are saved once (before any change) so
# that down.sh can put them back: the kubelet itself sets vm/kernel tunables
# (as on every node), and routing pod traffic needs forwarding.
SAVED_SYSCTLS=(net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables vm/overcommit_memory vm/panic_on_oom
  kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes)
if [ ! -f "$RUN/sysctl.saved" ]; then
  for s in "${SAVED_SYSCTLS[@]}"; do
    [ -r "/proc/sys/$s" ] && echo "$s $(cat "/proc/sys/$s")"
  done >"$RUN/sysctl.saved.tmp"
  mv "$RUN/sysctl.saved.tmp" "$RUN/sysctl.saved"
fi
# br_netfilter makes bridged pod-to-pod traffic traverse iptables, which
# kube-proxy needs when a pod reaches a Service backed by a pod on the same bridge.
if [ ! -d /proc/sys/net/bridge ] && command -v modprobe >/dev/null; then modprobe br_netfilter 2>/dev/null || true; fi
if [ -d /proc/sys/net/bridge ]; then
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
else
  log "WARNING: br_netfilter is unavailable: a pod may not reach a Service backed by a pod on the same node"
fi
echo 1 >/proc/sys/net/ipv4/ip_forward
lo_addrs=$(ip -o -4 addr show dev lo)
[[ $lo_addrs == *" $NODE_IP/32 "* ]] || ip addr add "$NODE_IP/32" dev lo

# --- etcd ---------------------------------------------------------------------------
mkdir -p "$LC/data/etcd"
chmod 0700 "$LC/data/etcd"
# Plain HTTP on loopback: only the apiserver talks to it. No fsync: test data.
ensure_daemon etcd "$K8S_BIN/etcd" \
  --name=lifecycle-local --data-dir="$LC/data/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="lifecycle-local=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level=warn

# --- containerd (started early: image import overlaps the control plane's start) --
mkdir -p "$LC/containerd" "$LC/cni/net.d" "$LC/cni/ipam"
# CAP_SYS_RESOURCE is bit 24 of the effective capability set.
restrict_oom=true
if (( (16#$(awk '/^CapEff:/ { print $2 }' /proc/self/status) >> 24) & 1 )); then restrict_oom=false; fi
write_file "$LC/containerd/config.toml" <<EOF
# containerd of the local cluster only: own root, state, socket and runc root,
# so it never meets a system containerd.
version = 2
root = "$LC/containerd/root"
state = "$LC/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$LC/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  disable_tcp_service = true
  # Never give a container a lower OOM score than containerd's own: lowering
  # it needs CAP_SYS_RESOURCE, which sandboxed CI hosts (like this one) may
  # withhold, and runc then fails every pod with "can't get final child's PID".
  restrict_oom_score_adj = $restrict_oom
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$LC/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$LC/cni/net.d"
    max_conf_num = 1
EOF
# Pod network: one bridge, the host as gateway, masquerade to the outside.
# (containerd adds the loopback interface itself, with the loopback plugin.)
write_file "$LC/cni/net.d/10-lifecycle-local.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$LC/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
ensure_daemon containerd "$(command -v containerd)" --config "$LC/containerd/config.toml"
wait_for containerd 30 "serving on ${CONTAINERD_SOCK#"$REPO"/}" ctr --address "$CONTAINERD_SOCK" version

# --- images -----------------------------------------------------------------------
"$CLUSTER_DIR/images.sh" --cluster
shopt -s nullglob
for tar in "$IMAGES_DIR"/*.tar; do
  out=$(ctr_ images import "$tar" 2>&1) || component_failed containerd "could not import $tar: $out"
  log "imported ${tar#"$REPO"/}"
done
shopt -u nullglob

# --- kube-apiserver ----------------------------------------------------------------
wait_for etcd 30 "healthy" curl -sf "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
# Bound to the node address only (not to every interface): see NODE_IP in lib.sh.
ensure_daemon kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$APISERVER_PORT" \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true \
  --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --profiling=false --event-ttl=1h
apiserver_ready() {
  curl -sf --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$APISERVER_URL/readyz"
}
wait_for kube-apiserver 60 "ready at $APISERVER_URL" apiserver_ready

# --- controllers and scheduler ---------------------------------------------------------
# Every default controller (job, namespace, garbage collector, deployment,
# replicaset, service accounts and their tokens, TTL-after-finished,
# endpoints, ...), each with its own service account as in kubeadm.
ensure_daemon kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$ETC/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$ETC/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$ETC/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10257 \
  --controllers='*' --use-service-account-credentials=true \
  --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --cluster-name=lifecycle-local --service-cluster-ip-range="$SERVICE_CIDR" \
  --leader-elect=false --profiling=false
ensure_daemon kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$ETC/scheduler.kubeconfig" \
  --authentication-kubeconfig="$ETC/scheduler.kubeconfig" \
  --authorization-kubeconfig="$ETC/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false

# --- kubelet --------------------------------------------------------------------------
# Pods resolve the outside world through the node's nameservers; loopback ones
# (a local stub resolver) are unreachable from pods and would make CoreDNS loop.
upstream_dns=$(awk '$1 == "nameserver" && $2 !~ /^127\./ && $2 != "::1" && n++ < 3 { printf "%s%s", (n > 1 ? " " : ""), $2 }' \
  /etc/resolv.conf 2>/dev/null || true)
for ns in $upstream_dns; do echo "nameserver $ns"; done | write_file "$ETC/resolv.conf"
mkdir -p "$LC/kubelet" "$LC/kubelet/pod-logs"
write_file "$ETC/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host (like many CI hosts) still runs cgroup v1; 1.35 needs the opt-in.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
clusterDNS: [$DNS_SVC_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $ETC/resolv.conf
podLogsDir: $LC/kubelet/pod-logs
staticPodPath: ""
failSwapOn: false
# A test machine's disk is often fuller than a production node's: evict only
# when it is really full, and never garbage-collect the imported images (they
# cannot be pulled back: there is no registry).
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Quicker status updates: tests wait on them.
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
serializeImagePulls: false
EOF
wait_for kube-apiserver 30 "default namespace exists" kubectl_ get namespace default
ensure_daemon kubelet "$K8S_BIN/kubelet" \
  --config="$ETC/kubelet.yaml" --kubeconfig="$ETC/kubelet-client.kubeconfig" \
  --root-dir="$LC/kubelet" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"

# --- kube-proxy -----------------------------------------------------------------------
write_file "$ETC/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $ETC/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
# Leave the host's conntrack sysctls alone (0 = do not touch): they need not
# change for a test node, and a sandbox may not allow writing them.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  # NodePorts on 127.0.0.1 would need net.ipv4.conf.all.route_localnet=1.
  localhostNodePorts: false
EOF
ensure_daemon kube-proxy "$K8S_BIN/kube-proxy" --config="$ETC/kube-proxy.yaml"

wait_for kube-controller-manager 30 "healthy" curl -skf --max-time 5 https://127.0.0.1:10257/healthz
wait_for kube-scheduler 30 "healthy" curl -skf --max-time 5 https://127.0.0.1:10259/healthz
wait_for kubelet 60 "healthy" curl -sf --max-time 5 http://127.0.0.1:10248/healthz
node_ready() {
  [ "$(kubectl_ get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
wait_for kubelet 90 "node $NODE_NAME is Ready" node_ready
wait_for kube-proxy 30 "healthy" curl -sf --max-time 5 http://127.0.0.1:10256/healthz

# --- cluster DNS ----------------------------------------------------------------------
forward="# no upstream nameserver: cluster names only"
[ -z "$upstream_dns" ] || forward="forward . $upstream_dns { max_concurrent 1000 }"
sed -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" -e "s|@FORWARD@|$forward|" \
  -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|" -e "s|@DNS_SVC_IP@|$DNS_SVC_IP|" \
  "$CLUSTER_DIR/coredns.yaml" | write_file "$ETC/coredns.yaml"
wait_for kube-controller-manager 30 "service account kube-system/default exists" \
  kubectl_ -n kube-system get serviceaccount default
kubectl_ apply -f "$ETC/coredns.yaml" >/dev/null || component_failed kube-apiserver "refused the CoreDNS manifests"
coredns_available() {
  [ "$(kubectl_ -n kube-system get deployment coredns -o 'jsonpath={.status.availableReplicas}')" = 1 ]
}
show_coredns() {
  kubectl_ -n kube-system get pods -l k8s-app=kube-dns -o wide >&2 || true
  kubectl_ -n kube-system describe pods -l k8s-app=kube-dns 2>&1 | tail -n 25 >&2 || true
  kubectl_ -n kube-system logs -l k8s-app=kube-dns --tail=20 >&2 || true
}
deadline=$(($(date +%s) + 90))
until coredns_available 2>/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    show_coredns
    component_failed kubelet "did not make CoreDNS available within 90s"
  fi
  sleep 1
done
log "coredns: available"

# The end-to-end check a user would do: a pod resolves a Service name through
# the DNS Service (pod network -> kube-proxy -> CoreDNS -> apiserver).
dns_check_pod() {
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: dns-check
  namespace: kube-system
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
  containers:
    - name: check
      image: $BUSYBOX_IMAGE
      imagePullPolicy: IfNotPresent
      command: [sh, -c, 'for i in \$(seq 60); do nslookup kubernetes.default.svc.$CLUSTER_DOMAIN && exit 0; sleep 1; done; exit 1']
EOF
}
kubectl_ -n kube-system delete pod dns-check --ignore-not-found --wait=true >/dev/null
dns_check_pod | kubectl_ create -f - >/dev/null
deadline=$(($(date +%s) + 90))
while :; do
  phase=$(kubectl_ -n kube-system get pod dns-check -o 'jsonpath={.status.phase}' 2>/dev/null || true)
  [ "$phase" = Succeeded ] && break
  if [ "$phase" = Failed ] || [ "$(date +%s)" -ge "$deadline" ]; then
    kubectl_ -n kube-system logs dns-check >&2 || true
    kubectl_ -n kube-system describe pod dns-check 2>&1 | tail -n 20 >&2 || true
    show_coredns
    component_failed kube-proxy "cluster DNS check failed (pod phase: ${phase:-none})"
  fi
  sleep 1
done
kubectl_ -n kube-system delete pod dns-check --wait=false >/dev/null
log "DNS answers: kubernetes.default.svc.$CLUSTER_DOMAIN resolved from a pod"

log "cluster is up: export KUBECONFIG=$LC/kubeconfig; kubectl is $LC/bin/kubectl"
