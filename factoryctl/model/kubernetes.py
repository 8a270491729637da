"""`kubernetes:`: the cluster, its GPU and network operators, and tenants."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
    gpu_quota: int = Field(default=0, ge=0)
    cpu_quota: int | None = Field(default=None, ge=0)


class Kubernetes(Strict):
    enabled: bool = False
    version: Version = "1.31"
    distribution: Literal["kubeadm", "kubespray"] = "kubeadm"
    pod_cidr: Cidr = "10.244.0.0/16"
    service_cidr: Cidr = "10.96.0.0/12"
    node_pod_prefix: int = Field(default=24, ge=16, le=28)  # pod CIDR size per node
    gpu_operator: GpuOperator | None = None
    network_operator: NetworkOperator | None = None
    tenants: list[Tenant] = Field(default_factory=list)
