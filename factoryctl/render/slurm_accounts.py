"""Slurm tenancy: one account and one QOS per tenant (sacctmgr through the slurm role,
rendered as slurm/accounts.yml), and the slurm.conf lines that make Slurm enforce them.

Enforcement and priority (slurm.schedmd.com/resource_limits.html: limits apply only with
AccountingStorageEnforce=limits, and qos for QOS limits; associations refuses jobs of users
without an association) and fair share (priority_multifactor.html: PriorityType=
priority/multifactor, the account's Fairshare= shares, PriorityWeightFairshare) are written
only when accounting is on and the site declares tenants: with no accounts, `associations`
would refuse every job but root's.
"""

from __future__ import annotations

from ..resolve import Site, cpu_cores_of, gpu_type
from .slurm import gres_type

MARKER = "factoryctl"  # Description= of what the role creates; only those are ever removed
ADMIN = "root"  # the site admin, associated with every tenant's account (submits as any of them)
ENFORCE = "associations,limits,qos"
# Weights of the multifactor plugin: fair share dominates, age breaks ties, job size and
# partition stay neutral (priority_multifactor.html, "Configuration").
PRIORITY = {"PriorityType": "priority/multifactor", "PriorityDecayHalfLife": "7-0",
            "PriorityWeightFairshare": 10000, "PriorityWeightAge": 1000, "PriorityWeightJobSize": 0,
            "PriorityWeightPartition": 0, "PriorityWeightQOS": 0}


def mem_tres(gb: int) -> str:
    """Memory as sacctmgr prints a TRES count: MB scaled by 1024 while exact (512G, 1T), so
    the role can compare what is set with what is wanted."""
    n, units = gb * 1024, "MGTP"
    u = 0
    while n and n % 1024 == 0 and u < len(units) - 1:
        n //= 1024
        u += 1
    return f"{n}{units[u]}"


def grp_tres(t, gpus: bool = True) -> str:
    """GrpTRES of the tenant's QOS, in Slurm's TRES order (cpu, mem, then gres/gpu) (tres.html).
    A per-type quota limits gres/gpu:<type> as well as the total. Without GPUs under Slurm
    (`gpus` false) no gres/gpu limit: slurm.conf then tracks no such TRES and sacctmgr refuses
    a limit on it ("no TRES known by type gres/gpu")."""
    parts = []
    if t.cpu_quota is not None:
        parts.append(f"cpu={t.cpu_quota}")
    if t.memory_gb is not None:
        parts.append(f"mem={mem_tres(t.memory_gb)}")
    if gpus:
        parts.append(f"gres/gpu={t.gpu_total}")
    if gpus and isinstance(t.gpu_quota, dict):
        typed: dict[str, int] = {}
        for model, n in t.gpu_quota.items():
            key = gres_type(gpu_type(model))
            typed[key] = typed.get(key, 0) + n
        parts += [f"gres/gpu:{k}={v}" for k, v in sorted(typed.items())]
    return ",".join(parts)


def enabled(site: Site) -> bool:
    f = site.factory
    return bool(f.slurm.enabled and f.slurm.accounting and f.tenants)


def accounts(site: Site) -> dict:
    """What slurm/accounts.yml holds: the wanted accounts and QOS, read by the role's
    accounts.yml tasks."""
    f = site.factory
    if not enabled(site):
        return {"enabled": False, "cluster": f.slurm.cluster_name, "marker": MARKER, "admin": ADMIN,
                "qos": [], "accounts": []}
    slurm_gpus = any(ng.hardware.gpu and "slurm-compute" in ng.roles for ng in f.nodes)
    return {
        "enabled": True,
        "cluster": f.slurm.cluster_name,
        "marker": MARKER,
        "admin": ADMIN,
        "qos": [{"name": t.name, "grp_tres": grp_tres(t, slurm_gpus)} for t in f.tenants],
        "accounts": [{"name": t.name, "fairshare": t.fairshare, "qos": t.name,
                      "users": sorted({ADMIN, *t.members.users})} for t in f.tenants],
    }


def billing_weights(site: Site, partition_groups: list[list[str]]) -> list[str]:
    """TRESBillingWeights of each partition (tres.html, "TRESBillingWeights"), CPU=1.0.

    The cost model (`factoryctl cost`) prices a GPU-hour as the nodes' owned cost per year
    over their used GPU-hours; the same cost over their used core-hours is a core-hour's
    price. Normalised so a core-hour bills 1, a GPU-hour bills price(GPU-h) / price(core-h)
    = cores / GPUs of the partition's GPU nodes: the currency and the utilisation cancel, so
    the weight is computed here from the nodes alone (render cannot read report/cost) and a
    job's `billing` is the share of the nodes it holds, whichever resource it exhausts.
    "" for partitions without GPUs."""
    f = site.factory
    by_group = {ng.group: ng for ng in f.nodes}
    out = []
    for names in partition_groups:
        cores = gpus = 0
        for n in names:
            ng = by_group.get(n)
            if ng is not None and ng.hardware.gpu:
                cores += ng.count * cpu_cores_of(ng)
                gpus += ng.count * ng.hardware.gpu.count
        out.append(f"CPU=1.0,GRES/gpu={cores / gpus:.1f}" if gpus else "")
    return out
