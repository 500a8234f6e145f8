#!/usr/bin/env bash
# Pushes every image of archives (build.sh's, or any `podman save` / `docker save`) to a registry
# over plain HTTP, where a containerd that mirrors docker.io there asks for them:
# docker.io/library/NAME:TAG goes to REGISTRY/library/NAME:TAG (a localhost/NAME:TAG of podman's
# too), so `image: NAME:TAG` in a pod is pulled from it. The test cluster's real node pulls so
# from the registry of up.sh (STATE_DIR/registry/address).
#
#   usage: push.sh REGISTRY ARCHIVE...     REGISTRY: HOST:PORT (as root: podman)
#
# The images go through a podman storage of their own in a temporary folder, removed afterwards;
# prints each pushed reference, one a line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -ge 2 ]] || { echo "usage: $0 REGISTRY ARCHIVE..." >&2; exit 2; }
registry="$1"
shift
[[ $EUID -eq 0 ]] || { echo "push.sh: run as root (podman's overlay storage)" >&2; exit 1; }

export CONTAINERS_CONF="$here/containers.conf"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/meta-push.XXXXXX")"
podman() {
  command podman --root "$work/root" --runroot "$work/run" --tmpdir "$work/tmp" \
    --storage-driver overlay "$@"
}
cleanup() {
  # The overlay driver bind-mounts its directory on itself while podman runs.
  if mountpoint -q "$work/root/overlay"; then umount "$work/root/overlay"; fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
export TMPDIR="$work/tmp"
mkdir "$TMPDIR"

for archive; do
  podman load --quiet --input "$archive" >/dev/null
done
podman images --format '{{.Repository}}:{{.Tag}}' | while read -r image; do
  [[ "$image" != *"<none>"* ]] || continue
  path="${image#docker.io/}"
  path="library/${path#library/}"
  [[ "$image" != localhost/* ]] || path="library/${image#localhost/}"
  podman push --quiet --tls-verify=false "$image" "docker://$registry/$path" >&2
  echo "$registry/$path"
done
