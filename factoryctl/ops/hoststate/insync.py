"""Which hosts an apply can leave alone: those the host probe sees in full and finds exactly
as the last successful run left them.

Apply asks this only when nothing else moved since the last full apply (same factory, same
rendered artifacts, Terraform changed nothing, no lab host restarted). A host then skips
site.yml when
- it has a baseline from a run that succeeded on it (baseline.py),
- that run did nothing the probe cannot see (coverage.py: no gaps), and
- the probe of now answers exactly what it answered after that run.
Every other host runs site.yml as usual, with the reason said. `apply --converge` runs
site.yml everywhere regardless. What the probe cannot see by design: state a task only
reads in a condition (a skipped task whose condition changed) and state outside the host
(a database row); drift --full and --converge run the playbook for those.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ...workspace import Workspace
from . import baseline, probe


@dataclass
class Decision:
    skip: dict[str, int] = field(default_factory=dict)  # host -> resources the probe compared
    run: dict[str, str] = field(default_factory=dict)  # host -> why site.yml runs there
    seconds: float = 0.0


def decide(ws: Workspace, remote, hosts: list[str]) -> Decision:
    """Probe the hosts that qualify, all at once, and sort every host into skip or run."""
    t0 = time.perf_counter()
    known = baseline.load(ws)
    d = Decision()
    asks: dict[str, list[str]] = {}
    for h in sorted(hosts):
        b = known.get(h)
        if not b:
            d.run[h] = "no baseline from a successful run"
        elif "gaps" not in b:
            d.run[h] = "baseline predates probe coverage records"
        elif b["gaps"]:
            d.run[h] = f"the last run did work the probe cannot see ({b['gaps'][0]})"
        else:
            asks[h] = b["resources"]
    for h, answer in probe.ask(remote, asks).items():
        if answer.state is None:
            d.run[h] = answer.error
            continue
        moved = probe.moved(known[h]["state"], answer.state)
        if moved:
            key, (was, now) = next(iter(moved.items()))
            more = f" and {len(moved) - 1} more" if len(moved) > 1 else ""
            d.run[h] = f"{key} moved since the last apply ({was} -> {now}){more}"
        else:
            d.skip[h] = len(asks[h])
    d.seconds = time.perf_counter() - t0
    return d
