"""Every check name the health judge emits, with what it compares, for docs/health.md and
for a test that keeps the list whole. Names with a variable part are written with it in
angle brackets (`xid-<code>`)."""

from __future__ import annotations

import re

CHECKS: dict[str, str] = {
    "persistence-mode": "Persistence mode on (off: warn).",
    "gpu-sections": "A whole nvidia-smi -q / -q -x output holds as many GPU sections as it says are attached"
                    " (fewer: warn, trimmed or cut short).",
    "reset-required": "nvidia-smi's GPU Reset Status: Reset Required (yes: fail).",
    "ecc-volatile-uncorrected": "Uncorrectable ECC errors since the driver loaded, SRAM and DRAM (`ecc_volatile_uncorrected_fail`).",
    "ecc-aggregate-uncorrected": "Uncorrectable ECC errors over the GPU's life: history (`ecc_aggregate_uncorrected_warn`).",
    "ecc-<scope>-corrected": "Corrected ECC errors, volatile or aggregate (`ecc_corrected_warn`).",
    "row-remap": "Row remapper: nothing pending, no failure.",
    "row-remap-pending": "Rows waiting for a GPU reset to be remapped (fail).",
    "row-remap-failure": "A row that could not be remapped (fail: field diagnostic, RMA).",
    "row-remap-uncorrectable": "Rows remapped for uncorrectable errors (`remap_uncorrectable_fail`).",
    "row-remap-availability": "Banks with Low or None spare rows (`remap_banks_low_warn`).",
    "retired-pages": "Pages retired (SBE + DBE) on pre-Ampere GPUs (`retired_pages_fail`, `retired_dbe_warn`).",
    "retired-pages-pending": "Pages waiting to be retired at the next reset (fail).",
    "pcie-gen": "PCIe generation against the GPU's (catalog, else nvidia-smi max); lower while idle passes.",
    "pcie-width": "PCIe lanes against the GPU's (catalog, else the device max; lspci LnkSta against LnkCap).",
    "pcie-speed": "lspci: link speed (GT/s) against the device's capability (lower: warn).",
    "pcie-link": "Kernel: 'available PCIe bandwidth, limited by' a slower link on the path (fail).",
    "clock-throttle": "No clock event reason beyond the SW power cap (which is informational).",
    "clock-throttle-hw": "HW slowdown, HW thermal or HW power brake: fail with the SM clock under"
                         " `clock_ratio_fail` of max, warn at max or while idle.",
    "clock-throttle-thermal": "SW thermal slowdown (warn).",
    "temperature": "GPU temperature (or T.Limit margin) against its slowdown and max operating limits"
                   " (`temp_margin_warn_c`).",
    "power": "Power draw against the enforced limit (`power_over_limit_ratio_warn`).",
    "power-limit": "Enforced power limit below the default (warn).",
    "fabric": "NVLink fabric state Completed / Success (fabric manager; IMEX on NVL72).",
    "fan": "Fan reading an error (ERR!: fail).",
    "xid-<code>": "Xid events per GPU, classified by NVIDIA's Xid catalog (xid.yaml).",
    "sxid-<code>": "NVSwitch SXid events: fatal fail, non-fatal warn.",
    "gpu-on-bus": "A GPU fallen off the bus or failing its driver probe (fail).",
    "kernel-log": "A kernel log without Xid, SXid, bus loss, PCIe limit or link flap.",
    "link-flaps": "Carrier lost on an interface (`link_flaps_fail`).",
    "nvlink-active": "NVLink links up per GPU (a link down: fail).",
    "nvlink-disabled": "NVLink links disabled (warn).",
    "nvlink-speed": "NVLink links slower than the GPU's other links (warn).",
    "nvlink-errors": "NVLink replay, recovery and CRC counters under their thresholds.",
    "nvlink-recovery-errors": "NVLink recovery errors (`nvlink_recovery_fail`).",
    "nvlink-replay-errors": "NVLink replay errors (`nvlink_replay_warn`).",
    "nvlink-crc-errors": "NVLink CRC errors (`nvlink_crc_warn`).",
    "ib-port-state": "InfiniBand/RoCE port Active and LinkUp.",
    "ib-port-rate": "Port rate against --expect-ib-rate (fail), else against the same adapters on the host (warn).",
    "ib-tool": "ibstat failing on a device (ibpanic).",
    "ib-counters": "No port error counter over its threshold.",
    "ib-<counter>": "One port error counter (SymbolErrorCounter, LinkDownedCounter, PortRcvErrors, ...) against"
                    " the infiniband-diags thresholds.",
    "dcgm-diag <test>": "A dcgmi diag test result: Fail fails naming the GPU, Warn warns, Skip passes as skipped.",
    "aznhc": "An Azure HPC health check verdict or measured figure against its own expectation.",
    "nccl-tests": "An nccl-tests log: clean run, its average (or peak) bus bandwidth.",
    "consistency-<attribute>": "Across hosts: the odd host out in driver, CUDA, VBIOS (per GPU model) or NIC"
                               " firmware (per adapter type) (warn).",
}

_WILD = [(re.compile("^" + ".+".join(re.escape(part) for part in re.split(r"<[^>]+>", name)) + "$"), name)
         for name in CHECKS if "<" in name]


def check_name(check: str) -> str | None:
    """The CHECKS entry a finding's check belongs to (exact names first), or None."""
    if check in CHECKS:
        return check
    return next((name for pattern, name in _WILD if pattern.match(check)), None)
