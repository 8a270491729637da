"""`tenants:` and `tenancy:`: who shares the factory, with which quotas, deployments and node groups.

Tenants are site-wide: Slurm renders an account and a QOS per tenant, Kubernetes a namespace
with its quota, and `factoryctl usage` meters them. A file that still declares them under
`kubernetes.tenants` loads: `Factory` moves them here in memory and rule TEN001 warns.
Ownership of inference deployments is declared on the tenant (`deployments: [name, ...]`), so
a deployment stays free of tenancy and one list says everything a tenant holds.
"""

from __future__ import annotations

from pydantic import Field

from . import limits
from .common import Name, Strict, Token

Quota = limits.whole(limits.QUOTA, ge=0)


class Members(Strict):
    """Who may work as the tenant: Slurm users associated with its account, and the groups
    bound to its Kubernetes namespace (RoleBinding subjects)."""

    users: list[Token] = Field(default_factory=list)
    groups: list[Token] = Field(default_factory=list)


class Tenant(Strict):
    name: Name
    # A total (any GPU type) or one figure per GPU model as nodes[].hardware.gpu.model names it.
    gpu_quota: Quota | dict[Token, Quota] = 0
    cpu_quota: Quota | None = None  # cores
    memory_gb: Quota | None = None
    fairshare: limits.whole(limits.QUOTA, ge=1) = 1  # Slurm fair-share weight of the account
    deployments: list[Name] = Field(default_factory=list)  # inference[].name the tenant owns
    node_groups: list[Name] = Field(default_factory=list)  # empty: every group
    members: Members = Field(default_factory=Members)

    @property
    def gpu_total(self) -> int:
        q = self.gpu_quota
        return q if isinstance(q, int) else sum(q.values())


class Tenancy(Strict):
    """Site-wide tenancy settings."""

    oversubscription: bool = False  # quotas may add up to more GPUs than the site has
