"""`factoryctl apply`."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import AutoApproveOpt, ConvergeOpt, FileArg, Phase, TerraformBinOpt, app, err, out


def _apply_options(auto_approve: bool, only: Phase | None, limit: str | None, tags: str | None, plain: bool,
                   terraform_bin: str | None, converge: bool):
    from ..ops.apply import Options

    return Options(auto_approve=auto_approve, only=only.value if only else None, limit=limit, tags=tags,
                   plain=plain, terraform_bin=terraform_bin, converge=converge)


@app.command()
def apply(
    file: Path = FileArg,
    auto_approve: bool = AutoApproveOpt,
    only: Phase | None = typer.Option(None, "--only", help="Run one phase: terraform, ansible or kubernetes."),
    limit: str | None = typer.Option(None, "--limit", help="Ansible host pattern, e.g. node01 or slurm_compute."),
    tags: str | None = typer.Option(None, "--tags", help="Ansible tags (comma-separated), e.g. slurm."),
    plain: bool = typer.Option(False, "--plain", help="Plain progress lines instead of a live table (CI)."),
    terraform_bin: str | None = TerraformBinOpt,
    converge: bool = ConvergeOpt,
) -> None:
    """Apply the saved plan: Terraform stacks, then site.yml through Ansible with live per-host
    progress, then the Kubernetes check. Refuses a stale plan (run `factoryctl plan`). When
    nothing changed since the last apply, hosts the probe finds as that apply left them skip
    site.yml (--converge runs it everywhere). Logs and events go to
    .factory/<name>/runs/<time>/; applied.json is written only on success."""
    from ..ops.apply import apply_command

    raise typer.Exit(apply_command(file, _apply_options(auto_approve, only, limit, tags, plain, terraform_bin,
                                                        converge), out, err))
