"""`kubernetes:`: the cluster, its GPU and network operators, and tenants."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import limits
from .common import Cidr, Name, Strict, Version


class GpuOperator(Strict):
    version: Version  # Helm chart version
    mig_strategy: Literal["none", "single", "mixed"] = "none"
    driver_enabled: bool = True  # false when drivers are installed on the hosts
    dcgm_exporter: bool = True


class NetworkOperator(Strict):
    enabled: bool = False
    rdma_shared_device: bool = False
    sriov: bool = False


class Tenant(Strict):
    name: Name
    gpu_quota: limits.whole(limits.QUOTA, ge=0) = 0
    cpu_quota: limits.whole(limits.QUOTA, ge=0) | None = None


class Kubernetes(Strict):
    enabled: bool = False
    version: Version = "1.31"
    distribution: Literal["kubeadm", "kubespray"] = "kubeadm"
    pod_cidr: Cidr = "10.244.0.0/16"
    service_cidr: Cidr = "10.96.0.0/12"
    node_pod_prefix: limits.ranged(16, 28) = 24  # pod CIDR size per node
    gpu_operator: GpuOperator | None = None
    network_operator: NetworkOperator | None = None
    tenants: list[Tenant] = Field(default_factory=list)
