"""`factoryctl up`: plan, apply and verify."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import ExitCode
from .app import AutoApproveOpt, ConvergeOpt, FileArg, Phase, TerraformBinOpt, app, err, out
from .apply import apply_options, show_apply
from .console import ConsoleUI


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
    srun on every compute node. Exit 1 when any check fails.

    Example: factoryctl up examples/lab.yaml --auto-approve"""
    from ..ops.plan import PlanDocument
    from ..ops.up import up as stage
    from ..session import open_site
    from ..verify import writers
    from ..verify.smoke import show_checks
    from .plan import show_plan

    def show(step) -> None:
        if isinstance(step, PlanDocument):
            show_plan(step, out)
        else:
            show_apply(step)

    t0 = time.perf_counter()
    opts = apply_options(auto_approve, only, limit, tags, plain, terraform_bin, converge)
    out.print(f"[bold]1/3 plan[/]: validating and rendering {file}")
    with open_site(file, "nothing planned or applied", lock="up") as s:
        ui = ConsoleUI(out, err, plain)
        result = stage(s.checked, s.workspace, opts, ui, show, started=t0)
    if result.verified:
        writers.show_text(result.host_checks, ui)
        show_checks(result.checks, ui)
        out.print(f"results: {result.results}")
        for e in result.endpoints:
            state = "ready" if e.ready else f"NOT ready: {e.reason}"
            out.print(f"endpoint {e.name}: {e.url or '-'} ({e.model}, {state})")
        out.print(f"up {'complete' if result.ok else 'FAILED verification'} in {result.seconds:.1f} s")
    raise typer.Exit(ExitCode.OK if result.ok else ExitCode.FAILED)
