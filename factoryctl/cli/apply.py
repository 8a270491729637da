"""`factoryctl apply`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ExitCode
from .app import AutoApproveOpt, ConvergeOpt, FileArg, Phase, TerraformBinOpt, app, err, out
from .console import ConsoleUI


def apply_options(auto_approve: bool, only: Phase | None, limit: str | None, tags: str | None, plain: bool,
                  terraform_bin: str | None, converge: bool):
    """The apply stage's options from the command line (apply, up)."""
    from ..ops.apply import ApplyOptions

    return ApplyOptions(auto_approve=auto_approve, only=only.value if only else None, limit=limit, tags=tags,
                   plain=plain, terraform_bin=terraform_bin, converge=converge)


def show_apply(result, console=out) -> None:
    """The closing line of an apply (ApplyResult); the recap table showed as site.yml ended."""
    tail = (f"recorded in {result.applied}" if result.applied is not None
            else "partial run (--only/--limit/--tags): applied.json left as it was")
    console.print(f"Apply complete in {result.seconds:.1f} s; {tail}; logs in {result.run_dir}")


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
    .factory/<name>/runs/<time>/; applied.json is written only on success.

    Example: factoryctl apply examples/lab.yaml --auto-approve"""
    from ..ops.apply import apply as stage
    from ..session import open_site

    opts = apply_options(auto_approve, only, limit, tags, plain, terraform_bin, converge)
    with open_site(file, "nothing applied", lock="apply") as s:
        result = stage(s.checked, s.workspace, opts, ConsoleUI(out, err, plain))
    show_apply(result)
    raise typer.Exit(ExitCode.OK if result.ok else ExitCode.FAILED)
