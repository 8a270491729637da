"""`factoryctl status`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..session import check, refuse_on_errors
from ..workspace import Workspace
from .app import FileArg, Format, app, err, out
from .console import ConsoleUI


@app.command()
def status(
    file: Path = FileArg,
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json (factoryctl.status/v1)."),
) -> None:
    """What is running where on an applied site: each host up or down, Slurm's partitions and
    node states, each inference deployment's job, node, URL and readiness (its /v1/models lists
    the model), and Prometheus. Reads the site; changes nothing. Exit 0 when everything declared
    is up and ready, 1 otherwise or when the site was never applied, 64 on usage errors.

    Example: factoryctl status examples/lab.yaml --format json"""
    from ..verify.status import show_text, site_status

    c = refuse_on_errors(check(file), "status not read")
    ws = Workspace.find(file, c.factory.metadata.name)  # only reads: never creates the workspace
    st = site_status(c, ws, str(file))
    if fmt is Format.json:
        sys.stdout.write(json.dumps(st.to_dict(), indent=2) + "\n")
    else:
        show_text(st, ConsoleUI(out, err))
    raise typer.Exit(0 if st.ok else 1)
