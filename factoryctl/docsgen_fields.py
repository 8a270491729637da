"""Generate docs/factory-yaml.md, the field reference, from the model (CI checks it is current).

Regenerate with: python -m factoryctl.docsgen_fields --write   (or > docs/factory-yaml.md)

Everything comes from code, nothing is typed twice:
- fields, defaults and nesting: the pydantic models (model/), walked from Factory;
- type, allowed values and bounds: the JSON Schema `factoryctl schema` prints, plus the reason
  of each bound from model/limits.py (the Limit its validator carries);
- description and unit: model/fielddocs.py, the table the JSON Schema's hover text reads too;
- what reads a field: the stage packages and templates whose source reads the field's
  attribute (`.power_kw`); a name several models share, or one too short to search for, is
  found through its parent field instead;
- the rules that check it: each registered rule's source (rules/): the YAML path of the
  findings it yields (`Issue(("facility", "racks", i, "power_kw"), ...)`), the field names it
  reads, and the `paths` its docstring names;
- an example: the first value at that path in the shipped files (examples/, blueprints/).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from ruamel.yaml import YAML

from .model import Factory
from .model.fielddocs import FIELDS, UNITS
from .resources import templates_dir
from .rules import REGISTRY

ROOT = Path(__file__).resolve().parent
DOC = "docs/factory-yaml.md"
# Stages that read the model after validation (rules are listed apart, as "checked by").
READERS = ("resolve", "render", "engines", "bench", "verify", "ops", "drift", "report", "blueprints")
# The shipped files examples come from, the reference first.
EXAMPLE_FILES = ("examples/reference/factory.yaml", "examples/lab.yaml", "blueprints/*/factory.yaml")
MIN_SEARCHABLE = 6  # shorter attribute names (name, type, image) match unrelated code


@dataclass(frozen=True)
class Entry:
    path: str  # nodes[].hardware.power_kw
    keys: tuple[str, ...]  # ("nodes", "hardware", "power_kw"): the path without list markers
    owner: type[BaseModel]
    name: str
    info: FieldInfo
    parent: Entry | None


def _models(ann) -> list[type[BaseModel]]:
    if inspect.isclass(ann) and issubclass(ann, BaseModel):
        return [ann]
    return [m for a in typing.get_args(ann) for m in _models(a)]


def _is_list(ann) -> bool:
    if typing.get_origin(ann) is list:
        return True
    return any(_is_list(a) for a in typing.get_args(ann) if typing.get_origin(a) is not dict)


def entries() -> list[Entry]:
    """Every field factory.yaml accepts, depth first in model order."""
    out: list[Entry] = []

    def walk(cls: type[BaseModel], prefix: str, keys: tuple[str, ...], parent: Entry | None) -> None:
        for name, info in cls.model_fields.items():
            path = f"{prefix}.{name}" if prefix else name
            e = Entry(path, (*keys, name), cls, name, info, parent)
            out.append(e)
            for sub in _models(info.annotation):
                walk(sub, path + ("[]" if _is_list(info.annotation) else ""), e.keys, e)

    walk(Factory, "", (), None)
    return out


# --- type, allowed values, bounds ---------------------------------------------------------------


@cache
def _schema() -> dict:
    return Factory.model_json_schema()


def _prop(e: Entry) -> dict:
    s = _schema()
    owner = s if e.owner is Factory else s["$defs"][e.owner.__name__]
    return owner["properties"][e.name]


def _type(p: dict) -> str:
    if "$ref" in p:
        return f"`{p['$ref'].rsplit('/', 1)[-1]}` (below)"
    if "anyOf" in p:
        kinds = [_type(x) for x in p["anyOf"] if x.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds)) + (" or null" if any(x.get("type") == "null" for x in p["anyOf"]) else "")
    if "enum" in p or "const" in p:
        return "one of the allowed values"
    t = p.get("type", "any")
    if t == "array":
        return f"list of {_type(p.get('items', {}))}"
    if t == "object":
        return f"map of string to {_type(p.get('additionalProperties', {}))}"
    return {"number": "number", "integer": "whole number", "string": "string", "boolean": "true or false"}.get(t, t)


def _allowed(p: dict) -> list[str]:
    out: list[str] = []
    for x in [p, *p.get("anyOf", []), p.get("items", {}), p.get("additionalProperties", {})]:
        if not isinstance(x, dict):
            continue
        if "enum" in x:
            out.append(", ".join(f"`{json.dumps(v)}`" for v in x["enum"]))
        if "const" in x:
            out.append(f"`{json.dumps(x['const'])}`")
        for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"),
                          ("minLength", "length >="), ("maxLength", "length <="), ("minItems", "items >=")):
            if key in x:
                out.append(f"{word} {x[key]:,}" if isinstance(x[key], int | float) else f"{word} {x[key]}")
    return list(dict.fromkeys(out))


def _limits(ann) -> list:
    """The model/limits.py Limits whose validators an annotation carries."""
    found = []
    for m in getattr(ann, "__metadata__", ()):
        lim = getattr(getattr(m, "func", None), "limit", None)
        if lim is not None:
            found.append(lim)
    for a in typing.get_args(ann):
        found += _limits(a)
    return found


def _validators(e: Entry) -> list:
    anns = [e.info.annotation, *[m for m in e.info.metadata]]
    return [lim for a in anns for lim in _limits(a)] + [
        getattr(getattr(m, "func", None), "limit", None) for m in e.info.metadata
        if getattr(getattr(m, "func", None), "limit", None) is not None]


def _default(e: Entry) -> str:
    info = e.info
    if info.is_required():
        return "required"
    v = info.default_factory() if info.default_factory is not None else info.default
    if isinstance(v, BaseModel):
        return "the defaults of its fields"
    if v is None:
        return "none (left out)"
    return f"`{json.dumps(v)}`"


# --- what reads it, what checks it ----------------------------------------------------------------


@cache
def _sources() -> dict[str, str]:
    """Stage name -> the text of its sources (templates count as render)."""
    out = {}
    for stage in READERS:
        files = [ROOT / f"{stage}.py"] if (ROOT / f"{stage}.py").is_file() else sorted((ROOT / stage).rglob("*.py"))
        out[stage] = "\n".join(f.read_text(encoding="utf-8") for f in files)
    out["render"] += "\n".join(f.read_text(encoding="utf-8", errors="replace")
                               for f in sorted(templates_dir().rglob("*")) if f.is_file())
    return out


@cache
def _shared_names() -> frozenset[str]:
    seen: dict[str, set[str]] = {}
    for e in entries():
        seen.setdefault(e.name, set()).add(e.owner.__name__)
    return frozenset(n for n, owners in seen.items() if len(owners) > 1)


def _searchable(name: str) -> bool:
    return len(name) >= MIN_SEARCHABLE and name not in _shared_names()


def readers(e: Entry) -> list[str]:
    """The stages whose code reads this field (or, for a common name, its parent)."""
    cur = e
    while cur.parent is not None and not _searchable(cur.name):
        cur = cur.parent
    name = re.escape(cur.name)
    if cur.parent is None:  # a section: read as factory.<section> (`.site` alone is also the resolved Site)
        pat = re.compile(rf"\b(factory|f)\.{name}\b|\[[\"']{name}[\"']\]")
    else:
        pat = re.compile(rf"\.{name}\b|\[[\"']{name}[\"']\]")
    return [s for s, text in _sources().items() if pat.search(text)]


@cache
def _rule_reads() -> dict[str, tuple[set[tuple[str, ...]], set[str], set[str]]]:
    """Rule code -> (YAML paths of its findings, attribute names it reads, paths its doc names)."""
    out = {}
    for code, r in REGISTRY.items():
        tree = ast.parse(textwrap.dedent(inspect.getsource(r.check)))
        locs: set[tuple[str, ...]] = set()
        attrs: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Issue" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Tuple):
                    locs.add(tuple(x.value for x in first.elts if isinstance(x, ast.Constant) and isinstance(x.value, str)))
            elif isinstance(node, ast.Attribute):
                attrs.add(node.attr)
        named = set(re.findall(r"`([a-z_][a-z0-9_.]*)", r.check.__doc__ or ""))
        out[code] = (locs, attrs, named)
    return out


def rules(e: Entry) -> list[str]:
    dotted = ".".join(e.keys)
    found = []
    for code, (locs, attrs, named) in sorted(_rule_reads().items()):
        if (e.keys in locs or dotted in named or (_searchable(e.name) and (e.name in attrs or e.name in named))):
            found.append(code)
    return found


# --- examples ---------------------------------------------------------------------------------------


@cache
def _examples() -> dict[tuple[str, ...], object]:
    out: dict[tuple[str, ...], object] = {}

    def walk(v, keys: tuple[str, ...]) -> None:
        out.setdefault(keys, v)
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, (*keys, str(k)))
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, dict):
                    walk(x, keys)

    base = ROOT.parent
    for pattern in EXAMPLE_FILES:
        for f in sorted(base.glob(pattern)):
            walk(YAML(typ="safe").load(f.read_text(encoding="utf-8")), ())
    return out


def example(e: Entry) -> str | None:
    v = _examples().get(e.keys)
    if v is None or (isinstance(v, dict) and _models(e.info.annotation)) or (
            isinstance(v, list) and v and isinstance(v[0], dict)):
        return None  # a section: its fields carry the examples
    text = f"{e.name}: {json.dumps(v, default=str)}"
    return text if len(text) <= 160 else text[:157] + "..."


# --- the document ----------------------------------------------------------------------------------


def fields_markdown() -> str:
    out = [
        "# factory.yaml field reference",
        "",
        "Generated from the model by `python -m factoryctl.docsgen_fields --write`; do not edit by hand.",
        "Each field: its type, default, allowed values and bounds (with the reason of each bound,",
        "model/limits.py), unit, the stages that read it, the rules that check it ([rules.md](rules.md))",
        "and an example from the shipped files. The descriptions are those of `factoryctl schema`,",
        "which editors show on hover (yaml-language-server). `[]` marks a list of entries.",
        "Unknown keys are errors; see the README for how the file is read.",
        "",
        "## Sections",
        "",
    ]
    all_entries = entries()
    top = [e for e in all_entries if e.parent is None]
    out += [f"- [`{e.name}`](#{e.name.lower()}): {FIELDS[f'{e.owner.__name__}.{e.name}']}" for e in top]
    for e in all_entries:
        key = f"{e.owner.__name__}.{e.name}"
        if e.parent is None:
            out += ["", f"## {e.name}", ""]
        else:
            out += ["", f"### `{e.path}`", ""]
        out.append(FIELDS[key])
        out.append("")
        p = _prop(e)
        out.append(f"- type: {_type(p)}")
        out.append(f"- default: {_default(e)}")
        allowed = _allowed(p)
        if allowed:
            out.append(f"- allowed: {'; '.join(allowed)}")
        for lim in dict.fromkeys(_validators(e)):
            out.append(f"- bound: at most {lim.most:,} {lim.what} ({lim.why})")
        if key in UNITS:
            out.append(f"- unit: {UNITS[key]}")
        who = readers(e)
        out.append(f"- read by: {', '.join(who) if who else 'validation only (model, rules)'}")
        codes = rules(e)
        if codes:
            out.append(f"- checked by: {', '.join(f'[{c}](rules.md#{c.lower()})' for c in codes)}")
        ex = example(e)
        if ex:
            out.append(f"- example: `{ex}`")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv[1:]:
        (ROOT.parent / DOC).write_text(fields_markdown(), encoding="utf-8")
    else:
        sys.stdout.write(fields_markdown())
