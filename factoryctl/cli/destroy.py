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
    from ..errors import InputRefused
    from ..ops.destroy import destroy as stage
    from ..session import check
    from ..workspace import Workspace

    c = check(file)
    if c.factory is None:  # destroy needs only the name and the provider, not a valid site
        raise InputRefused("nothing destroyed", c.sorted_findings, c.loaded.text if c.loaded else None)
    ws = Workspace.beside(file, c.factory.metadata.name)
    with ws.lock("destroy"):
        result = stage(c, ws, auto_approve, terraform_bin, ConsoleUI(out, err))
    if result.nothing:
        out.print("nothing to destroy")
    else:
        out.print(f"Destroy complete: {result.resources} resource(s) destroyed; logs in {result.run_dir}")
    raise typer.Exit(ExitCode.OK)
