"""YAML text -> plain data plus a source map (path -> line/column) for error positions."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import FactoryctlError
from ..files import ReadRefused, read_bytes
from ..findings import Finding, Severity

# Guards against alias bombs ("billion laughs"): a factory.yaml is small; past this many
# values the document is refused instead of expanded.
MAX_VALUES = 2_000_000
MAX_BYTES = 16 * 1024 * 1024

Loc = tuple[str | int, ...]

# Composing only builds the node graph: no Python object is ever constructed from a tag.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Longest number read as a number: a float has ~17 significant digits and no site quantity
# needs more; Python refuses int() of 4,300+ digits, and long ones cost quadratic time.
MAX_NUMBER_CHARS = 100


class _Loader(_BaseLoader):
    """PyYAML's resolver follows YAML 1.1, where a float needs a dot and a signed exponent, so
    2e6, 1e-300 and 2.5e6 would stay strings, and 0o4 is no number. YAML 1.2.2's core schema
    (section 10.3.2, Tag Resolution) reads all of them as numbers: this resolver tags them so;
    _scalar then types every plain scalar by the 1.2 rules."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in _BaseLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+.0123456789"),
)


@dataclass
class Loaded:
    path: str
    text: str
    data: object
    positions: dict[Loc, tuple[int, int]]  # 1-based (line, column) of each value; keys point at the key

    def position(self, loc: Loc) -> tuple[int | None, int | None]:
        """Position of loc, or of its nearest ancestor that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.positions:
                return self.positions[loc]
            loc = loc[:-1]
        return self.positions.get((), (1, 1))


class LoadError(FactoryctlError):
    def __init__(self, findings: list[Finding]):
        super().__init__("; ".join(f.message for f in findings))
        self.findings = findings


def _finding(code: str, path: str, message: str, hint: str, file: str, line=None, col=None):
    return Finding(code, Severity.error, "<document>" if not path else path, message, hint, file, line, col)


def load_file(path: str | Path) -> Loaded:
    name = str(path)
    p = Path(path)
    try:
        raw = read_bytes(p, MAX_BYTES)
    except ReadRefused as e:
        hint = {"missing": "check the path", "unreadable": "check the file's permissions",
                "too-large": "a factory.yaml describes node groups, not single nodes"}.get(e.reason)
        if hint is None:  # not a regular file
            hint = "pass the factory.yaml inside it" if p.is_dir() else "pass the path of a factory.yaml (a regular file)"
        raise LoadError([_finding("SCH000", "", str(e), hint, name)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LoadError([_finding("SCH001", "", f"not UTF-8 text (byte {e.start})", "save the file as UTF-8", name)]) from None
    return load_text(text, name)


def load_text(text: str, name: str = "factory.yaml") -> Loaded:
    # PyYAML's C composer gives every node its position, much faster than ruamel's pure-Python
    # round-trip loader (benchmarks/README.md, plan_scale.py); scalars are then typed by YAML 1.2 core rules (below), so `NO` stays
    # the string Norway and not the YAML 1.1 boolean. ruamel.yaml still does comment-keeping
    # edits (blueprint fork).
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        line, col = _mark(e)
        msg = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        raise LoadError([_finding("SCH001", "", f"YAML syntax error: {msg}", "fix the YAML syntax at this position (indentation, a missing ':' or an unclosed quote)", name, line, col)]) from None
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        raise LoadError([_finding("SCH001", "", f"YAML error: {_first_line(str(e))}", "fix the YAML syntax", name)]) from None
    if root is None:
        raise LoadError([_finding("SCH004", "", "the file is empty", "start from a blueprint: factoryctl blueprint fork lab DIR", name, 1, 1)])
    positions: dict[Loc, tuple[int, int]] = {(): (1, 1)}
    budget = [MAX_VALUES]
    try:
        data = _plain(root, (), positions, budget, name)
    except _TooBig:
        raise LoadError([_finding("SCH001", "", f"document expands to more than {MAX_VALUES} values (YAML aliases?)", "remove recursive or exponential aliases", name)]) from None
    except RecursionError:
        raise LoadError([_finding("SCH001", "", "document nests too deeply (or an alias refers to itself)", "flatten the structure", name)]) from None
    except _BadNumber as e:
        raise LoadError([_finding("SCH001", "", str(e), "write a number that fits a double (about 1e-308 to 1e308), "
                                  "or quote the value if it is text", name, e.mark.line + 1, e.mark.column + 1)]) from None
    return Loaded(name, text, data, positions)


class _TooBig(Exception):
    pass


class _BadNumber(Exception):
    def __init__(self, node, message: str):
        super().__init__(message)
        self.mark = node.start_mark


def _mark(e) -> tuple[int | None, int | None]:
    m = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    return (m.line + 1, m.column + 1) if m is not None else (None, None)


def _first_line(s: str | None) -> str:
    return (s or "").strip().splitlines()[0] if (s or "").strip() else ""


# YAML 1.2 core schema for plain (unquoted) scalars.
_NULL = re.compile(r"^(~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(inf|Inf|INF)$")
_NAN = re.compile(r"^\.(nan|NaN|NAN)$")
_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(node: yaml.ScalarNode):
    """Type a scalar by YAML 1.2 core rules. PyYAML's resolver follows YAML 1.1 (where NO,
    yes and on are booleans and 010 is octal): only its non-string guesses are re-read here."""
    v = node.value
    if node.style or node.tag == _STR_TAG or not node.tag.startswith("tag:yaml.org,2002:"):
        return v  # quoted or block (style is "" or None when plain), plain text, or a custom tag (!vault)
    if _NULL.match(v):
        return None
    if v in _BOOL:
        return _BOOL[v]
    if len(v) > MAX_NUMBER_CHARS and (_INT.match(v) or _FLOAT.match(v) or _HEX.match(v) or _OCT.match(v)):
        raise _BadNumber(node, f"a number of {len(v):,} characters is out of range (at most {MAX_NUMBER_CHARS})")
    if _INT.match(v):
        return int(v)
    if _OCT.match(v):
        return int(v[2:], 8)
    if _HEX.match(v):
        return int(v[2:], 16)
    if _FLOAT.match(v):
        f = float(v)
        if math.isinf(f):
            raise _BadNumber(node, f"{v} is out of range: it overflows to infinity")
        if f == 0 and re.search(r"[1-9]", v.lower().partition("e")[0]):
            raise _BadNumber(node, f"{v} is out of range: it underflows to zero")
        return f
    if _INF.match(v):
        return float("-inf") if v.startswith("-") else float("inf")
    if _NAN.match(v):
        return float("nan")
    return v  # YAML 1.1 booleans (NO, yes, on), timestamps, 1_000: strings in 1.2


def _plain(node, loc: Loc, positions, budget, name):
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooBig
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for knode, vnode in node.value:
            key = _scalar(knode) if isinstance(knode, yaml.ScalarNode) else None
            # Keys are strings to the schema; odd keys (lists, maps, null) become their text so
            # the schema can reject them with a position instead of crashing.
            key = str(key) if key is not None else (knode.value if isinstance(knode, yaml.ScalarNode) else "<complex key>")
            if knode.tag == "tag:yaml.org,2002:merge":
                raise LoadError([_finding("SCH001", "", "YAML merge keys (<<) are not supported", "write the keys out", name, knode.start_mark.line + 1, knode.start_mark.column + 1)])
            if key in out:
                m = knode.start_mark
                raise LoadError([_finding("SCH006", _path(loc + (key,)), f"duplicate key '{key}'", "each key may appear once in a mapping; merge the two entries", name, m.line + 1, m.column + 1)])
            positions[loc + (key,)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            out[key] = _plain(vnode, loc + (key,), positions, budget, name)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, v in enumerate(node.value):
            positions[loc + (i,)] = (v.start_mark.line + 1, v.start_mark.column + 1)
            items.append(_plain(v, loc + (i,), positions, budget, name))
        return items
    return _scalar(node)


def _path(loc: Loc) -> str:
    from ..findings import format_path

    return format_path(loc)
