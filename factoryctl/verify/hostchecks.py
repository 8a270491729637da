"""The verify stage: the host checks generated from factory.yaml and, when asked, the benchmark
stage through the site's scheduler, into a new runs/<id>/ folder. `factoryctl verify`,
`factoryctl bench run` and `factoryctl up` all run it from here."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import FactoryctlError
from ..session import Checked
from ..ui import UI
from ..workspace import Workspace
from .results import BenchResult, VerifyResult, write_run_folder


@dataclass
class HostCheckOptions:
    """How verify reaches the hosts and what it runs there."""

    connection: str = "ssh"  # ssh | local
    ssh_config: Path | None = None
    local_name: str | None = None
    jobs: int | None = None  # pytest-xdist workers (None: by site size)
    limit: list[str] | None = None  # only these hosts
    partition: str | None = None  # benchmark: the Slurm partition (None: the default one)
    nodes: int | None = None  # benchmark: this many nodes (None: the whole partition)
    timeout: int = 900  # seconds for the host checks, and for each benchmark step
    bench: bool = False  # also run the benchmark stage
    quarantine: bool = False  # drain failing nodes, resume those factoryctl drained that pass (quarantine.py)
    diag: int | None = None  # dcgmi diag run level on every GPU node (diag.py), None: not run


class SiteNotUp(FactoryctlError):
    """The site's hosts cannot be reached (a lab that is not running): nothing was checked."""


def ensure_up(checked: Checked, ws: Workspace, options: HostCheckOptions) -> None:
    """SiteNotUp when a lab site is not running, read from the lab's state and the kernel only
    (nothing is sent to find out)."""
    from .run import lab_not_up

    if options.connection == "ssh" and (why := lab_not_up(checked.site, ws.root)):
        raise SiteNotUp(f"{why}: run `factoryctl up {checked.path}` (or plan and apply) first")


def executor(conn):
    """(host, command) -> Out through the same connection the host checks used."""
    from ..bench.slurm_stage import Out

    def run(host: str, command: str) -> Out:
        try:
            r = conn.testinfra_host(host).run(command)
        except Exception as exc:  # noqa: BLE001 - an unreachable host is a result, not a crash
            why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
            return Out(255, "", why, error=why)
        return Out(r.rc, r.stdout, r.stderr)

    return run


def run_serving_stage(checked: Checked, ws: Workspace, folder: Path, ui: UI):
    from .serving import run_serving_stage as stage

    return stage(checked, ws, folder, ui)


def run_bench_stage(checked: Checked, conn, folder: Path, options: HostCheckOptions, ui: UI) -> BenchResult:
    from ..bench import slurm_stage

    stage_root = str((folder / "bench-worker").resolve()) if conn.mode == "local" else None
    return slurm_stage.run_stage(checked.factory, checked.site, executor(conn), partition=options.partition,
                                 nodes=options.nodes, timeout=options.timeout, ui=ui, stage_root=stage_root)


def run_quarantine(checked: Checked, ws: Workspace, conn, res: VerifyResult, ui: UI) -> None:
    """Drain what failed, resume what factoryctl drained and passes again; the record is
    written under the site's lock. A failed drain or resume is a problem of the run."""
    from ..workspace import WorkspaceLocked
    from . import quarantine

    try:
        with ws.lock("verify --quarantine"):
            actions = quarantine.quarantine(checked.site, ws, res.checks, executor(conn), res.run_id)
    except (quarantine.QuarantineError, WorkspaceLocked) as e:  # the checks' results are still written
        res.problems.append(f"quarantine: nothing drained or resumed: {e}")
        res.quarantine = []
        return
    res.quarantine = [a.to_dict() for a in actions]
    done = {k: sum(a.action == k for a in actions) for k in ("drained", "resumed", "left")}
    ui.info("quarantine: " + ", ".join(f"{n} {k}" for k, n in done.items()))
    for a in actions:
        if a.action in ("failed", "refused"):
            res.problems.append(f"quarantine of {a.node} ({a.scheduler}) {a.action}: {a.detail}")


def run_diag_stage(checked: Checked, conn, res: VerifyResult, options: HostCheckOptions, ui: UI) -> None:
    """`--diag N`: dcgmi diag on every GPU node, its results added to the host checks' (so they
    fail verify and feed --quarantine)."""
    from . import diag

    local = conn.mode == "local"  # this machine is one declared host: its own diag, no srun
    results, problems = diag.run_diag(checked.site, executor(conn), options.diag, res.run_id,
                                      checked.factory.verify.health,
                                      [conn.local_name] if local else options.limit, ui.info, scheduler=not local)
    res.checks += results
    res.problems += problems


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_host_checks(checked: Checked, ws: Workspace, options: HostCheckOptions, ui: UI) -> VerifyResult:
    """Run the generated host checks (and the benchmark stage with options.bench) into a new
    runs/<id>/ folder with verify.json (and bench.json); the result knows its folder."""
    from . import run as hostchecks

    folder = ws.new_run("verify")
    t0, started = time.monotonic(), _now()
    hc_dir = folder / "hostchecks"
    conn = hostchecks.connect(checked.site, ws.root, hc_dir, options.connection, options.ssh_config,
                              options.local_name)
    ui.info(f"host checks: {checked.factory.metadata.name} over {conn.mode}"
            + (f" (inventory {conn.inventory})" if conn.inventory else ""))
    hc = hostchecks.run_checks(checked.site, conn, hc_dir, jobs=options.jobs, limit=options.limit,
                               timeout=options.timeout)
    res = VerifyResult(checked.factory.metadata.name, folder.name, conn.mode, hc.results, problems=hc.problems,
                       started=started)
    if options.diag:
        run_diag_stage(checked, conn, res, options, ui)
    if options.quarantine:
        run_quarantine(checked, ws, conn, res, ui)
    if options.bench:
        res.bench = run_bench_stage(checked, conn, folder, options, ui)
        res.serving = run_serving_stage(checked, ws, folder, ui)
    shutil.rmtree(hc_dir / "ansible-home", ignore_errors=True)
    res.finished = _now()
    res.duration_s = round(time.monotonic() - t0, 3)
    write_run_folder(res, folder)
    return res


def verify_site(checked: Checked, ws: Workspace, options: HostCheckOptions, ui: UI) -> VerifyResult:
    """`factoryctl verify`: the host checks of a site that is up (SiteNotUp otherwise)."""
    ensure_up(checked, ws, options)
    return run_host_checks(checked, ws, options, ui)


def run_bench(checked: Checked, ws: Workspace, options: HostCheckOptions, ui: UI) -> VerifyResult:
    """`factoryctl bench run`: only the benchmark stage, into a new runs/<id>/ with bench.json."""
    from . import run as hostchecks

    ensure_up(checked, ws, options)
    folder = ws.new_run("bench")
    t0, started = time.monotonic(), _now()
    conn = hostchecks.connect(checked.site, ws.root, folder / "connection", options.connection,
                              options.ssh_config, options.local_name)
    res = VerifyResult(checked.factory.metadata.name, folder.name, conn.mode, started=started, host_checks=False)
    res.bench = run_bench_stage(checked, conn, folder, options, ui)
    res.serving = run_serving_stage(checked, ws, folder, ui)
    shutil.rmtree(folder / "connection" / "ansible-home", ignore_errors=True)
    res.finished = _now()
    res.duration_s = round(time.monotonic() - t0, 3)
    write_run_folder(res, folder)
    return res
