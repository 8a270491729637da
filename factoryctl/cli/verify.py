"""`factoryctl verify FILE` and `factoryctl bench run FILE`: host checks and the benchmark
stage against a running site, results into `.factory/<name>/runs/<id>/`."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from ..session import Checked, check_or_refuse
from ..workspace import Workspace

EXIT_OK, EXIT_FAIL = 0, 1


@dataclass
class Options:
    connection: str = "ssh"  # ssh | local
    ssh_config: Path | None = None
    local_name: str | None = None
    jobs: int | None = None
    limit: list[str] | None = None
    partition: str | None = None
    nodes: int | None = None
    timeout: int = 900


def checked_or_none(file: Path, err: Console) -> Checked | None:
    return check_or_refuse(file, "nothing verified", err)


def new_run_folder(ws: Workspace, kind: str) -> tuple[str, Path]:
    folder = ws.new_run(kind)
    return folder.name, folder


def _not_up(c: Checked, ws: Workspace, opts: Options) -> str | None:
    from ..verify.run import lab_not_up

    return lab_not_up(c.site, ws.root) if opts.connection == "ssh" else None


def executor(conn):
    """(host, command) -> Out through the same connection the host checks used."""
    from ..bench.slurm_stage import Out

    def run(host: str, command: str) -> Out:
        try:
            r = conn.testinfra_host(host).run(command)
        except Exception as exc:  # noqa: BLE001 - an unreachable host is a result, not a crash
            return Out(255, "", f"{type(exc).__name__}: {exc}")
        return Out(r.rc, r.stdout, r.stderr)

    return run


def bench_stage(c: Checked, conn, folder: Path, opts: Options, log):
    from ..bench import slurm_stage as bench

    stage_root = str((folder / "bench-worker").resolve()) if conn.mode == "local" else None
    return bench.run_stage(c.factory, c.site, executor(conn), partition=opts.partition, nodes=opts.nodes,
                           timeout=opts.timeout, log=log, stage_root=stage_root)


def _site(file: Path, opts: Options, fmt: str, err: Console):
    """(checked factory, workspace, progress log) of a site that is up; None after saying
    why not (errors in factory.yaml, a lab that is not running)."""
    c = checked_or_none(file, err)
    if c is None:
        return None
    log = (lambda m: None) if fmt == "json" else (lambda m: err.print(f"[dim]{m}[/dim]"))
    ws = Workspace.beside(file, c.factory.metadata.name)
    if not_up := _not_up(c, ws, opts):
        err.print(f"error: {not_up}: run `factoryctl up {file}` (or plan and apply) first", markup=False)
        return None
    return c, ws, log


def host_checks(c: Checked, ws: Workspace, opts: Options, log, with_bench: bool = False):
    """Run the generated host checks (and the benchmark stage) into a new runs/<id>/ folder
    with verify.json; (VerifyRun, folder). Used by verify and by up."""
    from ..verify import run as hostchecks
    from ..verify import writers
    from ..verify.results import VerifyRun

    rid, folder = new_run_folder(ws, "verify")
    t0, started = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
    hc_dir = folder / "hostchecks"
    conn = hostchecks.connect(c.site, ws.root, hc_dir, opts.connection, opts.ssh_config, opts.local_name)
    log(f"host checks: {c.factory.metadata.name} over {conn.mode}"
        + (f" (inventory {conn.inventory})" if conn.inventory else ""))
    hc = hostchecks.run_checks(c.site, conn, hc_dir, jobs=opts.jobs, limit=opts.limit, timeout=opts.timeout)
    res = VerifyRun(c.factory.metadata.name, rid, conn.mode, hc.results, problems=hc.problems, started=started)
    if with_bench:
        res.bench = bench_stage(c, conn, folder, opts, log)
    shutil.rmtree(hc_dir / "ansible-home", ignore_errors=True)
    res.finished = datetime.now(UTC).isoformat(timespec="seconds")
    res.duration_s = round(time.monotonic() - t0, 3)
    writers.write_run_folder(res, folder)
    return res, folder


def verify_cmd(file: Path, opts: Options, with_bench: bool, fmt: str, junit: Path | None, report: bool,
               out: Console, err: Console) -> int:
    from ..verify import writers

    ready = _site(file, opts, fmt, err)
    if ready is None:
        return EXIT_FAIL
    c, ws, log = ready
    quiet = fmt == "json"
    res, folder = host_checks(c, ws, opts, log, with_bench)
    if junit is not None:
        writers.write_junit(res, junit)
    if fmt == "json":
        sys.stdout.write(writers.to_json(res))
    else:
        writers.console(res, out)
        out.print(f"results: {folder}")
    if report:
        from ..report.html import write_report

        path = write_report(c, ws.root / "report", ws.root)
        (err if quiet else out).print(f"report: {path}")
    return EXIT_FAIL if res.failed else EXIT_OK


def bench_run_cmd(file: Path, opts: Options, fmt: str, out: Console, err: Console) -> int:
    from ..verify import run as hostchecks
    from ..verify import writers
    from ..verify.results import VerifyRun

    ready = _site(file, opts, fmt, err)
    if ready is None:
        return EXIT_FAIL
    c, ws, log = ready
    rid, folder = new_run_folder(ws, "bench")
    t0, started = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
    conn = hostchecks.connect(c.site, ws.root, folder / "connection", opts.connection, opts.ssh_config,
                              opts.local_name)
    res = VerifyRun(c.factory.metadata.name, rid, conn.mode, started=started)
    res.bench = bench_stage(c, conn, folder, opts, log)
    shutil.rmtree(folder / "connection" / "ansible-home", ignore_errors=True)
    res.finished = datetime.now(UTC).isoformat(timespec="seconds")
    res.duration_s = round(time.monotonic() - t0, 3)
    writers.write_run_folder(res, folder)
    (folder / "verify.json").unlink(missing_ok=True)  # no host checks ran: only bench.json
    if fmt == "json":
        sys.stdout.write(writers.to_json(res))
    else:
        writers.console(res, out)
        out.print(f"results: {folder}")
    return EXIT_FAIL if res.failed else EXIT_OK
