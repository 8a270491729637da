"""`factoryctl destroy`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ExitCode
from .app import AutoApproveOpt, FileArg, TerraformBinOpt, app, err, out
from .console import ConsoleUI


@app.command()
def destroy(
    file: Path = FileArg,
    auto_approve: bool = AutoApproveOpt,
    terraform_bin: str | None = TerraformBinOpt,
) -> None:
    """Tear the site down: every Terraform resource (lab hosts included), then what is left of
    a lab (namespaces, mounts, links), fact cache, saved plans and applied.json.

    Example: factoryctl destroy examples/lab.yaml --auto-approve"""
    from ..ops.destroy import destroy as stage
    from ..session import open_site

    # destroy needs only the name and the provider, not a valid site
    with open_site(file, "nothing destroyed", lock="destroy", require="schema") as s:
        result = stage(s.checked, s.workspace, auto_approve, terraform_bin, ConsoleUI(out, err))
    if result.nothing:
        out.print("nothing to destroy")
    else:
        out.print(f"Destroy complete: {result.resources} resource(s) destroyed; logs in {result.run_dir}")
    raise typer.Exit(ExitCode.OK)
