"""`factoryctl drift`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..session import open_site
from .app import FileArg, Format, TerraformBinOpt, app, err, out
from .console import ConsoleUI
from .verify import progress_ui


@app.command()
def drift(
    file: Path = FileArg,
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json (the report on stdout)."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write a JUnit XML report here (drift = failure, "
                                      "could not check = error)."),
    sarif: Path | None = typer.Option(None, "--sarif", help="Also write a SARIF 2.1.0 report here."),
    verify: bool = typer.Option(False, "--verify", help="Also run verify's host checks (runtime drift: a daemon "
                                "down, a mount or GPU missing)."),
    full: bool = typer.Option(False, "--full", help="Run the playbook in check mode on every host, not only on "
                              "hosts whose probe moved since the last apply."),
    terraform_bin: str | None = TerraformBinOpt,
) -> None:
    """Does the site still match factory.yaml and the last apply? Re-renders and compares
    (artifacts), plans every Terraform stack with its state (infrastructure), probes every
    host over SSH and runs `ansible-playbook --check --diff` where it moved (configuration),
    optionally runs the host checks (runtime). Exit 0 in sync, 2 drift, 1 could not check.

    Example: factoryctl drift examples/lab.yaml --junit drift.xml --sarif drift.sarif"""
    from ..drift import DriftOptions, host_positions, report, run_drift

    ui = progress_ui(fmt.value)
    with open_site(file, "drift not checked", lock="drift") as s:
        res = run_drift(s.checked, s.workspace, DriftOptions(verify, full, terraform_bin), ui)
    if junit:
        report.write_junit(res, junit)
    if sarif:
        report.write_sarif(res, sarif, host_positions(s.checked))
    if fmt is Format.json:
        sys.stdout.write(report.to_json(res))
    else:
        report.show_text(res, ConsoleUI(out, err))
    raise typer.Exit(res.exit_code)
