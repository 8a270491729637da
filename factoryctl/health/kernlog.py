"""Kernel log lines (dmesg in any time format, `journalctl -k`, kern.log, syslog): NVRM Xid
events with their PCI address, NVSwitch SXid events, a GPU fallen off the bus or failing its
probe, the PCI core's "available PCIe bandwidth, limited by" notice, and carrier lost/gained
on a network interface (IB link flaps, as Azure's HPC health checks count them)."""

from __future__ import annotations

import re

from .model import BusLoss, LinkFlap, ParsedSource, PcieLimit, SxidEvent, Versions, XidEvent
from .text import clean

_XID = re.compile(r"NVRM: Xid \((?:PCI:)?([0-9A-Fa-f:.]+)\): (\d+)(.*)$")
_CAUSE = re.compile(r"caused by previous Xid (\d+)")
_SXID = re.compile(r"(nvidia-nvswitch\d*)?:? ?SXid \((?:PCI:)?([0-9A-Fa-f:.]+)\): (\d+), ?(.*)$")
_FALLEN = re.compile(r"fallen off the bus|GPU has fallen off")
_GPU_ADDR = re.compile(r"GPU (?:at PCI:)?([0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}(?:\.[0-7])?)")
_PROBE = re.compile(r"nvidia: probe of ([0-9A-Fa-f:.]+) failed")
_LIMIT = re.compile(r"(\S+): ([\d.]+) Gb/s available PCIe bandwidth, limited by ([\d.]+) GT/s PCIe x(\d+) link"
                    r" at (\S+) \(capable of [\d.]+ Gb/s with ([\d.]+) GT/s PCIe x(\d+) link\)")
_CARRIER = re.compile(r"(\S+): (lost|Gained) carrier\s*$")
_SYSLOG = re.compile(r"^(?:[A-Z][a-z]{2} +\d+ [\d:]+|\d{4}-\d\d-\d\dT\S+) (\S+) \S+?(?:\[\d+\])?: ")
_STAMP = re.compile(r"^(\S+ +\d+ [\d:]+|\[[^\]]+\]|\S+T\S+)")
_MODULE = re.compile(r"NVRM: loading NVIDIA UNIX .*?Kernel Module(?: for \S+)?\s+([\d.]+)")


def _norm(bus: str) -> str:
    return bus.lower()


def parse(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "kernel-log")
    lines = clean(text)
    flaps: dict[str, LinkFlap] = {}
    hosts: set[str] = set()
    lost_at: dict[str, int] = {}
    for i, (no, line) in enumerate(lines):
        if m := _SYSLOG.match(line):
            hosts.add(m.group(1))
        if m := _MODULE.search(line):
            src.versions = Versions(driver=m.group(1))
        if m := _XID.search(line):
            cause = _CAUSE.search(m.group(3))
            src.facts.append(XidEvent(_norm(m.group(1)), int(m.group(2)), m.group(3).lstrip(", ").strip(), no,
                                      int(cause.group(1)) if cause else None))
        elif m := _SXID.search(line):
            detail = m.group(4)
            fatal = True if re.match(r"Fatal", detail) else False if re.match(r"Non-fatal", detail, re.I) else None
            switch = f"{m.group(1) or 'nvswitch'} (PCI:{_norm(m.group(2))})"
            src.facts.append(SxidEvent(switch, int(m.group(3)), fatal, detail.strip(), no))
        elif _FALLEN.search(line):
            # the message spans three lines: "The NVIDIA GPU <addr>" / "(PCI ID: ...)" / "fallen off"
            near = " ".join(text for _, text in lines[max(0, i - 2):i + 1])
            addr = _GPU_ADDR.search(near)
            bus = _norm(addr.group(1)) if addr else None
            if bus is None:  # the first line was cut: the failed probe that follows names it
                later = " ".join(text for _, text in lines[i + 1:i + 4])
                probe = _PROBE.search(later)
                bus = _norm(probe.group(1)) if probe else "unknown"
            lost_at[bus] = no
            src.facts.append(BusLoss(bus, "GPU has fallen off the bus", no))
        elif m := _PROBE.search(line):
            bus = _norm(m.group(1))
            if bus not in lost_at:
                src.facts.append(BusLoss(bus, "driver probe failed", no))
        elif m := _LIMIT.search(line):
            src.facts.append(PcieLimit(_norm(m.group(1)), _norm(m.group(5)), float(m.group(3)), int(m.group(4)),
                                       float(m.group(6)), int(m.group(7)), no))
        elif m := _CARRIER.search(line):
            iface = m.group(1)
            stamp = _STAMP.match(line)
            when = stamp.group(1) if stamp else f"line {no}"
            flap = flaps.get(iface)
            if flap is None:
                flap = flaps[iface] = LinkFlap(iface, 0, 0, when, when)
                src.facts.append(flap)
            flap.last = when
            if m.group(2) == "lost":
                flap.lost += 1
            else:
                flap.gained += 1
    if len(hosts) == 1:
        src.host = hosts.pop()
    return src
