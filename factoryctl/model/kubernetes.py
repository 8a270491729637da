"""`kubernetes:`: the cluster, its GPU and network operators, and queueing (tenants moved to `tenants:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import limits
from .common import Cidr, HttpUrl, IPv4, Strict, Version
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


class ControlPlaneEndpoint(Strict):
    """The address every node and client reaches the API servers at (kubeadm's
    controlPlaneEndpoint, port 6443): a virtual IP that kube-vip holds on one control-plane
    host at a time (ARP), or the address of a load balancer the site runs (`external`)."""

    address: IPv4
    provider: Literal["kube-vip", "external"] = "kube-vip"


class Kubernetes(Strict):
    enabled: bool = False
    version: Version = "1.31"
    distribution: Literal["kubeadm", "kubespray"] = "kubeadm"
    pod_cidr: Cidr = "10.244.0.0/16"
    service_cidr: Cidr = "10.96.0.0/12"
    node_pod_prefix: limits.ranged(16, 28) = 24  # pod CIDR size per node
    control_plane_endpoint: ControlPlaneEndpoint | None = None  # required with more than one control-plane host
    helm_mirror: HttpUrl | None = None  # folder serving Helm's release tarballs (get.helm.sh layout); air-gapped sites
    gpu_operator: GpuOperator | None = None
    network_operator: NetworkOperator | None = None
    # Deprecated: tenants are top-level now (`tenants:`); still loaded, moved there, TEN001 warns.
    tenants: list[Tenant] = Field(default_factory=list)
    queueing: Literal["none", "kueue"] = "none"  # Kueue: its controller, then a ClusterQueue/LocalQueue per tenant

    @property
    def kueue(self) -> bool:
        """Kueue is installed (with the other controllers) when queueing names it."""
        return self.queueing == "kueue"
