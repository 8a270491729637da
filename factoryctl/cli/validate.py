"""`factoryctl validate`: every finding of a factory.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..errors import ExitCode
from ..findings import Severity, reaches
from ..findings.formats import as_json, sarif, text
from ..session import check
from .app import FailLevel, FileArg, FindingFormat, app


@app.command()
def validate(
    file: Path = FileArg,
    fmt: FindingFormat = typer.Option(FindingFormat.text, "--format", "-f", help="text, json or sarif."),
    fail_level: FailLevel = typer.Option(FailLevel.error, "--fail-level", help="Lowest severity that fails the run."),
    skip: list[str] = typer.Option([], "--skip-rule", help="Rule code to skip (repeatable)."),
) -> int:
    """Check a factory.yaml: schema and semantic rules, every finding with its position and a hint.

    Example: factoryctl validate examples/reference/factory.yaml --format sarif > findings.sarif"""
    from ..rules import REGISTRY

    c = check(file, tuple(skip))
    findings = c.sorted_findings
    failed = reaches(findings, Severity(fail_level.value))
    if fmt is FindingFormat.json:
        sys.stdout.write(as_json(findings, fail_level.value, failed))
    elif fmt is FindingFormat.sarif:
        sys.stdout.write(sarif(findings, REGISTRY))
    else:
        sys.stdout.write(text(findings, c.loaded.text if c.loaded else None, fail_level.value))
    return ExitCode.FAILED if failed else ExitCode.OK
