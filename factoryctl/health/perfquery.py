"""`perfquery [-x]` (one port's counters) and `ibqueryerrors` (ports with counters past its
thresholds, `[Name == value]`), infiniband-diags. Counter names are the PortCounters /
PortCountersExtended attribute names of the InfiniBand Architecture spec, as the tools print
them."""

from __future__ import annotations

import re

from .model import HealthInputError, IbCounters, ParsedSource
from .text import clean

_HEAD = re.compile(r"^# Port (?:extended )?counters: Lid (\d+) port (\d+|ALL|255)")
_COUNTER = re.compile(r"^(\w+):\.*\s*(\d+)\s*$")
_NODE = re.compile(r'^Errors for (?:(0x[0-9a-f]+) )?"([^"]*)"')
_PORT = re.compile(r"^\s*GUID (0x[0-9a-f]+) port (\d+|ALL):\s*(.*)$")
_PAIR = re.compile(r"\[(\w+) == (\d+)\]")
_SKIP = {"PortSelect", "CounterSelect", "CounterSelect2"}


def parse_perfquery(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "perfquery")
    rec: IbCounters | None = None
    for _, line in clean(text):
        if m := _HEAD.match(line):
            rec = IbCounters(f"Lid {m.group(1)} port {m.group(2)}", {})
            src.facts.append(rec)
        elif rec is not None and (m := _COUNTER.match(line)) and m.group(1) not in _SKIP:
            rec.counters[m.group(1)] = int(m.group(2))
    if not src.facts or not any(r.counters for r in src.facts):
        raise HealthInputError(f"{name}: perfquery output with no counters; truncated?")
    return src


def parse_ibqueryerrors(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "ibqueryerrors")
    node = ""
    for _, line in clean(text):
        if m := _NODE.match(line):
            node = m.group(2)
        elif m := _PORT.match(line):
            if m.group(2) == "ALL":
                continue  # the sum over the node's ports: each port is judged on its own
            counters = {k: int(v) for k, v in _PAIR.findall(m.group(3))}
            label = f"{node} " if node else ""
            src.facts.append(IbCounters(f"{label}GUID {m.group(1)} port {m.group(2)}", counters))
    if not src.facts:
        raise HealthInputError(f"{name}: ibqueryerrors output with no `GUID ... port N:` line")
    return src
