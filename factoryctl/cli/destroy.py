"""`factoryctl destroy`."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import AutoApproveOpt, FileArg, TerraformBinOpt, app, err, out


@app.command()
def destroy(
    file: Path = FileArg,
    auto_approve: bool = AutoApproveOpt,
    terraform_bin: str | None = TerraformBinOpt,
) -> None:
    """Tear the site down: every Terraform resource (lab hosts included), then what is left of
    a lab (namespaces, mounts, links), fact cache, saved plans and applied.json."""
    from ..ops.destroy import destroy_command

    raise typer.Exit(destroy_command(file, auto_approve, terraform_bin, out, err))
