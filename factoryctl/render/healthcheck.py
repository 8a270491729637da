"""The Slurm HealthCheckProgram factoryctl renders: build/slurm/factoryctl-healthcheck.sh.

slurmd runs HealthCheckProgram as root every HealthCheckInterval seconds on the compute
nodes whose state HealthCheckNodeState selects, kills it after 60 s, and takes no action of its
own: the program drains the node itself with scontrol (slurm.conf(5), HealthCheckProgram). At
slurmd's start it runs until it exits 0 before slurmd registers, so the script exits 0 once the
node is drained with its reason and 1 only when it could not drain it. The script checks the fast
subset of verify's host checks, from the same model and thresholds (render/hostchecks.py):
free space on / and the slurmd spool, munge running, the declared mounts mounted, the clock
offset chronyd reports, and on GPU nodes nvidia-smi answering with the declared GPU count,
no uncorrected volatile ECC error, no row remapping pending or failed, and no Xid in the kernel log since boot. It drains its own node with a reason starting
"factoryctl-hc:" and resumes only drains with that prefix, so an operator's drain or one by
`verify --quarantine` ("factoryctl:") is never undone by it.

Rendered only where Slurm is enabled with compute nodes and verify.health_check_interval is
not 0; slurm.conf then names it (render context `health_check_program`,
`health_check_interval`) and the slurm role installs it at that path.
"""

from __future__ import annotations

from ..resolve import Site
from . import hostchecks
from . import slurm as slurm_facts

# Beside slurm.conf: the slurm role installs it there (roles/slurm/tasks/configure.yml reads
# the path back from the rendered slurm.conf).
PROGRAM = "/etc/slurm/factoryctl-healthcheck.sh"
REASON_PREFIX = "factoryctl-hc:"
# HealthCheckNodeState=ANY,CYCLE: every node whatever its state, spread over the interval
# rather than all at once (slurm.conf(5), HealthCheckNodeState), so a large cluster does not
# run it everywhere in the same second.
NODE_STATE = slurm_facts.HEALTH_CHECK_NODE_STATE


def _mounts(site: Site, group: str) -> list[str]:
    return sorted({s.mount for s in site.factory.storage
                   if s.mount and s.type in hostchecks.FSTYPES and (not s.clients or group in s.clients)})


def build(site: Site) -> list[dict]:
    """The script's data as a list of at most one item (the template renders once per item):
    nodes grouped by what they must have (GPUs, mounts), thresholds from verify.thresholds."""
    f = site.factory
    interval = f.verify.health_check_interval
    compute = [h for h in site.hosts if "slurm-compute" in h.roles]
    if not (f.slurm.enabled and interval and compute):
        return []
    t = f.verify.thresholds
    kinds: dict[tuple, list[str]] = {}
    for h in compute:
        kinds.setdefault((h.gpus, tuple(_mounts(site, h.group))), []).append(h.name)
    return [{
        "name": "factoryctl-healthcheck",
        "program": PROGRAM,
        "interval": interval,
        "reason_prefix": REASON_PREFIX,
        "disk_paths": hostchecks.disk_paths(["compute"]),
        "min_free_percent": f"{t.disk_free_fraction * 100:g}",
        "max_offset_ms": f"{t.clock_offset_ms:g}",
        "kinds": [{"nodes": names, "gpus": gpus, "mounts": list(mounts)}
                  for (gpus, mounts), names in kinds.items()],
        "spool": slurm_facts.SLURMD_SPOOL,
    }]

