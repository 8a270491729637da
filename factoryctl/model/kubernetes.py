"""`kubernetes:`: the cluster, its GPU and network operators, and queueing (tenants moved to `tenants:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import limits
from .common import Cidr, Strict, Version
from .tenants import Tenant


class GpuOperator(Strict):
    version: Version  # Helm chart version
    mig_strategy: Literal["none", "single", "mixed"] = "none"
    driver_enabled: bool = True  # false when drivers are installed on the hosts
    dcgm_exporter: bool = True


class NetworkOperator(Strict):
    enabled: bool = False
    rdma_shared_device: bool = False
    sriov: bool = False


class Kubernetes(Strict):
    enabled: bool = False
    version: Version = "1.31"
    distribution: Literal["kubeadm", "kubespray"] = "kubeadm"
    pod_cidr: Cidr = "10.244.0.0/16"
    service_cidr: Cidr = "10.96.0.0/12"
    node_pod_prefix: limits.ranged(16, 28) = 24  # pod CIDR size per node
    gpu_operator: GpuOperator | None = None
    network_operator: NetworkOperator | None = None
    # Deprecated: tenants are top-level now (`tenants:`); still loaded, moved there, TEN001 warns.
    tenants: list[Tenant] = Field(default_factory=list)
    queueing: Literal["none", "kueue"] = "none"  # Kueue ClusterQueue/LocalQueue per tenant
