"""YAML text -> plain data plus a source map (path -> line/column) for error positions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .findings import Finding, Severity

# Guards against alias bombs ("billion laughs"): a factory.yaml is small; past this many
# values the document is refused instead of expanded.
MAX_VALUES = 2_000_000
MAX_BYTES = 16 * 1024 * 1024

Loc = tuple[str | int, ...]


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


class LoadError(Exception):
    def __init__(self, findings: list[Finding]):
        super().__init__("; ".join(f.message for f in findings))
        self.findings = findings


def _finding(code: str, path: str, message: str, hint: str, file: str, line=None, col=None):
    return Finding(code, Severity.error, "<document>" if not path else path, message, hint, file, line, col)


def load_file(path: str | Path) -> Loaded:
    p = Path(path)
    name = str(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise LoadError([_finding("SCH000", "", f"file not found: {name}", "check the path", name)]) from None
    except IsADirectoryError:
        raise LoadError(
            [_finding("SCH000", "", f"{name} is a directory", "pass the factory.yaml inside it", name)]
        ) from None
    except OSError as e:
        raise LoadError([_finding("SCH000", "", f"cannot read {name}: {e.strerror}", "check permissions", name)]) from None
    if len(raw) > MAX_BYTES:
        raise LoadError([_finding("SCH000", "", f"file is {len(raw)} bytes; the limit is {MAX_BYTES}", "a factory.yaml describes node groups, not single nodes", name)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LoadError([_finding("SCH001", "", f"not UTF-8 text (byte {e.start})", "save the file as UTF-8", name)]) from None
    return load_text(text, name)


def load_text(text: str, name: str = "factory.yaml") -> Loaded:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        doc = yaml.load(text)
    except DuplicateKeyError as e:
        line, col = _mark(e)
        raise LoadError([_finding("SCH006", "", _first_line(e.problem) or "duplicate key", "each key may appear once in a mapping; merge the two entries", name, line, col)]) from None
    except MarkedYAMLError as e:
        line, col = _mark(e)
        msg = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        raise LoadError([_finding("SCH001", "", f"YAML syntax error: {msg}", "fix the YAML syntax at this position (indentation, a missing ':' or an unclosed quote)", name, line, col)]) from None
    except (YAMLError, ValueError, RecursionError) as e:
        raise LoadError([_finding("SCH001", "", f"YAML error: {_first_line(str(e))}", "fix the YAML syntax", name)]) from None
    if doc is None:
        raise LoadError([_finding("SCH004", "", "the file is empty", "start from a blueprint: factoryctl blueprint fork lab DIR", name, 1, 1)])
    positions: dict[Loc, tuple[int, int]] = {(): (1, 1)}
    budget = [MAX_VALUES]
    try:
        data = _plain(doc, (), positions, budget)
    except _TooBig:
        raise LoadError([_finding("SCH001", "", f"document expands to more than {MAX_VALUES} values (YAML aliases?)", "remove recursive or exponential aliases", name)]) from None
    except RecursionError:
        raise LoadError([_finding("SCH001", "", "document nests too deeply", "flatten the structure", name)]) from None
    return Loaded(name, text, data, positions)


class _TooBig(Exception):
    pass


def _mark(e) -> tuple[int | None, int | None]:
    m = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    return (m.line + 1, m.column + 1) if m is not None else (None, None)


def _first_line(s: str | None) -> str:
    return (s or "").strip().splitlines()[0] if (s or "").strip() else ""


def _plain(node, loc: Loc, positions, budget):
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooBig
    if isinstance(node, CommentedMap):
        out = {}
        for k, v in node.items():
            # Keys are kept as written when scalar; odd keys (lists, maps) become strings so the
            # schema can reject them with a position instead of crashing.
            key = k if isinstance(k, (str, int, float, bool)) or k is None else str(k)
            key = str(key) if not isinstance(key, str) else key
            try:
                line, col = node.lc.key(k)
                positions[loc + (key,)] = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out[key] = _plain(v, loc + (key,), positions, budget)
        return out
    if isinstance(node, CommentedSeq):
        out = []
        for i, v in enumerate(node):
            try:
                line, col = node.lc.item(i)
                positions[loc + (i,)] = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out.append(_plain(v, loc + (i,), positions, budget))
        return out
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    # Timestamps, binary, tagged scalars: keep the text so the schema reports a type error.
    return str(node)
