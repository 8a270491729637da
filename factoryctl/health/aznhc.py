"""Azure HPC health checks (Azure/azurehpc-health-checks, distributed_nhc): the per-host log
`host | Healthy` / `host | ERROR: nhc: Health check failed: ...`, and the debug log of
measured figures (`host | Measured Avg NCCL allreduce bus BW 477.873 GB/s (expected >=460.0 GB/s)`)."""

from __future__ import annotations

import re

from .model import HealthInputError, HostVerdict, ParsedSource
from .text import clean

_LINE = re.compile(r"^(\S+) \| (.*)$")
_DEVICE = re.compile(r"(?:GPU id|device|Device) (\d+)|port (mlx5_\w+:\d+)|\(PCI:([0-9a-fA-F:.]+)\)")
_EXPECT = re.compile(r"([\d.]+) GB/s \(expected >=\s*([\d.]+) GB/s\)|expected >=\s*([\d.]+) GB/s, but measured ([\d.]+)")


def _device(message: str) -> str | None:
    m = _DEVICE.search(message)
    if not m:
        return None
    if m.group(1):
        return f"GPU {m.group(1)}"
    return m.group(2) or f"PCI:{m.group(3)}"


def parse(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "aznhc")
    for _, line in clean(text):
        m = _LINE.match(line.strip())
        if not m:
            continue
        host, message = m.group(1), m.group(2).strip()
        measured = expected = None
        if e := _EXPECT.search(message):
            measured = float(e.group(1) or e.group(4))
            expected = float(e.group(2) or e.group(3))
        if message == "Healthy":
            ok = True
        elif message.startswith("ERROR"):
            ok = False
        else:  # a debug figure: judged against its own expectation where it states one
            ok = measured is None or measured >= expected
        src.facts.append(HostVerdict(host, ok, message, measured, expected, _device(message)))
    if not src.facts:
        raise HealthInputError(f"{name}: Azure HPC health check log with no `host | ...` line")
    hosts = {f.host for f in src.facts}
    if len(hosts) == 1:
        src.host = hosts.pop()
    return src
