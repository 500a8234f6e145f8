#!/usr/bin/env bash
# Builds the e2e container images without a Docker engine or a registry (podman, with its own
# storage in the cache) and saves them in one docker-archive that containerd imports
# (load.sh SOCKET ARCHIVE) and `kind load image-archive` takes. VERSION is the project's version
# in pyproject.toml; the images are named as the CRI plugin spells short names, so
# `image: meta-orchestrator:VERSION` in a pod finds docker.io/library/meta-orchestrator:VERSION.
#   docker.io/library/meta-orchestrator:VERSION  Debian bookworm (rootfs.sh) and a venv at /opt/meta
#                                                with the package and its runtime dependencies
#   docker.io/library/meta-sample-NAME:VERSION   that image and samples/NAME/ at /sample (WORKDIR),
#                                                one for each folder of samples/ with a *.flow.yaml
#   docker.io/library/meta-pause:VERSION         Debian's static catatonit as /pause, in pause mode:
#                                                the pod sandbox image
#
#   usage: build.sh       (as root) prints the archive's path on its last line; progress on stderr
#
# Cache: $META_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/meta-orchestrator), under images/:
#   meta-images-VERSION-KEY.tar  the archive; KEY hashes the files of meta/, generators/, samples/
#                                and pyproject.toml (tracked or new), this script, containers.conf,
#                                catatonit and the root filesystem's key. If it exists, nothing runs.
#                                The three newest archives are kept.
#   rootfs-bookworm-KEY.tar      the root filesystem (rootfs.sh)
#   podman/                      podman's storage and state
#   build.lock                   one build at a time per cache
# The dependencies' versions are what PyPI serves when KEY changes; they are not in KEY.
#
# Environment: META_CACHE_DIR, META_DEBIAN_MIRROR (rootfs.sh). debootstrap, podman, runc and
# catatonit are installed from apt when missing; the wheels are built with the project's .venv
# (make venv), which must be CPython 3.11 like the image's python3.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="$repo/.venv/bin/python"
cache="${META_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meta-orchestrator}/images"
PATH_IN_IMAGE=/opt/meta/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

[[ $EUID -eq 0 ]] || { echo "build.sh: run as root (debootstrap, chroot, podman)" >&2; exit 1; }
[[ -x "$python" ]] || { echo "build.sh: $python is missing; run make venv" >&2; exit 1; }

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
[[ -x /usr/bin/catatonit ]] || missing+=(catatonit)
if ((${#missing[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9

# The files that go into the images: tracked or new (not ignored), and not deleted.
sources() {
  git -C "$repo" ls-files -z --cached --others --exclude-standard -- "$@" |
    while IFS= read -r -d '' f; do
      if [[ -f "$repo/$f" ]]; then printf '%s\0' "$f"; fi
    done
}

version="$("$python" -c 'import sys, tomllib; print(tomllib.load(sys.stdin.buffer)["project"]["version"])' \
  <"$repo/pyproject.toml")"
rootfs="$("$here/rootfs.sh")"
key="$({
  basename "$rootfs"
  cat "$here/build.sh" "$here/containers.conf" /usr/bin/catatonit
  (cd "$repo" && sources meta generators samples pyproject.toml | xargs -0 -r sha256sum)
} | sha256sum | cut -c1-12)"
archive="$cache/meta-images-$version-$key.tar"
if [[ -s "$archive" ]]; then
  echo "$archive"
  exit 0
fi

# podman reads containers.conf alone and keeps its storage and state under the cache. Outside it,
# podman 4.3 has no setting for containers/image's blob-info cache (/var/lib/containers/cache, a
# memo of blob digests that nothing here relies on), and runc keeps a running container's state in
# /run/runc (podman's cleanup of `run --rm` does not pass runc's --root on).
export CONTAINERS_CONF="$here/containers.conf"
store="$cache/podman"
podman() {
  command podman --root "$store/root" --runroot "$store/run" --tmpdir "$store/tmp" \
    --network-config-dir "$store/networks" --storage-driver overlay "$@"
}

work="$(mktemp -d "$cache/build.XXXXXX")"
cleanup() {
  # The root filesystem unpacked in $work holds device nodes and is a chroot; --one-file-system
  # keeps rm from following anything mounted into it.
  rm -rf --one-file-system "$work"
  # The overlay driver bind-mounts its directory on itself while podman runs; a podman stopped
  # midway leaves that mount, which would keep the cache from being deleted.
  if mountpoint -q "$store/root/overlay"; then umount "$store/root/overlay"; fi
}
trap cleanup EXIT
# podman's large temporary files (image copies) go to $TMPDIR, /var/tmp by default.
export TMPDIR="$work/tmp"
mkdir "$TMPDIR"

framework="docker.io/library/meta-orchestrator:$version"
pause="docker.io/library/meta-pause:$version"
images=("$framework" "$pause")

echo "build.sh: wheels of meta-orchestrator $version and its dependencies" >&2
# Built from a copy of exactly the hashed files: a build in the work tree would write build/ and
# *.egg-info there, and setuptools puts stale build/lib files in the wheel. PIP_FIND_LINKS is
# dropped so that the wheels come from PyPI, not from whatever this machine keeps locally.
mkdir "$work/src" "$work/wheels"
(cd "$repo" && sources meta generators pyproject.toml | tar --null -T - -cf -) |
  tar -C "$work/src" -xf -
env -u PIP_FIND_LINKS "$python" -m pip wheel --quiet --wheel-dir "$work/wheels" "$work/src" >&2

echo "build.sh: the venv /opt/meta in $(basename "$rootfs")" >&2
mkdir "$work/root"
tar -C "$work/root" -xf "$rootfs"
# A clean environment: the host's PIP_* and PYTHON* settings do not apply inside.
in_root() { env -i PATH="$PATH_IN_IMAGE" HOME=/root LANG=C.UTF-8 chroot "$work/root" "$@"; }
# The host's python made the wheels; an interpreter of another version would find none that fit.
pyver='import sys; print("%d.%d" % sys.version_info[:2])'
host_py="$("$python" -c "$pyver")"
image_py="$(in_root /usr/bin/python3 -c "$pyver")"
[[ "$host_py" == "$image_py" ]] || {
  echo "build.sh: $python is Python $host_py, the image's python3 is $image_py" >&2
  exit 1
}
cp -r "$work/wheels" "$work/root/tmp/wheels"
in_root /usr/bin/python3 -m venv /opt/meta
in_root /opt/meta/bin/pip install --quiet --no-index --no-cache-dir --find-links /tmp/wheels \
  meta-orchestrator >&2

echo "build.sh: $framework" >&2
base="localhost/meta-$(basename "$rootfs" .tar)"
podman image exists "$base" || podman import --quiet "$rootfs" "$base" >/dev/null
cat >"$work/framework.Containerfile" <<EOF
FROM $base
COPY meta /opt/meta
ENV PATH=$PATH_IN_IMAGE
WORKDIR /
CMD ["meta", "--help"]
EOF
# --layers=false: one layer for the venv over the root filesystem's, no intermediate images.
podman build --quiet --pull=never --layers=false -t "$framework" -f "$work/framework.Containerfile" \
  "$work/root/opt" >&2
podman run --rm --network none "$framework" >/dev/null
podman run --rm --network none "$framework" python3 -c 'import meta'

cat >"$work/sample.Containerfile" <<EOF
FROM $framework
COPY . /sample
WORKDIR /sample
EOF
shopt -s nullglob
for dir in "$repo"/samples/*/; do
  flows=("$dir"*.flow.yaml)
  ((${#flows[@]})) || continue
  name="$(basename "$dir")"
  image="docker.io/library/meta-sample-$name:$version"
  echo "build.sh: $image" >&2
  mkdir -p "$work/samples/$name"
  (cd "$repo" && sources "samples/$name" | tar --null -T - -cf -) |
    tar -C "$work/samples/$name" --strip-components=2 -xf -
  podman build --quiet --pull=never --layers=false -t "$image" -f "$work/sample.Containerfile" \
    "$work/samples/$name" >&2
  podman run --rm --network none "$image" meta validate "${flows[@]##*/}" >&2
  images+=("$image")
done

echo "build.sh: $pause" >&2
mkdir "$work/pause"
cp /usr/bin/catatonit "$work/pause/pause"
tar -C "$work/pause" -cf - pause |
  podman import --quiet --change 'ENTRYPOINT ["/pause", "-P"]' - "$pause" >/dev/null
podman run --rm --network none --entrypoint /pause "$pause" --version >&2

echo "build.sh: saving ${#images[@]} images" >&2
# Written in $work (removed if the build stops), then renamed: no half-written archive survives.
podman save --quiet --multi-image-archive --format docker-archive -o "$work/archive.tar" "${images[@]}"
mv "$work/archive.tar" "$archive"
# The images these replaced (same names, older content) are left untagged: drop them. Of the
# archives, the three newest stay (a few work trees may take turns), not one per edit of meta/.
podman image prune --force >/dev/null
find "$cache" -maxdepth 1 -name 'meta-images-*.tar' -printf '%T@ %p\n' | sort -rn | tail -n +4 |
  cut -d' ' -f2- | xargs -r -d '\n' rm -f
echo "$archive"
