"""`nvidia-smi --query-gpu=FIELD,... --format=csv[,noheader is refused,nounits]`: the header
names each column (`pcie.link.gen.current`, `power.draw [W]`), so any subset and order works.
Field names: `nvidia-smi --help-query-gpu` (NVIDIA nvidia-smi documentation)."""

from __future__ import annotations

import csv
import io
import re

from .model import Gpu, HealthInputError, ParsedSource, Versions
from .text import clean, integer, number, yes

# query field -> (Gpu attribute, converter)
FIELDS = {
    "index": ("index", integer), "name": ("name", str), "pci.bus_id": ("bus_id", str),
    "uuid": ("uuid", str), "driver_version": ("driver", str), "vbios_version": ("vbios", str),
    "persistence_mode": ("persistence", yes), "pstate": ("pstate", str),
    "utilization.gpu": ("util_pct", number),
    "pcie.link.gen.current": ("pcie_gen", integer), "pcie.link.gen.gpucurrent": ("pcie_gen", integer),
    "pcie.link.gen.max": ("pcie_gen_max", integer), "pcie.link.gen.gpumax": ("pcie_gen_max", integer),
    "pcie.link.width.current": ("pcie_width", integer), "pcie.link.width.max": ("pcie_width_max", integer),
    "temperature.gpu": ("temp_c", number), "temperature.gpu.tlimit": ("tlimit_c", number),
    "power.draw": ("power_w", number), "power.draw.instant": ("power_w", number),
    "power.limit": ("power_limit_w", number), "enforced.power.limit": ("power_limit_w", number),
    "power.default_limit": ("power_default_w", number),
    "clocks.sm": ("sm_mhz", number), "clocks.current.sm": ("sm_mhz", number),
    "clocks.max.sm": ("sm_max_mhz", number), "clocks.max.sm_clock": ("sm_max_mhz", number),
    "retired_pages.sbe": ("retired_sbe", integer), "retired_pages.single_bit_ecc.count": ("retired_sbe", integer),
    "retired_pages.dbe": ("retired_dbe", integer), "retired_pages.double_bit.count": ("retired_dbe", integer),
    "retired_pages.pending": ("retired_pending", yes),
    "remapped_rows.correctable": ("remap_correctable", integer),
    "remapped_rows.uncorrectable": ("remap_uncorrectable", integer),
    "remapped_rows.pending": ("remap_pending", yes), "remapped_rows.failure": ("remap_failure", yes),
    "fan.speed": ("fan", str),
}
_ECC = re.compile(r"^ecc\.errors\.(corrected|uncorrected)\.(volatile|aggregate)\.(total|dram|sram)$")
_REASON = re.compile(r"^clocks_(?:event_reasons|throttle_reasons)\.(\w+)$")


def parse_csv(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "nvidia-smi-csv")
    lines = [line for _, line in clean(text) if line.strip()]
    rows = list(csv.reader(io.StringIO("\n".join(lines)), skipinitialspace=True))
    header = [re.sub(r"\s*\[.*\]$", "", h.strip()).lower() for h in rows[0]]
    known = [h for h in header if h in FIELDS or _ECC.match(h) or _REASON.match(h)]
    if not known:
        raise HealthInputError(f"{name}:1: CSV header names no nvidia-smi --query-gpu field; got {', '.join(header)}")
    for no, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise HealthInputError(f"{name}:{no}: {len(row)} columns where the header has {len(header)};"
                                   " truncated or not one --query-gpu output")
        g = Gpu()
        for h, raw in zip(header, row, strict=True):
            value = raw.strip()
            if value.strip("[]").upper() in ("N/A", "NOT SUPPORTED", "UNKNOWN ERROR"):
                continue
            if h in FIELDS:
                attr, conv = FIELDS[h]
                setattr(g, attr, conv(value))
            elif m := _ECC.match(h):
                n = integer(value)
                if n is not None:
                    g.ecc[f"{m.group(2)}.{m.group(3)}.{m.group(1)}"] = n
            elif m := _REASON.match(h):
                active = yes(value)
                if active is None and value.lower() in ("active", "not active"):
                    active = value.lower() == "active"
                if active is not None:
                    key = "hw_power_brake_slowdown" if m.group(1) == "hw_power_brake_slowdown" else m.group(1)
                    g.throttle["idle" if key == "gpu_idle" else key] = active
        src.facts.append(g)
    if not src.facts:
        raise HealthInputError(f"{name}: nvidia-smi CSV with a header and no GPU row")
    drivers = {g.driver for g in src.facts if g.driver}
    if len(drivers) == 1:
        src.versions = Versions(driver=drivers.pop())
    return src
