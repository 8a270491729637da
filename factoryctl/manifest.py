"""The manifest of a rendered tree: which files of a folder a factoryctl render wrote, and
those files read back.

A render writes manifest.json (a `generator: factoryctl ...` key and the list of its files)
into the tree it renders; render/output.py decides from it what a render may replace, and
the workspace keeps the files of the last applied build. Nothing here follows a symbolic
link, and every read is bounded.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

MANIFEST = "manifest.json"
GENERATOR = "factoryctl "
# Rendered files are kilobytes; the bounds only stop a planted giant from being read whole.
MANIFEST_LIMIT = 16 << 20
FILE_LIMIT = 64 << 20


def safe_rel(rel: object) -> bool:
    """A manifest path that stays inside the tree (a planted manifest cannot name ../x)."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def read_nofollow(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file, opened without following a link; None if it is not one.
    At most limit+1 bytes are read: a larger file differs from anything rendered anyway."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return fh.read(limit + 1)


def owned_files(out: Path) -> set[str] | None:
    """The files a factoryctl render wrote into `out` (the ones its manifest lists, and the
    manifest); None when `out` holds no manifest of ours."""
    raw = read_nofollow(Path(out) / MANIFEST, MANIFEST_LIMIT)
    if raw is None or len(raw) > MANIFEST_LIMIT:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not (isinstance(doc, dict) and isinstance(doc.get("generator"), str)
            and doc["generator"].startswith(GENERATOR) and isinstance(doc.get("files"), dict)):
        return None
    return {rel for rel in doc["files"] if safe_rel(rel)} | {MANIFEST}


def folders_of(files: set[str]) -> set[str]:
    return {"/".join(rel.split("/")[:i]) for rel in files for i in range(1, rel.count("/") + 1)}


def read_owned(out: Path, owned: set[str]) -> dict[str, bytes]:
    """The files of `owned` as they are on disk (relative path -> bytes). Only folders that
    hold owned files are entered, and links are never followed: a file a link replaced
    counts as missing."""
    found: dict[str, bytes] = {}
    dirs = folders_of(owned)

    def walk(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            entries = list(it)
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if rel in dirs:
                    walk(Path(entry.path), rel + "/")
            elif rel in owned and entry.is_file(follow_symlinks=False):
                data = read_nofollow(Path(entry.path), FILE_LIMIT)
                if data is not None:
                    found[rel] = data

    if owned and Path(out).is_dir() and not Path(out).is_symlink():
        walk(Path(out), "")
    return found
