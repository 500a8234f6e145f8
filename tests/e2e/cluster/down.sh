#!/usr/bin/env bash
# Stops the control plane that up.sh started in STATE_DIR and removes STATE_DIR. Idempotent: a
# missing directory, or one whose processes are already gone, is fine.
#
#   usage: down.sh STATE_DIR        (META_CLUSTER_KEEP_STATE=1 keeps STATE_DIR, for its logs)
#
# Processes are stopped by the pids file, newest first (TERM, then KILL after 5 s), then any etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kubelet, kube-proxy, registry,
# containerd or containerd shim whose command line names STATE_DIR is stopped too. A real node's
# leftovers go next: the processes of its containers (found by their cgroups), the pods' network
# namespaces, every mount under STATE_DIR, the cgroups, and the node's network namespace (with its
# veth pair, its bridge, and every iptables rule the kubelet and kube-proxy made in it).
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
[[ -d "$1" ]] || exit 0
state="$(cd "$1" && pwd -P)"
if [[ ! -e "$state/.meta-e2e-cluster" && -n "$(ls -A "$state")" ]]; then
  echo "down.sh: $state is not a plane's state directory (no .meta-e2e-cluster); not touching it" >&2
  exit 1
fi

ours() {  # pid: true if it is alive and an argument of its command line is the state directory
  # or a path in it (alone or after "="): another plane's STATE_DIR sharing a prefix is not ours
  [[ "$1" != "$$" && "$1" != "$PPID" ]] || return 1
  [[ -r "/proc/$1/cmdline" ]] || return 1
  { tr '\0' '\n' <"/proc/$1/cmdline"; } 2>/dev/null | awk -v s="$state" '
    { sub(/^[^\/]*=/, "") }
    $0 == s || index($0, s "/") == 1 { found = 1 }
    END { exit !found }'
}
under_state() {  # the mount targets under STATE_DIR, deepest first
  findmnt -rn -o TARGET | awk -v s="$state/" 'index($0, s) == 1' | sort -r
}

pids=()
if [[ -f "$state/pids" ]]; then
  # Newest first: kwok and the controller manager before the apiserver, the apiserver before etcd.
  while read -r _ pid; do
    if ours "$pid"; then pids=("$pid" "${pids[@]}"); fi
  done <"$state/pids"
fi
# Anything of ours the pids file does not know (an up.sh killed between start and record).
for dir in /proc/[0-9]*; do
  pid="${dir#/proc/}"
  exe="$(readlink "$dir/exe" 2>/dev/null || true)"
  case "${exe##*/}" in
    etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kwok | kubelet | kube-proxy | \
      registry | containerd | containerd-shim*) ;;
    *) continue ;;
  esac
  if ours "$pid" && [[ " ${pids[*]} " != *" $pid "* ]]; then pids+=("$pid"); fi
done

stop() {  # pid: TERM, KILL after 5 s; one at a time, so the apiserver still has etcd as it stops
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do ours "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do ours "$pid" || return 0; sleep 0.1; done
}
# The kubelet first, so it starts nothing more; then the pods' containers, then containerd.
network="$state/network"
setting() { [[ -f "$network" ]] && awk -v k="$1" '$1 == k {print $2}' "$network"; }
cgroup_root="$(setting cgroup || true)"
kubelet_pid="$(awk '$1 == "kubelet" {print $2}' "$state/pids" 2>/dev/null || true)"
if [[ -n "$kubelet_pid" ]] && ours "$kubelet_pid"; then stop "$kubelet_pid"; fi
netns=()
socket="$state/containerd/containerd.sock"
if [[ -S "$socket" ]] && command -v ctr >/dev/null; then
  for id in $(ctr --address "$socket" -n k8s.io containers ls -q 2>/dev/null); do
    path="$(ctr --address "$socket" -n k8s.io containers info "$id" 2>/dev/null | python3 -c '
import json, sys
spec = json.load(sys.stdin).get("Spec") or {}
for ns in spec.get("linux", {}).get("namespaces", []):
    if ns.get("type") == "network" and ns.get("path", "").startswith("/var/run/netns/"):
        print(ns["path"])' || true)"
    [[ -z "$path" ]] || netns+=("$path")
  done
fi
if [[ -n "$cgroup_root" ]]; then
  for proc in /proc/[0-9]*; do
    if grep -qF ":$cgroup_root/" "$proc/cgroup" 2>/dev/null; then kill -KILL "${proc#/proc/}" 2>/dev/null || true; fi
  done
fi
for pid in "${pids[@]}"; do stop "$pid"; done
left=()
for pid in "${pids[@]}"; do if ours "$pid"; then left+=("$pid"); fi; done
if ((${#left[@]})); then
  echo "down.sh: could not stop: ${left[*]}" >&2
  exit 1
fi

# Mounts: the pods' volumes and rootfs under STATE_DIR (deepest first), and their netns files.
mapfile -t mounts < <(under_state)
for target in "${mounts[@]}"; do umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true; done
for path in "${netns[@]}"; do
  umount "$path" 2>/dev/null || umount -l "$path" 2>/dev/null || true
  rm -f "$path"
done
if [[ -n "$cgroup_root" ]]; then
  for controller in /sys/fs/cgroup/*/; do
    dir="$controller${cgroup_root#/}"
    [[ -d "$dir" ]] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
fi
# The node's network namespace: its link to the host, its bridge, and the kubelet's and
# kube-proxy's iptables rules go with it.
netns_name="$(setting netns || true)"
if [[ -n "$netns_name" && -e "/run/netns/$netns_name" ]]; then ip netns delete "$netns_name"; fi
# A node of an older up.sh had its bridge on the host, and turned IP forwarding on there.
bridge="$(setting bridge || true)"
if [[ -z "$netns_name" && -n "$bridge" ]] && ip link show "$bridge" >/dev/null 2>&1; then
  ip link delete "$bridge"
  forward="$(setting ip_forward || true)"
  if [[ -n "$forward" && -z "$(ip -o link show type bridge | awk '/ mbr-[0-9]+:/')" ]]; then
    sysctl -qw "net.ipv4.ip_forward=$forward"
  fi
fi
running() {  # name: true if a process of that name runs
  local pid
  for pid in $(pgrep -x "$1"); do
    [[ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" == Z ]] || return 0
  done
  return 1
}
if [[ -f "$network" ]] && ! running kubelet; then
  # The kubelet's device-plugin socket has a fixed path, whatever its --root-dir.
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  find /var/lib/kubelet -depth -type d -empty -delete 2>/dev/null || true
fi
find /var/log/containers -maxdepth 1 -type l -lname "$state/*" -delete 2>/dev/null || true
# libcni caches each sandbox's result under a fixed folder (a sandbox that containerd had no time
# to tear down leaves its own); containerd keeps shim sockets, fifos and runc state under another.
# Ours go, and the folders once empty, unless another containerd may be using them.
if [[ -f "$network" ]]; then
  subnet="$(setting subnet || true)"
  index="${subnet#10.}"
  index="${index%%.*}"
  for result in /var/lib/cni/results/meta-e2e-"$index"-*-eth0; do
    [[ -e "$result" ]] || continue
    sandbox="${result#/var/lib/cni/results/meta-e2e-"$index"-}"
    rm -f "$result" "/var/lib/cni/results/cni-loopback-${sandbox%-eth0}-lo"
  done
  if ! running containerd; then
    find /run/containerd /var/lib/cni -depth -type d -empty -delete 2>/dev/null || true
  fi
fi
# What the node changed on the host goes back as it was, once no node of ours is left.
if [[ -f "$network" ]] && ! compgen -G '/run/netns/meta-e2e-*' >/dev/null; then
  [[ "$(setting propagation || true)" != private ]] || mount --make-rprivate /
fi
mapfile -t mounts < <(under_state)
if ((${#mounts[@]})); then
  echo "down.sh: ${#mounts[@]} mounts under $state are still there: ${mounts[*]}" >&2
  exit 1
fi
[[ "${META_CLUSTER_KEEP_STATE:-}" == 1 ]] || rm -rf --one-file-system "$state"
