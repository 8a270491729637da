"""Rules: tenancy. Tenants, their GPU quotas against the site's GPUs, and what they own.

Tenants are site-wide (`tenants:`); every rule here reports at the place the file declares
them, `kubernetes.tenants[i]` for a file that still uses the deprecated location.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..findings import Severity
from ..model import Factory
from ..resolve import Site, gpu_capacity, gpu_type, quota_use
from .base import Issue, rule


@rule("TEN001", Severity.warning, "tenants declared under kubernetes (deprecated)")
def tenants_under_kubernetes(f: Factory, site: Site) -> Iterable[Issue]:
    """Tenants are site-wide: Slurm accounts, Kubernetes namespaces and usage metering all
    read the top-level `tenants:` list. `kubernetes.tenants` still loads and is moved there
    in memory, but will be removed."""
    if f.tenants_under_kubernetes:
        yield Issue(("kubernetes", "tenants"),
                    f"{len(f.tenants)} tenant(s) are declared under kubernetes.tenants, which is deprecated",
                    "move to top-level tenants: (same fields, one level up) and delete kubernetes.tenants")


@rule("TEN002", Severity.error, "tenant GPU quotas exceed the site's GPUs")
def quota_oversubscribed(f: Factory, site: Site) -> Iterable[Issue]:
    """The GPU quotas of all tenants, per GPU type and in total, must fit the GPUs the site
    has: quotas beyond them promise capacity that does not exist (Slurm QOS GrpTRES and
    Kubernetes ResourceQuota would both admit more than the hardware runs). Declare
    `tenancy.oversubscription: true` when over-subscribing is intended (fair share decides)."""
    if f.tenancy.oversubscription:
        return
    for use in quota_use(site):
        if not use.over:
            continue
        running = 0
        for i, t in enumerate(f.tenants):
            if use.gpu_type == "*":
                running += t.gpu_total
                loc = f.tenant_path(i, "gpu_quota")
            else:
                keys = [k for k in t.gpu_quota if gpu_type(k) == use.gpu_type] if isinstance(t.gpu_quota, dict) else []
                if not keys:
                    continue
                running += sum(t.gpu_quota[k] for k in keys)
                loc = f.tenant_path(i, "gpu_quota", keys[0])
            if running > use.capacity:
                what = "GPUs" if use.gpu_type == "*" else f"{use.gpu_type} GPUs"
                yield Issue(loc, f"tenant quotas add up to {use.quota} {what} but the site has {use.capacity}",
                            f"lower the quotas to at most {use.capacity} in all, add GPUs, or declare "
                            "tenancy: {oversubscription: true}")
                break


@rule("TEN003", Severity.error, "owned deployments need more GPUs than the owner's quota")
def deployments_over_quota(f: Factory, site: Site) -> Iterable[Issue]:
    """A deployment's GPUs (tensor x pipeline parallel x replicas) count against the tenant
    that owns it: the owner's quota (of the deployment's GPU type when the quota is per type)
    must hold all of its deployments, or the scheduler never admits them."""
    fits = {fit.name: fit for fit in site.inference}
    for i, t in enumerate(f.tenants):
        need: dict[str, int] = {}
        for name in t.deployments:
            fit = fits.get(name)
            if fit is None:
                continue
            key = gpu_type(fit.gpu_model) if isinstance(t.gpu_quota, dict) and fit.gpu_model else "*"
            need[key] = need.get(key, 0) + fit.gpus
        for key, n in need.items():
            if key == "*":
                have, loc, what = t.gpu_total, f.tenant_path(i, "gpu_quota"), "GPUs"
            else:
                keys = [k for k in t.gpu_quota if gpu_type(k) == key]
                have = sum(t.gpu_quota[k] for k in keys)
                loc = f.tenant_path(i, "gpu_quota", *keys[:1])
                what = f"{key} GPUs"
            if n > have:
                yield Issue(loc, f"tenant {t.name!r} owns deployments needing {n} {what} but its quota is {have}",
                            f"raise {t.name}'s gpu_quota to at least {n}, or give a deployment to another tenant")


@rule("TEN004", Severity.error, "tenant owns an unknown deployment")
def unknown_deployment(f: Factory, site: Site) -> Iterable[Issue]:
    """`tenants[].deployments` names inference deployments by `inference[].name`."""
    names = [d.name for d in f.inference]
    for i, t in enumerate(f.tenants):
        for j, d in enumerate(t.deployments):
            if d not in names:
                yield Issue(f.tenant_path(i, "deployments", j),
                            f"tenant {t.name!r} owns deployment {d!r}, which inference does not declare",
                            f"use one of: {', '.join(names)}" if names else "declare it under inference:, or remove it")


@rule("TEN005", Severity.error, "tenant names an unknown node group")
def unknown_node_group(f: Factory, site: Site) -> Iterable[Issue]:
    """`tenants[].node_groups` names `nodes[].group` entries the tenant may use."""
    groups = [g.group for g in f.nodes]
    for i, t in enumerate(f.tenants):
        for j, g in enumerate(t.node_groups):
            if g not in groups:
                yield Issue(f.tenant_path(i, "node_groups", j),
                            f"tenant {t.name!r} may use node group {g!r}, which nodes does not declare",
                            f"use one of: {', '.join(groups)}")


@rule("TEN006", Severity.error, "duplicate tenant name")
def duplicate_tenant(f: Factory, site: Site) -> Iterable[Issue]:
    """Each tenant becomes a Slurm account and QOS and a Kubernetes namespace: names are unique."""
    seen: dict[str, int] = {}
    for i, t in enumerate(f.tenants):
        if t.name in seen:
            yield Issue(f.tenant_path(i, "name"),
                        f"tenant name {t.name!r} is already used by tenants[{seen[t.name]}]",
                        "rename the tenant or merge the two entries")
        else:
            seen[t.name] = i


@rule("TEN007", Severity.error, "deployment owned by two tenants")
def two_owners(f: Factory, site: Site) -> Iterable[Issue]:
    """A deployment's GPUs and tokens are charged to one tenant: only one may list it."""
    owner: dict[str, str] = {}
    for i, t in enumerate(f.tenants):
        for j, d in enumerate(t.deployments):
            if d in owner and owner[d] != t.name:
                yield Issue(f.tenant_path(i, "deployments", j),
                            f"deployment {d!r} is owned by tenant {owner[d]!r} already",
                            f"remove {d} from one of {owner[d]} and {t.name}")
            owner.setdefault(d, t.name)


@rule("TEN008", Severity.error, "quota for a GPU type the site does not have")
def unknown_gpu_type(f: Factory, site: Site) -> Iterable[Issue]:
    """A per-type `gpu_quota` is keyed by a GPU model of `nodes[].hardware.gpu.model`; a
    quota of a type no node has limits nothing."""
    cap = gpu_capacity(site)
    for i, t in enumerate(f.tenants):
        if isinstance(t.gpu_quota, dict):
            for k in t.gpu_quota:
                if gpu_type(k) not in cap:
                    yield Issue(f.tenant_path(i, "gpu_quota", k),
                                f"tenant {t.name!r} has a quota of {k} GPUs, which no node group has",
                                f"key the quota by one of: {', '.join(cap) or '(no GPUs on this site)'}, "
                                "or give a total: gpu_quota: N")


@rule("TEN009", Severity.error, "owned deployment runs outside the tenant's node groups")
def deployment_outside_groups(f: Factory, site: Site) -> Iterable[Issue]:
    """A tenant limited to `node_groups` cannot own a deployment that runs on other groups
    (`inference[].nodes`, or every GPU group when empty)."""
    fits = {fit.name: fit for fit in site.inference}
    for i, t in enumerate(f.tenants):
        if not t.node_groups:
            continue
        for j, d in enumerate(t.deployments):
            fit = fits.get(d)
            outside = [g for g in (fit.groups if fit else ()) if g not in t.node_groups]
            if outside:
                yield Issue(f.tenant_path(i, "deployments", j),
                            f"deployment {d!r} runs on node group(s) {', '.join(outside)}, which tenant "
                            f"{t.name!r} may not use",
                            f"set inference[].nodes of {d} to groups in {', '.join(t.node_groups)}, "
                            "or add the groups to the tenant's node_groups")


# Names a tenant cannot take: Slurm's root account and default QOS (sacctmgr creates them),
# the namespaces Kubernetes and factoryctl itself use.
RESERVED = {"root": "Slurm's root account", "normal": "Slurm's default QOS",
            "default": "a Kubernetes namespace", "kube-system": "a Kubernetes namespace",
            "kube-public": "a Kubernetes namespace", "kube-node-lease": "a Kubernetes namespace",
            "inference": "factoryctl's inference namespace", "gpu-operator": "the GPU Operator's namespace",
            "nvidia-network-operator": "the Network Operator's namespace", "monitoring": "the monitoring namespace"}


@rule("TEN010", Severity.error, "tenant name reserved")
def reserved_name(f: Factory, site: Site) -> Iterable[Issue]:
    """A tenant becomes a Slurm account and QOS and a Kubernetes namespace: it cannot take a
    name Slurm or Kubernetes already uses (root, normal, default, kube-*) or one of the
    namespaces factoryctl renders (inference, gpu-operator, nvidia-network-operator, monitoring)."""
    for i, t in enumerate(f.tenants):
        if t.name in RESERVED:
            yield Issue(f.tenant_path(i, "name"), f"tenant name {t.name!r} is {RESERVED[t.name]}",
                        f"rename the tenant, e.g. {t.name}-team")
