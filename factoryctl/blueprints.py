"""Shipped blueprints: list, show, and fork into a new site folder."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from . import __version__
from .resources import blueprints_dir


class BlueprintError(Exception):
    pass


@dataclass(frozen=True)
class Blueprint:
    name: str
    path: Path

    @property
    def factory_file(self) -> Path:
        return self.path / "factory.yaml"

    @property
    def summary(self) -> str:
        readme = self.path / "README.md"
        if not readme.is_file():
            return ""
        for line in readme.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                return line
        return ""

    @property
    def version(self) -> str:
        digest = hashlib.sha256(self.factory_file.read_bytes()).hexdigest()[:12]
        return f"{__version__}+{digest}"


def all_blueprints() -> list[Blueprint]:
    root = blueprints_dir()
    if not root.is_dir():
        return []
    return [Blueprint(p.name, p) for p in sorted(root.iterdir()) if (p / "factory.yaml").is_file()]


def get(name: str) -> Blueprint:
    for b in all_blueprints():
        if b.name == name:
            return b
    names = ", ".join(b.name for b in all_blueprints())
    raise BlueprintError(f"no blueprint named {name!r}; available: {names}")


_SEG = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_set(expr: str) -> tuple[list[str | int], object]:
    """'nodes[1].count=8' -> (['nodes', 1, 'count'], 8); the value is read as YAML."""
    if "=" not in expr:
        raise BlueprintError(f"--set {expr!r}: expected key=value, e.g. metadata.name=fra2")
    key, raw = expr.split("=", 1)
    path: list[str | int] = []
    pos = 0
    for m in _SEG.finditer(key):
        if m.start() != pos and key[pos:m.start()] != ".":
            raise BlueprintError(f"--set {expr!r}: cannot read the key path {key!r}")
        path.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not path or pos != len(key):
        raise BlueprintError(f"--set {expr!r}: cannot read the key path {key!r}")
    try:
        value = YAML(typ="safe").load(raw) if raw.strip() else ""
    except (YAMLError, RecursionError, ValueError) as e:
        # A tag such as !!python/object, unbalanced or 5,000-deep brackets: the user's typo.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BlueprintError(f"--set {expr!r}: the value is not a plain YAML value ({first})") from None
    return path, value


def _apply(doc, path: list[str | int], value, expr: str) -> None:
    cur = doc
    for i, part in enumerate(path):
        last = i == len(path) - 1
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[: i + 1]).lstrip(".")
        if isinstance(part, int):
            if not isinstance(cur, CommentedSeq) or not 0 <= part < len(cur):
                raise BlueprintError(f"--set {expr!r}: {where} does not exist in the blueprint")
        elif not isinstance(cur, CommentedMap):
            raise BlueprintError(f"--set {expr!r}: {where} is not inside a mapping")
        if last:
            cur[part] = value
        else:
            if isinstance(part, str) and part not in cur:
                cur[part] = CommentedMap()
            cur = cur[part]


def fork(name: str, dest: Path, sets: list[str]) -> Path:
    """Copy a blueprint to dest (written to a temp dir, then renamed: never half-written)."""
    bp = get(name)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BlueprintError(f"{dest} already exists and is not empty; choose a new folder")
    changes = [parse_set(s) + (s,) for s in sets]
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    doc = yaml.load(bp.factory_file.read_text())
    meta = doc.setdefault("metadata", CommentedMap())
    meta["blueprint"] = CommentedMap([("name", bp.name), ("version", bp.version)])
    for path, value, expr in changes:
        _apply(doc, path, value, expr)
    parent = dest.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent))
    try:
        for item in bp.path.iterdir():
            if item.name == "factory.yaml":
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        buf = io.StringIO()
        yaml.dump(doc, buf)
        (tmp / "factory.yaml").write_text(buf.getvalue())
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest / "factory.yaml"
