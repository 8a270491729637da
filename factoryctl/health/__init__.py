"""Health of GPUs, NVLink, InfiniBand and nodes from the recorded outputs of the tools
operators run (nvidia-smi, dcgmi, ibstat, perfquery, the kernel log, lspci, Azure's health
checks, nccl-tests), judged against thresholds with sources.

The API verify and quarantine use:

    parsed = parse_text(text, name)          # format detected from the content
    findings = judge(parsed, load_thresholds(overrides))
    findings += consistency([parsed, ...])   # the odd host out across inputs

`factoryctl health parse` is the command line over the same calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..bench import nccl_parse
from ..files import read_text
from . import aznhc, dcgmi, ibstat, kernlog, lspci, nvlink, nvsmi, nvsmi_csv, perfquery
from .judge import consistency, judge, load_thresholds, threshold_sources, xid_table
from .model import Finding, HealthInputError, NcclRun, ParsedSource
from .text import FORMATS, detect

__all__ = ["FORMATS", "Finding", "HealthInputError", "ParsedSource", "consistency", "detect", "judge",
           "load_thresholds", "parse_file", "parse_text", "report", "threshold_sources", "xid_table"]

SCHEMA = "factoryctl.health/v1"
_PROMPT_HOST = re.compile(r"^(?:> )?[\w.-]+@([\w.-]+):\S*[$#] ", re.M)
MAX_BYTES = 64 * 1024 * 1024  # a kernel log of weeks fits; a wrong file is refused, not read whole


def _nccl(text: str, name: str) -> ParsedSource:
    res = nccl_parse.parse_text(text, source=name)
    src = ParsedSource(name, "nccl-tests")
    src.facts.append(NcclRun(name, res.status, res.avg_busbw_gbps if res.avg_busbw_gbps is not None
                             else res.peak_busbw_gbps, list(res.errors), len(res.rows), res.wrong_total,
                             res.concluded))
    return src


PARSERS = {
    "nvidia-smi-xml": nvsmi.parse_xml, "nvidia-smi-q": nvsmi.parse_q, "nvidia-smi-summary": nvsmi.parse_summary,
    "nvidia-smi-csv": nvsmi_csv.parse_csv, "nvidia-smi-nvlink": nvlink.parse_nvidia_smi,
    "dcgmi-nvlink": nvlink.parse_dcgmi, "dcgmi-diag": dcgmi.parse_table, "dcgmi-diag-json": dcgmi.parse_json,
    "ibstat": ibstat.parse_ibstat, "ibstatus": ibstat.parse_ibstatus, "perfquery": perfquery.parse_perfquery,
    "ibqueryerrors": perfquery.parse_ibqueryerrors, "aznhc": aznhc.parse, "lspci": lspci.parse,
    "nccl-tests": _nccl, "kernel-log": kernlog.parse,
}


def parse_text(text: str, name: str, host: str | None = None) -> ParsedSource:
    """One tool's output, its format detected from the content. `host` names the node the
    output came from (else the output's own host name where it has one, else None)."""
    fmt = detect(text, name)
    parsed = PARSERS[fmt](text, name)
    if host:
        parsed.host = host
    elif parsed.host is None and (prompt := _PROMPT_HOST.search(text)):
        parsed.host = prompt.group(1)  # `user@host:~$ dcgmi diag ...` pasted with the output
    return parsed


def parse_file(path: str | Path, host: str | None = None) -> ParsedSource:
    """parse_text of a file, read bounded (files.read_text); errors name the file."""
    return parse_text(read_text(path, MAX_BYTES), str(path), host)


def report(sources: Iterable[ParsedSource], findings: list[Finding]) -> dict[str, Any]:
    """The `factoryctl.health/v1` document."""
    summary = {"pass": 0, "warn": 0, "fail": 0}
    for f in findings:
        summary[f.status] += 1
    return {"schema": SCHEMA, "findings": [f.to_dict() for f in findings], "summary": summary,
            "inputs": [{"file": s.name, "format": s.format, "host": s.host} for s in sources]}
