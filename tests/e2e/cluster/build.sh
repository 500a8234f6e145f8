#!/usr/bin/env bash
# Builds the e2e cluster's binaries from Go modules into a cache keyed by their versions and
# go.sum files, so a second run (and CI on the same machine) finds them at once.
# Prints the bin directory on its last line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
REGISTRY_VERSION=v3.1.2

cache_root="${META_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meta-orchestrator}"
key="$(cat "$here"/{k8s,etcd,kwok,registry}/go.sum "$0" | sha256sum | cut -c1-12)"
bin="$cache_root/cluster/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-registry-$REGISTRY_VERSION-$key/bin"
mkdir -p "$bin"

export CGO_ENABLED=0 GOFLAGS=-trimpath
# Building kubelet and the control plane at once needs ~6 GiB; two jobs keep to the two cores.
export GOMAXPROCS="${GOMAXPROCS:-2}"

stamp() {
  local pkg=k8s.io/component-base/version minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  printf -- '-s -w -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean' \
    "$pkg" "$K8S_VERSION" "$pkg" "$pkg" "$minor" "$pkg"
  printf -- ' -X k8s.io/client-go/pkg/version.gitVersion=%s' "$K8S_VERSION"
}

build() {  # module-dir binary-name package [ldflags]
  local dir="$1" name="$2" pkg="$3" ldflags="${4:--s -w}"
  if [[ -x "$bin/$name" ]]; then return; fi
  echo "building $name ($pkg)" >&2
  (cd "$here/$dir" && go build -ldflags "$ldflags" -o "$bin/$name.partial" "$pkg")
  mv "$bin/$name.partial" "$bin/$name"
}

build etcd etcd go.etcd.io/etcd/server/v3 \
  "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
build k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$(stamp)"
build k8s kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$(stamp)"
build k8s kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$(stamp)"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok \
  "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
if [[ "${META_CLUSTER_NODE:-}" == "real" ]]; then
  build k8s kubelet k8s.io/kubernetes/cmd/kubelet "$(stamp)"
  build k8s kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$(stamp)"
  build registry registry github.com/distribution/distribution/v3/cmd/registry \
    "-s -w -X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION"
fi
echo "$bin"
