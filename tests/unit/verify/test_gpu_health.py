"""The gpu-health host check: recorded nvidia-smi -q -x, nvidia-smi nvlink -s, ibstat and
kernel log outputs (tests/fixtures/health, sources in SOURCES.md) served by a fake host, parsed
and judged by the health package on the verifying side."""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.verify import probes as p
from tests.unit.verify.test_verify_probes import FakeHost, Res

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "health"
XML = (FIX / "nvidia-smi-qx-a100-sxm4-80gb-mig-healthy.xml").read_text()
NVLINK_OK = (FIX / "nvidia-smi-nvlink-s-a100x8-healthy.txt").read_text()
IB_DOWN = (FIX / "ibstat-h100-faulty-3-ports-down-disabled.txt").read_text()
IB_OK = (FIX / "ibstat-a100-8ib-200g-plus-eth-healthy.txt").read_text()
XID = (FIX / "dmesg-xid119-xe9680-faulty-gsp-timeout.log").read_text()
SMI = "0, NVIDIA A100-SXM4-80GB, 470.57.02, 00000000:01:00.0\n"


def host(xml: str = XML, dmesg: str = "", **extra: Res) -> FakeHost:
    return FakeHost({"/sys/bus/pci": Res(0, "pci 0x10de 0x030200\n"), "command -v nvidia-smi": Res(0, "/usr/bin/nvidia-smi"),
                     "--query-gpu": Res(0, SMI), "nvidia-smi -q -x": Res(0, xml), "dmesg": Res(0, dmesg), **extra})


def check(h, **expect) -> str:
    e = {"gpus": 1, "nvlink": False, "ib_gbps": None, "thresholds": {}} | expect
    return p.judge(h, {"host": "gpu01", "check": "gpu-health", "kind": "gpu_health", "on": "gpu01",
                       "needs": "nvidia-gpu", "expect": e})


def test_healthy_gpu_passes_and_warnings_are_named() -> None:
    h = host()
    detail = check(h)
    assert detail.startswith("1 GPU(s) healthy") and "persistence-mode off" in detail
    assert any("dmesg" in c and "NVRM: Xid" in c for c in h.seen)  # the kernel log was read


def test_uncorrected_volatile_ecc_fails_naming_gpu_value_and_threshold() -> None:
    # synthetic: the healthy recording with 2 volatile uncorrected DRAM errors on its one GPU
    bad = XML.replace("<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>2</dram_uncorrectable>", 1)
    with pytest.raises(p.Fail, match=r"GPU 00000000:01:00.0 ecc-volatile-uncorrected 2 \(expected"):
        check(host(bad))


def test_gpu_count_differs_from_the_design() -> None:
    with pytest.raises(p.Fail, match=r"reports 1 GPU\(s\), 8 declared"):
        check(host(), gpus=8)


def test_kernel_xid_fails_naming_the_gpu() -> None:
    with pytest.raises(p.Fail, match=r"kernel log \(Xid, SXid\): PCI:0000:9b:00 xid-119"):
        check(host(dmesg=XID))


def test_infiniband_ports_down_and_rate_against_the_declared_link_speed() -> None:
    h = host(**{"command -v ibstat": Res(0, "/usr/sbin/ibstat"), "ibstat": Res(0, IB_DOWN)})
    with pytest.raises(p.Fail, match=r"mlx5_2 port 1 ib-port-state Down/Disabled"):
        check(h, ib_gbps=400)
    h = host(**{"command -v ibstat": Res(0, "/usr/sbin/ibstat"), "ibstat": Res(0, IB_OK)})
    assert "healthy" in check(h, ib_gbps=200)
    h = host(**{"command -v ibstat": Res(0, "/usr/sbin/ibstat"), "ibstat": Res(0, IB_OK)})
    with pytest.raises(p.Fail, match=r"ib-port-rate 200 Gb/s \(expected 400 Gb/s\)"):
        check(h, ib_gbps=400)  # an HDR port where NDR is declared


def test_nvlink_read_only_where_declared_and_thresholds_overridable() -> None:
    h = host(**{"nvlink -s": Res(0, NVLINK_OK)})
    check(h, nvlink=True)
    assert any("nvlink -s" in c for c in h.seen)
    h = host()
    check(h)
    assert not any("nvlink -s" in c for c in h.seen)
    bad = XML.replace("<dram_correctable>0</dram_correctable>", "<dram_correctable>5000</dram_correctable>", 1)
    assert "ecc" in check(host(bad)).lower()  # corrected errors: a warning by default
    bad = XML.replace("<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>2</dram_uncorrectable>", 1)
    check(host(bad), thresholds={"ecc_volatile_uncorrected_fail": 10})  # lifted by verify.health


def test_skipped_with_the_reason_without_gpus() -> None:
    h = FakeHost({"/sys/bus/pci": Res(0, "pci 0x8086 0x060000\n")})
    with pytest.raises(p.Skip, match="no NVIDIA GPU on the PCI bus"):
        check(h)


def test_nvidia_smi_xml_failure_is_a_failure_saying_why() -> None:
    with pytest.raises(p.Fail, match=r"nvidia-smi -q -x failed \(exit 9\): NVIDIA-SMI has failed"):
        check(host(**{"nvidia-smi -q -x": Res(9, "", "NVIDIA-SMI has failed because it couldn't communicate")}))


def test_raw_outputs_kept_and_the_odd_driver_out_is_a_warning(tmp_path, monkeypatch) -> None:
    from factoryctl.verify.run import health_consistency

    monkeypatch.setenv(p.HEALTH_DIR_ENV, str(tmp_path))
    for name in ("gpu01", "gpu02", "gpu03"):
        xml = XML if name != "gpu03" else XML.replace("<driver_version>535.54.03<", "<driver_version>535.104.05<")
        assert xml != XML or name != "gpu03"
        p.judge(host(xml), {"host": name, "check": "gpu-health", "kind": "gpu_health", "on": name,
                            "needs": "nvidia-gpu", "expect": {"gpus": 1, "nvlink": False, "ib_gbps": None}})
    assert (tmp_path / "gpu01.nvidia-smi-q-x.txt").read_text() == XML
    odd = health_consistency(tmp_path)
    assert [(r.host, r.check, r.status) for r in odd] == [("gpu03", "consistency-driver", "passed")]
    assert odd[0].detail.startswith("warning: 535.104.05 where 535.54.03 expected")
