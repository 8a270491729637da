"""`factoryctl verify FILE`: host checks (and the benchmark stage) against a running site,
results into `.factory/<name>/runs/<id>/`. The stage is factoryctl/verify/hostchecks.py."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from ..session import open_site
from ..ui import UI, RecordingUI
from ..verify.results import VerifyResult
from .app import Connection, FileArg, Format, app, err, out
from .console import ConsoleUI


def progress_ui(fmt: str) -> UI:
    """Progress on stderr in text mode; none with --format json (stdout is the document)."""
    return RecordingUI() if fmt == "json" else ConsoleUI(err, err)


def show(res: VerifyResult, fmt: str, console: Console = out) -> None:
    from ..verify import writers

    if fmt == "json":
        sys.stdout.write(writers.to_json(res))
    else:
        ui = ConsoleUI(console, err)
        writers.show_text(res, ui)
        ui.show(f"results: {res.folder}")


@app.command()
def verify(
    file: Path = FileArg,
    connection: Connection = typer.Option(Connection.ssh, "--connection", "-c",
                                          help="ssh: every host through the inventory (lab: its key and ssh_config); "
                                               "local: the checks of this machine only."),
    bench: bool = typer.Option(False, "--bench", help="Also run the benchmark stage through the site's scheduler."),
    quarantine: bool = typer.Option(False, "--quarantine", help="Drain (Slurm) or cordon and taint (Kubernetes) "
                                    "nodes whose own checks fail, reason 'factoryctl: <checks>'; resume the nodes "
                                    "factoryctl drained once they pass. Never touches a node drained by anyone else."),
    diag: int | None = typer.Option(None, "--diag", min=1, max=4, help="Also run NVIDIA DCGM diagnostics "
                                    "(`dcgmi diag -r N -j`) on every GPU node at once, through srun where Slurm runs "
                                    "them, else over SSH: 1 quick (seconds), 2 medium (~2 min), 3 long (~30 min), "
                                    "4 extended (1-2 h). Failing tests fail verify and feed --quarantine."),
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

    With --diag N, `dcgmi diag -r N -j` runs on every GPU node in parallel and each test is a
    check of the node (skipped with the reason where dcgmi is absent).

    With --quarantine, nodes whose own checks fail are drained in Slurm and cordoned and tainted
    in Kubernetes; the ones factoryctl drained are resumed once they pass (docs/verify.md).

    Results go to .factory/<name>/runs/<id>/ (verify.json, bench.json). Checks whose hardware
    is absent are skipped with the reason. Exit 1 on any failed check or benchmark figure.

    Example: factoryctl verify examples/lab.yaml --bench --junit verify.xml"""
    from ..verify import writers
    from ..verify.hostchecks import HostCheckOptions, verify_site

    opts = HostCheckOptions(connection.value, ssh_config, local_name, jobs, limit or None, partition, nodes,
                            timeout, bench, quarantine, diag)
    with open_site(file, "nothing verified") as s:
        res = verify_site(s.checked, s.workspace, opts, progress_ui(fmt.value))
    if junit is not None:
        writers.write_junit(res, junit)
    show(res, fmt.value)
    if report:
        from ..report.html import write_report

        path = write_report(s.checked, s.workspace.root / "report", s.workspace.root)
        (err if fmt.value == "json" else out).print(f"report: {path}")
    raise typer.Exit(res.exit_code)
