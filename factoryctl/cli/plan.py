"""`factoryctl plan`."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import FileArg, Format, app, err, out


@app.command()
def plan(
    file: Path = FileArg,
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 2 when there are changes."),
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
    terraform_bin: str | None = typer.Option(None, "--terraform-bin", envvar="FACTORYCTL_TERRAFORM_BIN",
                                             help="A terraform/tofu binary instead of the embedded Terraform "
                                                  "(env FACTORYCTL_TERRAFORM_BIN)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, help="Stacks planned at once (default: CPUs)."),
) -> None:
    """Validate, render into .factory/<name>/build, plan every Terraform unit stack (saving the
    plans apply runs) and summarise: resources, Ansible plays, changed files, impact."""
    from ..ops.plan import plan_command

    raise typer.Exit(plan_command(file, fmt.value, detailed_exitcode, terraform_bin, jobs, out, err))
