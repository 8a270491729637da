"""`factoryctl drift`."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import FileArg, Format, TerraformBinOpt, app, err, out


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
    optionally runs the host checks (runtime). Exit 0 in sync, 2 drift, 1 could not check."""
    from ..drift import drift_command
    from ..drift.command import Options as DriftOptions

    raise typer.Exit(drift_command(file, DriftOptions(fmt.value, junit, sarif, verify, full, terraform_bin), out, err))
