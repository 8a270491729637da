"""`lspci -vvv`: for each function its link capability (LnkCap: Speed, Width) against the
link status (LnkSta), as the PCI Express capability registers report them (PCIe Base spec,
Link Capabilities / Link Status)."""

from __future__ import annotations

import re

from .model import HealthInputError, ParsedSource, PcieLink
from .text import clean, number

_DEV = re.compile(r"^((?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]) (.*)$")
_CAP = re.compile(r"^\s+LnkCap:.*?Speed ([\d.]+)GT/s.*?Width x(\d+)")
_STA = re.compile(r"^\s+LnkSta:.*?Speed ([\d.]+)GT/s.*?Width x(\d+)")


def parse(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "lspci")
    cur: PcieLink | None = None
    for _, line in clean(text):
        if m := _DEV.match(line):
            cur = PcieLink(m.group(1), m.group(2), None, None, None, None)
            src.facts.append(cur)
        elif cur is not None and (m := _CAP.match(line)):
            cur.cap_gts, cur.cap_width = number(m.group(1)), int(m.group(2))
        elif cur is not None and (m := _STA.match(line)):
            cur.sta_gts, cur.sta_width = number(m.group(1)), int(m.group(2))
    src.facts = [f for f in src.facts if f.sta_gts is not None or f.sta_width is not None]
    if not src.facts:
        raise HealthInputError(f"{name}: lspci output with no device that has a LnkSta line; give `lspci -vvv` run as root")
    return src
