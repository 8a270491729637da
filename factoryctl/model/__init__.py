"""The factory.yaml model: one module per section, shape checks only (rules live in rules/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .common import Strict
from .economics import Economics
from .fabric import ComputeFabric, Fabric
from .facility import Facility, Rack
from .inference import Inference
from .kubernetes import Kubernetes
from .limits import TOTAL_HOSTS
from .nodes import NodeGroup
from .site import Metadata, Site
from .slurm import Partition, Slurm
from .sovereignty import Sovereignty
from .storage import Storage
from .tenants import Members, Tenancy, Tenant
from .verify import Verify

API_VERSION = "factoryctl/v1alpha1"


class Factory(Strict):
    apiVersion: Literal["factoryctl/v1alpha1"]  # noqa: N815 - the key as users write it
    kind: Literal["Factory"]
    metadata: Metadata
    site: Site
    facility: Facility = Field(default_factory=Facility)
    nodes: list[NodeGroup] = Field(min_length=1)
    fabric: Fabric
    storage: list[Storage] = Field(default_factory=list)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)
    slurm: Slurm = Field(default_factory=Slurm)
    inference: list[Inference] = Field(default_factory=list)
    sovereignty: Sovereignty = Field(default_factory=Sovereignty)
    verify: Verify = Field(default_factory=Verify)
    economics: Economics | None = None
    tenants: list[Tenant] = Field(default_factory=list)
    tenancy: Tenancy = Field(default_factory=Tenancy)

    @model_validator(mode="after")
    def _move_kubernetes_tenants(self):
        # kubernetes.tenants is the old place: moved here in memory (rule TEN001 warns); both
        # places at once would leave two truths.
        if self.kubernetes.tenants:
            # Equal lists are this model dumped and read back (render reads the dump), not two truths.
            if self.tenants and self.tenants != list(self.kubernetes.tenants):
                raise ValueError("tenants are declared both at the top level and under kubernetes.tenants"
                                 "\nhint: move kubernetes.tenants into the top-level tenants: list and delete it")
            object.__setattr__(self, "tenants", list(self.kubernetes.tenants))  # frozen model: set once, here
        return self

    @property
    def tenants_under_kubernetes(self) -> bool:
        """Whether `tenants` came from the deprecated `kubernetes.tenants`."""
        return bool(self.kubernetes.tenants)

    def tenant_path(self, i: int, *rest: str | int) -> tuple[str | int, ...]:
        """The YAML path of tenants[i] (and a field below it) where the file declares it."""
        head = ("kubernetes", "tenants") if self.kubernetes.tenants else ("tenants",)
        return (*head, i, *rest)

    @model_validator(mode="after")
    def _total_hosts(self):
        # Each group is bounded by itself; this bounds their sum before resolve expands them.
        total = sum(g.count for g in self.nodes)
        if total > TOTAL_HOSTS.most:
            raise ValueError(f"{total:,} {TOTAL_HOSTS.what} is more than a site can have: at most "
                             f"{TOTAL_HOSTS.most:,} ({TOTAL_HOSTS.why})\nhint: check nodes[*].count for a typo")
        return self


__all__ = [
    "API_VERSION",
    "ComputeFabric",
    "Fabric",
    "Facility",
    "Factory",
    "Inference",
    "Kubernetes",
    "Metadata",
    "NodeGroup",
    "Partition",
    "Rack",
    "Site",
    "Slurm",
    "Sovereignty",
    "Storage",
    "Members",
    "Tenancy",
    "Tenant",
    "Verify",
]
