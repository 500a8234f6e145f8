#!/usr/bin/env bash
# Builds the client tools of the chart tests from Go modules: kubectl (k8s.io/kubernetes, the
# version of the plane that build.sh builds) and helm (helm.sh/helm/v4), into a cache keyed by
# their versions and go.sum files, so a second run finds them at once.
# Prints the bin directory on its last line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION=v1.36.3
HELM_VERSION=v4.3.2

cache_root="${META_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meta-orchestrator}"
key="$(cat "$here"/tools/{kubectl,helm}/go.sum "$0" | sha256sum | cut -c1-12)"
bin="$cache_root/tools/kubectl-$K8S_VERSION-helm-$HELM_VERSION-$key/bin"
mkdir -p "$bin"

export CGO_ENABLED=0 GOFLAGS=-trimpath
export GOMAXPROCS="${GOMAXPROCS:-2}"

build() {  # module-dir binary-name package ldflags
  local dir="$1" name="$2" pkg="$3" ldflags="$4"
  if [[ -x "$bin/$name" ]]; then return; fi
  echo "building $name ($pkg)" >&2
  (cd "$here/$dir" && go build -ldflags "$ldflags" -o "$bin/$name.partial" "$pkg")
  mv "$bin/$name.partial" "$bin/$name"
}

k8s_minor="${K8S_VERSION#v1.}"
k8s_minor="${k8s_minor%%.*}"
build tools/kubectl kubectl k8s.io/kubernetes/cmd/kubectl \
  "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
build tools/helm helm helm.sh/helm/v4/cmd/helm \
  "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
echo "$bin"
