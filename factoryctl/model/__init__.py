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
    "Verify",
]
