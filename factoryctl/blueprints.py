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

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from . import __version__
from .errors import ExitCode, FactoryctlError
from .load import LoadError, load_text
from .resources import blueprints_dir


class BlueprintError(FactoryctlError):
    """A blueprint could not be forked (exit 1; its subclasses below are usage errors)."""


class UnknownBlueprint(BlueprintError):
    """No shipped blueprint has the name given on the command line."""

    exit_code = ExitCode.USAGE


class SetError(BlueprintError):
    """A `--set key=value` that cannot be read or applied to the blueprint."""

    exit_code = ExitCode.USAGE


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
    raise UnknownBlueprint(f"no blueprint named {name!r}; available: {names}")


_SEG = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


# A --set value is a small piece of plain data: past this nesting it is refused before it is
# built (deeper brackets would exhaust Python's recursion limit in the loader or the dumper).
MAX_SET_DEPTH = 32
_STR_TAG = "tag:yaml.org,2002:str"
_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_set(expr: str) -> tuple[list[str | int], object]:
    """'nodes[1].count=8' -> (['nodes', 1, 'count'], 8); the value is read as YAML 1.2 data."""
    if "=" not in expr:
        raise SetError(f"--set {_shown(expr)}: expected key=value, e.g. metadata.name=fra2")
    key, raw = expr.split("=", 1)
    path: list[str | int] = []
    pos = 0
    for m in _SEG.finditer(key):
        if m.start() != pos and key[pos:m.start()] != ".":
            raise SetError(f"--set {_shown(expr)}: cannot read the key path {_shown(key)}")
        path.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not path or pos != len(key) or any(c.isspace() or not c.isprintable() for c in key):
        raise SetError(f"--set {_shown(expr)}: cannot read the key path {_shown(key)}")
    if len(path) > MAX_SET_DEPTH:
        raise SetError(f"--set {_shown(expr)}: the key path is deeper than {MAX_SET_DEPTH} levels")
    return path, _set_value(expr, raw)


def _set_value(expr: str, raw: str) -> object:
    """Read a --set value as plain YAML 1.2 data, the way factory.yaml itself is read.

    Tags (`!!python/object`, `!vault`), anchors and aliases are refused: a value typed on the
    command line is data, never an instruction to build an object or share a node."""
    if not raw.strip():
        return ""
    depth = 0
    try:
        # Parsing yields events without building anything, iteratively: safe on any depth.
        for ev in yaml.parse(raw, Loader=_Parser):
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
                raise SetError(f"--set {_shown(expr)}: YAML anchors and aliases (&, *) are not accepted; "
                                     "write the value out")
            tag = getattr(ev, "tag", None)
            if tag is not None and tag != _STR_TAG:
                raise SetError(f"--set {_shown(expr)}: YAML tags ({tag}) are not accepted; "
                                     "write plain data, quoted if it must stay a string")
            if isinstance(ev, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_SET_DEPTH:
                    raise SetError(f"--set {_shown(expr)}: the value nests deeper than {MAX_SET_DEPTH} levels")
            elif isinstance(ev, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as e:
        raise SetError(f"--set {_shown(expr)}: the value is not valid YAML: {_first_line(str(e))}; "
                             "quote it if it is text") from None
    try:
        return load_text(raw, "--set").data
    except LoadError as e:
        if e.findings[0].code == "SCH004":
            return None  # only a comment: YAML's null, as `key:` with nothing after it
        raise SetError(f"--set {_shown(expr)}: {e}") from None


def _shown(expr: str, limit: int = 80) -> str:
    """The --set expression for a message, cut short: a hostile one may be megabytes long."""
    return repr(expr if len(expr) <= limit else expr[:limit] + "...")


def _first_line(s: str) -> str:
    return next((line.strip() for line in s.splitlines() if line.strip()), "invalid YAML")


def _apply(doc, path: list[str | int], value, expr: str) -> None:
    cur = doc
    for i, part in enumerate(path):
        last = i == len(path) - 1
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[: i + 1]).lstrip(".")
        if isinstance(part, int):
            if not isinstance(cur, CommentedSeq) or not 0 <= part < len(cur):
                raise SetError(f"--set {_shown(expr)}: {where} does not exist in the blueprint")
        elif not isinstance(cur, CommentedMap):
            raise SetError(f"--set {_shown(expr)}: {where} is not inside a mapping")
        if last:
            cur[part] = value
        else:
            if isinstance(part, str) and part not in cur:
                cur[part] = CommentedMap()
            cur = cur[part]


class DestinationError(BlueprintError):
    """The fork's destination cannot be used as given (a usage error, not a failure)."""

    exit_code = ExitCode.USAGE


def _check_destination(dest: Path) -> None:
    if dest.name in ("", ".", ".."):
        raise DestinationError(f"{dest} is not a new folder's name; name a new folder, e.g. ./fra2")
    if dest.is_symlink():
        raise DestinationError(f"{dest} is a symbolic link; name a new folder (fork never writes through links)")
    if dest.exists():
        if not dest.is_dir():
            raise DestinationError(f"{dest} already exists and is not a folder; choose a new folder")
        if any(dest.iterdir()):
            raise DestinationError(f"{dest} already exists and is not empty; choose a new folder")
    for parent in dest.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise DestinationError(f"cannot create {dest}: {parent} is a file, not a folder")


def fork(name: str, dest: Path, sets: list[str]) -> Path:
    """Copy a blueprint to dest (written to a temp dir, then renamed: never half-written)."""
    bp = get(name)
    dest = Path(dest)
    _check_destination(dest)
    changes = [parse_set(s) + (s,) for s in sets]
    yaml_rt = YAML(typ="rt")
    yaml_rt.preserve_quotes = True
    yaml_rt.width = 4096
    doc = yaml_rt.load(bp.factory_file.read_text())
    meta = doc.setdefault("metadata", CommentedMap())
    meta["blueprint"] = CommentedMap([("name", bp.name), ("version", bp.version)])
    for path, value, expr in changes:
        _apply(doc, path, value, expr)
    try:
        return _write(bp, doc, yaml_rt, dest)
    except OSError as e:
        where = e.filename or dest
        raise BlueprintError(f"cannot write {dest}: {e.strerror or e} ({where})") from None


def _write(bp: Blueprint, doc, yaml_rt: YAML, dest: Path) -> Path:
    parent = dest.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent))
    try:
        for item in bp.path.iterdir():
            if item.name == "factory.yaml":
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        buf = io.StringIO()
        yaml_rt.dump(doc, buf)
        (tmp / "factory.yaml").write_text(buf.getvalue())
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest / "factory.yaml"
