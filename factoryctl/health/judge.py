"""Parsed facts to findings: pass, warn or fail, each naming the device, the value and what
was expected. Every number compared against comes from thresholds.yaml (with its source) or
the GPU catalog (PCIe generation and width per GPU family); the Xid classification from
xid.yaml (NVIDIA's Xid catalog)."""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .. import catalog
from .model import (
    BusLoss,
    DiagResult,
    Finding,
    Gpu,
    GpuCount,
    HealthInputError,
    HostVerdict,
    IbCounters,
    IbPort,
    IbToolFailure,
    LinkFlap,
    NcclRun,
    NvlinkErrors,
    NvlinkStatus,
    ParsedSource,
    PcieLimit,
    PcieLink,
    SxidEvent,
    XidEvent,
)

HERE = Path(__file__).parent
ACTION_STATUS = {"IGNORE": "pass", "RESTART_APP": "warn", "RESET_GPU": "fail", "RESTART_BM": "fail",
                 "CONTACT_SUPPORT": "fail"}
ACTION_WORDS = {"IGNORE": "no action (a consequence of an earlier error)",
                "RESTART_APP": "restart the application; a hardware fault only if it repeats on this GPU",
                "RESET_GPU": "drain the node and reset the GPU", "RESTART_BM": "drain and reboot the node",
                "CONTACT_SUPPORT": "drain; run the field diagnostic and open an RMA case"}


@cache
def _defaults() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((HERE / "thresholds.yaml").read_text())["thresholds"]


@cache
def xid_table() -> dict[str, Any]:
    return yaml.safe_load((HERE / "xid.yaml").read_text())


def threshold_sources() -> dict[str, str]:
    """Each threshold's source, for docs and `--format json` consumers."""
    return {k: v["source"] for k, v in _defaults().items()}


def load_thresholds(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The thresholds, with `overrides` (e.g. verify.thresholds) replacing defaults by name.
    An unknown name or a non-number is refused naming the key and the nearest known one."""
    values = {k: v["value"] for k, v in _defaults().items()}
    for key, value in (overrides or {}).items():
        if key not in values:
            near = difflib.get_close_matches(key, list(values), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(values))}"
            raise HealthInputError(f"thresholds.{key}: no such health threshold{hint}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HealthInputError(f"thresholds.{key}: {value!r} is not a number")
        values[key] = value
    return values


class _Out:
    def __init__(self, src: ParsedSource):
        self.src, self.findings = src, []

    def add(self, device: str, check: str, status: str, value: Any = None, expected: Any = None,
            detail: str = "") -> None:
        self.findings.append(Finding(self.src.name, self.src.host, device, check, status, value, expected, detail))


def _catalog_gpu(name: str | None):
    if not name:
        return None
    label = name.removeprefix("NVIDIA ").strip().replace(" ", "-")
    return catalog.gpu(label)


def _gpu(o: _Out, g: Gpu, t: Mapping[str, float]) -> None:
    d = g.device
    if g.persistence is not None:
        o.add(d, "persistence-mode", "pass" if g.persistence else "warn", "on" if g.persistence else "off", "on",
              "" if g.persistence else "persistence mode off: the driver unloads between jobs (slow starts, lost"
              " state); `nvidia-smi -pm 1` or nvidia-persistenced (NVIDIA driver persistence docs)")
    if g.reset_required:
        o.add(d, "reset-required", "fail", "yes", "no", "the driver asks for a GPU reset (nvidia-smi GPU Reset Status)")
    # ECC
    for scope in ("volatile", "aggregate"):
        unc = sum(v for k, v in g.ecc.items() if k.startswith(scope) and k.endswith("uncorrected"))
        cor = sum(v for k, v in g.ecc.items() if k.startswith(scope) and k.endswith(".corrected"))
        if not any(k.startswith(scope) for k in g.ecc):
            continue
        parts = ", ".join(f"{k.split('.')[1]} {k.split('.')[2]} {v}" for k, v in sorted(g.ecc.items())
                          if k.startswith(scope) and v)
        if scope == "volatile":
            bad = unc >= t["ecc_volatile_uncorrected_fail"]
            o.add(d, "ecc-volatile-uncorrected", "fail" if bad else "pass", unc,
                  f"< {t['ecc_volatile_uncorrected_fail']}", parts if bad else "")
        else:
            bad = unc >= t["ecc_aggregate_uncorrected_warn"]
            o.add(d, "ecc-aggregate-uncorrected", "warn" if bad else "pass", unc,
                  f"< {t['ecc_aggregate_uncorrected_warn']}", parts if bad else "")
        hi = cor >= t["ecc_corrected_warn"]
        o.add(d, f"ecc-{scope}-corrected", "warn" if hi else "pass", cor, f"< {t['ecc_corrected_warn']}",
              "" if not cor else f"corrected errors ({parts})")
    # row remapping (A100 and newer) or page retirement (older)
    if g.remap_pending is not None or g.remap_failure is not None:
        if g.remap_failure:
            o.add(d, "row-remap-failure", "fail", "yes", "no",
                  "a row could not be remapped: run the field diagnostic, RMA (NVIDIA GPU memory error management)")
        if g.remap_pending:
            o.add(d, "row-remap-pending", "fail", "yes", "no",
                  f"rows wait for a GPU reset to be remapped (correctable {g.remap_correctable},"
                  f" uncorrectable {g.remap_uncorrectable}); drain and reset the GPU")
        if not g.remap_failure and not g.remap_pending:
            o.add(d, "row-remap", "pass", "no pending, no failure", "no pending, no failure")
        if g.remap_uncorrectable is not None and g.remap_uncorrectable >= t["remap_uncorrectable_fail"]:
            o.add(d, "row-remap-uncorrectable", "fail", g.remap_uncorrectable, f"< {t['remap_uncorrectable_fail']}")
        if g.remap_banks_low is not None and g.remap_banks_low >= t["remap_banks_low_warn"]:
            o.add(d, "row-remap-availability", "warn", g.remap_banks_low, f"< {t['remap_banks_low_warn']}",
                  "banks with Low or None spare rows left")
    if g.retired_pending is not None or g.retired_dbe is not None or g.retired_sbe is not None:
        total = (g.retired_sbe or 0) + (g.retired_dbe or 0)
        if g.retired_pending:
            o.add(d, "retired-pages-pending", "fail", "yes", "no",
                  "pages wait for a GPU reset or reboot to be retired (NVIDIA dynamic page retirement)")
        if total >= t["retired_pages_fail"]:
            o.add(d, "retired-pages", "fail", total, f"< {t['retired_pages_fail']}",
                  "retirement table (almost) full: RMA")
        elif (g.retired_dbe or 0) >= t["retired_dbe_warn"]:
            o.add(d, "retired-pages", "warn", total, f"< {t['retired_pages_fail']}",
                  f"{g.retired_dbe} pages retired for double-bit errors")
        elif not g.retired_pending:
            o.add(d, "retired-pages", "pass", total, f"< {t['retired_pages_fail']}")
    _pcie(o, g)
    _throttle(o, g, t)
    # temperature
    if g.tlimit_c is not None and g.tlimit_slowdown_c is not None:
        margin = g.tlimit_c
        if margin <= g.tlimit_slowdown_c:
            o.add(d, "temperature", "fail", f"{margin:g} C to T.Limit", f"> {g.tlimit_slowdown_c:g} C (slowdown)")
        elif g.tlimit_max_op_c is not None and margin <= g.tlimit_max_op_c + t["temp_margin_warn_c"]:
            o.add(d, "temperature", "warn", f"{margin:g} C to T.Limit",
                  f"> {g.tlimit_max_op_c + t['temp_margin_warn_c']:g} C")
        else:
            o.add(d, "temperature", "pass", f"{margin:g} C to T.Limit", f"> {g.tlimit_slowdown_c:g} C (slowdown)")
    elif g.temp_c is not None and (g.temp_slowdown_c or g.temp_max_op_c):
        if g.temp_slowdown_c and g.temp_c >= g.temp_slowdown_c:
            o.add(d, "temperature", "fail", f"{g.temp_c:g} C", f"< {g.temp_slowdown_c:g} C (slowdown)")
        elif g.temp_max_op_c and g.temp_c >= g.temp_max_op_c - t["temp_margin_warn_c"]:
            o.add(d, "temperature", "warn", f"{g.temp_c:g} C", f"< {g.temp_max_op_c - t['temp_margin_warn_c']:g} C")
        else:
            o.add(d, "temperature", "pass", f"{g.temp_c:g} C", f"< {(g.temp_max_op_c or g.temp_slowdown_c):g} C")
    # power
    if g.power_w is not None and g.power_limit_w:
        over = g.power_w >= g.power_limit_w * t["power_over_limit_ratio_warn"]
        o.add(d, "power", "warn" if over else "pass", f"{g.power_w:g} W", f"<= {g.power_limit_w:g} W")
    if g.power_limit_w and g.power_default_w and g.power_limit_w < g.power_default_w:
        o.add(d, "power-limit", "warn", f"{g.power_limit_w:g} W", f"{g.power_default_w:g} W (default)",
              "the power limit is set below the default: the GPU is capped")
    if g.fabric_state or g.fabric_status:
        ok = (g.fabric_state or "").lower() == "completed" and (g.fabric_status or "success").lower() == "success"
        o.add(d, "fabric", "pass" if ok else "fail", f"{g.fabric_state}/{g.fabric_status}", "Completed/Success",
              "" if ok else "NVLink fabric not ready: check nvidia-fabricmanager (and IMEX on NVL72)")
    if g.fan is not None and "err" in g.fan.lower():
        o.add(d, "fan", "fail", g.fan, "a reading", "the fan or its sensor reports an error (nvidia-smi ERR!)")


def _pcie(o: _Out, g: Gpu) -> None:
    d = g.device
    entry = _catalog_gpu(g.name)
    want_gen = entry.pcie_gen if entry and entry.pcie_gen else g.pcie_gen_max
    want_width = entry.pcie_width if entry and entry.pcie_width else g.pcie_width_max
    known = entry is not None and entry.pcie_gen is not None
    idle = (g.throttle.get("idle") or (g.pstate or "").upper() in ("P8", "P12")) and not g.util_pct
    if g.pcie_gen is not None and want_gen:
        if g.pcie_gen >= want_gen:
            o.add(d, "pcie-gen", "pass", g.pcie_gen, want_gen)
        elif idle:
            o.add(d, "pcie-gen", "pass", g.pcie_gen, want_gen,
                  f"Gen{g.pcie_gen} while idle ({g.pstate or 'idle'}): the link trains down to save power; check under load")
        else:
            o.add(d, "pcie-gen", "fail" if known else "warn", g.pcie_gen, want_gen,
                  f"PCIe Gen{g.pcie_gen} under load where the GPU links at Gen{want_gen}"
                  + (f" ({entry.name}, catalog)" if known else " (nvidia-smi max)"))
    if g.pcie_width is not None and want_width:
        if g.pcie_width >= want_width:
            o.add(d, "pcie-width", "pass", f"x{g.pcie_width}", f"x{want_width}")
        else:
            o.add(d, "pcie-width", "fail" if known else "warn", f"x{g.pcie_width}", f"x{want_width}",
                  f"link runs x{g.pcie_width} of x{want_width}: half the lanes or fewer (reseat, riser, slot"
                  + (")" if known else "; or the platform wires the slot that way)"))


def _throttle(o: _Out, g: Gpu, t: Mapping[str, float]) -> None:
    if not g.throttle:
        return
    d = g.device
    hw = [r for r in ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown") if g.throttle.get(r)]
    slow = g.sm_mhz is not None and g.sm_max_mhz and g.sm_mhz < g.sm_max_mhz * t["clock_ratio_fail"]
    clocks = f"SM {g.sm_mhz:g}/{g.sm_max_mhz:g} MHz" if g.sm_mhz is not None and g.sm_max_mhz else "SM clock unknown"
    if hw:
        idle = g.throttle.get("idle")
        if idle:
            status, why = "warn", "flag set while the GPU is idle (low clocks are the idle's): check under load"
        elif slow or g.sm_mhz is None:
            status, why = "fail", "the hardware is slowing the clocks now (power brake, thermal or external slowdown)"
        else:
            status, why = "warn", "flag set with clocks at max: a transient; watch it"
        o.add(d, "clock-throttle-hw", status, ", ".join(hw), "none active", f"{clocks}: {why}")
    if g.throttle.get("sw_thermal_slowdown"):
        o.add(d, "clock-throttle-thermal", "warn", "sw_thermal_slowdown", "not active",
              f"{clocks}: the driver lowers clocks for temperature; check cooling")
    if not hw and not g.throttle.get("sw_thermal_slowdown"):
        detail = "SW power cap active (the GPU runs at its power limit: informational)" \
            if g.throttle.get("sw_power_cap") else ""
        o.add(d, "clock-throttle", "pass", "sw_power_cap" if g.throttle.get("sw_power_cap") else "none", "none",
              detail)


def _xids(o: _Out, events: list[XidEvent]) -> None:
    table = xid_table()["xid"]
    grouped: dict[tuple[str, int], list[XidEvent]] = defaultdict(list)
    for e in events:
        grouped[(e.bus, e.code)].append(e)
        if e.cause is not None:  # the root cause counts on that GPU too, though its line is not here
            grouped[(e.bus, e.cause)].append(XidEvent(e.bus, e.cause, f"named as the cause of Xid {e.code}", e.line))
    for (bus, code), evs in sorted(grouped.items()):
        entry = table.get(code)
        if entry is None:
            o.add(f"PCI:{bus}", f"xid-{code}", "warn", f"Xid {code} x{len(evs)}", "no Xid",
                  f"Xid {code} is not in factoryctl's catalog table; look it up in NVIDIA's Xid catalog (line {evs[0].line})")
            continue
        action = entry["action"]
        if code == 154:  # the driver's own verdict is in the text: "... to 0x2 (Node Reboot Required)"
            action = _recovery_action(evs[-1].text, action)
        o.add(f"PCI:{bus}", f"xid-{code}", ACTION_STATUS[action], f"Xid {code} x{len(evs)}", "no Xid",
              f"{entry['name']}: {ACTION_WORDS[action]} (first at line {evs[0].line}: {evs[0].text[:120]})")


def _recovery_action(text: str, default: str) -> str:
    """Xid 154 names the recovery action the GPU now needs (NVIDIA Xid catalog, Xid 154: GPU
    Reset Required, Node Reboot Required, Drain P2P, Drain and Reset)."""
    target = text.rsplit(" to ", 1)[-1].lower()
    if "reboot" in target:
        return "RESTART_BM"
    if "reset" in target or "drain" in target:
        return "RESET_GPU"
    if "none" in target:
        return "IGNORE"
    return default


def _sxids(o: _Out, events: list[SxidEvent]) -> None:
    grouped: dict[tuple[str, int], list[SxidEvent]] = defaultdict(list)
    for e in events:
        grouped[(e.switch, e.code)].append(e)
    default = xid_table().get("sxid_unstated", "warn")
    for (switch, code), evs in sorted(grouped.items()):
        fatal = any(e.fatal for e in evs)
        stated = any(e.fatal is not None for e in evs)
        status = "fail" if fatal else "warn" if stated else default
        links = sorted({e.text.split("Link ")[1].split()[0] for e in evs if "Link " in e.text})
        o.add(switch, f"sxid-{code}", status, f"SXid {code} x{len(evs)}" + (f", links {', '.join(links)}" if links else ""),
              "no SXid", ("fatal: reset the NVSwitch fabric (GPUs and switches) before use" if fatal else
                          "non-fatal: corrected by the switch, logged; repeated ones point at a link or cable")
              + f" (line {evs[0].line})")


def _nvlink(o: _Out, src: ParsedSource, t: Mapping[str, float]) -> None:
    for s in src.of(NvlinkStatus):
        if s.all_inactive:
            o.add(s.gpu, "nvlink-active", "fail", "all links inactive", "all links active",
                  "NVML cannot read NVLink: every link is down; check fabric manager, then reset the GPU")
            continue
        down = sorted(k for k, v in s.links.items() if v is None and k not in s.disabled)
        if down:
            o.add(s.gpu, "nvlink-active", "fail", f"{len(down)} of {len(s.links)} down",
                  f"{len(s.links)} active", f"links down: {', '.join(map(str, down))}")
        else:
            o.add(s.gpu, "nvlink-active", "pass", f"{len(s.links)} active", f"{len(s.links)} active")
        if s.disabled:
            o.add(s.gpu, "nvlink-disabled", "warn", f"{len(s.disabled)} disabled", "none",
                  f"links disabled: {', '.join(map(str, s.disabled))}")
        speeds = [v for v in s.links.values() if v]
        if speeds and min(speeds) < max(speeds):
            slow = sorted(k for k, v in s.links.items() if v and v < max(speeds))
            o.add(s.gpu, "nvlink-speed", "warn", f"{min(speeds):g} GB/s", f"{max(speeds):g} GB/s",
                  f"links slower than their peers: {', '.join(map(str, slow))}")
    for e in src.of(NvlinkErrors):
        dev = f"{e.gpu} link {e.link}"
        rec, rep, crc = (e.counters.get(k, 0) for k in ("recovery", "replay", "crc"))
        if rec >= t["nvlink_recovery_fail"]:
            o.add(dev, "nvlink-recovery-errors", "fail", rec, f"< {t['nvlink_recovery_fail']}",
                  "the link went down and retrained")
        if rep >= t["nvlink_replay_warn"]:
            o.add(dev, "nvlink-replay-errors", "warn", rep, f"< {t['nvlink_replay_warn']}")
        if crc >= t["nvlink_crc_warn"]:
            o.add(dev, "nvlink-crc-errors", "warn", crc, f"< {t['nvlink_crc_warn']}")
        if rec < t["nvlink_recovery_fail"] and rep < t["nvlink_replay_warn"] and crc < t["nvlink_crc_warn"]:
            o.add(dev, "nvlink-errors", "pass", f"replay {rep}, recovery {rec}, crc {crc}", "none")


def _ib_ports(o: _Out, ports: list[IbPort], expect_rate: float | None) -> None:
    best: dict[tuple[str | None, str | None], float] = {}
    for p in ports:
        if p.rate and (p.state or "").lower() == "active":
            key = (p.ca_type, p.link_layer)
            best[key] = max(best.get(key, 0), p.rate)
    for p in ports:
        layer = f" ({p.link_layer})" if p.link_layer else ""
        active = (p.state or "").lower() == "active"
        linkup = (p.phys or "").lower() == "linkup"
        if not active or not linkup:
            o.add(p.device, "ib-port-state", "fail", f"{p.state}/{p.phys}", "Active/LinkUp",
                  f"port down{layer}: check cable, transceiver and the switch port")
            continue
        o.add(p.device, "ib-port-state", "pass", f"{p.state}/{p.phys}", "Active/LinkUp")
        if p.rate is None:
            continue
        if expect_rate and (p.link_layer or "InfiniBand").lower() == "infiniband":
            ok = p.rate >= expect_rate
            o.add(p.device, "ib-port-rate", "pass" if ok else "fail", f"{p.rate:g} Gb/s", f"{expect_rate:g} Gb/s",
                  "" if ok else "port trained below the fabric's link speed (cable, transceiver, or a lane down)")
        elif p.rate < best.get((p.ca_type, p.link_layer), 0):
            peer = best[(p.ca_type, p.link_layer)]
            o.add(p.device, "ib-port-rate", "warn", f"{p.rate:g} Gb/s", f"{peer:g} Gb/s (its peers)",
                  "slower than the same adapters on this host; give --expect-ib-rate to judge against the design")


# counter -> (threshold key, status when reached, status when non-zero below it)
IB_COUNTERS = {
    "SymbolErrorCounter": ("ib_symbol_errors_fail", "fail", "warn"),
    "LinkErrorRecoveryCounter": ("ib_link_error_recovery_fail", "fail", "warn"),
    "LinkDownedCounter": ("ib_link_downed_fail", "fail", "warn"),
    "PortRcvErrors": ("ib_rcv_errors_fail", "fail", "warn"),
    "LocalLinkIntegrityErrors": ("ib_local_link_integrity_fail", "fail", "warn"),
    "ExcessiveBufferOverrunErrors": ("ib_buffer_overrun_fail", "fail", "warn"),
    "PortRcvRemotePhysicalErrors": ("ib_rcv_remote_physical_warn", "warn", "pass"),
    "PortRcvSwitchRelayErrors": ("ib_switch_relay_warn", "warn", "pass"),
    "PortXmitDiscards": ("ib_xmit_discards_warn", "warn", "pass"),
    "PortXmitConstraintErrors": ("ib_constraint_errors_warn", "warn", "pass"),
    "PortRcvConstraintErrors": ("ib_constraint_errors_warn", "warn", "pass"),
    "VL15Dropped": ("ib_vl15_dropped_warn", "warn", "pass"),
}


def _ib_counters(o: _Out, rec: IbCounters, t: Mapping[str, float]) -> None:
    worst = []
    for name, (key, at, below) in IB_COUNTERS.items():
        n = rec.counters.get(name)
        if not n:
            continue
        status = at if n >= t[key] else below
        if status != "pass":
            worst.append(status)
            o.add(rec.device, f"ib-{name}", status, n, f"< {t[key]:g}" if status == at else 0,
                  "infiniband-diags threshold reached" if status == at else "non-zero; under the threshold")
    if not worst:
        o.add(rec.device, "ib-counters", "pass", "no error counter over its threshold", "none")


def judge(parsed: ParsedSource, thresholds: Mapping[str, float] | None = None, *,
          expect_ib_rate: float | None = None) -> list[Finding]:
    """Findings for one parsed source; `thresholds` from load_thresholds (defaults when None)."""
    t = thresholds if thresholds is not None else load_thresholds()
    o = _Out(parsed)
    for g in parsed.of(Gpu):
        _gpu(o, g, t)
    for c in parsed.of(GpuCount):
        o.add("node", "gpu-sections", "pass" if c.seen >= c.attached else "warn", c.seen, c.attached,
              "" if c.seen >= c.attached else f"the output says {c.attached} GPUs are attached and holds {c.seen}:"
              " trimmed or cut short; the missing GPUs are not judged")
    _xids(o, parsed.of(XidEvent))
    if parsed.format == "kernel-log" and not any(parsed.of(k) for k in (XidEvent, SxidEvent, BusLoss, PcieLimit,
                                                                          LinkFlap)):
        o.add("node", "kernel-log", "pass", "no Xid, SXid, bus loss, PCIe limit or link flap", "none")
    _sxids(o, parsed.of(SxidEvent))
    for b in parsed.of(BusLoss):
        o.add(f"PCI:{b.bus}", "gpu-on-bus", "fail", b.text, "GPU present",
              f"the GPU left the PCIe bus (the no-number form of Xid 79): drain and reboot the node; reseat or RMA"
              f" if it repeats (line {b.line})")
    for p in parsed.of(PcieLimit):
        o.add(f"PCI:{p.device}", "pcie-link", "fail", f"{p.gts:g} GT/s x{p.width} at {p.at}",
              f"{p.cap_gts:g} GT/s x{p.cap_width}",
              f"the path to the device runs below what it is capable of; the link at {p.at} limits it (line {p.line})")
    for link in parsed.of(PcieLink):
        _lspci(o, link)
    for f in parsed.of(LinkFlap):
        bad = f.lost >= t["link_flaps_fail"]
        o.add(f.iface, "link-flaps", "fail" if bad else "warn" if f.lost else "pass", f"{f.lost} lost carrier",
              f"< {t['link_flaps_fail']:g}", f"carrier lost {f.lost}x, gained {f.gained}x between {f.first} and {f.last}")
    _nvlink(o, parsed, t)
    _ib_ports(o, parsed.of(IbPort), expect_rate=expect_ib_rate)
    for f in parsed.of(IbToolFailure):
        o.add(f.device, "ib-tool", "fail", f.text, "ibstat reads every device",
              f"ibstat failed on a device (line {f.line}): the HCA is missing or its driver is not bound")
    for rec in parsed.of(IbCounters):
        _ib_counters(o, rec, t)
    for r in parsed.of(DiagResult):
        _diag(o, r)
    for v in parsed.of(HostVerdict):
        o.findings.append(Finding(parsed.name, v.host, v.device or "node", "aznhc",
                                  "pass" if v.ok else "fail", v.measured if v.measured is not None else v.message[:80],
                                  f">= {v.expected:g}" if v.expected is not None else "Healthy",
                                  "" if v.ok and v.message == "Healthy" else v.message))
    for n in parsed.of(NcclRun):
        _nccl(o, n)
    return o.findings


def _nccl(o: _Out, n: NcclRun) -> None:
    if n.status == "ok":
        o.add("all ranks", "nccl-tests", "pass", f"{n.busbw_gbps:g} GB/s avg busbw", "a clean run")
    elif n.rows and not n.wrong and not n.concluded and len(n.errors) <= 1:
        # rows without data errors that stop before the footer: an excerpt, or a run cut short
        o.add("all ranks", "nccl-tests", "warn", f"{n.busbw_gbps:g} GB/s peak busbw", "a clean run",
              f"{n.rows} rows, none wrong, but no '# Avg bus bandwidth' footer: an excerpt or a run cut short")
    else:
        o.add("all ranks", "nccl-tests", "fail", n.status, "a clean run", "; ".join(n.errors[:3]))


def _lspci(o: _Out, link: PcieLink) -> None:
    gpu = "NVIDIA" in link.description and ("3D controller" in link.description or "VGA" in link.description)
    d = f"PCI:{link.device}"
    if link.cap_width and link.sta_width is not None:
        ok = link.sta_width >= link.cap_width
        o.add(d, "pcie-width", "pass" if ok else "fail" if gpu else "warn", f"x{link.sta_width}", f"x{link.cap_width}",
              "" if ok else "fewer lanes than the device has (LnkSta against LnkCap)")
    if link.cap_gts and link.sta_gts is not None:
        ok = link.sta_gts >= link.cap_gts
        o.add(d, "pcie-speed", "pass" if ok else "warn", f"{link.sta_gts:g} GT/s", f"{link.cap_gts:g} GT/s",
              "" if ok else "below the device's speed: a fault under load, power saving when idle")


def _diag(o: _Out, r: DiagResult) -> None:
    gpus = r.gpus if r.gpus and r.gpus != "All" else "all GPUs"
    device = gpus if gpus == "all GPUs" else ", ".join(f"{r.entity} {g.strip()}" for g in gpus.split(","))
    if r.result.lower() == "fail" and gpus == "all GPUs":
        named = sorted({int(x) for x in re.findall(r"\bGPU\s*(\d+)", r.detail)})
        if named:
            device = ", ".join(f"GPU {n}" for n in named)
    status = {"pass": "pass", "skip": "pass", "warn": "warn", "fail": "fail"}.get(r.result.lower(), "warn")
    o.add(device, f"dcgm-diag {r.test}", status, r.result, "Pass",
          ("skipped" if r.result.lower() == "skip" else "") + (r.detail[:300] if r.detail else ""))


def consistency(sources: Iterable[ParsedSource]) -> list[Finding]:
    """The odd host out in driver, CUDA, VBIOS (per GPU model) and NIC firmware (per adapter
    type), when at least two hosts report the same attribute."""
    seen: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    where: dict[str, str] = {}
    for s in sources:
        host = s.host or s.name
        where.setdefault(host, s.name)
        if s.versions.driver:
            seen[("driver", "")][host].add(s.versions.driver)
        if s.versions.cuda:
            seen[("cuda", "")][host].add(s.versions.cuda)
        for g in s.of(Gpu):
            if g.vbios:
                seen[("vbios", g.name or "?")][host].add(g.vbios)
        for p in s.of(IbPort):
            if p.firmware:
                seen[("nic-firmware", f"{p.ca_type or '?'} {p.link_layer or ''}".strip())][host].add(p.firmware)
    out = []
    for (what, model), hosts in sorted(seen.items()):
        if len(hosts) < 2:
            continue
        # a host may hold several versions (adapters of one type on two firmware lines): the
        # set a host has is what is compared, and the set most hosts share is the expectation
        votes = Counter(frozenset(values) for values in hosts.values())
        if len(votes) < 2:
            continue
        majority, count = votes.most_common(1)[0]
        label = f"{what} ({model})" if model else what
        if count * 2 <= len(hosts):  # no version most hosts share: no odd one out to name
            spread = "; ".join(f"{', '.join(sorted(v))}: {', '.join(sorted(h for h, hv in hosts.items() if hv == v))}"
                               for v, _ in votes.most_common())
            out.append(Finding("(all inputs)", None, "all hosts", f"consistency-{what}", "warn", f"{len(votes)} versions",
                               "one version on most hosts", f"{label} differs with no majority: {spread}"))
            continue
        for host, values in sorted(hosts.items()):
            if values != majority:
                odd = sorted(values - majority) or sorted(values)
                out.append(Finding(where[host], host, "node", f"consistency-{what}", "warn", ", ".join(odd),
                                   ", ".join(sorted(majority)),
                                   f"{label} differs from what most of the {len(hosts)} hosts run"))
    return out
