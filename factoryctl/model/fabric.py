"""`fabric:`: the compute (east/west), storage, management and out-of-band networks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import limits
from .common import Cidr, IPv4, Name, Strict, Token


class Roce(Strict):
    """Lossless class for RoCE: mismatches between host and switch are silent, so declare it."""

    dscp: limits.ranged(0, 63) = 26
    priority: limits.ranged(0, 7) = 3
    pfc: bool = True
    ecn: bool = True
    pfc_watchdog_ms: limits.whole(limits.WATCHDOG_MS, ge=0) | None = 100


class ComputeFabric(Strict):
    type: Literal["infiniband", "roce", "ethernet"]
    rails: limits.whole(limits.RAILS)
    link_gbps: limits.whole(limits.LINK_GBPS)
    topology: Literal["rail-optimized", "fat-tree"] = "rail-optimized"
    oversubscription: float = Field(default=1.0, ge=1.0, le=16.0)
    switch: Token
    planes: limits.whole(limits.PLANES) = 1
    su_nodes: limits.whole(limits.NODES_PER_GROUP) | None = None  # nodes per scalable unit; default from switch radix
    roce: Roce | None = None
    sharp: bool = False


class StorageFabric(Strict):
    type: Literal["infiniband", "roce", "ethernet"]
    link_gbps: limits.whole(limits.LINK_GBPS)
    switch: Token | None = None
    oversubscription: float = Field(default=1.0, ge=1.0, le=16.0)
    # The clients' ports on this network (ib0, ens1f0np0): LNet networks, WEKA net=, VAST localports
    interfaces: list[Name] = Field(default_factory=list, max_length=16)


class ManagementNet(Strict):
    cidr: Cidr
    gateway: IPv4 | None = None
    vlan: limits.ranged(1, 4094) | None = None
    switch: Token | None = None
    reserved: limits.whole(limits.RESERVED_ADDRESSES, ge=0) = 10  # addresses kept free at the start (gateway, services)
    mtu: limits.ranged(1280, 9216) = 1500  # the hosts' interfaces on it; the pod network subtracts its encapsulation


class Fabric(Strict):
    compute: ComputeFabric | None = None
    storage: StorageFabric | None = None
    management: ManagementNet
    oob: ManagementNet | None = None
