"""pydantic ValidationError -> Findings that name the user's key, its position and a fix."""

from __future__ import annotations

import difflib
import re
import types
import typing

from pydantic import BaseModel, ValidationError

from ..findings import Finding, Severity, format_path
from . import Loaded

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "list_type": "a list",
}


def _describe(value) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


def clean_loc(loc: tuple, data) -> tuple:
    """Drop pydantic's union-branch tags so the path matches the user's document."""
    out: list = []
    cur = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(cur, dict) and isinstance(part, str) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif last and isinstance(part, str) and isinstance(cur, dict) and "[" not in part:
            out.append(part)  # a missing key: name it
            cur = None
        # else: a union tag such as 'list[str]' or 'function-after[...]': skip it
    return tuple(out)


def _unwrap(tp):
    """Optional[X] / X | Y / Annotated[X, ...] -> candidate types."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for a in typing.get_args(tp):
            out.extend(_unwrap(a))
        return out
    return [tp]


def model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the mapping at loc (None when loc is not a mapping)."""
    candidates = [root]
    for part in loc:
        nxt = []
        for tp in candidates:
            for t in _unwrap(tp):
                if isinstance(part, str) and isinstance(t, type) and issubclass(t, BaseModel):
                    f = t.model_fields.get(part)
                    if f is not None:
                        nxt.append(f.annotation)
                elif isinstance(part, int) and typing.get_origin(t) is list:
                    nxt.append(typing.get_args(t)[0])
        candidates = nxt
    for tp in candidates:
        for t in _unwrap(tp):
            if isinstance(t, type) and issubclass(t, BaseModel):
                return t
    return None


def findings_from(err: ValidationError, loaded: Loaded, root: type[BaseModel]) -> list[Finding]:
    seen: set[str] = set()
    out: list[Finding] = []
    for e in err.errors(include_url=False):
        loc = clean_loc(tuple(e["loc"]), loaded.data)
        path = format_path(loc)
        if path in seen:  # one finding per place; union branches repeat themselves
            continue
        seen.add(path)
        line, col = loaded.position(loc)
        lines = loaded.text.splitlines()
        src = lines[line - 1] if line and 0 < line <= len(lines) else ""
        code, message, hint = _explain(e, loc, root, src)
        out.append(Finding(code, Severity.error, path, message, hint, loaded.path, line, col))
    return out


def raw_scalar(line: str, key: str) -> str | None:
    """The value as the user typed it ('1.30'), which YAML may have turned into 1.3."""
    m = re.search(rf"(?:^|[\s{{,]){re.escape(key)}\s*:\s*([^\s,}}#]+)", line)
    return m.group(1) if m else None


def _explain(e: dict, loc: tuple, root, source_line: str = "") -> tuple[str, str, str]:
    kind = e["type"]
    key = loc[-1] if loc else ""
    value = e.get("input")
    if kind == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else (f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it")
        return "SCH002", f"unknown key '{key}'", hint
    if kind == "missing":
        return "SCH004", f"missing required key '{key}'", f"add '{key}:' here (see `factoryctl schema` for its type)"
    if kind == "literal_error":
        expected = e.get("ctx", {}).get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",") if o.strip()]
        close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"use one of: {expected}"
        return "SCH003", f"{_describe(value)} is not allowed here; expected {expected}", hint
    if kind in _TYPE_NAMES:
        want = _TYPE_NAMES[kind]
        hint = f"write {want} here"
        if kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
            written = raw_scalar(source_line, str(key)) or str(value)
            hint = f'quote it: {key}: "{written}" (YAML reads {written} as the number {value})'
        return "SCH003", f"expected {want}, got {_describe(value)}", hint
    if kind == "value_error":
        # Our validators put their fix after a "hint:" line.
        msg, _, hint = str(e.get("msg", "")).removeprefix("Value error, ").partition("\nhint: ")
        code = "SCH005" if "RFC 1123 label" in msg else "SCH003"
        return code, msg, hint or "see `factoryctl schema` for the accepted form"
    if kind == "finite_number":
        return "SCH003", f"{_describe(value)} is not a finite number; no quantity of a site is infinite", \
            "write the number itself (a real figure, not .inf or .nan)"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return "SCH003", f"{_describe(value)}: {e['msg'].lower()}", "change the value to the allowed range"
    if kind in ("too_short", "too_long", "string_too_long", "list_too_long", "list_too_short"):
        return "SCH003", e["msg"], "adjust the number of entries"
    return "SCH003", f"{e['msg']} (got {_describe(value)})", "see `factoryctl schema` for the expected form"
