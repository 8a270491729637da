"""`factoryctl up`: plan, apply and verify in one go, under one hold of the site's lock. Verify
is the generated host checks of `factoryctl verify` (results in runs/<id>/verify.json, read
by the report) plus the Slurm checks only a running cluster answers: munge across hosts,
every partition idle in sinfo, srun on every compute node."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from ..workspace import Workspace, WorkspaceLocked
from .apply import EXIT_FAIL, EXIT_OK, Options, apply_locked


def up_command(file: Path, opts: Options, out: Console, err: Console) -> int:
    from ..engines.terraform import TerraformError
    from ..render import RenderError
    from ..session import check_or_refuse
    from ..ui import RecordingUI
    from ..verify import writers
    from ..verify.hostchecks import HostCheckOptions, run_host_checks
    from ..verify.smoke import print_checks, run_checks, write_results
    from .plan import exit_code, record, render_text, run_plan

    t0 = time.perf_counter()
    out.print(f"[bold]1/3 plan[/]: validating and rendering {file}")
    c = check_or_refuse(file, "nothing planned or applied", err)
    if c is None:
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
            out.print("[bold]3/3 verify[/]: the host checks factory.yaml implies (as `factoryctl verify`), "
                      "then munge across hosts, sinfo and srun over SSH")
            res = run_host_checks(c, ws, HostCheckOptions(), RecordingUI())
            folder = res.folder
            writers.console(res, out)
            checks = run_checks(c, ws)
            write_results(checks, folder / "checks.json")
            print_checks(checks, out)
            out.print(f"results: {folder}")
    except WorkspaceLocked as e:
        err.print(f"error: {e}", markup=False)
        return EXIT_FAIL
    ok = all(ch.ok for ch in checks) and not res.failed
    out.print(f"up {'complete' if ok else 'FAILED verification'} in {time.perf_counter() - t0:.1f} s")
    return EXIT_OK if ok else EXIT_FAIL
