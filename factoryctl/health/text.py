"""Clean-up and format detection shared by every parser.

Recorded outputs arrive quoted in mail (`> `), pasted from a terminal with the prompt and
command (`$ nvidia-smi nvlink -e`, `sh-5.1# ibstat`), or cut with `[...]`. `clean` removes
those without touching the data lines, and `detect` names the format from the content alone
(never the file name); text that matches two formats is refused as mixed.
"""

from __future__ import annotations

import json
import re

from .model import HealthInputError

TOOLS = ("nvidia-smi", "dcgmi", "ibstat", "ibstatus", "perfquery", "ibqueryerrors", "dmesg",
         "lspci", "journalctl", "grep", "cat", "tail", "sudo", "nvidia-bug-report.sh")
_PROMPT = re.compile(r"^(?:\S*[$#]\s*)?(?:sudo\s+)?(" + "|".join(re.escape(t) for t in TOOLS) + r")(\s|$)")
_GAP = re.compile(r"^\s*(\[\.\.\.\]|\.\.\.|…)\s*$")
_QUOTE = re.compile(r"^>( |$)")

# Format name -> (what it is, a pattern that only its output has). Order matters only for
# the message; detection takes every match and refuses more than one family.
SIGNATURES: dict[str, tuple[str, re.Pattern[str]]] = {
    "nvidia-smi-xml": ("nvidia-smi -q -x", re.compile(r"<nvidia_smi_log\b")),
    "nvidia-smi-q": ("nvidia-smi -q", re.compile(
        r"^==+NVSMI LOG==+$|^GPU [0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]\s*$"
        r"|^\s+(ECC Errors|Retired Pages|Remapped Rows|Clocks (Event|Throttle) Reasons)\s*$", re.M)),
    "nvidia-smi-summary": ("nvidia-smi (summary table)", re.compile(
        r"^\|\s*NVIDIA-SMI [\d.]+\s+Driver Version:", re.M)),
    "nvidia-smi-csv": ("nvidia-smi --query-gpu --format=csv", re.compile(
        r"\A\s*(index|name|pci\.bus_id|uuid|driver_version)\b[^\n]*,", re.I)),
    "nvidia-smi-nvlink": ("nvidia-smi nvlink -s / -e", re.compile(
        r"^\s*Link \d+: (?:[\d.]+ GB/s|<inactive>|(?:Replay|Recovery|CRC|Data CRC|Flit CRC) Errors:)"
        r"|Unable to retrieve NVLink information", re.M)),
    "dcgmi-nvlink": ("dcgmi nvlink --link-status", re.compile(r"NvLink Link Status")),
    "dcgmi-diag": ("dcgmi diag", re.compile(
        r"^\|\s*(?:Diagnostic\s+\|\s*Result|DCGM Version|Denylist|Blacklist|PCIe|GPU Memory"
        r"|Deployment|Error|Warning)\s+\||^[|+]-----\s+(Metadata|Deployment|Integration|Hardware|Stress)",
        re.M)),
    "dcgmi-diag-json": ("dcgmi diag -j", re.compile(r'"DCGM (?:GPU )?Diagnostic"\s*:')),
    "ibstat": ("ibstat", re.compile(r"^CA '[^']+'\s*$", re.M)),
    "ibstatus": ("ibstatus", re.compile(r"^Infiniband device '[^']+' port \d+ status:", re.M)),
    "perfquery": ("perfquery", re.compile(r"^# Port (?:extended )?counters:", re.M)),
    "ibqueryerrors": ("ibqueryerrors", re.compile(r"^\s*GUID 0x[0-9a-f]+ port (?:\d+|ALL): \[", re.M)),
    "aznhc": ("Azure HPC health checks log", re.compile(
        r"^\S+ \| (?:Healthy|ERROR:|Device \d+ |IB devices=|Measured |NCCL allreduce)", re.M)),
    "lspci": ("lspci -vvv", re.compile(r"^\s+LnkSta:\s", re.M)),
    "nccl-tests": ("nccl-tests", re.compile(r"#\s+out-of-place\s+in-place|# nccl-tests|Avg bus bandwidth|#\s+size\s+count\s+type")),
    "kernel-log": ("kernel log (dmesg, journal, kern.log, syslog)", re.compile(
        r"NVRM: Xid \(|SXid \(PCI:|fallen off the bus|available PCIe bandwidth, limited by"
        r"|: (?:lost|Gained) carrier$|nvidia: probe of \S+ failed", re.M)),
}
FORMATS = tuple(SIGNATURES)

# Formats that quote another's lines inside their own: the first wins over the second.
_CONTAINS = {("aznhc", "kernel-log"), ("nvidia-smi-q", "nvidia-smi-nvlink")}


def clean(text: str) -> list[tuple[int, str]]:
    """(original line number, line) without quote prefixes, shell prompts and `[...]` gaps."""
    lines = text.splitlines()
    nonblank = [ln for ln in lines if ln.strip()]
    quoted = bool(nonblank) and sum(1 for ln in nonblank if _QUOTE.match(ln)) >= 0.8 * len(nonblank)
    out = []
    for no, line in enumerate(lines, 1):
        if quoted:
            line = _QUOTE.sub("", line, count=1)
        if _GAP.match(line) or _PROMPT.match(line.strip()) and not line.startswith((" ", "\t")):
            continue
        out.append((no, line.rstrip("\r")))
    return out


def detect(text: str, name: str) -> str:
    """The one format `text` is in; HealthInputError naming `name` when it is none or several."""
    if not text.strip():
        raise HealthInputError(f"{name}: empty; give the output of one of: {supported()}")
    if "\x00" in text:
        raise HealthInputError(f"{name}: binary data, not a tool's text output; give the output of one of: {supported()}")
    body = "\n".join(line for _, line in clean(text))
    hits = [fmt for fmt, (_, pattern) in SIGNATURES.items() if pattern.search(body)]
    if not hits and body.lstrip().startswith("{"):
        try:
            json.loads(body)
        except ValueError as exc:
            raise HealthInputError(f"{name}:{exc.lineno}:{exc.colno}: JSON that does not parse ({exc.msg});"
                                   " truncated? give the whole `dcgmi diag -j` output") from None
        raise HealthInputError(f"{name}: JSON, but not `dcgmi diag -j` output (no \"DCGM GPU Diagnostic\" key)")
    if not hits and _kernel_lines(body):
        hits = ["kernel-log"]  # a kernel log with nothing to report: judged clean, not refused
    for outer, inner in _CONTAINS:
        if outer in hits and inner in hits:
            hits.remove(inner)
    if not hits:
        raise HealthInputError(f"{name}: not a recognised health output; give the output of one of: {supported()}")
    if len(hits) > 1:
        where = []
        for fmt in hits:
            match = SIGNATURES[fmt][1].search(body)
            line = body.count("\n", 0, match.start()) + 1 if match else 0
            where.append(f"{SIGNATURES[fmt][0]} (line {line})")
        raise HealthInputError(f"{name}: mixes outputs of several tools: {', '.join(where)};"
                               " give each tool's output in its own file")
    return hits[0]


_KERNEL_LINE = re.compile(r"^(?:\[\s*\d+\.\d+\]|\[[A-Z][a-z]{2} [A-Z][a-z]{2} +\d+ [\d:]+ \d{4}\]"
                          r"|[A-Z][a-z]{2} +\d+ [\d:]+ \S+ \S+:|\d{4}-\d\d-\d\dT[\d:.,+-]+ \S+ \S+:"
                          r"|kern\s+:\w+\s*:|kernel:)")


def _kernel_lines(body: str) -> bool:
    """Most lines look like dmesg, journal or syslog lines."""
    lines = [ln for ln in body.splitlines() if ln.strip()]
    return bool(lines) and sum(1 for ln in lines if _KERNEL_LINE.match(ln.strip())) >= 0.8 * len(lines)


def supported() -> str:
    return ", ".join(dict.fromkeys(label for label, _ in SIGNATURES.values()))


def number(text: str | None) -> float | None:
    """The first number in `text` ("71.97 W", "16x", "[N/A]" -> None)."""
    if text is None:
        return None
    m = re.search(r"-?\d+(?:\.\d+)?", text)
    return float(m.group()) if m else None


def integer(text: str | None) -> int | None:
    n = number(text)
    return int(n) if n is not None else None


def yes(text: str | None) -> bool | None:
    """Yes/Enabled/Active -> True, No/Disabled/Not Active -> False, N/A -> None."""
    if text is None:
        return None
    t = text.strip().strip("[]").lower()
    if t in ("yes", "enabled", "active", "on", "true"):
        return True
    if t in ("no", "disabled", "not active", "off", "false"):
        return False
    return None
