"""Pushing an image to the real node's registry (CNCF distribution, plain HTTP), straight through
its API (OCI distribution spec: blob uploads, then the manifest), so a test can make an image that
no node holds yet and watch the kubelet pull it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import secrets
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Pushed:
    reference: str
    """REGISTRY/REPOSITORY:TAG, as a pod names it."""
    digest: str
    """The manifest's digest, which the pod's containerStatuses[].imageID ends with."""
    blobs: tuple[str, ...]
    """The digests of the config and the layer."""


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(files: dict[str, tuple[bytes, int]]) -> tuple[bytes, bytes]:
    """(gzip of the tar, the tar): files by path, with their bytes and mode."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), plain


def _request(method: str, url: str, data: bytes | None = None, kind: str | None = None) -> str:
    headers = {"Content-Type": kind} if kind else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.headers.get("Location") or "")


def _upload(registry: str, repository: str, blob: bytes) -> str:
    digest = _digest(blob)
    location = _request("POST", f"http://{registry}/v2/{repository}/blobs/uploads/")
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    separator = "&" if "?" in location else "?"
    _request("PUT", f"{location}{separator}digest={digest}", blob, "application/octet-stream")
    return digest


def push_static_image(registry: str, repository: str, binary: Path) -> Pushed:
    """Push a one-layer image holding `binary` (a static executable) as /bin/entry and a random
    file, so that its layer is new to every node: REGISTRY/REPOSITORY:<random tag>."""
    nonce = secrets.token_hex(8)
    layer, plain = _layer(
        {"bin/entry": (binary.read_bytes(), 0o755), "nonce": (nonce.encode(), 0o644)}
    )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/bin/entry"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(plain)]},
        }
    ).encode()
    config_digest = _upload(registry, repository, config)
    layer_digest = _upload(registry, repository, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
        }
    ).encode()
    _request("PUT", f"http://{registry}/v2/{repository}/manifests/{nonce}", manifest, OCI_MANIFEST)
    reference = f"{registry}/{repository}:{nonce}"
    return Pushed(reference, _digest(manifest), (config_digest, layer_digest))
