"""`factoryctl blueprint list|show|fork`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from .. import blueprints as bp
from ..findings import Severity, reaches
from ..findings.formats import text
from ..session import check
from .app import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Format, _path, app, err, out

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
    b = _blueprint(name)
    readme = b.path / "README.md"
    if readme.is_file():
        sys.stdout.write(readme.read_text() + "\n")
    sys.stdout.write(f"--- {b.name}/factory.yaml (version {b.version})\n")
    sys.stdout.write(b.factory_file.read_text())


@blueprint_app.command("fork")
def blueprint_fork(
    name: str = typer.Argument(..., help="Blueprint to start from."),
    dest: Path = typer.Argument(..., help="New site folder (must not exist or be empty).", parser=_path),
    sets: list[str] = typer.Option([], "--set", help="Override a value: key.path=value, e.g. metadata.name=fra2 or nodes[1].count=8."),
) -> None:
    """Write a new site folder from a blueprint; its factory.yaml records where it came from."""
    _blueprint(name)
    try:
        path = bp.fork(name, dest, sets)
    except bp.BlueprintError as e:
        err.print(f"error: {e}")
        usage = isinstance(e, bp.DestinationError) or str(e).startswith("--set")
        raise typer.Exit(EXIT_USAGE if usage else EXIT_FAIL) from None
    c = check(path)
    findings = c.sorted_findings
    if findings:
        sys.stdout.write(text(findings, c.loaded.text if c.loaded else None))
    out.print(f"forked blueprint {name} into {path}")
    raise typer.Exit(EXIT_FAIL if reaches(findings, Severity.error) else EXIT_OK)


def _blueprint(name: str) -> bp.Blueprint:
    try:
        return bp.get(name)
    except bp.BlueprintError as e:
        err.print(f"error: {e}")
        raise typer.Exit(EXIT_USAGE) from None
