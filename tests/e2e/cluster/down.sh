#!/usr/bin/env bash
# Stops the control plane that up.sh started in STATE_DIR and removes STATE_DIR. Idempotent: a
# missing directory, or one whose processes are already gone, is fine.
#
#   usage: down.sh STATE_DIR
#
# Processes are stopped by the pids file, newest first (TERM, then KILL after 5 s), then any etcd,
# kube-apiserver, kube-controller-manager or kwok whose command line names STATE_DIR is stopped too.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
[[ -d "$1" ]] || exit 0
state="$(cd "$1" && pwd -P)"
if [[ ! -e "$state/.meta-e2e-cluster" && -n "$(ls -A "$state")" ]]; then
  echo "down.sh: $state is not a plane's state directory (no .meta-e2e-cluster); not touching it" >&2
  exit 1
fi

ours() {  # pid: true if it is alive and its command line names the state directory
  [[ "$1" != "$$" && "$1" != "$PPID" ]] || return 1
  [[ -r "/proc/$1/cmdline" ]] || return 1
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$state"
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
    etcd | kube-apiserver | kube-controller-manager | kwok) ;;
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
for pid in "${pids[@]}"; do stop "$pid"; done
left=()
for pid in "${pids[@]}"; do if ours "$pid"; then left+=("$pid"); fi; done
if ((${#left[@]})); then
  echo "down.sh: could not stop: ${left[*]}" >&2
  exit 1
fi
rm -rf "$state"
