"""What the health parsers return and what the judge makes of it: facts (one dataclass per
kind of observation, each naming its device) gathered in a ParsedSource, and Findings.

Parsers only read; the judge (judge.py) decides pass, warn or fail against thresholds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import FactoryctlError

Status = Literal["pass", "warn", "fail"]


class HealthInputError(FactoryctlError):
    """A health input cannot be judged: empty, binary, truncated, unrecognised or mixed. The
    message names the file (and the line where it helps) and what to give instead."""


@dataclass
class Gpu:
    """One GPU as nvidia-smi (-q, -q -x, --query-gpu, the summary table) reports it; None where
    the output does not say."""

    bus_id: str | None = None
    index: int | None = None
    name: str | None = None
    uuid: str | None = None
    driver: str | None = None
    cuda: str | None = None
    vbios: str | None = None
    persistence: bool | None = None
    pstate: str | None = None
    util_pct: float | None = None
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    # ECC counters: "volatile|aggregate" -> "sram|dram|total" -> "corrected|uncorrected" -> n
    ecc: dict[str, int] = field(default_factory=dict)  # key "volatile.dram.uncorrected"
    retired_sbe: int | None = None
    retired_dbe: int | None = None
    retired_pending: bool | None = None
    remap_correctable: int | None = None
    remap_uncorrectable: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    remap_banks_low: int | None = None  # banks with Low or None remap availability
    throttle: dict[str, bool] = field(default_factory=dict)  # reason -> active
    temp_c: float | None = None
    temp_slowdown_c: float | None = None
    temp_max_op_c: float | None = None
    tlimit_c: float | None = None  # Hopper+: degrees below the limit (T.Limit form)
    tlimit_slowdown_c: float | None = None
    tlimit_max_op_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    power_default_w: float | None = None
    sm_mhz: float | None = None
    sm_max_mhz: float | None = None
    fabric_state: str | None = None
    fabric_status: str | None = None
    reset_required: bool | None = None
    fan: str | None = None

    @property
    def device(self) -> str:
        if self.index is not None and self.bus_id:
            return f"GPU {self.index} ({self.bus_id})"
        if self.index is not None:
            return f"GPU {self.index}"
        return f"GPU {self.bus_id}" if self.bus_id else "GPU (not named in the output)"


@dataclass
class GpuCount:
    """A whole nvidia-smi -q / -q -x output: how many GPUs it says are attached and how many
    GPU sections it holds (fewer: trimmed or cut short)."""

    attached: int
    seen: int


@dataclass
class XidEvent:
    bus: str  # PCI address as the log gives it, e.g. 0000:9b:00
    code: int
    text: str
    line: int
    cause: int | None = None  # "caused by previous Xid N"


@dataclass
class SxidEvent:
    switch: str  # e.g. nvidia-nvswitch3 (PCI:0000:04:00.0)
    code: int
    fatal: bool | None  # None: the line does not say
    text: str
    line: int


@dataclass
class BusLoss:
    """"fallen off the bus" or a failed probe: the GPU is gone from the PCIe bus."""

    bus: str
    text: str
    line: int


@dataclass
class PcieLimit:
    """The kernel's "N Gb/s available PCIe bandwidth, limited by ..." line."""

    device: str
    at: str
    gts: float
    width: int
    cap_gts: float
    cap_width: int
    line: int


@dataclass
class PcieLink:
    """lspci -vvv LnkCap against LnkSta for one function."""

    device: str
    description: str
    cap_gts: float | None
    cap_width: int | None
    sta_gts: float | None
    sta_width: int | None


@dataclass
class LinkFlap:
    iface: str
    lost: int
    gained: int
    first: str
    last: str


@dataclass
class NvlinkStatus:
    gpu: str  # "GPU 6" (and the name)
    links: dict[int, float | None]  # link -> GB/s, None for inactive/down
    all_inactive: bool = False
    disabled: tuple[int, ...] = ()


@dataclass
class NvlinkErrors:
    gpu: str
    link: int
    counters: dict[str, int]  # replay, recovery, crc


@dataclass
class IbPort:
    ca: str
    port: int
    state: str | None
    phys: str | None
    rate: float | None  # Gb/s
    link_layer: str | None
    ca_type: str | None = None
    firmware: str | None = None

    @property
    def device(self) -> str:
        return f"{self.ca} port {self.port}"


@dataclass
class IbToolFailure:
    device: str
    text: str
    line: int


@dataclass
class IbCounters:
    device: str  # "Lid 2052 port 1" / "GUID 0x.. port 5"
    counters: dict[str, int]


@dataclass
class DiagResult:
    test: str
    category: str | None
    result: str  # Pass | Fail | Skip | Warn
    gpus: str  # "All", "0", "1, 2, 3"
    detail: str = ""
    entity: str = "GPU"  # DCGM 4 entity_group: GPU, CPU, ...


@dataclass
class HostVerdict:
    """One per-host line of an Azure HPC health check (aznhc) log."""

    host: str
    ok: bool
    message: str
    measured: float | None = None
    expected: float | None = None
    device: str | None = None


@dataclass
class NcclRun:
    source: str
    status: str
    busbw_gbps: float | None  # the average when the log has its footer, else the peak row
    errors: list[str]
    rows: int = 0
    wrong: int = 0
    concluded: bool = True


@dataclass
class Versions:
    """Versions an output states for a host, for the consistency check across hosts."""

    driver: str | None = None
    cuda: str | None = None


@dataclass
class ParsedSource:
    name: str  # the file (or the name the caller gave the text)
    format: str  # one of detect.FORMATS
    host: str | None = None
    facts: list[Any] = field(default_factory=list)
    versions: Versions = field(default_factory=Versions)

    def of(self, kind: type) -> list[Any]:
        return [f for f in self.facts if isinstance(f, kind)]


@dataclass
class Finding:
    source: str
    host: str | None
    device: str
    check: str
    status: Status
    value: Any = None
    expected: Any = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
