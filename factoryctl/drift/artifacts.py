"""Artifact drift: factory.yaml or the templates changed since the last apply, and nobody
applied. The factory is rendered afresh into a scratch folder inside the workspace (the
Terraform stacks refer to the workspace by relative paths, so they must sit at the same
depth as build/) and its manifest is compared with the one apply recorded.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..render import render
from ..render.writer import MANIFEST
from ..workspace import Workspace

DIFF_LINES = 120


@dataclass
class FileChange:
    path: str
    change: str  # added | changed | removed
    diff: str = ""

    def to_dict(self) -> dict:
        return {"path": self.path, "change": self.change, "diff": self.diff}


@dataclass
class ArtifactDrift:
    files: list[FileChange] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.files)

    def touches(self, prefix: str) -> bool:
        return any(f.path.startswith(prefix) for f in self.files)


@contextmanager
def fresh_render(site, ws: Workspace):
    """Render the factory of now into a scratch build beside build/; removed afterwards."""
    ws.root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".drift-", dir=ws.root))
    try:
        render(site, scratch / "tree")
        yield scratch / "tree"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _diff(old: bytes, new: bytes, path: str) -> str:
    try:
        a, b = old.decode().splitlines(keepends=True), new.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return "(binary file)\n"
    lines = list(difflib.unified_diff(a, b, f"{path} (applied)", f"{path} (rendered now)"))
    if len(lines) > DIFF_LINES:
        lines = lines[:DIFF_LINES] + [f"... {len(lines) - DIFF_LINES} more diff lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare(tree: Path, applied: dict, applied_dir: Path) -> ArtifactDrift:
    """What differs between the rendered tree and the applied manifest (with diffs where
    apply kept the file: everything but Terraform's, which the plan below reports)."""
    new = {k: v for k, v in json.loads((tree / MANIFEST).read_text())["files"].items() if k != MANIFEST}
    old = {k: v for k, v in (applied.get("manifest") or {}).items() if k != MANIFEST}
    out = ArtifactDrift()
    for path in sorted(new.keys() | old.keys()):
        if new.get(path) == old.get(path):
            continue
        change = "added" if path not in old else "removed" if path not in new else "changed"
        diff = ""
        kept = applied_dir / path
        if change == "changed" and kept.is_file():
            data = kept.read_bytes()
            if hashlib.sha256(data).hexdigest() == old[path]:
                diff = _diff(data, (tree / path).read_bytes(), path)
        out.files.append(FileChange(path, change, diff))
    return out
