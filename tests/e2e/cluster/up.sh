#!/usr/bin/env bash
# Starts a local Kubernetes control plane for the test suite, on 127.0.0.1 (or, with a real node,
# on the host's end of that node's link only):
#   etcd, kube-apiserver (v1.36.3, RBAC + Node authorization, TokenRequest), kube-controller-manager
#   (garbage collector, namespace, serviceaccount and token controllers, ...), kube-scheduler and
#   kwok, which plays the kubelet of one fake node, kwok-node-0; with META_CLUSTER_NODE=real, a real
#   node too, with kube-proxy and an image registry.
#
#   usage: up.sh STATE_DIR          (stop it with down.sh STATE_DIR)
#
# STATE_DIR gets: kubeconfig (admin, system:masters), pki/, etcd/, logs/*.log, pids, ports.
# Every port is picked free at start, so this runs beside any other cluster.
#
# Pods are scheduled. The fake node is labelled type=kwok and tainted
# kwok.x-k8s.io/node=fake:NoSchedule, so a pod meant for it says so:
#     spec:
#       nodeSelector: {type: kwok}
#       tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
# kwok then moves the pod to Running at once and, after 1 s (annotation
# meta-orchestrator.io/kwok-delay: a Go duration, "0s", "300ms"), to the end set by the annotation
# meta-orchestrator.io/kwok-result:
#   absent / succeeded  -> Succeeded (exit code 0)
#   failed              -> Failed, containers terminated with exit code 3, reason Error
#                          (meta-orchestrator.io/kwok-exit-code: N for another code)
#   hang                -> stays Running until deleted
# The stages are in kwok-stages.yaml beside this script.
#
# Environment:
#   META_CLUSTER_BIN         bin directory with etcd, kube-apiserver, kube-controller-manager,
#                            kube-scheduler, kwok (and kubelet, kube-proxy, registry for a real node)
#                            (default: the one build.sh prints, building first if needed)
#   META_CLUSTER_TIMEOUT     seconds to wait for the plane to be ready (default 120)
#   META_CLUSTER_OWNER_PID   if set, a watchdog runs down.sh once that process is gone
#   META_CLUSTER_CRDS        YAML files (':'-separated) whose CustomResourceDefinitions are created
#                            before the controller manager starts, so that its garbage collector
#                            knows them at once (it discovers new resource types only every 30 s)
#   META_CLUSTER_KUBECONFIG  start only kwok and the fake node, against this existing cluster
#                            (a kind cluster, say) instead of a plane of our own
#   META_CLUSTER_NODE        "real" adds a real node, meta-node-0 (see below); needs root
#   META_CLUSTER_IMAGES      with a real node: image archives (':'-separated) loaded into its
#                            containerd before it registers (tests/e2e/images/build.sh makes them)
#   META_CLUSTER_AUDIT_POLICY  an audit policy file: the API server logs what it selects, as JSON
#                            lines, to STATE_DIR/logs/audit.log (benchmarks count writes by client)
#
# The real node (META_CLUSTER_NODE=real): kubelet and kube-proxy (same k8s.io/kubernetes module as
# the plane) over CRI to Debian's containerd 1.6 (overlayfs, runc, cgroupfs), in a network
# namespace of their own (meta-e2e-N) joined to the host by a veth pair: the API server and the
# registry listen on the host's end, 10.N.1.1, which the kubeconfig names; pods are on a CNI
# bridge (mbr-N, 10.N.0.0/24, no NAT and no port maps) and reach the API server through the
# `kubernetes` service (kube-proxy, iptables mode, in the node's namespace). Client-certificate
# auth everywhere. The node is labelled type=real and has no taint: a pod meant for it selects
# type=real. The registry (CNCF distribution, plain HTTP, its address in STATE_DIR/registry/address)
# is where containerd pulls images named after it, and those of docker.io first (a mirror):
# push meta-orchestrator:0.1.0 there as library/meta-orchestrator:0.1.0 and a pod naming it is
# pulled from it. Everything the node makes is recorded in STATE_DIR (network, pids) for down.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -eq 1 ]] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
node=kwok-node-0
real_node=meta-node-0
node_kind="${META_CLUSTER_NODE:-kwok}"
[[ "$node_kind" == kwok || "$node_kind" == real ]] || {
  echo "up.sh: META_CLUSTER_NODE must be kwok or real, not $node_kind" >&2; exit 2; }
timeout="${META_CLUSTER_TIMEOUT:-120}"
external="${META_CLUSTER_KUBECONFIG:-}"
[[ -z "$external" || -r "$external" ]] || { echo "up.sh: cannot read $external" >&2; exit 2; }
external="${external:+$(cd "$(dirname "$external")" && pwd -P)/$(basename "$external")}"

tools=(openssl curl python3 setsid base64)
[[ "$node_kind" != real ]] || tools+=(containerd containerd-shim-runc-v2 runc ctr ip iptables flock mount nsenter)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "up.sh: $tool is needed and not on PATH" >&2; exit 1; }
done
if [[ "$node_kind" == real ]]; then
  [[ $EUID -eq 0 ]] || { echo "up.sh: a real node needs root (META_CLUSTER_NODE=kwok: none)" >&2; exit 1; }
  # The kubelet's cgroup root is made per v1 controller below; a unified (v2) host is not handled.
  [[ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]] || {
    echo "up.sh: this host mounts cgroup v2 only; the real node is set up for v1 or hybrid" >&2; exit 1; }
fi

mkdir -p "$1"
state="$(cd "$1" && pwd -P)"
# The deepest Unix socket (the kubelet's pod-resources one) must fit in 108 bytes.
if [[ "$node_kind" == real ]] && ((${#state} > 60)); then
  echo "up.sh: $state is too long a path for the node's Unix sockets (at most 60 characters)" >&2
  exit 1
fi
if [[ -s "$state/pids" ]]; then
  while read -r _ pid; do
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$state"; then
      echo "up.sh: a plane already runs in $state (pid $pid); stop it with down.sh $state" >&2
      exit 1
    fi
  done <"$state/pids"
fi
if [[ -n "$(ls -A "$state")" && ! -e "$state/.meta-e2e-cluster" ]]; then
  echo "up.sh: $state is not empty and not a plane's state directory; refusing to use it" >&2
  exit 1
fi
if [[ -e "$state/network" ]]; then
  # A node that did not stop cleanly: its bridge, mounts and cgroups go before its record does.
  META_CLUSTER_KEEP_STATE=1 "$here/down.sh" "$state" || exit 1
fi
find "$state" -mindepth 1 -delete
touch "$state/.meta-e2e-cluster"
mkdir -p "$state"/{pki,logs,etcd,apiserver,kcm,scheduler,kwok}
[[ "$node_kind" != real ]] || mkdir -p "$state"/{containerd,cni/net.d,kubelet,proxy,registry}
: >"$state/pids"

bin="${META_CLUSTER_BIN:-}"
if [[ -z "$bin" ]]; then
  bin="$("$here/build.sh" | tail -n 1)"
fi
need=(kwok)
[[ -n "$external" ]] || need+=(etcd kube-apiserver kube-controller-manager kube-scheduler)
[[ "$node_kind" != real ]] || need+=(kubelet kube-proxy registry)
[[ "$node_kind" != real || -z "$external" ]] || {
  echo "up.sh: a real node joins only a plane of our own (not META_CLUSTER_KUBECONFIG)" >&2; exit 2; }
for b in "${need[@]}"; do
  [[ -x "$bin/$b" ]] || { echo "up.sh: $bin/$b is missing (run build.sh)" >&2; exit 1; }
done

started=0
fail() {  # message [log-name]: print the message and the tail of that log, then exit (trap stops all)
  echo "up.sh: $1" >&2
  if [[ -n "${2:-}" && -f "$state/logs/$2.log" ]]; then
    echo "---- last lines of $state/logs/$2.log" >&2
    tail -n 40 "$state/logs/$2.log" >&2
    echo "----" >&2
  fi
  exit 1
}
cleanup() {
  if [[ $started -ne 1 ]]; then
    echo "up.sh: stopping what was started; logs stay in $state/logs" >&2
    META_CLUSTER_KEEP_STATE=1 "$here/down.sh" "$state" || true
  fi
}
trap cleanup EXIT

start() {  # name command...: run detached, log to logs/NAME.log, record the pid
  local name="$1"
  shift
  setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  echo "$name $!" >>"$state/pids"
}

alive() {  # name: fail with its log if the process recorded under that name is gone
  local pid
  pid="$(awk -v n="$1" '$1 == n {print $2}' "$state/pids")"
  kill -0 "$pid" 2>/dev/null || fail "$1 exited" "$1"
}

deadline=$((SECONDS + timeout))
wait_for() {  # description log-name command...: poll the command until it succeeds
  local what="$1" log="$2"
  shift 2
  until "$@" >/dev/null 2>&1; do
    [[ -z "$log" ]] || alive "$log"
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what" "$log"
    sleep 0.2
  done
}

# ---- the real node's network: a network namespace of its own ---------------------------------------
# The node (containerd, the kubelet, kube-proxy, the CNI bridge and the pods' gateway) lives in the
# network namespace meta-e2e-N, joined to the host by a veth pair (10.N.1.1 on the host, 10.N.1.2
# in the node); the pods are on the bridge mbr-N (10.N.0.0/24) in it. So kube-proxy's and the
# kubelet's iptables rules, conntrack entries and IP forwarding are the node's alone: nodes of
# other planes on this machine never see them, and down.sh drops them all with the namespace.
# The API server and the registry listen on the host's end, 10.N.1.1.
listen=127.0.0.1
if [[ "$node_kind" == real ]]; then
  exec {net_lock}>/run/lock/meta-e2e-network.lock
  flock "$net_lock"
  for n in $(seq 200 254); do
    if ! ip -o link show "mbr-$n" >/dev/null 2>&1 && ! ip -o link show "mvh-$n" >/dev/null 2>&1 &&
      [[ ! -e "/run/netns/meta-e2e-$n" ]] && [[ -z "$(ip -4 -o addr show to "10.$n.0.0/16")" ]] &&
      [[ -z "$(ip -4 route show root "10.$n.0.0/16")" ]]; then
      subnet_index=$n
      break
    fi
  done
  [[ -n "${subnet_index:-}" ]] || fail "no free 10.N.0.0/16 (N in 200-254) for the node's network"
  netns="meta-e2e-$subnet_index"
  bridge="mbr-$subnet_index"
  listen="10.$subnet_index.1.1"
  node_ip="10.$subnet_index.0.1"
  # What the node changes on the host, so that down.sh puts it back once no node of ours is left:
  # pod volumes mounted by the kubelet must reach the containers' mount namespaces.
  printf 'netns %s\nbridge %s\nsubnet 10.%s.0.0/24\naddress %s\nnode %s\npropagation %s\n' \
    "$netns" "$bridge" "$subnet_index" "$listen" "$node_ip" "$(findmnt -no PROPAGATION /)" \
    >"$state/network"
  [[ "$(findmnt -no PROPAGATION /)" == shared ]] || mount --make-rshared /
  ip netns add "$netns"
  in_node() { ip netns exec "$netns" "$@"; }
  in_node ip link set lo up
  ip link add "mvh-$subnet_index" type veth peer name "mvn-$subnet_index" netns "$netns"
  ip addr add "$listen/30" dev "mvh-$subnet_index"
  ip link set "mvh-$subnet_index" up
  in_node ip addr add "10.$subnet_index.1.2/30" dev "mvn-$subnet_index"
  in_node ip link set "mvn-$subnet_index" up
  in_node ip link add "$bridge" type bridge
  in_node ip addr add "$node_ip/24" dev "$bridge"
  in_node ip link set "$bridge" up
  in_node ip route add default via "$listen"
  in_node sysctl -qw net.ipv4.ip_forward=1
  ip route add "10.$subnet_index.0.0/24" via "10.$subnet_index.1.2" dev "mvh-$subnet_index"
  exec {net_lock}>&-
fi

if [[ -z "$external" ]]; then
  # ---- ports -------------------------------------------------------------------------------------
  # The API server and the registry on $listen, the others on 127.0.0.1. The node's own ports
  # (kubelet, kube-proxy) are in its network namespace, where nothing else listens: fixed ones.
  read -r etcd_port peer_port api_port kcm_port scheduler_port registry_port < <(python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(6)]
for i, s in enumerate(socks):
    s.bind((sys.argv[1] if i in (2, 5) else "127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))' "$listen")
  kubelet_port=10250 kubelet_health_port=10248
  printf 'etcd %s\netcd-peer %s\napiserver %s\nkube-controller-manager %s\nkube-scheduler %s\n' \
    "$etcd_port" "$peer_port" "$api_port" "$kcm_port" "$scheduler_port" >"$state/ports"
  [[ "$node_kind" != real ]] || printf 'registry %s\n' "$registry_port" >>"$state/ports"

  # ---- certificates ------------------------------------------------------------------------------
  pki="$state/pki"
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2>/dev/null; }
  ca() {  # name common-name: a self-signed CA
    key "$1"
    printf '%s\n' 'basicConstraints=critical,CA:TRUE' 'subjectKeyIdentifier=hash' \
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature' >"$pki/$1.ext"
    openssl req -new -key "$pki/$1.key" -subj "/CN=$2" -out "$pki/$1.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$1.csr" -signkey "$pki/$1.key" -days 3650 -sha256 \
      -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
  }
  cert() {  # name subject extensions [ca]: a certificate signed by that CA (default: ca)
    local name="$1" subj="$2" ext="$3" ca="${4:-ca}"
    key "$name"
    printf '%b\n' "$ext" >"$pki/$name.ext"
    openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
      -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  }
  ca ca meta-orchestrator-e2e-ca
  # The front proxy's CA: the apiserver publishes it (extension-apiserver-authentication), and the
  # controller manager's delegated authentication wants it there.
  ca front-proxy-ca meta-orchestrator-e2e-front-proxy-ca
  leaf='basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment'
  cert apiserver "/CN=kube-apiserver" "$leaf\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:$listen,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=meta-e2e-admin" "$leaf\nextendedKeyUsage=clientAuth"
  cert kube-controller-manager "/CN=system:kube-controller-manager" "$leaf\nextendedKeyUsage=clientAuth"
  cert kube-scheduler "/CN=system:kube-scheduler" "$leaf\nextendedKeyUsage=clientAuth"
  cert front-proxy-client "/CN=front-proxy-client" "$leaf\nextendedKeyUsage=clientAuth" front-proxy-ca
  if [[ "$node_kind" == real ]]; then
    # The Node authorizer knows a kubelet by this name and group; the API server reads logs from
    # the kubelet with a cert of its own, and checks the kubelet's serving cert against the CA.
    cert kubelet "/O=system:nodes/CN=system:node:$real_node" "$leaf\nextendedKeyUsage=clientAuth"
    cert kubelet-serving "/CN=$real_node" "$leaf\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:$node_ip,DNS:$real_node"
    # kube-proxy's user, bound to the ClusterRole system:node-proxier by the default policy.
    cert kube-proxy "/CN=system:kube-proxy" "$leaf\nextendedKeyUsage=clientAuth"
    cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$leaf\nextendedKeyUsage=clientAuth"
  fi
  key sa
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  kubeconfig() {  # file client-cert-name
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: meta-e2e
  cluster:
    server: https://$listen:$api_port
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$2.crt")
    client-key-data: $(base64 -w0 <"$pki/$2.key")
contexts:
- name: meta-e2e
  context: {cluster: meta-e2e, user: $2}
current-context: meta-e2e
EOF
    chmod 600 "$1"
  }
  kubeconfig "$state/kubeconfig" admin
  kubeconfig "$state/kcm/kubeconfig" kube-controller-manager
  kubeconfig "$state/scheduler/kubeconfig" kube-scheduler
  if [[ "$node_kind" == real ]]; then
    kubeconfig "$state/kubelet/kubeconfig" kubelet
    kubeconfig "$state/proxy/kubeconfig" kube-proxy
  fi

  # ---- etcd and kube-apiserver -------------------------------------------------------------------
  start etcd "$bin/etcd" --name meta-e2e --data-dir "$state/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "meta-e2e=http://127.0.0.1:$peer_port" --initial-cluster-state new \
    --unsafe-no-fsync --log-level warn
  # With a real node, the endpoint reconciler publishes $listen as the endpoint of the `kubernetes`
  # service, and kube-proxy leads pods from 10.96.0.1:443 there. Without one it is off: it would
  # publish 127.0.0.1, which validation refuses (a loopback address), and no kwok pod runs anyway.
  reconciler=none
  kubelet_client=()
  audit=()
  [[ -z "${META_CLUSTER_AUDIT_POLICY:-}" ]] || audit=(--audit-policy-file "$META_CLUSTER_AUDIT_POLICY"
    --audit-log-path "$state/logs/audit.log" --audit-log-format json --audit-log-maxsize 0)
  [[ "$node_kind" != real ]] || reconciler=lease kubelet_client=(
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt"
    --kubelet-client-key "$pki/apiserver-kubelet-client.key"
    --kubelet-certificate-authority "$pki/ca.crt"
    --kubelet-preferred-address-types InternalIP)
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$listen" --advertise-address "$listen" --secure-port "$api_port" \
    "${kubelet_client[@]}" "${audit[@]}" \
    --cert-dir "$state/apiserver" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type "$reconciler" \
    --allow-privileged=true --profiling=false --v=1
  api() { curl -sf --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"; }
  apiserver="https://$listen:$api_port"
  wait_for "etcd (http://127.0.0.1:$etcd_port/health)" etcd curl -sf --max-time 2 "http://127.0.0.1:$etcd_port/health"
  ready() { [[ "$(api "$apiserver/readyz")" == ok ]]; }
  wait_for "kube-apiserver $apiserver/readyz" kube-apiserver ready

  # ---- CRDs (before the controller manager, whose garbage collector discovers resource types at
  # its start and then only every 30 s) --------------------------------------------------------
  if [[ -n "${META_CLUSTER_CRDS:-}" ]]; then
    mkdir -p "$state/crds"
    crds=()
    IFS=: read -r -a crd_files <<<"$META_CLUSTER_CRDS"
    for i in "${!crd_files[@]}"; do  # one file per YAML document
      awk -v out="$state/crds/$i" 'BEGIN { n = 0 } /^---/ { n++; next } { print > (out "-" n ".yaml") }' \
        "${crd_files[$i]}"
    done
    for doc in "$state"/crds/*.yaml; do
      grep -q '^kind: *CustomResourceDefinition' "$doc" || continue
      code="$(curl -s --max-time 10 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        -H 'Content-Type: application/yaml' -X POST --data-binary "@$doc" -o "$doc.reply" \
        -w '%{http_code}' "$apiserver/apis/apiextensions.k8s.io/v1/customresourcedefinitions")"
      if [[ "$code" != 201 ]]; then  # not fatal: the tests that create it will say why
        echo "up.sh: warning: cannot create the CRD of $doc ($code): $(python3 -c '
import json, sys
print(json.load(sys.stdin)["message"])' <"$doc.reply" 2>/dev/null || head -c 500 "$doc.reply")" >&2
        continue
      fi
      crds+=("$(python3 -c 'import json, sys; print(json.load(sys.stdin)["metadata"]["name"])' \
        <"$doc.reply")")
    done
    established() {
      local crd
      for crd in "${crds[@]}"; do
        api "$apiserver/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$crd" | python3 -c '
import json, sys
crd = json.load(sys.stdin)
sys.exit(0 if any(c["type"] == "Established" and c["status"] == "True"
                  for c in crd.get("status", {}).get("conditions", [])) else 1)' || return 1
      done
    }
    ((${#crds[@]} == 0)) || wait_for "the CRDs ${crds[*]} to be Established" kube-apiserver established
  fi

  # ---- kube-controller-manager -------------------------------------------------------------------
  # node-lifecycle-controller lifts the not-ready taint the apiserver puts on a new node; the long
  # grace periods keep it from tainting the fake node unreachable when kwok's heartbeat is late.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$state/kcm/kubeconfig" \
    --authentication-kubeconfig "$state/kcm/kubeconfig" --authorization-kubeconfig "$state/kcm/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$state/kcm" \
    --leader-elect=false \
    --controllers '*' --node-monitor-grace-period 10m --node-startup-grace-period 10m \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --profiling=false --v=1

  # ---- kube-scheduler ----------------------------------------------------------------------------
  # Pods are scheduled, not bound by their makers: a pod for the fake node selects type=kwok and
  # tolerates its taint. The client's budget is raised so that the scale tests' bursts of pods
  # are bound at once.
  cat >"$state/scheduler/config.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: $state/scheduler/kubeconfig, qps: 500, burst: 1000}
leaderElection: {leaderElect: false}
EOF
  start kube-scheduler "$bin/kube-scheduler" --config "$state/scheduler/config.yaml" \
    --authentication-kubeconfig "$state/scheduler/kubeconfig" \
    --authorization-kubeconfig "$state/scheduler/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$scheduler_port" --cert-dir "$state/scheduler" \
    --profiling=false --v=1
else
  cp "$external" "$state/kubeconfig"
  chmod 600 "$state/kubeconfig"
  py_api() {  # METHOD PATH [JSON-BODY]: a request with the kubeconfig's credentials (any auth kind)
    "${META_CLUSTER_PYTHON:-python3}" - "$state/kubeconfig" "$@" <<'EOF'
import sys
from kubernetes import config
api = config.new_client_from_config(config_file=sys.argv[1])
conf = api.configuration
headers = {s["key"]: s["value"] for s in conf.auth_settings().values() if s.get("value")}
headers |= {"Content-Type": "application/json", "Accept": "application/json"}
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
r = api.rest_client.pool_manager.request(sys.argv[2], conf.host + sys.argv[3], body=body,
                                         headers=headers, timeout=10, retries=False)
sys.stdout.write(r.data.decode())
sys.exit(0 if r.status < 300 else 1)
EOF
  }
fi

# ---- kwok and its node -----------------------------------------------------------------------------
# KWOK_WORKDIR keeps kwok away from a user's ~/.kwok/kwok.yaml.
start kwok env KWOK_WORKDIR="$state/kwok" "$bin/kwok" \
  --kubeconfig "$state/kubeconfig" \
  --config "$here/kwok-stages.yaml" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --cidr 10.244.0.0/16 --node-ip 10.240.0.1
node_json="$(cat <<EOF
{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "$node",
   "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
   "labels": {"type": "kwok", "kubernetes.io/hostname": "$node", "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "kubernetes.io/role": "agent",
              "node-role.kubernetes.io/agent": ""}},
 "spec": {"taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]}}
EOF
)"
node_ready() {  # node JSON on stdin: Ready, and without the not-ready taint of a new node
  python3 -c '
import json, sys
node = json.load(sys.stdin)
ready = any(c["type"] == "Ready" and c["status"] == "True"
            for c in node.get("status", {}).get("conditions", []))
tainted = any(t["key"] == "node.kubernetes.io/not-ready" for t in node["spec"].get("taints", []))
sys.exit(0 if ready and not tainted else 1)'
}
if [[ -z "$external" ]]; then
  create_node() {
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$pki/ca.crt" \
      --cert "$pki/admin.crt" --key "$pki/admin.key" -H 'Content-Type: application/json' \
      -X POST --data "$node_json" "$apiserver/api/v1/nodes")"
    [[ "$code" == 201 || "$code" == 409 ]]
  }
  wait_for "the node $node to be created" kube-apiserver create_node
  default_sa() { api "$apiserver/api/v1/namespaces/default/serviceaccounts/default"; }
  wait_for "the default ServiceAccount (serviceaccount controller)" kube-controller-manager default_sa
  is_node_ready() { api "$apiserver/api/v1/nodes/$node" | node_ready; }
  wait_for "the node $node to be Ready (kwok)" kwok is_node_ready
  kcm_healthy() { [[ "$(curl -sk --max-time 2 "https://127.0.0.1:$kcm_port/healthz")" == ok ]]; }
  wait_for "kube-controller-manager /healthz" kube-controller-manager kcm_healthy
  scheduler_healthy() { [[ "$(curl -sk --max-time 2 "https://127.0.0.1:$scheduler_port/healthz")" == ok ]]; }
  wait_for "kube-scheduler /healthz" kube-scheduler scheduler_healthy
else
  create_node() { py_api POST /api/v1/nodes "$node_json" || py_api GET "/api/v1/nodes/$node"; }
  wait_for "the node $node to be created" "" create_node
  is_node_ready() { py_api GET "/api/v1/nodes/$node" | node_ready; }
  wait_for "the node $node to be Ready (kwok)" kwok is_node_ready
fi

# ---- the real node: the registry, containerd (CRI), kubelet and kube-proxy --------------------------
if [[ "$node_kind" == real ]]; then
  # The registry (CNCF distribution), on the host's end of the node's link; its blobs in STATE_DIR.
  registry="$listen:$registry_port"
  cat >"$state/registry/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: false}}
storage:
  filesystem: {rootdirectory: $state/registry/data}
  delete: {enabled: true}
http: {addr: "$registry"}
EOF
  start registry "$bin/registry" serve "$state/registry/config.yml"
  registry_ready() { curl -sf --max-time 2 "http://$registry/v2/"; }
  wait_for "the registry (http://$registry/v2/)" registry registry_ready
  echo "$registry" >"$state/registry/address"

  # containerd pulls from it: images named after it, and docker.io's (short names, such as
  # meta-orchestrator:0.1.0), for which it is a mirror tried before Docker Hub.
  ctrd="$state/containerd"
  for host in "$registry" docker.io; do
    mkdir -p "$ctrd/certs.d/$host"
    server="https://registry-1.docker.io"
    [[ "$host" == docker.io ]] || server="http://$registry"
    printf 'server = "%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
      "$server" "$registry" >"$ctrd/certs.d/$host/hosts.toml"
  done
  socket="$ctrd/containerd.sock"
  cat >"$ctrd/config.toml" <<EOF
version = 2
root = "$ctrd/root"
state = "$ctrd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$socket"
[ttrpc]
  address = "$socket.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$ctrd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/meta-pause:0.1.0"
  # These VMs withhold CAP_SYS_RESOURCE: no process may lower its oom_score_adj, so the pause
  # process and the kubelet's negative scores are kept to this process's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$ctrd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$ctrd/certs.d"
EOF
  # No ipMasq and no portmap: pods talk to each other over the bridge and to the host through the
  # node's link; the only iptables rules are kube-proxy's and the kubelet's, in the node's namespace.
  cat >"$state/cni/net.d/10-meta-e2e.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "meta-e2e-$subnet_index",
 "plugins": [{"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
              "hairpinMode": true,
              "ipam": {"type": "host-local", "dataDir": "$state/cni/ipam",
                       "ranges": [[{"subnet": "10.$subnet_index.0.0/24", "gateway": "$node_ip"}]],
                       "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
  # nsenter --net, not `ip netns exec`: the node's processes keep the host's mount namespace, so
  # the volumes the kubelet mounts reach the containers.
  on_node=(nsenter --net="/run/netns/$netns")
  start containerd "${on_node[@]}" containerd --config "$ctrd/config.toml"
  ctr_ready() { ctr --address "$socket" version; }
  wait_for "containerd ($socket)" containerd ctr_ready
  if [[ -n "${META_CLUSTER_IMAGES:-}" ]]; then
    IFS=: read -r -a archives <<<"$META_CLUSTER_IMAGES"
    "$here/../images/load.sh" "$socket" "${archives[@]}" >"$state/logs/images.log" 2>&1 ||
      fail "cannot load the images ${archives[*]} into containerd" images
  fi

  # Every pod's cgroups go under a root of this node's own, which down.sh removes.
  cgroup_root="/meta-e2e-$subnet_index"
  for controller in /sys/fs/cgroup/*/; do
    [[ "$controller" == */unified/ ]] || mkdir -p "$controller${cgroup_root#/}"
  done
  echo "cgroup $cgroup_root" >>"$state/network"
  cat >"$state/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_health_port
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$socket
cgroupDriver: cgroupfs
cgroupRoot: $cgroup_root
failCgroupV1: false
failSwapOn: false
podLogsDir: $state/kubelet/logs
staticPodPath: ""
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 1Gi, nodefs.available: 2Gi, imagefs.available: 2Gi}
syncFrequency: 10s
nodeStatusUpdateFrequency: 10s
maxPods: 60
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
EOF
  start kubelet "${on_node[@]}" "$bin/kubelet" --config "$state/kubelet/config.yaml" \
    --kubeconfig "$state/kubelet/kubeconfig" --root-dir "$state/kubelet/root" \
    --hostname-override "$real_node" --node-ip "$node_ip" \
    --node-labels "type=real" --v=1

  # kube-proxy (iptables mode) leads service addresses to their endpoints, for the pods of this
  # node: the `kubernetes` service (10.96.0.1:443) to the API server. Its conntrack settings stay
  # the kernel's (0: leave as is), and node ports answer on the node's address only.
  cat >"$state/proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $state/proxy/kubeconfig}
mode: iptables
hostnameOverride: $real_node
clusterCIDR: 10.$subnet_index.0.0/24
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$node_ip/32]
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy "${on_node[@]}" "$bin/kube-proxy" --config "$state/proxy/config.yaml" --v=1
  is_real_ready() { api "$apiserver/api/v1/nodes/$real_node" | node_ready; }
  wait_for "the node $real_node to be Ready (kubelet)" kubelet is_real_ready
  proxied() { "${on_node[@]}" iptables -t nat -S KUBE-SERVICES | grep -q -- '-d 10.96.0.1/32'; }
  wait_for "kube-proxy's rules for the kubernetes service" kube-proxy proxied
fi

# ---- watchdog --------------------------------------------------------------------------------------
if [[ -n "${META_CLUSTER_OWNER_PID:-}" ]]; then
  start watchdog bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; exec "$2" "$3"' \
    watchdog "$META_CLUSTER_OWNER_PID" "$here/down.sh" "$state"
fi

started=1
echo "plane up in ${SECONDS}s: kubeconfig $state/kubeconfig" >&2
echo "$state/kubeconfig"
