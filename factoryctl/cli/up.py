"""`factoryctl up`: plan, apply and verify."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import AutoApproveOpt, ConvergeOpt, FileArg, Phase, TerraformBinOpt, app, err, out
from .apply import _apply_options


@app.command()
def up(
    file: Path = FileArg,
    auto_approve: bool = AutoApproveOpt,
    only: Phase | None = typer.Option(None, "--only", help="Run one phase: terraform, ansible or kubernetes."),
    limit: str | None = typer.Option(None, "--limit", help="Ansible host pattern."),
    tags: str | None = typer.Option(None, "--tags", help="Ansible tags (comma-separated)."),
    plain: bool = typer.Option(False, "--plain", help="Plain progress lines instead of a live table (CI)."),
    terraform_bin: str | None = TerraformBinOpt,
    converge: bool = ConvergeOpt,
) -> None:
    """Plan, apply and verify in one go: every host reachable, munge, sinfo partitions idle,
    srun on every compute node. Exit 1 when any check fails."""
    from ..ops.up import up_command

    raise typer.Exit(up_command(file, _apply_options(auto_approve, only, limit, tags, plain, terraform_bin,
                                                     converge), out, err))
