"""`nvidia-smi nvlink -s` (link speeds, `<inactive>`), `nvidia-smi nvlink -e` (replay,
recovery, CRC counters) and `dcgmi nvlink --link-status` (U/D/X/_ per link)."""

from __future__ import annotations

import re

from .model import HealthInputError, NvlinkErrors, NvlinkStatus, ParsedSource
from .text import clean

_GPU = re.compile(r"^GPU (\d+): (.*?)(?: \(UUID: [^)]*\))?\s*$")
_SPEED = re.compile(r"^\s*Link (\d+): (?:([\d.]+) GB/s|<inactive>)\s*$")
_ERR = re.compile(r"^\s*Link (\d+): ((?:Data |Flit )?CRC|Replay|Recovery) Errors?:\s*(\d+)", re.I)
_DCGM_GPU = re.compile(r"^\s*gpuId (\d+):\s*$")
_DCGM_LINKS = re.compile(r"^\s*([UDX_](?:\s+[UDX_])*)\s*$")


def parse_nvidia_smi(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "nvidia-smi-nvlink")
    gpu = None
    status: NvlinkStatus | None = None
    errors: dict[tuple[str, int], NvlinkErrors] = {}
    for _, line in clean(text):
        if m := _GPU.match(line):
            gpu = f"GPU {m.group(1)}"
            status = None
            continue
        if gpu is None:
            continue
        if "all links are inactive" in line:
            src.facts.append(NvlinkStatus(gpu, {}, all_inactive=True))
        elif m := _SPEED.match(line):
            if status is None:
                status = NvlinkStatus(gpu, {})
                src.facts.append(status)
            status.links[int(m.group(1))] = float(m.group(2)) if m.group(2) else None
        elif m := _ERR.match(line):
            link = int(m.group(1))
            rec = errors.get((gpu, link))
            if rec is None:
                rec = errors[(gpu, link)] = NvlinkErrors(gpu, link, {})
                src.facts.append(rec)
            kind = m.group(2).lower().replace("data ", "").replace("flit ", "")
            rec.counters[kind] = rec.counters.get(kind, 0) + int(m.group(3))
    if not src.facts:
        raise HealthInputError(f"{name}: nvidia-smi nvlink output with no GPU and link lines; truncated?")
    return src


def parse_dcgmi(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "dcgmi-nvlink")
    gpu = None
    for _, line in clean(text):
        if m := _DCGM_GPU.match(line):
            gpu = f"GPU {m.group(1)}"
            continue
        if gpu and (m := _DCGM_LINKS.match(line)):
            marks = m.group(1).split()
            links = {i: (None if c in "DX" else 0.0) for i, c in enumerate(marks) if c != "_"}
            disabled = tuple(i for i, c in enumerate(marks) if c == "X")
            src.facts.append(NvlinkStatus(gpu, links, disabled=disabled))
            gpu = None
        elif line.strip().startswith(("NvSwitches", "Key:")):
            gpu = None
    if not src.facts:
        raise HealthInputError(f"{name}: dcgmi nvlink output with no `gpuId N:` link row; truncated?")
    return src
