"""`factoryctl verify FILE` and `factoryctl bench run FILE`: host checks and the benchmark
stage against a running site, results into `.factory/<name>/runs/<id>/`."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from ..session import Checked, check_or_refuse
from ..workspace import Workspace
from .app import EXIT_FAIL, EXIT_OK, Connection, FileArg, Format, app, err, out


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


@app.command()
def verify(
    file: Path = FileArg,
    connection: Connection = typer.Option(Connection.ssh, "--connection", "-c",
                                          help="ssh: every host through the inventory (lab: its key and ssh_config); "
                                               "local: the checks of this machine only."),
    bench: bool = typer.Option(False, "--bench", help="Also run the benchmark stage through the site's scheduler."),
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
    junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here (host checks + benchmark figures)."),
    report: bool = typer.Option(False, "--report", help="Write the HTML report (.factory/<name>/report/report.html)."),
    ssh_config: Path | None = typer.Option(None, "--ssh-config", exists=True, dir_okay=False,
                                           help="ssh_config for reaching the hosts (aliases, jump hosts, keys)."),
    limit: list[str] = typer.Option([], "--host", help="Check only this host (repeatable)."),
    local_name: str | None = typer.Option(None, "--local-name", help="With --connection local: which declared host "
                                          "this machine is (default: its hostname)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, help="Parallel pytest-xdist workers (default: 1 below 8 hosts, then one per 8 hosts, up to the CPUs)."),
    partition: str | None = typer.Option(None, "--partition", help="Benchmark this Slurm partition (default: the default one)."),
    nodes: int | None = typer.Option(None, "--nodes", min=1, help="Benchmark on this many nodes (default: the whole partition)."),
    timeout: int = typer.Option(900, "--timeout", min=30, help="Seconds for the host checks, and for each benchmark step."),
) -> None:
    """Check the running site against factory.yaml: hostnames, packages, daemons and ports per
    role, mounts, Slurm partitions and nodes, GPUs, NVLink, fabric ports, Kubernetes nodes,
    inference endpoints; with --bench, nccl-tests (or the built-in benchmark) through srun.

    Results go to .factory/<name>/runs/<id>/ (verify.json, bench.json). Checks whose hardware
    is absent are skipped with the reason. Exit 1 on any failed check or benchmark figure."""
    opts = Options(connection.value, ssh_config, local_name, jobs, limit or None, partition,
                                   nodes, timeout)
    raise typer.Exit(verify_cmd(file, opts, bench, fmt.value, junit, report, out, err))
