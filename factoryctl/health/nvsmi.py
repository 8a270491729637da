"""`nvidia-smi -q` (text, also `-q -d PAGE_RETIREMENT` and other excerpts) and `nvidia-smi
-q -x` (XML): one Gpu per GPU block.

Both are read into a flat map of path -> value ("ECC Errors/Volatile/DRAM Uncorrectable" in
text, "ecc_errors/volatile/dram_uncorrectable" in XML) and picked from there, so an excerpt
with only some sections still yields what it has. Field names: nvidia-smi's own output
(NVIDIA nvml docs "nvidia-smi -q" sections; the DTD nvsmi_device_v12.dtd that `-q -x` names).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from .model import Gpu, GpuCount, HealthInputError, ParsedSource, Versions
from .text import clean, integer, number, yes

_BUS = re.compile(r"^GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\s*$")
_KV = re.compile(r"^(\s*)([^:]+?)\s*:\s?(.*)$")
_SECTION = re.compile(r"^(\s*)(\S.*?)\s*$")

# Clock event (throttle) reason labels in text and the tag stems in XML -> one key.
REASONS = {
    "sw power cap": "sw_power_cap", "hw slowdown": "hw_slowdown",
    "hw thermal slowdown": "hw_thermal_slowdown", "hw power brake slowdown": "hw_power_brake_slowdown",
    "sw thermal slowdown": "sw_thermal_slowdown", "idle": "idle", "gpu_idle": "idle",
    "sync boost": "sync_boost", "applications clocks setting": "applications_clocks_setting",
    "display clock setting": "display_clocks_setting",
}


def _pick(paths: dict[str, str], *suffixes: str) -> str | None:
    for suffix in suffixes:
        s = suffix.lower()
        for path, value in paths.items():
            if path.lower() == s or path.lower().endswith("/" + s):
                return value
    return None


def _ecc(paths: dict[str, str], gpu: Gpu) -> None:
    for path, value in paths.items():
        parts = path.lower().split("/")
        if len(parts) < 3 or parts[0] not in ("ecc errors", "ecc_errors"):
            continue
        scope = parts[1]
        if scope not in ("volatile", "aggregate"):
            continue
        leaf = parts[-1].replace("_", " ")
        n = integer(value)
        if n is None:
            continue
        if "threshold" in leaf:
            continue
        kind = "sram" if "sram" in leaf else "dram" if "dram" in leaf else "total"
        if "uncorrectable" in leaf or (leaf == "total" and "double" in path.lower()):
            sense = "uncorrected"
        elif "correctable" in leaf or (leaf == "total" and "single" in path.lower()):
            sense = "corrected"
        else:
            continue
        key = f"{scope}.{kind}.{sense}"
        gpu.ecc[key] = gpu.ecc.get(key, 0) + n


def _gpu(paths: dict[str, str], bus: str | None) -> Gpu:
    g = Gpu(bus_id=bus)
    g.name = _pick(paths, "Product Name", "product_name")
    g.uuid = _pick(paths, "GPU UUID", "uuid")
    g.vbios = _pick(paths, "VBIOS Version", "vbios_version")
    g.persistence = yes(_pick(paths, "Persistence Mode", "persistence_mode"))
    g.pstate = _pick(paths, "Performance State", "performance_state")
    g.util_pct = number(_pick(paths, "Utilization/Gpu", "utilization/gpu_util"))
    g.pcie_gen = integer(_pick(paths, "PCIe Generation/Current", "pcie_gen/current_link_gen"))
    g.pcie_gen_max = integer(_pick(paths, "PCIe Generation/Max", "pcie_gen/max_link_gen"))
    g.pcie_width = integer(_pick(paths, "Link Width/Current", "link_widths/current_link_width"))
    g.pcie_width_max = integer(_pick(paths, "Link Width/Max", "link_widths/max_link_width"))
    _ecc(paths, g)
    g.retired_sbe = integer(_pick(paths, "Retired Pages/Single Bit ECC",
                                  "multiple_single_bit_retirement/retired_count"))
    g.retired_dbe = integer(_pick(paths, "Retired Pages/Double Bit ECC", "double_bit_retirement/retired_count"))
    g.retired_pending = yes(_pick(paths, "Pending Page Blacklist", "Pending Page Retirement",
                                  "retired_pages/pending_blacklist", "retired_pages/pending_retirement"))
    g.remap_correctable = integer(_pick(paths, "Remapped Rows/Correctable Error", "remapped_row_corr"))
    g.remap_uncorrectable = integer(_pick(paths, "Remapped Rows/Uncorrectable Error", "remapped_row_unc"))
    g.remap_pending = yes(_pick(paths, "Remapped Rows/Pending", "remapped_row_pending"))
    g.remap_failure = yes(_pick(paths, "Remapping Failure Occurred", "remapped_row_failure"))
    low = [integer(_pick(paths, p)) for p in ("Bank Remap Availability Histogram/Low",
                                               "Bank Remap Availability Histogram/None",
                                               "row_remapper_histogram_low", "row_remapper_histogram_none")]
    if any(v is not None for v in low):
        g.remap_banks_low = sum(v or 0 for v in low)
    for path, value in paths.items():
        parts = path.lower().split("/")
        if len(parts) >= 2 and parts[-2].replace("_", " ") in ("clocks event reasons", "clocks throttle reasons"):
            stem = re.sub(r"^clocks_(?:event|throttle)_reason_", "", parts[-1]).replace("_", " ")
            key = REASONS.get(stem) or REASONS.get(stem.replace(" ", "_")) or stem.replace(" ", "_")
            active = yes(value)
            if active is not None:
                g.throttle[key] = active
    g.temp_c = number(_pick(paths, "Temperature/GPU Current Temp", "temperature/gpu_temp"))
    g.temp_slowdown_c = number(_pick(paths, "GPU Slowdown Temp", "gpu_temp_slow_threshold"))
    g.temp_max_op_c = number(_pick(paths, "GPU Max Operating Temp", "gpu_temp_max_gpu_threshold"))
    g.tlimit_c = number(_pick(paths, "GPU T.Limit Temp", "gpu_temp_tlimit"))
    g.tlimit_slowdown_c = number(_pick(paths, "GPU Slowdown T.Limit Temp", "gpu_temp_slow_tlimit_threshold"))
    g.tlimit_max_op_c = number(_pick(paths, "GPU Max Operating T.Limit Temp", "gpu_temp_max_tlimit_threshold"))
    g.power_w = number(_pick(paths, "GPU Power Readings/Power Draw", "Power Readings/Power Draw",
                             "gpu_power_readings/power_draw", "power_readings/power_draw"))
    g.power_limit_w = number(_pick(paths, "GPU Power Readings/Current Power Limit", "Power Readings/Enforced Power Limit",
                                   "Power Readings/Power Limit", "gpu_power_readings/current_power_limit",
                                   "power_readings/enforced_power_limit", "power_readings/power_limit"))
    g.power_default_w = number(_pick(paths, "GPU Power Readings/Default Power Limit", "Power Readings/Default Power Limit",
                                     "gpu_power_readings/default_power_limit", "power_readings/default_power_limit"))
    g.sm_mhz = number(_pick(paths, "Clocks/SM", "clocks/sm_clock"))
    g.sm_max_mhz = number(_pick(paths, "Max Clocks/SM", "max_clocks/sm_clock"))
    state = _pick(paths, "Fabric/State", "fabric/state")
    g.fabric_state = state if state and state.upper() != "N/A" else None
    status = _pick(paths, "Fabric/Status", "fabric/status")
    g.fabric_status = status if status and status.upper() != "N/A" else None
    g.reset_required = yes(_pick(paths, "GPU Reset Status/Reset Required", "gpu_reset_status/reset_required"))
    g.fan = _pick(paths, "Fan Speed", "fan_speed")
    return g


def parse_q(text: str, name: str) -> ParsedSource:
    """`nvidia-smi -q` text, whole or an excerpt of GPU sections."""
    src = ParsedSource(name, "nvidia-smi-q")
    top: dict[str, str] = {}
    blocks: list[tuple[str | None, dict[str, str]]] = []
    stack: list[tuple[int, str]] = []
    for _, line in clean(text):
        if not line.strip() or line.strip().startswith("="):
            continue
        bus = _BUS.match(line)
        if bus:
            blocks.append((bus.group(1), {}))
            stack = []
            continue
        indent = len(line) - len(line.lstrip())
        kv = _KV.match(line)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if kv and kv.group(3).strip():
            key = "/".join([s for _, s in stack] + [kv.group(2).strip()])
            if indent == 0 and not blocks:
                top[kv.group(2).strip()] = kv.group(3).strip()
            else:
                if not blocks:
                    blocks.append((None, {}))
                blocks[-1][1].setdefault(key, kv.group(3).strip())
        else:
            sec = _SECTION.match(line)
            if sec:
                stack.append((indent, sec.group(2).rstrip(":").strip()))
    src.versions = Versions(driver=top.get("Driver Version"), cuda=top.get("CUDA Version"))
    attached = integer(top.get("Attached GPUs"))
    gpus = [_gpu(paths, bus) for bus, paths in blocks]
    if attached is not None and attached == len(gpus) and all(g.bus_id for g in gpus):
        # nvidia-smi lists GPUs in PCI bus order, the order of its default indices.
        for i, g in enumerate(gpus):
            g.index = i
    for g in gpus:
        g.driver, g.cuda = src.versions.driver, src.versions.cuda
    if not gpus or not any(p for _, p in blocks):
        raise HealthInputError(f"{name}: nvidia-smi -q output with no GPU section; truncated? give the whole"
                               " `nvidia-smi -q` output")
    src.facts.extend(gpus)
    if attached is not None and re.search(r"^==+NVSMI LOG==+", text, re.M):
        src.facts.append(GpuCount(attached, len(gpus)))
    return src


def _flatten(elem: ET.Element, prefix: str, out: dict[str, str]) -> None:
    for child in elem:
        path = f"{prefix}/{child.tag}" if prefix else child.tag
        if len(child):
            _flatten(child, path, out)
        elif child.text and child.text.strip():
            out.setdefault(path, child.text.strip())


def parse_xml(text: str, name: str) -> ParsedSource:
    """`nvidia-smi -q -x`."""
    start = text.find("<?xml")
    start = start if start >= 0 else text.find("<nvidia_smi_log")
    body = text[start:]
    # nvidia-smi names its DTD in a DOCTYPE (ElementTree does not fetch it) and declares no
    # entities; a file that does is not nvidia-smi's, and entity expansion is refused outright.
    if "<!ENTITY" in body:
        line = text.count("\n", 0, text.find("<!ENTITY")) + 1
        raise HealthInputError(f"{name}:{line}: XML declares entities, which nvidia-smi -q -x never does;"
                               " refused (give the tool's own output)")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        line, col = exc.position
        line += text.count("\n", 0, start)
        raise HealthInputError(f"{name}:{line}:{col}: nvidia-smi -q -x XML does not parse ({exc});"
                               " truncated? give the whole output") from None
    if root.tag != "nvidia_smi_log":
        raise HealthInputError(f"{name}: XML whose root is <{root.tag}>, not nvidia-smi's <nvidia_smi_log>")
    src = ParsedSource(name, "nvidia-smi-xml")
    src.versions = Versions(driver=(root.findtext("driver_version") or "").strip() or None,
                            cuda=(root.findtext("cuda_version") or "").strip() or None)
    nodes = root.findall("gpu")
    whole = integer(root.findtext("attached_gpus")) == len(nodes)
    for i, node in enumerate(nodes):
        paths: dict[str, str] = {}
        _flatten(node, "", paths)
        g = _gpu(paths, node.get("id"))
        g.driver, g.cuda = src.versions.driver, src.versions.cuda
        if whole:  # every GPU is here, in bus order: nvidia-smi's indices
            g.index = i
        src.facts.append(g)
    if not src.facts:
        raise HealthInputError(f"{name}: nvidia-smi -q -x output with no <gpu> element")
    attached = integer(root.findtext("attached_gpus"))
    if attached is not None:
        src.facts.append(GpuCount(attached, len(nodes)))
    return src


_SUMMARY_ROW1 = re.compile(r"^\|\s*(\d+)\s+(.+?)\s+(On|Off)\s*\|\s*([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])")
_SUMMARY_ROW2 = re.compile(r"^\|\s*(\S+)\s+(\S+)\s+(P\d+)\s+(\S+)\s*/\s*(\S+)\s*\|")


def parse_summary(text: str, name: str) -> ParsedSource:
    """The plain `nvidia-smi` table: per GPU index, name, persistence, bus id, fan, temperature,
    power and its cap."""
    src = ParsedSource(name, "nvidia-smi-summary")
    head = re.search(r"Driver Version:\s*(\S+)\s+CUDA Version:\s*(\S+)", text)
    if head:
        src.versions = Versions(driver=head.group(1), cuda=head.group(2))
    current: Gpu | None = None
    for _, line in clean(text):
        m = _SUMMARY_ROW1.match(line)
        if m:
            current = Gpu(index=int(m.group(1)), name=m.group(2), persistence=m.group(3) == "On",
                          bus_id=m.group(4), driver=src.versions.driver, cuda=src.versions.cuda)
            src.facts.append(current)
            continue
        m = _SUMMARY_ROW2.match(line)
        if m and current is not None and current.temp_c is None:
            current.fan = m.group(1)
            current.temp_c = number(m.group(2))
            current.pstate = m.group(3)
            current.power_w = number(m.group(4))
            current.power_limit_w = number(m.group(5))
    if not src.facts:
        raise HealthInputError(f"{name}: nvidia-smi table with no GPU row; truncated?")
    return src
