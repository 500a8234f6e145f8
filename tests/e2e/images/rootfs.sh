#!/usr/bin/env bash
# Makes the Debian root filesystem the e2e images start from (debootstrap's minbase with python3,
# python3-venv and ca-certificates) and caches it as a tarball, so that it is made once per
# machine (about a minute). Prints the tarball's path on its last line; progress goes to stderr.
#
#   usage: rootfs.sh          (as root: debootstrap and chroot need it)
#
# Cache: $META_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/meta-orchestrator)
#   images/rootfs-SUITE-KEY.tar   KEY hashes the suite, the package list and this script
#
# Environment:
#   META_CACHE_DIR       the cache (see above)
#   META_DEBIAN_MIRROR   the Debian mirror (default http://deb.debian.org/debian); not in KEY, since
#                        every mirror serves the same suite
set -euo pipefail

SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
mirror="${META_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${META_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meta-orchestrator}/images"
key="$(printf '%s\n' "$SUITE" "$PACKAGES" | cat - "$0" | sha256sum | cut -c1-12)"
tarball="$cache/rootfs-$SUITE-$key.tar"

if [[ -s "$tarball" ]]; then
  echo "$tarball"
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/rootfs.XXXXXX")"
cleanup() {
  # debootstrap mounts /proc and /sys in the target; an interrupted run may leave them behind, and
  # --one-file-system keeps rm from following any mount that would not come off.
  awk -v dir="$work/" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r mnt; do umount -l "$mnt"; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

echo "rootfs.sh: debootstrap $SUITE ($PACKAGES) from $mirror" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/root" "$mirror" >&2
# apt's package lists and downloads, translations and manual pages are of no use in a test image
# (a fifth of its size); the host's name and resolver are not the image's (container runtimes
# mount their own over both).
rm -rf "$work"/root/var/lib/apt/lists/* "$work"/root/var/cache/apt/* \
  "$work"/root/usr/share/locale/* "$work"/root/usr/share/man/*
rm -f "$work/root/etc/hostname"
: >"$work/root/etc/resolv.conf"
# Written in $work (removed if this stops), then renamed: no half-written tarball survives.
tar --numeric-owner -C "$work/root" -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$tarball"
echo "$tarball"
