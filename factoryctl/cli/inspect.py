"""`factoryctl inspect`: the resolved facts of a site."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..errors import ExitCode, InputRefused
from ..findings import Severity, reaches
from ..findings.formats import text
from ..session import check
from .app import FileArg, Format, app, out


@app.command()
def inspect(
    file: Path = FileArg,
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
    all_hosts: bool = typer.Option(False, "--all-hosts", help="List every host in text output."),
) -> int:
    """Print the resolved facts: hosts, racks and power, fabric sizes, IP plan, inference memory.

    Prints them even when rules find errors (then exits 1); refuses only a file that cannot
    be loaded into the model.

    Example: factoryctl inspect blueprints/gb300-nvl72-neocloud/factory.yaml --all-hosts"""
    c = check(file)
    findings = c.sorted_findings
    if c.site is None:
        raise InputRefused("no facts to inspect", findings, c.loaded.text if c.loaded else None)
    if fmt is Format.json:
        doc = c.site.to_dict() | {"findings": [f.to_dict() for f in findings]}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        from .views import inspect_tables

        inspect_tables(c.site, out, all_hosts)
        if findings:
            sys.stdout.write(text(findings, c.loaded.text))
    return ExitCode.FAILED if reaches(findings, Severity.error) else ExitCode.OK
