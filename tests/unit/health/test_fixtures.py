"""Every recorded health output under tests/fixtures/health/ (copied from ../shared/fixtures/
health with its SOURCES.md) judged: its format detected, its worst status, and the device
the worst finding names. Healthy outputs produce no fail."""

from __future__ import annotations

import pytest

from factoryctl.health import judge, parse_file
from tests.helpers import ROOT

FIX = ROOT / "tests" / "fixtures" / "health"

# file -> (format, worst status, (check prefix, device) that must carry that status or None)
CASES = {
    "aznhc-debug-log-8gpu-8x400g-healthy.txt": ("aznhc", "pass", None),
    "aznhc-health-log-multinode-mixed-faults.txt": ("aznhc", "fail", ("aznhc", "mlx5_ib7:1")),
    "dcgmi-diag-r2-a100x8-p4de-healthy.txt": ("dcgmi-diag", "pass", None),
    "dcgmi-diag-r2-excerpt-a100-faulty-pcie-nvlink-links-down.txt": ("dcgmi-diag", "fail", ("dcgm-diag PCIe", "GPU 0")),
    "dcgmi-diag-r2-excerpt-faulty-gpu-memory-fail-thermal-violation.txt":
        ("dcgmi-diag", "fail", ("dcgm-diag GPU Memory", "GPU 0")),
    "dcgmi-diag-r2-rtx3090x8-faulty-pcie-cuda-driver-mismatch.txt": ("dcgmi-diag", "fail", ("dcgm-diag PCIe", "GPU 0")),
    "dcgmi-diag-r3-excerpt-faulty-uncorrectable-mem-remap-pending.txt": ("dcgmi-diag", "fail", ("dcgm-diag Error", "GPU 3")),
    "dcgmi-diag-r3-v100-pcie-healthy.txt": ("dcgmi-diag", "pass", None),
    "dcgmi-nvlink-link-status-h100nvl-x2-faulty-all-links-down.txt": ("dcgmi-nvlink", "fail", ("nvlink-active", "GPU 1")),
    "dmesg-decode-xid13-xid43-app-fault-gpu38.log": ("kernel-log", "warn", ("xid-13", "PCI:0000:38:00")),
    "dmesg-h100-faulty-fallen-off-bus-probe-failed.log": ("kernel-log", "fail", ("gpu-on-bus", "PCI:0000:5d:00.0")),
    "dmesg-pcie-h100-degraded-limited-by-gen4-switch.txt": ("kernel-log", "fail", ("pcie-link", "PCI:0000:8b:00.0")),
    "dmesg-sxid-22013-h100-hgx-nvswitch-nonfatal.log":
        ("kernel-log", "warn", ("sxid-22013", "nvidia-nvswitch3 (PCI:0000:04:00.0)")),
    "dmesg-xid119-xe9680-faulty-gsp-timeout.log": ("kernel-log", "fail", ("xid-119", "PCI:0000:9b:00")),
    "dmesg-xid13-xid109-ctx-switch-timeout.quoted.log": ("kernel-log", "warn", ("xid-109", "PCI:0000:cb:00")),
    "ibqueryerrors-fdr-sx6036-faulty-symbol-linkdowned-discards.email-quoted.txt":
        ("ibqueryerrors", "fail", ("ib-SymbolErrorCounter", "MF0;ys23ib4:SX6036/U1 GUID 0x2c903006e29b0 port 5")),
    "ibstat-a100-8ib-200g-plus-eth-healthy.txt": ("ibstat", "pass", None),
    "ibstat-a100-hdr200-faulty-ibpanic-missing-device-exit255.txt": ("ibstat", "fail", ("ib-tool", "mlx5_8")),
    "ibstat-h100-faulty-3-ports-down-disabled.txt": ("ibstat", "fail", ("ib-port-state", "mlx5_7 port 1")),
    "ibstatus-a100-hdr200x8-healthy.txt": ("ibstatus", "pass", None),
    "ibstatus-azure-hdr200-plus-an-eth-healthy.txt": ("ibstatus", "pass", None),
    "kernlog-xid45-caused-by-xid145-149-nvlink5-faulty.log": ("kernel-log", "fail", ("xid-149", "PCI:0000:dc:00")),
    "lspci-vvv-h100-gpu-gen5x16-healthy-excerpt.txt": ("lspci", "pass", None),
    # excerpts without the footer: rows and busbw judged, the missing footer a warning
    "nccl-tests-allreduce-2node-p4de-a100x16-efa-healthy.txt": ("nccl-tests", "warn", ("nccl-tests", "all ranks")),
    "nccl-tests-allreduce-2node-p5-h100x16-efa-healthy.txt": ("nccl-tests", "warn", ("nccl-tests", "all ranks")),
    "nvidia-smi-nvlink-e-excerpt-h100-healthy.txt": ("nvidia-smi-nvlink", "pass", None),
    "nvidia-smi-nvlink-s-a100-faulty-all-links-inactive.txt": ("nvidia-smi-nvlink", "fail", ("nvlink-active", "GPU 6")),
    "nvidia-smi-nvlink-s-a100-gpu7-healthy.txt": ("nvidia-smi-nvlink", "pass", None),
    "nvidia-smi-nvlink-s-a100x8-healthy.txt": ("nvidia-smi-nvlink", "pass", None),
    # healthy, but persistence mode is off on every GPU: a warning each
    "nvidia-smi-q-a100-sxm4-40gb-x8-healthy.txt":
        ("nvidia-smi-q", "warn", ("persistence-mode", "GPU 7 (0000000E:00:00.0)")),
    "nvidia-smi-q-d-page-retirement-8gpu-healthy.txt": ("nvidia-smi-q", "pass", None),
    "nvidia-smi-q-excerpt-a100-faulty-remap-pending-xid63.txt":
        ("nvidia-smi-q", "fail", ("row-remap-pending", "GPU 00000000:10:1C.0")),
    "nvidia-smi-q-excerpt-faulty-sram-uncorrectable-ecc.txt":
        ("nvidia-smi-q", "fail", ("ecc-volatile-uncorrected", "GPU (not named in the output)")),
    # power brake flag with the SM clock at max (1980/1980): a transient, warned
    "nvidia-smi-q-h100x8-mostly-healthy-one-gpu-sw-thermal-power-cap.txt":
        ("nvidia-smi-q", "warn", ("clock-throttle-hw", "GPU 2 (00000000:75:00.0)")),
    "nvidia-smi-qx-a100-sxm4-80gb-mig-healthy.xml": ("nvidia-smi-xml", "warn", ("persistence-mode", "GPU 00000000:01:00.0")),
    "nvidia-smi-qx-a10g-pcie-x8-of-x16-gen1-idle.xml": ("nvidia-smi-xml", "warn", ("pcie-width", "GPU 0 (00000000:00:1E.0)")),
    "nvidia-smi-qx-tesla-t4-pcie-x8-of-x16-p0.xml": ("nvidia-smi-xml", "warn", ("pcie-width", "GPU 0 (00000000:00:1E.0)")),
    "nvidia-smi-summary-geforce-faulty-fan-err.txt": ("nvidia-smi-summary", "fail", ("fan", "GPU 0 (00000000:01:00.0)")),
    "perfquery-hca-port-healthy.txt": ("perfquery", "pass", None),
    "perfquery-switch-2ports-healthy.txt": ("perfquery", "pass", None),
    # one link-down event and congestion discards, both under the failing thresholds
    "perfquery-switch-port-faulty-linkdowned-xmitdiscards.txt":
        ("perfquery", "warn", ("ib-PortXmitDiscards", "Lid 2052 port 1")),
    "syslog-ib-link-flap-faulty-ib6-6-flaps.log": ("kernel-log", "fail", ("link-flaps", "ib6")),
    # suspect/: hand-edited or doubtful, judged for their format only
    "suspect/nvidia-smi-nvlink-s-v100x8-faulty-inactive-links.txt": ("nvidia-smi-nvlink", "fail", ("nvlink-active", "GPU 3")),
    "suspect/nvidia-smi-q-d-page-retirement-8gpu-faulty-dbe-pending-blacklist.EDITED-BY-TEST-AUTHORS.txt":
        ("nvidia-smi-q", "fail", ("retired-pages-pending", "GPU 1 (00000002:00:00.0)")),
    "suspect/nvidia-smi-summary-v100x8-faulty-inforom-corrupted.txt": ("nvidia-smi-summary", "warn", None),
}
RANK = {"pass": 0, "warn": 1, "fail": 2}


def test_every_fixture_has_a_case():
    files = {p.relative_to(FIX).as_posix() for p in FIX.rglob("*") if p.is_file() and p.name != "SOURCES.md"}
    assert files == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_judged(name):
    fmt, worst, where = CASES[name]
    parsed = parse_file(FIX / name)
    assert parsed.format == fmt
    findings = judge(parsed)
    assert findings, "a recognised output gives findings"
    assert max(RANK[f.status] for f in findings) == RANK[worst], [(f.status, f.device, f.check) for f in findings
                                                                   if f.status != "pass"]
    if where:
        check, device = where
        hits = [f for f in findings if f.check.startswith(check) and f.device == device]
        assert hits and hits[0].status == worst, [(f.status, f.device, f.check) for f in findings]
    if "healthy" in name:
        assert not [f for f in findings if f.status == "fail"]


def test_aznhc_names_each_failing_host():
    findings = judge(parse_file(FIX / "aznhc-health-log-multinode-mixed-faults.txt"))
    failing = {f.host: f for f in findings if f.status == "fail"}
    assert set(failing) == {"mynode-066", "mynode-079", "mynode-084", "mynode-108", "mynode-123", "mynode-273",
                            "mynode-510"}
    assert failing["mynode-079"].value == 20.7377 and failing["mynode-079"].expected == ">= 40"
    assert failing["mynode-510"].device == "GPU 3"
    assert failing["mynode-066"].device == "PCI:0002:00:00"
    assert [f.status for f in findings if f.host == "mynode-042"] == ["pass"]


def test_xid45_counts_its_named_cause_per_gpu():
    findings = judge(parse_file(FIX / "kernlog-xid45-caused-by-xid145-149-nvlink5-faulty.log"))
    fails = sorted((f.device, f.check) for f in findings if f.status == "fail")
    assert fails == [("PCI:0000:97:00", "xid-145"), ("PCI:0000:ba:00", "xid-145"), ("PCI:0000:dc:00", "xid-149"),
                     ("PCI:0000:ed:00", "xid-145")]
    assert all(f.status == "pass" for f in findings if f.check == "xid-45")


def test_ethernet_port_at_40_is_not_compared_with_ib_ports():
    findings = judge(parse_file(FIX / "ibstatus-azure-hdr200-plus-an-eth-healthy.txt"), expect_ib_rate=200)
    rate = {f.device: f.status for f in findings if f.check == "ib-port-rate"}
    assert rate == {"mlx5_ib0 port 1": "pass"}


def test_a_lower_ib_rate_than_expected_fails():
    findings = judge(parse_file(FIX / "ibstat-a100-8ib-200g-plus-eth-healthy.txt"), expect_ib_rate=400)
    fails = [f for f in findings if f.check == "ib-port-rate" and f.status == "fail"]
    assert len(fails) == 8 and fails[0].value == "200 Gb/s" and fails[0].expected == "400 Gb/s"


def test_syslog_host_is_read_from_the_lines():
    parsed = parse_file(FIX / "syslog-ib-link-flap-faulty-ib6-6-flaps.log")
    assert parsed.host == "jplc7eb7-vm-0"
    assert judge(parsed)[0].value == "6 lost carrier"


def test_dcgmi_wrapped_cells_are_joined():
    findings = judge(parse_file(FIX / "dcgmi-diag-r2-excerpt-faulty-gpu-memory-fail-thermal-violation.txt"))
    fail = next(f for f in findings if f.status == "fail")
    assert "Thermal violations totaling 13.3 seconds started at 9.7 seconds" in fail.detail
    assert [f.device for f in findings if f.status == "pass"] == ["GPU 1, GPU 2, GPU 3, GPU 4, GPU 5, GPU 6, GPU 7"]


def test_host_from_a_pasted_prompt():
    assert parse_file(FIX / "dcgmi-diag-r2-a100x8-p4de-healthy.txt").host == "ip-172-31-35-99"
    assert parse_file(FIX / "dcgmi-diag-r2-a100x8-p4de-healthy.txt", host="gpu01").host == "gpu01"
    assert parse_file(FIX / "dcgmi-diag-r3-v100-pcie-healthy.txt").host is None
