"""`ibstat` and `ibstatus` (infiniband-diags): one IbPort per CA port with state, physical
state, rate in Gb/s and link layer; ibstat also gives CA type and firmware. An `ibpanic:` line
(ibstat could not read a device) is kept as a tool failure naming the device."""

from __future__ import annotations

import re

from .model import HealthInputError, IbPort, IbToolFailure, ParsedSource
from .text import clean, number

_CA = re.compile(r"^CA '([^']+)'")
_PORT = re.compile(r"^\s+Port (\d+):\s*$")
_FIELD = re.compile(r"^\s+([A-Za-z_ ]+?):\s*(.*?)\s*$")
_PANIC = re.compile(r"^ibpanic:")
_PANIC_DEVICE = re.compile(r"device '([^']+)'")
_STATUS = re.compile(r"^Infiniband device '([^']+)' port (\d+) status:")


def parse_ibstat(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "ibstat")
    ca = ca_type = fw = None
    port: IbPort | None = None
    for no, line in clean(text):
        if m := _CA.match(line):
            ca, ca_type, fw, port = m.group(1), None, None, None
            continue
        if _PANIC.match(line):
            dev = _PANIC_DEVICE.search(line)
            src.facts.append(IbToolFailure(dev.group(1) if dev else "ibstat", line.strip(), no))
            continue
        if ca is None:
            continue
        if m := _PORT.match(line):
            port = IbPort(ca, int(m.group(1)), None, None, None, None, ca_type, fw)
            src.facts.append(port)
            continue
        if m := _FIELD.match(line):
            key, value = m.group(1).strip().lower(), m.group(2)
            if port is None:
                if key == "ca type":
                    ca_type = value
                elif key == "firmware version":
                    fw = value
            elif key == "state":
                port.state = value
            elif key == "physical state":
                port.phys = value
            elif key == "rate":
                port.rate = number(value)
            elif key == "link layer":
                port.link_layer = value
    if not src.of(IbPort) and not src.of(IbToolFailure):
        raise HealthInputError(f"{name}: ibstat output with no `Port N:` section; truncated?")
    return src


def parse_ibstatus(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "ibstatus")
    port: IbPort | None = None
    for _, line in clean(text):
        if m := _STATUS.match(line):
            port = IbPort(m.group(1), int(m.group(2)), None, None, None, None)
            src.facts.append(port)
            continue
        if port is None or not (m := _FIELD.match(line)):
            continue
        key, value = m.group(1).strip().lower(), m.group(2)
        # "4: ACTIVE", "5: LinkUp": the name after the number, as ibstat spells it
        word = value.split(":", 1)[-1].strip()
        if key == "state":
            port.state = word.capitalize()
        elif key == "phys state":
            port.phys = "LinkUp" if word.lower() == "linkup" else word
        elif key == "rate":
            port.rate = number(value)
        elif key == "link_layer":
            port.link_layer = value
    if not src.facts:
        raise HealthInputError(f"{name}: ibstatus output with no port section")
    return src
