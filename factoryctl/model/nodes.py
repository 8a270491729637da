"""`nodes:`: node groups, each expanded into hosts by `resolve`."""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import Field, field_validator

from .common import IPv4, Line, Location, Name, PositiveInt, Strict, Text, Token

Role = Literal[
    "slurm-controller",
    "slurm-dbd",
    "slurm-compute",
    "login",
    "kube-control-plane",
    "kube-worker",
    "storage-server",
    "ufm",
    "monitoring",
    "management",
]

HOSTNAME_FIELDS = {"index", "group"}


class Cpu(Strict):
    model: Token
    sockets: PositiveInt = 1
    cores_per_socket: PositiveInt | None = None  # overrides the catalog


class Gpu(Strict):
    model: Token
    count: PositiveInt
    mig: bool = False


class Nic(Strict):
    name: Name  # compute | storage | inband ... (what the ports serve)
    model: Token
    count: PositiveInt
    speed_gbps: PositiveInt
    ports: PositiveInt = 1  # ports per card used


class Hardware(Strict):
    cpu: Cpu
    memory_gb: PositiveInt
    power_kw: float | None = Field(default=None, gt=0)  # max draw; estimated from GPUs if absent
    gpu: Gpu | None = None
    nics: list[Nic] = Field(default_factory=list)
    local_nvme_tb: float | None = Field(default=None, ge=0)


class Interface(Strict):
    interface: Name = "eno1"
    addresses: list[IPv4] = Field(default_factory=list)  # explicit, else derived from the CIDR
    bond: list[Name] = Field(default_factory=list)


class NodeNetwork(Strict):
    management: Interface = Field(default_factory=Interface)
    oob: Interface | None = None


class NodeGroup(Strict):
    group: Name
    count: PositiveInt
    hostname: Text  # Python format string: head{index:02d}
    start_index: int = Field(default=1, ge=0)
    rack: Name | Annotated[list[Name], Field(min_length=1)]
    roles: list[Role] = Field(default_factory=list)
    hardware: Hardware
    network: NodeNetwork = Field(default_factory=NodeNetwork)
    location: Location | None = None  # overrides site.country for this group
    labels: dict[Name, Line] = Field(default_factory=dict)

    @field_validator("hostname")
    @classmethod
    def _hostname_template(cls, v: str) -> str:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as e:
            raise ValueError(f"hostname template {v!r} is malformed: {e}\nhint: e.g. gpu{{index:02d}}") from None
        bad = [f for f in fields if f.split(".")[0].split("[")[0] not in HOSTNAME_FIELDS]
        if bad:
            raise ValueError(f"hostname template may use only {{index}} and {{group}}, not {{{bad[0]}}}\nhint: e.g. gpu{{index:02d}} or {{group}}-{{index}}")
        return v
