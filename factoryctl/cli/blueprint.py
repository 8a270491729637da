"""`factoryctl blueprint list|show|fork`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from .. import blueprints as bp
from ..errors import ExitCode
from ..findings import Severity, reaches
from ..findings.formats import text
from ..session import check
from .app import Format, app, out, path_arg

blueprint_app = typer.Typer(help="List, show and fork the shipped blueprints.", no_args_is_help=True)
app.add_typer(blueprint_app, name="blueprint")


@blueprint_app.command("list")
def blueprint_list(fmt: Format = typer.Option(Format.text, "--format", "-f")) -> None:
    """List the shipped blueprints."""
    items = bp.all_blueprints()
    if fmt is Format.json:
        doc = [{"name": b.name, "version": b.version, "summary": b.summary} for b in items]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    for b in items:
        out.print(f"[bold]{b.name:<26}[/] {b.summary}")


@blueprint_app.command("show")
def blueprint_show(name: str = typer.Argument(..., help="Blueprint name (see `blueprint list`).")) -> None:
    """Print a blueprint's README and factory.yaml."""
    b = bp.get(name)  # UnknownBlueprint: a usage error
    readme = b.path / "README.md"
    if readme.is_file():
        sys.stdout.write(readme.read_text() + "\n")
    sys.stdout.write(f"--- {b.name}/factory.yaml (version {b.version})\n")
    sys.stdout.write(b.factory_file.read_text())


@blueprint_app.command("fork")
def blueprint_fork(
    name: str = typer.Argument(..., help="Blueprint to start from."),
    dest: Path = typer.Argument(..., help="New site folder (must not exist or be empty).", parser=path_arg),
    sets: list[str] = typer.Option([], "--set", help="Override a value: key.path=value, e.g. metadata.name=fra2 or nodes[1].count=8."),
) -> int:
    """Write a new site folder from a blueprint; its factory.yaml records where it came from.

    Example: factoryctl blueprint fork gb300-nvl72-neocloud sites/nc1 --set metadata.name=nc1"""
    path = bp.fork(name, dest, sets)  # an unknown name, a bad --set or destination: usage errors
    c = check(path)
    findings = c.sorted_findings
    if findings:
        sys.stdout.write(text(findings, c.loaded.text if c.loaded else None))
    out.print(f"forked blueprint {name} into {path}")
    return ExitCode.FAILED if reaches(findings, Severity.error) else ExitCode.OK
