"""`factoryctl destroy`: tear a site down. Terraform destroys every unit stack that holds
resources (the lab stack's destroy-time local-exec takes each lab host down); then what is
left of a lab (namespaces, mounts, links, the bridge, its folder), Ansible's open SSH
connections, the fact cache, the connection inventory, the saved plans and applied.json go.
Terraform's state files stay, empty, as the record that the site is gone.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..engines.ansible import close_connections
from ..engines.lab import site as labsite
from ..engines.terraform import Stack
from ..errors import EngineFailure, Interrupted
from ..session import Checked
from ..ui import UI
from ..workspace import Workspace, write_json
from .apply import confirmed
from .engine_env import site_engine
from .interrupts import in_thread


class DestroyError(EngineFailure):
    """Destroy cannot go on, or some stacks were not destroyed; the message says what to do."""


class DestroyInterrupted(Interrupted):
    """Ctrl-C during destroy: the stacks that finished are destroyed; the next destroy goes on."""

    def __init__(self, message: str = "interrupted: finished stacks are destroyed; "
                                      "run factoryctl destroy again to finish"):
        super().__init__(message)


@dataclass
class DestroyResult:
    factory: str
    resources: int  # Terraform resources destroyed
    stacks: list[str] = field(default_factory=list)  # unit stacks destroyed
    lab: bool = False  # a lab's hosts, namespaces and folder were taken down
    run_dir: Path | None = None  # runs/<id>/ with the logs; None when there was nothing to destroy

    @property
    def nothing(self) -> bool:
        return self.run_dir is None


def _resources(state: Path) -> int:
    try:
        return sum(len(r.get("instances") or []) for r in json.loads(state.read_text()).get("resources") or [])
    except (OSError, ValueError):
        return 1  # unreadable: let Terraform say what is wrong


def stacks_to_destroy(ws: Workspace, provider: str) -> list[tuple[Stack, int]]:
    """(stack, resources) for every unit with state. A unit whose rendered folder is gone
    borrows a sibling's configuration (same depth, so relative paths hold)."""
    units_dir = ws.build / "terraform" / provider / "units"
    siblings = sorted(p for p in units_dir.iterdir() if p.is_dir()) if units_dir.is_dir() else []
    out = []
    for unit in ws.units_with_state(provider):
        n = _resources(ws.state_file(provider, unit))
        if not n:
            continue
        d = units_dir / unit
        if not d.is_dir():
            if not siblings:
                raise DestroyError(f"unit {unit} has state but no Terraform configuration to destroy it with: "
                                 f"run factoryctl render {provider} site first")
            d = ws.orphan_dir(provider, unit)
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            for f in siblings[0].iterdir():
                if f.is_file():
                    shutil.copy2(f, d / f.name)
            (d / "hosts.auto.tfvars.json").write_text('{\n  "hosts": {}\n}\n')
        out.append((Stack(unit, d, ws.state_file(provider, unit), ws.data_dir(provider, unit)), n))
    return out


def destroy(checked: Checked, ws: Workspace, auto_approve: bool, terraform_bin: str | None, ui: UI) -> DestroyResult:
    """The `destroy` stage, with the site's lock held. Needs only the file's name and provider
    (not a valid site). Raises DestroyError when a stack was not destroyed (the lab and the
    workspace records are kept), DestroyInterrupted on Ctrl-C."""
    from ..render import render

    name = checked.factory.metadata.name
    provider = checked.factory.site.provider
    if checked.site is not None and not (ws.build / "manifest.json").is_file():
        render(checked.site, ws.build)  # the stacks' configuration, for the destroy provisioners
    todo = stacks_to_destroy(ws, provider)
    lab_left = labsite.is_lab(checked) and ws.lab_dir.exists()
    total = sum(n for _, n in todo)
    ui.info(f"Destroy {name} (provider {provider}; workspace {ws.root})")
    ui.info(f"  Terraform: {total} resource(s) to destroy in {len(todo)} unit stack(s)")
    if lab_left:
        ui.info(f"  lab: every host, namespace, mount and link of {ws.lab_dir}")
    if not todo and not lab_left:
        forget(ws)
        return DestroyResult(name, 0)
    confirmed(ui, f"Destroy site {name}? This cannot be undone.", auto_approve)
    run = ws.new_run("destroy")
    cancel = threading.Event()
    engine = site_engine(checked, ws, terraform_bin)

    def one(item):
        stack, _ = item
        if cancel.is_set():
            raise DestroyInterrupted()
        engine.init(stack)
        r = engine.destroy(stack)
        (run / f"terraform-{stack.name}.log").write_text(r.log)
        ui.info(f"  {stack.name}: {r.destroy} destroyed ({r.seconds:.1f} s)")
        return r

    try:
        results = in_thread(lambda: engine.map(one, todo), cancel, ui)
    finally:
        engine.close()
    errors = [str(r) for r in results if isinstance(r, BaseException) and not isinstance(r, Interrupted)]
    write_json(run / "destroy.json", {"stacks": [s.name for s, _ in todo], "errors": errors,
                                      "interrupted": cancel.is_set()})
    if cancel.is_set():
        raise DestroyInterrupted()
    if errors:
        for e in errors:
            ui.error(e)
        raise DestroyError("some stacks were not destroyed; the lab and the workspace records are kept")
    if labsite.is_lab(checked):
        labsite.lab_of(checked, ws).down()  # whatever Terraform did not know of
        shutil.rmtree(ws.lab_dir, ignore_errors=True)
    forget(ws)
    return DestroyResult(name, total, [s.name for s, _ in todo], lab_left, run)


def forget(ws: Workspace) -> None:
    """Drop what a destroyed site leaves in its workspace: open SSH connections, the fact
    cache, the connection inventory, saved plans, orphan stacks and the applied records."""
    close_connections(ws)
    for p in (ws.facts_dir, ws.connection_inventory.parent, ws.plans_dir, ws.root / "orphans", ws.root / "applied"):
        shutil.rmtree(p, ignore_errors=True)
    ws.applied_path.unlink(missing_ok=True)
