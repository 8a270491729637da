"""`factoryctl up`: plan, apply and verify in one go, under one hold of the site's lock."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console

from .apply import EXIT_FAIL, EXIT_OK, Options, apply_locked
from .workspace import Workspace, WorkspaceLocked


def up_command(file: Path, opts: Options, out: Console, err: Console) -> int:
    from .diagnostics import text as findings_text
    from .engines.terraform import TerraformError
    from .findings import Severity, reaches
    from .pipeline import check
    from .plan import exit_code, record, render_text, run_plan
    from .render import RenderError
    from .smoke import print_checks, run_checks, write_results

    t0 = time.perf_counter()
    out.print(f"[bold]1/3 plan[/]: validating and rendering {file}")
    c = check(file)
    if reaches(c.sorted_findings, Severity.error) or c.site is None:
        sys.stderr.write(findings_text(c.sorted_findings, c.loaded.text if c.loaded else None))
        err.print("error: factory.yaml has errors: nothing planned or applied")
        return EXIT_FAIL
    ws = Workspace.beside(file, c.factory.metadata.name)
    try:
        with ws.lock("up"):
            try:
                doc = run_plan(c, ws, binary=opts.terraform_bin, jobs=opts.jobs)
            except (TerraformError, RenderError) as e:
                err.print(f"error: {e}", markup=False)
                return EXIT_FAIL
            doc["run"] = str(record(ws, doc))
            render_text(doc, out)
            if exit_code(doc, False):
                return EXIT_FAIL
            out.print()
            out.print("[bold]2/3 apply[/]")
            rc = apply_locked(c, ws, opts, out, err)
            if rc != EXIT_OK:
                return rc
            if not opts.runs("ansible"):
                out.print("3/3 verify: skipped (the ansible phase did not run)")
                return EXIT_OK
            out.print()
            out.print("[bold]3/3 verify[/]: hosts, munge, sinfo, srun over SSH")
            checks = run_checks(c, ws)
            run = ws.new_run("verify")
            write_results(checks, run / "checks.json")
            print_checks(checks, out)
    except WorkspaceLocked as e:
        err.print(f"error: {e}", markup=False)
        return EXIT_FAIL
    ok = all(ch.ok for ch in checks)
    out.print(f"up {'complete' if ok else 'FAILED verification'} in {time.perf_counter() - t0:.1f} s")
    return EXIT_OK if ok else EXIT_FAIL
