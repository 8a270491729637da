"""`factoryctl inspect`: the resolved facts of a site."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..findings import Severity, reaches
from ..findings.formats import text
from ..session import check
from .app import EXIT_FAIL, EXIT_OK, FileArg, Format, app, out


@app.command()
def inspect(
    file: Path = FileArg,
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
    all_hosts: bool = typer.Option(False, "--all-hosts", help="List every host in text output."),
) -> None:
    """Print the resolved facts: hosts, racks and power, fabric sizes, IP plan, inference memory.

    Prints them even when rules find errors (then exits 1); refuses only a file that cannot
    be loaded into the model."""
    c = check(file)
    findings = c.sorted_findings
    failed = reaches(findings, Severity.error)
    if c.site is None:
        sys.stderr.write(text(findings, c.loaded.text if c.loaded else None))
        raise typer.Exit(EXIT_FAIL)
    if fmt is Format.json:
        doc = c.site.to_dict() | {"findings": [f.to_dict() for f in findings]}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        from .views import inspect_tables

        inspect_tables(c.site, out, all_hosts)
        if findings:
            sys.stdout.write(text(findings, c.loaded.text))
    raise typer.Exit(EXIT_FAIL if failed else EXIT_OK)
