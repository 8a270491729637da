"""The hosts' baseline: after every apply whose Ansible phase succeeded, what Ansible manages
on each host (from the run's events) and what the probe saw there, in
.factory/<name>/drift-baseline.json. Drift compares the probe of now with it."""

from __future__ import annotations

import json
from pathlib import Path

from ...workspace import Workspace, run_id, write_json
from . import coverage, probe, resources

SCHEMA = "factoryctl.ops.hoststate.baseline/v1"


def path(ws: Workspace) -> Path:
    return ws.root / "drift-baseline.json"


def load(ws: Workspace) -> dict[str, dict]:
    """host -> {"resources": [...], "state": {...}, "gaps": [...], "run": id}; {} when none
    was recorded. `gaps`: tasks of the run whose work the probe cannot see (coverage.py)."""
    try:
        doc = json.loads(path(ws).read_text())
    except (OSError, ValueError):
        return {}
    return doc.get("hosts", {}) if doc.get("schema") == SCHEMA else {}


def record(ws: Workspace, remote, events_dir: Path, ran: list[str], site_hosts: list[str], run: str,
           partial: bool) -> dict[str, str]:
    """Re-probe the hosts that just ran and keep their answers; host -> error for hosts that
    could not be probed (they lose their baseline, so drift checks them in full)."""
    results = list(resources.ok_results(events_dir))  # the event files are read once
    found = resources.from_results(results)
    declared, gaps = coverage.from_results(results)
    hosts = load(ws)
    wanted: dict[str, list[str]] = {}
    holes: dict[str, list[str]] = {}
    for h in ran:
        keys = set(found.get(h, [])) | declared.get(h, set())
        missing = set(gaps.get(h, []))
        if partial:  # --tags ran part of the playbook: keep what the rest manages
            keys |= set((hosts.get(h) or {}).get("resources", []))
            missing |= set((hosts.get(h) or {}).get("gaps", ["no earlier full run recorded"]))
        wanted[h] = sorted(keys)
        holes[h] = sorted(missing)
    answers = probe.ask(remote, wanted)
    errors = {}
    for h in ran:
        a = answers.get(h)
        if a is None or a.state is None:
            hosts.pop(h, None)
            errors[h] = a.error if a else "not probed"
        else:
            hosts[h] = {"resources": wanted[h], "state": a.state, "gaps": holes[h], "run": run}
    keep = set(site_hosts)
    hosts = {h: v for h, v in sorted(hosts.items()) if h in keep}
    write_json(path(ws), {"schema": SCHEMA, "recorded": run_id(), "hosts": hosts})
    return errors


def forget(ws: Workspace, hosts) -> None:
    """Drop the baselines of hosts a failed or interrupted run touched: what it left there
    is unknown, so the next apply runs site.yml on them in full."""
    hosts = set(hosts)
    known = load(ws)
    if hosts & set(known):
        write_json(path(ws), {"schema": SCHEMA, "recorded": run_id(),
                              "hosts": {h: v for h, v in known.items() if h not in hosts}})
