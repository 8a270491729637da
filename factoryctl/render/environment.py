"""The one Jinja environment: strict, deterministic, with a quoting filter per output context.

Names are validated long before rendering; these filters make any remaining free text inert
in the language it lands in (HCL, YAML, shell, JSON, Slurm config).
"""

from __future__ import annotations

import json
import re
import shlex
from functools import cache

import jinja2
import yaml

from ..resources import templates_dir

_JSON_ESCAPE = re.compile(r"\\(.)")  # each escape is a backslash and one character, so pairs stay whole
_HCL_ESCAPE = {"b": "\\u0008", "f": "\\u000c"}


def hcl_string(value) -> str:
    """A quoted HCL string literal: JSON escapes plus escaped template sequences, so
    `${...}` and `%{...}` in a value stay text instead of becoming interpolation."""
    text = json.dumps(str(value), ensure_ascii=False)
    # HCL has JSON's escapes except \b and \f: spell those as \uXXXX.
    text = _JSON_ESCAPE.sub(lambda m: _HCL_ESCAPE.get(m.group(1), m.group(0)), text)
    return text.replace("${", "$${").replace("%{", "%%{")


def hcl_value(value) -> str:
    """Any plain value (str, number, bool, list, dict) as an HCL expression."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return hcl_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(hcl_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{hcl_string(k)} = {hcl_value(v)}" for k, v in sorted(value.items()))
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as HCL")


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    pass


def yaml_value(value) -> str:
    """A YAML flow scalar/collection on one line, quoted where YAML needs it."""
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, sort_keys=True, width=10**9,
                     allow_unicode=True)
    return text.removesuffix("\n...\n").rstrip("\n")


def ansible_value(value) -> str:
    """A value for Ansible YAML (inventory, group_vars): strings always quoted, so YAML never
    retypes them, and tagged `!unsafe` when they hold '{', so Ansible never templates them.
    Plain printable strings take a fast path: a 16,384-host inventory has ~150k of them."""
    if isinstance(value, str):
        tag = "!unsafe " if "{" in value else ""
        if value.isascii() and value.isprintable():
            return tag + "'" + value.replace("'", "''") + "'"
        y = yaml_value(value)
        return tag + (y if y[:1] in ("'", '"') else "'" + y.replace("'", "''") + "'")
    return yaml_value(value)


def to_yaml(value, indent: int = 0) -> str:
    """A block YAML document (sorted keys), indented by `indent` spaces after the first line."""
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, sort_keys=True, width=120,
                     allow_unicode=True).rstrip("\n")
    return text.replace("\n", "\n" + " " * indent) if indent else text


def to_json(value, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False)


def to_json_lines(value) -> str:
    """JSON with one top-level key per line and one entry of each top-level list or mapping
    per line: readable and diffable, and written by the C encoder (json.dumps with indent
    falls back to pure Python: 48 s for 16,384 hosts' checks, against under 2 s this way)."""
    def one(v) -> str:
        return json.dumps(v, sort_keys=True, ensure_ascii=False)

    if not isinstance(value, dict):
        return one(value)
    parts = []
    for key in sorted(value):
        v = value[key]
        if isinstance(v, list) and v:
            inner = ",\n".join("    " + one(x) for x in v)
            parts.append(f"  {one(key)}: [\n{inner}\n  ]")
        elif isinstance(v, dict) and v:
            inner = ",\n".join(f"    {one(k)}: {one(v[k])}" for k in sorted(v))
            parts.append(f"  {one(key)}: {{\n{inner}\n  }}")
        else:
            parts.append(f"  {one(key)}: {one(v)}")
    return "{\n" + ",\n".join(parts) + "\n}"


def shell_quote(value) -> str:
    return shlex.quote(str(value))


class UnsafeValue(ValueError):
    """A value that would change the meaning of the config line or command it lands in."""


# What a config-line word may never hold: a blank or control character ends the field or the
# line (chrony.conf, fstab(5)), a quote ends a TOML/YAML string, ';', '`', '$', '\\' and '#'
# start shell syntax or a comment, ',' splits a mount option list.
_CONFIG_WORD_BAD = re.compile(r"[\s\x00-\x1f\x7f\"'`;$\\#,{}]")


def config_word(value, where: str = "value") -> str:
    """A value for one word of a config line on a host, refused (UnsafeValue, naming it)
    when it holds anything that could end the word. validate refuses such values first; this
    guards the render when a value reaches it by another way."""
    text = str(value)
    bad = _CONFIG_WORD_BAD.search(text)
    if bad or not text:
        raise UnsafeValue(f"{where} {text!r} cannot be written into a config line on the hosts"
                          f" ({'it is empty' if not text else f'it holds {bad.group(0)!r}'})")
    return text


_SLURM_SAFE = re.compile(r"^[A-Za-z0-9_.,:/@%+=\-\[\]]*$")


def slurm_value(value) -> str:
    """A slurm.conf value: written bare when it is plainly safe, else refused (slurm.conf has
    no quoting that survives every parser; names are RFC 1123 labels well before this)."""
    text = str(value)
    if not _SLURM_SAFE.match(text):
        raise UnsafeValue(f"value {text!r} is not safe in slurm.conf")
    return text


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # no HTML here; every context has its own quoting filter below
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        hcl=hcl_value,
        hcl_string=hcl_string,
        yaml=yaml_value,
        ansible_value=ansible_value,
        to_yaml=to_yaml,
        json=to_json,
        json_lines=to_json_lines,
        shell=shell_quote,
        slurm=slurm_value,
        config_word=config_word,
    )
    return env
