"""load -> model -> resolve -> rules: the front half of the compiler, shared by every command."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from .errors import InputRefused, UsageProblem
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


# --- which factory file a command means -----------------------------------------------------

FILE_ENV = "FACTORYCTL_FILE"  # the factory file of commands run without --file (like KUBECONFIG)


def is_factory_document(data: object) -> bool:
    """Whether parsed YAML is a factory file rather than some other YAML in the folder: a
    mapping that says `kind: Factory` or `apiVersion: factoryctl/...`, or one with both
    `metadata` and `site` (a draft without the header). Kubernetes manifests carry apiVersion,
    kind and metadata too, but neither that kind nor a `site`, so they do not count."""
    if not isinstance(data, dict):
        return False
    if data.get("kind") == "Factory" or str(data.get("apiVersion", "")).startswith("factoryctl/"):
        return True
    return "metadata" in data and "site" in data


def factory_files(folder: Path) -> list[Path]:
    """The factory files directly in `folder` (*.yaml, *.yml; unreadable or other YAML skipped)."""
    found = []
    for p in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if not p.is_file():
            continue
        try:
            data = load_file(p).data  # bounded read (load/): a huge or odd file is skipped
        except LoadError:
            continue
        if is_factory_document(data):
            found.append(p)
    return found


def find_factory_file(given: Path | None, folder: Path | None = None, required: bool = True) -> Path | None:
    """The factory file a command means: `given` (--file) when there is one, else
    $FACTORYCTL_FILE, else the one factory file in `folder` (default: the current folder).
    Several there: UsageProblem naming them. None there: UsageProblem when `required`, else
    None (the caller has a default of its own)."""
    if given is not None:
        return given
    if env := os.environ.get(FILE_ENV):
        path = Path(env)
        if not path.is_file():
            raise UsageProblem(f"{FILE_ENV}={env} is not a file: set it to a factory.yaml, or unset it "
                               "and pass --file FILE")
        return path
    here = folder or Path.cwd()
    found = factory_files(here)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise UsageProblem(f"{len(found)} factory files in {here}: {names}; pass --file FILE to choose one "
                           f"(or set {FILE_ENV})")
    if required:
        raise UsageProblem(f"no factory file in {here}: pass --file FILE (or set {FILE_ENV}), "
                           "or run from the folder of a factory.yaml")
    return None
