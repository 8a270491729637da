"""Test helpers: build factory documents from the reference example and check them."""

from __future__ import annotations

import copy
import io
from contextlib import redirect_stderr, redirect_stdout
from functools import cache
from pathlib import Path
from typing import NamedTuple

import yaml
from ruamel.yaml import YAML

from factoryctl.findings import Finding
from factoryctl.session import Checked, check

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "examples" / "reference" / "factory.yaml"


@cache
def _reference() -> dict:
    return YAML(typ="safe").load(REFERENCE.read_text())


def reference_doc() -> dict:
    """A fresh, mutable copy of the reference example (validates with zero errors)."""
    return copy.deepcopy(_reference())


def write_doc(doc, path: Path) -> Path:
    # PyYAML's C dumper: fast enough for thousands of generated documents.
    path.write_text(yaml.dump(doc, Dumper=_Dumper, default_flow_style=False, sort_keys=False))
    return path


def check_doc(doc: dict, tmp_path: Path, name: str = "factory.yaml") -> Checked:
    return check(write_doc(doc, tmp_path / name))


def check_text(text: str, tmp_path: Path, name: str = "factory.yaml") -> Checked:
    p = tmp_path / name
    p.write_text(text)
    return check(p)


def by_code(checked: Checked) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in checked.findings:
        out.setdefault(f.code, []).append(f)
    return out


def assert_finding(checked: Checked, code: str, path: str | None = None, severity: str | None = None) -> Finding:
    """Assert a finding with this code (and path/severity when given) exists; return it."""
    found = [f for f in checked.findings if f.code == code and (path is None or f.path == path)]
    assert found, f"expected {code} at {path}, got {[(f.code, f.path) for f in checked.findings]}"
    if severity is not None:
        assert found[0].severity.value == severity, f"{code}: severity {found[0].severity.value} != {severity}"
    assert found[0].line is not None and found[0].hint, f"{code} lacks a position or hint: {found[0]}"
    return found[0]


def assert_clean(checked: Checked, level: str = "error") -> None:
    rank = {"error": 3, "warning": 2, "info": 1}[level]
    bad = [f for f in checked.findings if f.severity.rank >= rank]
    assert not bad, "unexpected findings: " + "; ".join(f"{f.code} {f.path}: {f.message}" for f in bad)


class Result(NamedTuple):
    """What one factoryctl command did: its exit code and both streams."""

    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def cli(*args) -> Result:
    """Run `factoryctl ARGS` in this process (each argument str()-ed) and capture stdout and
    stderr apart (what the process writes itself, not its subprocesses); a traceback or an
    internal error fails the test."""
    from factoryctl.cli import run

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run([str(a) for a in args])
    res = Result(int(code), out.getvalue(), err.getvalue())
    assert "Traceback" not in res.output and "internal error" not in res.err, res.output[-2000:]
    return res
