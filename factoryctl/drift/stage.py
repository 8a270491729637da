"""The drift stage: each check in turn (artifacts, infrastructure, hosts, runtime), one
DriftResult with its exit code (see __init__)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..engines.lab.site import run_secrets
from ..errors import ExitCode
from ..ops.hoststate import baseline, probe
from ..session import Checked
from ..ui import UI
from ..workspace import Workspace, write_json
from . import artifacts, config, infra


@dataclass
class DriftOptions:
    verify: bool = False  # also run verify's host checks (runtime drift)
    full: bool = False  # the check-mode playbook on every host, not only where the probe moved
    terraform_bin: str | None = None


@dataclass
class HostDrift:
    name: str
    checked_by: str = ""  # probe | ansible-check | none
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)  # probe: key -> (was, is)
    changes: list[config.TaskChange] = field(default_factory=list)
    runtime: list[dict] = field(default_factory=list)  # failed verify checks
    error: str = ""
    note: str = ""

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "drift" if (self.changes or self.runtime) else "in-sync"

    def to_dict(self) -> dict:
        return {"host": self.name, "status": self.status, "checked_by": self.checked_by,
                "moved": {k: {"was": a, "is": b} for k, (a, b) in self.moved.items()},
                "changes": [c.to_dict() for c in self.changes], "runtime": self.runtime,
                "error": self.error, "note": self.note}


@dataclass
class DriftResult:
    """What drift found, per check: artifacts, infrastructure (per stack), hosts (per host:
    configuration and runtime), and what could not be checked."""

    factory: str
    file: str
    workspace: str
    mode: str
    applied: str = ""
    artifacts: artifacts.ArtifactDrift = field(default_factory=artifacts.ArtifactDrift)
    infra: infra.InfraDrift = field(default_factory=infra.InfraDrift)
    hosts: dict[str, HostDrift] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # could not check (not about one host)
    seconds: dict[str, float] = field(default_factory=dict)
    run: str = ""

    @property
    def host_errors(self) -> list[HostDrift]:
        return [h for h in self.hosts.values() if h.error]

    @property
    def drifted_hosts(self) -> list[HostDrift]:
        return [h for h in self.hosts.values() if h.status == "drift"]

    @property
    def status(self) -> str:
        if self.errors or self.infra.errors or self.host_errors:
            return "error"
        if self.artifacts.drifted or self.infra.drifted or self.drifted_hosts:
            return "drift"
        return "in-sync"

    @property
    def exit_code(self) -> ExitCode:
        """0 in sync, 2 drift, 1 could not check (wins over drift)."""
        return {"in-sync": ExitCode.OK, "drift": ExitCode.CHANGES, "error": ExitCode.FAILED}[self.status]

    def fixes(self) -> list[str]:
        """What to run, most general first."""
        f = self.file
        out = []
        if self.artifacts.drifted:
            out.append(f"factory.yaml or the templates changed since the last apply: review with "
                       f"`factoryctl plan {f}`, then `factoryctl apply {f}` (or revert the edit)")
        if self.infra.drifted:
            out.append(f"infrastructure differs from Terraform's state: `factoryctl plan {f}` shows what apply "
                       f"puts back; `factoryctl apply {f}` does it")
        drifted = sorted(h.name for h in self.drifted_hosts)
        if drifted:
            out.append(f"hosts changed outside factoryctl: `factoryctl plan {f} && factoryctl apply {f} "
                       f"--limit {','.join(drifted)}` puts back what the playbook manages (or make the change "
                       "in factory.yaml to keep it)")
        bad = sorted(h.name for h in self.host_errors)
        if bad:
            out.append(f"could not check {', '.join(bad)}: make them reachable over SSH (on a lab site "
                       f"`factoryctl apply {f}` restarts lab hosts that stopped answering), then run drift again")
        return out

    def to_dict(self) -> dict:
        return {
            "schema": "factoryctl.drift/v1", "factory": self.factory, "file": self.file,
            "workspace": self.workspace, "applied": self.applied, "mode": self.mode, "run": self.run,
            "status": self.status, "exit_code": int(self.exit_code),
            "artifacts": {"drifted": self.artifacts.drifted, "files": [c.to_dict() for c in self.artifacts.files]},
            "infrastructure": {"engine": self.infra.engine, "drifted": self.infra.drifted,
                               "stacks": [vars(s) for s in self.infra.stacks], "errors": self.infra.errors},
            "hosts": {h: d.to_dict() for h, d in sorted(self.hosts.items())},
            "errors": self.errors, "fix": self.fixes(), "seconds": self.seconds,
        }


# --- the stages -------------------------------------------------------------------------------

def _lab_guard(c: Checked, ws: Workspace, hosts: list[str]) -> tuple[str | None, set[str]]:
    """On a lab site: (why no host can be reached, hosts not running). Read from the lab's
    state and the kernel only: without the lab's bridge, packets to its addresses would leave
    through the machine's default route, so nothing is sent."""
    from ..engines.lab import LabError
    from ..engines.lab import site as labsite

    if not labsite.is_lab(c):
        return None, set()
    if why := labsite.bridge_down(c.factory):
        return why, set()
    try:
        alive = {i.name for i in labsite.lab_of(c, ws).status() if i.alive}
    except LabError as e:  # a damaged lab record: could not check, not drift
        return f"cannot read the lab in {ws.lab_dir}: {e}", set()
    return None, {h for h in hosts if h not in alive}


def _playbook_tree(rep: DriftResult, tree: Path, ws: Workspace) -> Path:
    """The applied playbook: the fresh render when it equals what was applied, else the copy
    apply kept."""
    touched = [f for f in rep.artifacts.files if not f.path.startswith(("terraform/", "verify/"))]
    if not touched:
        return tree
    if (ws.applied_dir / "ansible" / "project" / "site.yml").is_file():
        return ws.applied_dir
    rep.errors.append("the applied playbook was not kept (applied by an older factoryctl) and the rendered one "
                      "differs from it: apply once more, then drift can check hosts against it")
    return tree


def check_hosts(c: Checked, ws: Workspace, rep: DriftResult, tree: Path, opts: DriftOptions, run_dir: Path,
                ui: UI) -> None:
    from ..engines.ansible import MAX_FORKS, ansible_env
    from ..engines.inventory import read_connection
    from ..engines.ssh import Remote

    hosts = sorted(read_connection(ws.connection_inventory))
    if not hosts:
        rep.errors.append(f"no connection inventory in {ws.connection_inventory}: apply has not reached the hosts")
        return
    rep.hosts = {h: HostDrift(h) for h in hosts}
    why, down = _lab_guard(c, ws, hosts)
    if why:
        for h in rep.hosts.values():
            h.error = why
        return
    for h in down:
        rep.hosts[h].error = "unreachable: lab host not running"
    reachable = [h for h in hosts if h not in down]

    t = time.perf_counter()
    base = {} if opts.full else baseline.load(ws)
    to_check: list[str] = []
    if base:
        asked = probe.ask(Remote(c, ws), {h: base[h]["resources"] for h in reachable if h in base})
        for h in reachable:
            d = rep.hosts[h]
            a = asked.get(h)
            if a is None:
                to_check.append(h)
                d.note = "no baseline from the last apply: checked with the playbook"
            elif a.state is None:
                d.error = a.error
            else:
                d.checked_by = "probe"
                d.moved = probe.moved(base[h]["state"], a.state)
                if d.moved:
                    to_check.append(h)
    else:
        to_check = list(reachable)
    rep.seconds["probe"] = round(time.perf_counter() - t, 3)
    if not to_check:
        return

    t = time.perf_counter()
    playbook = _playbook_tree(rep, tree, ws)
    ui.info(f"ansible-playbook --check --diff on {len(to_check)} host(s): {', '.join(sorted(to_check))}")
    run = config.check(playbook, run_dir, hosts=to_check, forks=max(1, min(len(to_check), MAX_FORKS)),
                       envvars={**ansible_env(ws), **run_secrets(c, ws)},
                       inventories=[str(playbook / "ansible" / "inventory"),
                                                             str(ws.connection_inventory)],
                       fact_cache=ws.facts_dir)
    rep.seconds["ansible_check"] = round(time.perf_counter() - t, 3)
    if "*" in run.errors:
        rep.errors.append(run.errors.pop("*"))
    for h in to_check:
        d = rep.hosts[h]
        d.checked_by = "ansible-check"
        d.changes = run.changes.get(h, [])
        if h in run.errors:
            d.error = run.errors[h]
        elif d.moved and not d.changes:
            d.note = "the probe saw changes the playbook would not undo (it manages no more than this)"


def check_runtime(c: Checked, ws: Workspace, rep: DriftResult, run_dir: Path) -> None:
    """`--verify`: the host checks of verify; a failed check is runtime drift."""
    from ..verify import run as hostchecks

    t = time.perf_counter()
    folder = run_dir / "hostchecks"
    conn = hostchecks.connect(c.site, ws.root, folder)
    limit = sorted(h for h, d in rep.hosts.items() if not d.error) or None
    if limit is None:
        return
    hc = hostchecks.run_checks(c.site, conn, folder, limit=limit)
    rep.errors.extend(f"verify: {p}" for p in hc.problems)
    for r in hc.results:
        d = rep.hosts.get(r.host)
        if d is None:
            continue
        if r.status == "failed":
            d.runtime.append({"check": r.check, "detail": r.detail, "on": r.on})
        elif r.status == "error" and not d.error:
            d.error = f"verify check {r.check} could not run: {r.detail[:300]}"
    rep.seconds["verify"] = round(time.perf_counter() - t, 3)


def run_drift(c: Checked, ws: Workspace, opts: DriftOptions, ui: UI) -> DriftResult:
    """Check the site against factory.yaml and the last apply; keeps runs/<id>/drift.json.
    Call it holding the workspace's lock (session.open_site(..., lock="drift"))."""
    from ..ops.engine_env import provider_env, provider_installation

    t0 = time.perf_counter()
    file = c.path
    rep = DriftResult(c.factory.metadata.name, file, str(ws.root), "full" if opts.full else "probe")
    applied = ws.applied()
    if applied is None:
        rep.errors.append(f"nothing applied yet for {rep.factory} (no {ws.applied_path}): "
                          f"run `factoryctl apply {file}` first; drift compares against the last apply")
        return rep
    rep.applied = applied.get("applied", "")
    run_dir = ws.new_run("drift")
    rep.run = run_dir.name
    t = time.perf_counter()
    with artifacts.fresh_render(c.site, ws) as tree:
        rep.artifacts = artifacts.compare(tree, applied, ws.applied_dir)
        rep.seconds["render"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        rep.infra = infra.plan_stacks(tree, ws, c.factory.site.provider, binary=opts.terraform_bin,
                                      env=provider_env(c), installation=provider_installation(c.factory))
        rep.seconds["terraform"] = round(time.perf_counter() - t, 3)
        check_hosts(c, ws, rep, tree, opts, run_dir, ui)
    if opts.verify:
        check_runtime(c, ws, rep, run_dir)
    rep.seconds["total"] = round(time.perf_counter() - t0, 3)
    write_json(run_dir / "drift.json", rep.to_dict())
    return rep


def host_positions(c: Checked):
    """host -> (line, column) of its node group in factory.yaml (where SARIF shows a host)."""
    index = {g.group: i for i, g in enumerate(c.factory.nodes)}
    groups = {h.name: h.group for h in c.site.hosts}

    def where(host: str) -> tuple[int, int] | None:
        if c.loaded is None or groups.get(host) not in index:
            return None
        line, col = c.loaded.position(("nodes", index[groups[host]]))
        return (line, col) if line else None

    return where
