"""`factoryctl render`: the artifact tree."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import EXIT_CHANGES, EXIT_FAIL, EXIT_OK, FileArg, _checked_or_exit, _path, app, err, out


@app.command()
def render(
    file: Path = FileArg,
    out_dir: Path | None = typer.Option(None, "--out", help="Output folder (default .factory/<name>/build beside FILE).",
                                        parser=_path),
    check_only: bool = typer.Option(False, "--check", help="Write nothing; exit 2 if the tree on disk would change."),
) -> None:
    """Render Terraform, Ansible, Kubernetes and Slurm artifacts, byte-for-byte deterministic.

    --out must be a new or empty folder, or one factoryctl rendered: only the files of its
    earlier render are replaced, and anything else in it is kept."""
    from contextlib import nullcontext

    from ..render import RenderError, UnsafeOutput, refuse_target
    from ..render import render as do_render
    from ..workspace import Workspace, WorkspaceLocked

    c = _checked_or_exit(file)
    try:
        if out_dir is not None:  # outside the workspace: render locks the output's own folder
            refuse_target(out_dir, Path(c.path))
            dest, held = out_dir, nullcontext()
        else:  # the workspace's build: the site's lock, as plan and apply take it
            ws = Workspace.beside(Path(c.path), c.factory.metadata.name)
            dest, held = ws.build, (nullcontext() if check_only else ws.lock("render"))
        with held:
            res = do_render(c.site, dest, check_only=check_only)
    except (UnsafeOutput, WorkspaceLocked) as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(EXIT_FAIL) from None
    except RenderError as e:
        err.print(f"error: render failed: {e}")
        raise typer.Exit(EXIT_FAIL) from None
    for label, items in (("changed", res.changed), ("added", res.added), ("removed", res.removed)):
        for rel in items:
            out.print(f"  {label:<8} {rel}")
    verb = "would change" if check_only else "rendered"
    if res.differs:
        out.print(f"{verb}: {len(res.changed)} changed, {len(res.added)} added, {len(res.removed)} removed in {dest}")
    else:
        out.print(f"up to date: {len(res.files)} files in {dest}")
    raise typer.Exit(EXIT_CHANGES if check_only and res.differs else EXIT_OK)
