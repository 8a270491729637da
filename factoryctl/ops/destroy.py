"""`factoryctl destroy`: tear a site down. Terraform destroys every unit stack that holds
resources (the lab stack's destroy-time local-exec takes each lab host down); then what is
left of a lab (namespaces, mounts, links, the bridge, its folder), Ansible's open SSH
connections, the fact cache, the connection inventory, the saved plans and applied.json go.
Terraform's state files stay, empty, as the record that the site is gone.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from pathlib import Path

from rich.console import Console

from ..engines.ansible import close_connections
from ..engines.lab import LabError
from ..engines.lab import site as labsite
from ..engines.terraform import Stack, TerraformError, make_engine
from ..workspace import Workspace, WorkspaceLocked, write_json
from .apply import ApplyError, Interrupted, confirm, in_thread
from .plan import provider_env, provider_installation


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
                raise ApplyError(f"unit {unit} has state but no Terraform configuration to destroy it with: "
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


def destroy_locked(checked, ws: Workspace, auto_approve: bool, terraform_bin: str | None,
                   out: Console, err: Console) -> int:
    from ..render import render

    provider = checked.factory.site.provider
    if checked.site is not None and not (ws.build / "manifest.json").is_file():
        render(checked.site, ws.build)  # the stacks' configuration, for the destroy provisioners
    todo = stacks_to_destroy(ws, provider)
    lab_left = labsite.is_lab(checked) and ws.lab_dir.exists()
    total = sum(n for _, n in todo)
    out.print(f"[bold]Destroy {checked.factory.metadata.name}[/] (provider {provider}; workspace {ws.root})")
    out.print(f"  Terraform: {total} resource(s) to destroy in {len(todo)} unit stack(s)")
    if lab_left:
        out.print(f"  lab: every host, namespace, mount and link of {ws.lab_dir}")
    if not todo and not lab_left:
        out.print("nothing to destroy")
        _forget(ws)
        return 0
    confirm(f"Destroy site {checked.factory.metadata.name}? This cannot be undone.", auto_approve, out)
    run = ws.new_run("destroy")
    cancel = threading.Event()
    engine = make_engine(terraform_bin, cli_config=ws.cli_config, plugin_cache=ws.plugin_cache,
                         env=provider_env(checked), **provider_installation(checked.factory))

    def one(item):
        stack, _ = item
        if cancel.is_set():
            raise Interrupted()
        engine.init(stack)
        r = engine.destroy(stack)
        (run / f"terraform-{stack.name}.log").write_text(r.log)
        out.print(f"  {stack.name}: {r.destroy} destroyed ({r.seconds:.1f} s)", markup=False)
        return r

    try:
        results = in_thread(lambda: engine.map(one, todo), cancel, err)
    finally:
        engine.close()
    errors = [str(r) for r in results if isinstance(r, BaseException) and not isinstance(r, Interrupted)]
    write_json(run / "destroy.json", {"stacks": [s.name for s, _ in todo], "errors": errors,
                                      "interrupted": cancel.is_set()})
    if cancel.is_set():
        err.print("interrupted: finished stacks are destroyed; run factoryctl destroy again to finish")
        return 130
    if errors:
        for e in errors:
            err.print(f"error: {e}", markup=False)
        err.print("error: some stacks were not destroyed; the lab and the workspace records are kept")
        return 1
    if labsite.is_lab(checked):
        labsite.lab_of(checked, ws).down()  # whatever Terraform did not know of
        shutil.rmtree(ws.lab_dir, ignore_errors=True)
    _forget(ws)
    out.print(f"Destroy complete: {total} resource(s) destroyed; logs in {run}")
    return 0


def _forget(ws: Workspace) -> None:
    close_connections(ws)
    for p in (ws.facts_dir, ws.connection_inventory.parent, ws.plans_dir, ws.root / "orphans", ws.root / "applied"):
        shutil.rmtree(p, ignore_errors=True)
    ws.applied_path.unlink(missing_ok=True)


def destroy_command(file: Path, auto_approve: bool, terraform_bin: str | None, out: Console, err: Console) -> int:
    from ..findings.formats import text as findings_text
    from ..session import check

    c = check(file)
    if c.factory is None:  # destroy needs only the name and the provider, not a valid site
        sys.stderr.write(findings_text(c.sorted_findings, c.loaded.text if c.loaded else None))
        return 1
    ws = Workspace.beside(file, c.factory.metadata.name)
    try:
        with ws.lock("destroy"):
            return destroy_locked(c, ws, auto_approve, terraform_bin, out, err)
    except (WorkspaceLocked, ApplyError, TerraformError, LabError) as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        return 1
    except Interrupted:
        return 130
