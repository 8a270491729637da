"""load -> model -> resolve -> rules: the front half of the compiler, shared by every command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from .errors import InputRefused
from .findings import Finding, Severity, reaches
from .load import Loaded, LoadError, load_file
from .load.schema_errors import findings_from
from .model import Factory
from .resolve import Site, resolve
from .rules import run_rules
from .workspace import Workspace


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


@dataclass
class SiteSession:
    """A site opened for one command: its checked factory and its workspace (locked when the
    command asked for the lock)."""

    checked: Checked
    workspace: Workspace

    @property
    def site(self) -> Site:
        return self.checked.site

    @property
    def factory(self) -> Factory:
        return self.checked.factory


def refuse_on_errors(c: Checked, refusal: str) -> Checked:
    """The checked factory, or InputRefused (findings first, then `refusal`) when it has
    errors: every command that acts on a site stops on what validate reports."""
    if reaches(c.sorted_findings, Severity.error) or c.site is None:
        raise InputRefused(refusal, c.sorted_findings, c.loaded.text if c.loaded else None)
    return c


def refuse_unless_parsed(c: Checked, refusal: str) -> Checked:
    """The checked factory, or InputRefused when the file does not even load and match the
    schema: for commands (destroy) that need only the site's name and provider, not a valid
    site."""
    if c.factory is None:
        raise InputRefused(refusal, c.sorted_findings, c.loaded.text if c.loaded else None)
    return c


@contextmanager
def open_site(path: str | Path, refusal: str, lock: str | None = None,
              require: Literal["valid", "schema"] = "valid") -> Iterator[SiteSession]:
    """Open a site for a command: load and check the file (InputRefused with the findings when
    it has errors; with require="schema", only when it does not parse into a Factory), find its
    workspace (the one place that computes it: Workspace.beside), and hold the site's lock for
    the whole command when `lock` names the command."""
    checked = check(path)
    if require == "schema":
        c = refuse_unless_parsed(checked, refusal)
    else:
        c = refuse_on_errors(checked, refusal)
    ws = Workspace.beside(Path(path), c.factory.metadata.name)
    if lock is None:
        yield SiteSession(c, ws)
        return
    with ws.lock(lock):
        yield SiteSession(c, ws)
