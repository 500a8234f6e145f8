#!/usr/bin/env bash
# Builds Argo Workflows, the benchmark peer of benchmarks/bench_peers_kube.py, from its Go module
# (github.com/argoproj/argo-workflows/v4, through the wrapper module in module/) into a cache keyed
# by its version and go.sum, as tests/e2e/cluster/build.sh builds the plane. Argo is never a
# dependency of meta-orchestrator and is never shipped: advisories are reported against the
# version below, so it is run only here, against the benchmark's own throwaway plane.
#
#   usage: build.sh            prints the cache directory on its last line; progress on stderr
#
# The cache directory ($META_CACHE_DIR, default ${XDG_CACHE_HOME:-$HOME/.cache}/meta-orchestrator,
# under argo/argo-VERSION-KEY/) holds:
#   bin/workflow-controller, bin/argoexec
#   crds/*.yaml                the module's minimal CRDs (manifests/base/crds/minimal)
#   argoexec-image.tar         (as root, with podman) docker.io/library/meta-argoexec:VERSION:
#                              the root filesystem of tests/e2e/images/rootfs.sh (Debian bookworm
#                              with python3) and /bin/argoexec, entrypoint argoexec: made like our
#                              images, for the real node's containerd (load.sh / push.sh)
# Each part is made only if missing. Prints how long the whole took (cold: everything built;
# warm: nothing to do).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
ARGO_VERSION=v4.0.5
MODULE=github.com/argoproj/argo-workflows/v4
began=$SECONDS

cache_root="${META_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meta-orchestrator}"
key="$(cat "$here/module/go.sum" "$0" | sha256sum | cut -c1-12)"
out="$cache_root/argo/argo-$ARGO_VERSION-$key"
mkdir -p "$out/bin" "$out/crds"
exec 9>"$cache_root/argo/build.lock"
flock 9

export CGO_ENABLED=0 GOFLAGS=-trimpath
export GOMAXPROCS="${GOMAXPROCS:-2}"
# Argo's Makefile stamps the version so; the controller names its default executor image after it.
ldflags="-s -w -X $MODULE.version=$ARGO_VERSION -X $MODULE.gitTag=$ARGO_VERSION -X $MODULE.gitTreeState=clean"

source_dir="$(cd "$here/module" && go mod download -json "$MODULE@$ARGO_VERSION" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"

work=""
cleanup() { [[ -z "$work" ]] || rm -rf "$work"; }
trap cleanup EXIT
build() {  # binary-name package
  local name="$1" pkg="$2"
  if [[ -x "$out/bin/$name" ]]; then return; fi
  if [[ -z "$work" ]]; then
    # The repository's workflow/executor/osspecific/signal_linux.go is a symlink to
    # signal_darwin.go, and module zips leave symlinks out, so argoexec does not build from the
    # module as it is (no Setpgid on Linux). The build takes a copy of the module with the file
    # put back (the content the symlink points to), through a replace in a copy of module/go.mod.
    work="$(mktemp -d "$out/work.XXXXXX")"
    cp -r "$source_dir" "$work/src"
    chmod -R u+w "$work/src"
    cp "$work/src/workflow/executor/osspecific/signal_darwin.go" \
      "$work/src/workflow/executor/osspecific/signal_linux.go"
    cp "$here/module/go.mod" "$here/module/go.sum" "$work/"
    go mod edit -replace "$MODULE=$work/src" "$work/go.mod"
  fi
  echo "building $name ($pkg@$ARGO_VERSION)" >&2
  (cd "$here/module" &&
    go build -modfile "$work/go.mod" -ldflags "$ldflags" -o "$out/bin/$name.partial" "$pkg")
  mv "$out/bin/$name.partial" "$out/bin/$name"
}
build workflow-controller "$MODULE/cmd/workflow-controller"
build argoexec "$MODULE/cmd/argoexec"

if [[ ! -s "$out/crds/argoproj.io_workflows.yaml" ]]; then
  cp "$source_dir"/manifests/base/crds/minimal/argoproj.io_*.yaml "$out/crds/"
  chmod u+w "$out"/crds/*.yaml
fi

image="docker.io/library/meta-argoexec:$ARGO_VERSION"
if [[ ! -s "$out/argoexec-image.tar" && $EUID -eq 0 ]] && command -v podman >/dev/null; then
  echo "building $image" >&2
  rootfs="$("$repo/tests/e2e/images/rootfs.sh")"
  cleanup
  # podman wants its run root short (at most 50 characters): not under the cache.
  work="$(mktemp -d /var/tmp/meta-argoexec.XXXXXX)"
  export CONTAINERS_CONF="$repo/tests/e2e/images/containers.conf"
  podman() {
    command podman --root "$work/root" --runroot "$work/run" --tmpdir "$work/tmp" \
      --storage-driver overlay "$@"
  }
  cleanup() {
    if mountpoint -q "$work/root/overlay"; then umount "$work/root/overlay"; fi
    rm -rf --one-file-system "$work"
  }
  export TMPDIR="$work/tmp"
  mkdir -p "$TMPDIR" "$work/ctx"
  cp "$out/bin/argoexec" "$work/ctx/argoexec"
  podman import --quiet "$rootfs" localhost/meta-argoexec-base >/dev/null
  printf 'FROM localhost/meta-argoexec-base\nCOPY argoexec /bin/argoexec\nENTRYPOINT ["argoexec"]\n' \
    >"$work/Containerfile"
  podman build --quiet --pull=never --layers=false -t "$image" -f "$work/Containerfile" \
    "$work/ctx" >&2
  podman run --rm --network none "$image" version >&2
  podman save --quiet --format docker-archive -o "$work/image.tar" "$image"
  mv "$work/image.tar" "$out/argoexec-image.tar"
  unset TMPDIR
fi

echo "build.sh: Argo $ARGO_VERSION ready in $((SECONDS - began)) s" >&2
echo "$out"
