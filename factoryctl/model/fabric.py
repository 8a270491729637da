"""`fabric:`: the compute (east/west), storage, management and out-of-band networks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Cidr, IPv4, PositiveInt, Strict, Token


class Roce(Strict):
    """Lossless class for RoCE: mismatches between host and switch are silent, so declare it."""

    dscp: int = Field(default=26, ge=0, le=63)
    priority: int = Field(default=3, ge=0, le=7)
    pfc: bool = True
    ecn: bool = True
    pfc_watchdog_ms: int | None = Field(default=100, ge=0)


class ComputeFabric(Strict):
    type: Literal["infiniband", "roce", "ethernet"]
    rails: PositiveInt
    link_gbps: PositiveInt
    topology: Literal["rail-optimized", "fat-tree"] = "rail-optimized"
    oversubscription: float = Field(default=1.0, ge=1.0, le=16.0)
    switch: Token
    planes: PositiveInt = 1
    su_nodes: PositiveInt | None = None  # nodes per scalable unit; default from switch radix
    roce: Roce | None = None
    sharp: bool = False


class StorageFabric(Strict):
    type: Literal["infiniband", "roce", "ethernet"]
    link_gbps: PositiveInt
    switch: Token | None = None
    oversubscription: float = Field(default=1.0, ge=1.0, le=16.0)


class ManagementNet(Strict):
    cidr: Cidr
    gateway: IPv4 | None = None
    vlan: int | None = Field(default=None, ge=1, le=4094)
    switch: Token | None = None
    reserved: int = Field(default=10, ge=0)  # addresses kept free at the start (gateway, services)


class Fabric(Strict):
    compute: ComputeFabric | None = None
    storage: StorageFabric | None = None
    management: ManagementNet
    oob: ManagementNet | None = None
