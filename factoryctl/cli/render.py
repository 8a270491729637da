"""`factoryctl render`: the artifact tree."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ExitCode
from ..session import check, open_site, refuse_on_errors
from .app import FileArg, app, out, path_arg

REFUSAL = "nothing rendered"


@app.command()
def render(
    file: Path = FileArg,
    out_dir: Path | None = typer.Option(None, "--out", help="Output folder (default .factory/<name>/build beside FILE).",
                                        parser=path_arg),
    check_only: bool = typer.Option(False, "--check", help="Write nothing; exit 2 if the tree on disk would change."),
) -> int:
    """Render Terraform, Ansible, Kubernetes and Slurm artifacts, byte-for-byte deterministic.

    --out must be a new or empty folder, or one factoryctl rendered: only the files of its
    earlier render are replaced, and anything else in it is kept.

    Example: factoryctl render examples/reference/factory.yaml --out build/ --check"""
    from ..render import refuse_target
    from ..render import render as render_tree

    if out_dir is not None:  # outside the workspace: render locks the output's own folder
        c = refuse_on_errors(check(file), REFUSAL)
        refuse_target(out_dir, Path(c.path))
        dest, res = out_dir, render_tree(c.site, out_dir, check_only=check_only)
    else:  # the workspace's build: the site's lock, as plan and apply take it
        with open_site(file, REFUSAL, lock=None if check_only else "render") as s:
            dest, res = s.workspace.build, render_tree(s.site, s.workspace.build, check_only=check_only)
    for label, items in (("changed", res.changed), ("added", res.added), ("removed", res.removed)):
        for rel in items:
            out.print(f"  {label:<8} {rel}")
    verb = "would change" if check_only else "rendered"
    if res.differs:
        out.print(f"{verb}: {len(res.changed)} changed, {len(res.added)} added, {len(res.removed)} removed in {dest}")
    else:
        out.print(f"up to date: {len(res.files)} files in {dest}")
    return ExitCode.CHANGES if check_only and res.differs else ExitCode.OK
