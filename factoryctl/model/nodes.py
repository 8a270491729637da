"""`nodes:`: node groups, each expanded into hosts by `resolve`."""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from . import limits
from .common import IPv4, Line, Location, Name, Strict, Text, Token

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
# A host name is one RFC 1123 label (63 characters), so no field of its template is wider.
MAX_HOSTNAME = 63

Sockets = limits.whole(limits.SOCKETS)
Cores = limits.whole(limits.CORES_PER_SOCKET)
GpuCount = limits.whole(limits.GPUS_PER_NODE)
NicCount = limits.whole(limits.NICS_PER_NODE)
Ports = limits.whole(limits.PORTS_PER_NIC)
LinkGbps = limits.whole(limits.LINK_GBPS)
MemoryGb = limits.whole(limits.MEMORY_GB)
NodeCount = limits.whole(limits.NODES_PER_GROUP)
StartIndex = limits.whole(limits.START_INDEX, ge=0)


class Cpu(Strict):
    model: Token
    sockets: Sockets = 1
    cores_per_socket: Cores | None = None  # overrides the catalog
    threads_per_core: Literal[1, 2, 4] | None = None  # overrides the catalog (SMT off in firmware: 1)


class Gpu(Strict):
    model: Token
    count: GpuCount
    mig: bool = False


class Nic(Strict):
    name: Name  # compute | storage | inband ... (what the ports serve)
    model: Token
    count: NicCount
    speed_gbps: LinkGbps
    ports: Ports = 1  # ports per card used


class Hardware(Strict):
    cpu: Cpu
    memory_gb: MemoryGb
    power_kw: limits.amount(limits.NODE_KW, gt=0) | None = None  # max draw; estimated from GPUs if absent
    gpu: Gpu | None = None
    nics: list[Nic] = Field(default_factory=list)
    local_nvme_tb: limits.amount(limits.NVME_TB, ge=0) | None = None

    @model_validator(mode="after")
    def _cards_in_node(self):
        # Each entry is bounded; so is their sum, or a long list of entries would multiply it.
        total = sum(n.count for n in self.nics)
        if total > limits.NICS_PER_NODE.most:
            lim = limits.NICS_PER_NODE
            raise ValueError(f"{total:,} network cards in one node (the nics entries together) is more than a "
                             f"site can have: at most {lim.most:,} ({lim.why})\nhint: check nics[*].count for a typo")
        return self


class Interface(Strict):
    interface: Name = "eno1"
    addresses: list[IPv4] = Field(default_factory=list)  # explicit, else derived from the CIDR
    bond: list[Name] = Field(default_factory=list)


class NodeNetwork(Strict):
    management: Interface = Field(default_factory=Interface)
    oob: Interface | None = None


class GpuSplit(Strict):
    """How a node's GPUs are shared between the two schedulers: device indices 0..slurm-1 go
    to Slurm (gres.conf), the next `kubernetes` to the Kubernetes device plugin."""

    slurm: limits.whole(limits.GPUS_PER_NODE, ge=0)
    kubernetes: limits.whole(limits.GPUS_PER_NODE, ge=0)


class NodeGroup(Strict):
    group: Name
    count: NodeCount
    hostname: Text  # Python format string: head{index:02d}
    start_index: StartIndex = 1
    rack: Name | Annotated[list[Name], Field(min_length=1)]
    roles: list[Role] = Field(default_factory=list)
    gpu_split: GpuSplit | None = None  # GPUs per node for Slurm and for Kubernetes (NOD011, NOD012)
    hardware: Hardware
    network: NodeNetwork = Field(default_factory=NodeNetwork)
    location: Location | None = None  # overrides site.country for this group
    labels: dict[Name, Line] = Field(default_factory=dict)

    @field_validator("hostname")
    @classmethod
    def _hostname_template(cls, v: str) -> str:
        try:
            parsed = [(f, spec or "") for _, f, spec, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as e:
            raise ValueError(f"hostname template {v!r} is malformed: {e}\nhint: e.g. gpu{{index:02d}}") from None
        fields = [f for f, _ in parsed]
        for _, spec in parsed:
            # Checked before anything is formatted: {index:0999999999d} would build a
            # gigabyte per host, and a nested field ({index:{index}}) a width from the index.
            if "{" in spec:
                raise ValueError(f"hostname template {v!r}: a field's format may not contain another field"
                                 "\nhint: e.g. gpu{index:02d}")
            widths = [w.lstrip("0") for w in re.findall(r"\d+", spec)]  # "05d": zero-fill, width 5
            if any(len(w) > 2 or int(w or 0) > MAX_HOSTNAME for w in widths):
                raise ValueError(f"hostname template {v!r}: a field width or precision above {MAX_HOSTNAME} "
                                 f"cannot fit a host name ({MAX_HOSTNAME} characters at most, RFC 1123)"
                                 "\nhint: e.g. gpu{index:02d}")
        bad = [f for f in fields if f.split(".")[0].split("[")[0] not in HOSTNAME_FIELDS]
        if bad:
            raise ValueError(f"hostname template may use only {{index}} and {{group}}, not {{{bad[0]}}}\nhint: e.g. gpu{{index:02d}} or {{group}}-{{index}}")
        return v
