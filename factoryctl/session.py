"""load -> model -> resolve -> rules: the front half of the compiler, shared by every command."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .findings import Finding, Severity
from .load import Loaded, LoadError, load_file
from .load.schema_errors import findings_from
from .model import Factory
from .resolve import Site, resolve
from .rules import run_rules


@dataclass
class Checked:
    path: str
    loaded: Loaded | None = None
    factory: Factory | None = None
    site: Site | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=Finding.sort_key)


def check(path: str | Path, skip: tuple[str, ...] = ()) -> Checked:
    """Everything that is wrong with a factory.yaml, every finding collected."""
    out = Checked(str(path))
    try:
        out.loaded = load_file(path)
    except LoadError as e:
        out.findings = e.findings
        return out
    try:
        out.factory = Factory.model_validate(out.loaded.data)
    except ValidationError as e:
        out.findings = findings_from(e, out.loaded, Factory)
        return out
    try:
        out.site = resolve(out.factory)
    except Exception as e:  # noqa: BLE001 - a resolve bug must not become a traceback
        out.findings = [Finding("INT002", Severity.error, "<document>",
                                f"could not derive the site's facts: {type(e).__name__}: {e}",
                                "this is a factoryctl bug; please report it with the file", out.path)]
        return out
    out.findings = run_rules(out.factory, out.site, out.loaded, skip)
    return out


def check_or_refuse(path: str | Path, refusal: str, err=None) -> Checked | None:
    """The checked factory, or None after printing its errors (with positions and hints) and
    `error: factory.yaml has errors: <refusal>`: what every command that acts on a site does
    first."""
    import sys

    from .findings import reaches
    from .findings.formats import text

    c = check(path)
    if not (reaches(c.sorted_findings, Severity.error) or c.site is None):
        return c
    sys.stderr.write(text(c.sorted_findings, c.loaded.text if c.loaded else None))
    if err is not None:
        err.print(f"error: factory.yaml has errors: {refusal}")
    return None
