#!/usr/bin/env bash
# Imports image archives (build.sh's, or any `podman save` / `docker save`) into a running
# containerd, in the namespace of its CRI plugin (k8s.io, the kubelet's), unpacked for the default
# snapshotter. The CRI plugin looks a short name up as docker.io/library/NAME, whereas podman
# saves its own short names as localhost/NAME: such an image is tagged under the docker.io/library
# name too, so that `image: NAME` in a pod finds it. (build.sh's images already carry that name.)
#
#   usage: load.sh SOCKET ARCHIVE...     SOCKET: containerd's grpc socket
#
# Prints each image's name as the kubelet will ask for it, one a line, on stdout; ctr's progress
# goes to stderr. Nothing is cached; it needs ctr (containerd's client) on PATH.
set -euo pipefail

[[ $# -ge 2 ]] || { echo "usage: $0 SOCKET ARCHIVE..." >&2; exit 2; }
sock="$1"
shift
ctr=(ctr --address "$sock" --namespace k8s.io)

for archive; do
  out="$("${ctr[@]}" images import "$archive")"
  echo "$out" >&2
  # ctr reports each image as "unpacking NAME (sha256:...)...done".
  names="$(sed -n 's/^unpacking \([^ ]*\) (sha256:.*/\1/p' <<<"$out")"
  [[ -n "$names" ]] || { echo "load.sh: ctr named no image in $archive" >&2; exit 1; }
  for name in $names; do
    if [[ "$name" == localhost/* ]]; then
      "${ctr[@]}" images tag --force "$name" "docker.io/library/${name#localhost/}" >/dev/null
      name="docker.io/library/${name#localhost/}"
    fi
    echo "$name"
  done
done
