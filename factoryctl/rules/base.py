"""The rule registry: every semantic check is a small function with a stable code.

A rule is a pure function of the validated model and its resolved facts. It yields Issues;
the runner turns them into Findings with file positions. A rule that crashes becomes an
INT001 finding naming it, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..findings import Finding, Severity, format_path
from ..load import Loaded
from ..model import Factory
from ..resolve import Site

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    loc: Loc
    message: str
    hint: str
    severity: Severity | None = None  # overrides the rule's default (e.g. a near-miss warning)


@dataclass(frozen=True)
class Rule:
    code: str
    severity: Severity
    area: str
    title: str
    check: Callable[[Factory, Site], Iterable[Issue]]

    @property
    def doc(self) -> str:
        return " ".join((self.check.__doc__ or "").split())


REGISTRY: dict[str, Rule] = {}

AREAS = {
    "NOD": "nodes",
    "PWR": "power and cooling",
    "FAB": "fabric",
    "NET": "network",
    "STO": "storage",
    "SLM": "slurm",
    "K8S": "kubernetes",
    "INF": "inference",
    "SOV": "sovereignty",
    "TEN": "tenancy",
    "AWS": "cloud (aws)",
}


def rule(code: str, severity: Severity, title: str):
    """Register a rule. Codes are stable forever: a retired code is never reused."""

    def wrap(fn: Callable[[Factory, Site], Iterable[Issue]]):
        if code in REGISTRY:
            raise ValueError(f"rule code {code} registered twice")
        REGISTRY[code] = Rule(code, severity, AREAS[code[:3]], title, fn)
        return fn

    return wrap


def run_rules(factory: Factory, site: Site, loaded: Loaded, skip: Iterable[str] = ()) -> list[Finding]:
    skipped = set(skip)
    out: list[Finding] = []
    for code in sorted(REGISTRY):
        if code in skipped:
            continue
        r = REGISTRY[code]
        try:
            issues = list(r.check(factory, site))
        except Exception as e:  # noqa: BLE001 - a broken rule must not hide the other findings
            out.append(Finding("INT001", Severity.warning, "<document>",
                               f"rule {r.code} ({r.check.__name__}) crashed: {type(e).__name__}: {e}",
                               "this is a factoryctl bug; please report it with the file", loaded.path,
                               rule=r.check.__name__))
            continue
        for i in issues:
            line, col = loaded.position(i.loc)
            out.append(Finding(r.code, i.severity or r.severity, format_path(i.loc), i.message,
                               i.hint, loaded.path, line, col, rule=r.check.__name__))
    return out
