"""`factoryctl bom`: counts against NVIDIA's published SuperPOD H100 figures (DGX SuperPOD H100 RA
RA-11333-001, Table 4 and Appendix A).

RA-11333-001 Table 4 (compute fabric per SU count) and Appendix A (the 4-SU, 127-node bill
of materials: 38 racks, 48 QM9700 compute, 8 SN4600C in-band, 8 SN2201 OOB, 96+12 PDUs).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from factoryctl.cli import run
from factoryctl.report.bom import bom, inband_switches
from factoryctl.session import check
from tests.helpers import ROOT, assert_clean, check_doc

SPOD = ROOT / "blueprints" / "superpod-h100-1su" / "factory.yaml"
PILOT = ROOT / "blueprints" / "enterprise-pilot-h100-4n" / "factory.yaml"
ENT32 = ROOT / "blueprints" / "enterprise-h100-32n" / "factory.yaml"


def _bom(path: Path):
    c = check(path)
    assert c.site is not None
    return bom(c.site)


def test_superpod_one_su_matches_nvidia_table_4():
    """SU 1 row of Table 4: 31 nodes, 248 GPUs, 8 leaves, 4 spines, 252 node+UFM-leaf, 256 leaf-spine cables."""
    b = _bom(SPOD)
    dgx = next(x for x in b.lines if x.category == "nodes" and "H100" in x.model)
    assert dgx.quantity == 31
    assert b.quantity("gpus", "GPU") == 248
    assert b.find("compute fabric", "leaf switch").model == "QM9700"
    assert b.quantity("compute fabric", "leaf switch") == 8
    assert b.quantity("compute fabric", "spine switch") == 4
    assert b.quantity("compute fabric", "core switch") == 0
    assert b.quantity("cables", "compute node-to-leaf cable") == 252
    assert b.quantity("cables", "compute leaf-to-spine cable") == 256
    assert b.find("cables", "compute leaf-to-spine cable").model == "400G"
    # every count says where it comes from
    assert all(x.basis for x in b.lines)
    assert "1 SU x 8 rails" in b.find("compute fabric", "leaf switch").basis


def test_superpod_transceivers_by_rate():
    """QM9700 has 32 twin-port OSFP cages: one switch-side module carries two 400G links."""
    b = _bom(SPOD)
    assert b.quantity("transceivers", "compute node-end transceiver") == 252
    sw = b.find("transceivers", "compute switch-end transceiver")
    assert sw.model.startswith("800G twin-port")
    assert sw.quantity == (252 + 2 * 256) // 2  # 382


def _four_su_doc() -> dict:
    """The 1-SU blueprint grown to NVIDIA's 4-SU, 127-node SuperPOD: 32 compute racks with
    three PDUs (4 DGX each, the last with 3) and six other racks with two, as Appendix A."""
    doc = yaml.safe_load(SPOD.read_text())
    doc["site"]["power_capacity_kw"] = 2000
    compute = [f"c{i:02d}" for i in range(1, 33)]
    other = ["m01"] + [f"n{i:02d}" for i in range(1, 6)]
    doc["facility"]["racks"] = (
        [{"name": r, "power_kw": 17, "cooling": "air", "pdus": 2} for r in other]
        + [{"name": r, "power_kw": 50, "cooling": "rear-door", "pdus": 3} for r in compute]
    )
    dgx = next(g for g in doc["nodes"] if g["group"] == "dgx")
    dgx["count"] = 127
    dgx["rack"] = compute
    return doc


def test_superpod_four_su_matches_nvidia_appendix_a(tmp_path):
    c = check_doc(_four_su_doc(), tmp_path)
    assert_clean(c)
    b = bom(c.site)
    # Table 4, SU 4 row: 32 leaves, 16 spines, 1,020 node+UFM-leaf and 1,024 leaf-spine cables
    assert b.quantity("compute fabric", "leaf switch") == 32
    assert b.quantity("compute fabric", "spine switch") == 16
    assert b.quantity("cables", "compute node-to-leaf cable") == 1020
    assert b.quantity("cables", "compute leaf-to-spine cable") == 1024
    # Appendix A: 48 QM9700 for the compute fabric, 8 SN4600C in-band, 38 racks, 96 + 12 PDUs
    assert b.quantity("compute fabric", "leaf switch") + b.quantity("compute fabric", "spine switch") == 48
    inband = b.quantity("in-band management", "in-band leaf switch") + b.quantity("in-band management", "in-band spine switch")
    assert inband == 8 and b.find("in-band management", "in-band leaf switch").model == "SN4600C"
    assert sum(x.quantity for x in b.lines if x.category == "racks") == 38
    assert sum(x.quantity for x in b.lines if x.item == "rack PDU") == 108
    # Storage fabric: NVIDIA lists 16 QM9700 (the storage appliances' ports and the ~4:3 DGX-side
    # ratio included); resolve sizes it from the 254 DGX storage ports at 1:1, so 8 + 4.
    assert b.quantity("storage fabric", "leaf switch") + b.quantity("storage fabric", "spine switch") == 12
    # OOB: 134 host BMCs + 68 switch management ports + 108 PDUs = 310 ports -> 7 SN2201 of 48
    # ports. NVIDIA lists 8: the storage appliances and their switches are outside this model.
    oob = b.find("out-of-band", "OOB switch")
    assert oob.model == "SN2201" and oob.quantity == 7


def test_inband_pairs():
    assert inband_switches(0, 64) == (0, 0)
    assert inband_switches(75, 64) == (2, 0)  # SuperPOD 1 SU: one pair, 56 host ports each
    assert inband_switches(112, 64) == (2, 0)
    assert inband_switches(113, 64) == (4, 2)  # a second pair needs a spine pair


def test_pilot_counts_and_notes():
    b = _bom(PILOT)
    assert b.quantity("gpus", "GPU") == 32
    assert b.quantity("nics", "NIC") == 32 and b.quantity("nics", "DPU") == 4  # 8x ConnectX-7, 1x BlueField-3
    # full-SU build: the rail-optimised fabric gets all 8 rail leaves even for 4 nodes
    assert b.quantity("compute fabric", "leaf switch") == 8
    # no storage switch declared: counted cables, no switches, and a note that says so
    assert b.find("storage fabric", "leaf switch") is None
    assert b.quantity("cables", "storage node-to-leaf cable") == 4
    assert any("storage fabric" in n and "fabric.storage.switch" in n for n in b.notes)
    # OOB: 7 host BMCs + 4 DPU BMCs + 12 compute + 2 in-band switches + 4 PDUs = 29 ports -> 1 switch
    oob = b.find("out-of-band", "OOB switch")
    assert oob.quantity == 1 and "29" not in oob.basis  # the basis lists the terms
    assert "7 host BMCs + 4 DPU BMCs + 14 switch mgmt ports + 4 PDUs" in oob.basis
    assert b.quantity("cables", "OOB cable") == 29
    assert "SN2201 is assumed" in oob.basis


def test_enterprise_32n():
    b = _bom(ENT32)
    assert b.quantity("gpus", "GPU") == 256
    assert b.quantity("compute fabric", "leaf switch") == 8 and b.quantity("compute fabric", "spine switch") == 4
    # SN5600 at 400G: an 800G cage carries two 400G links
    assert b.find("transceivers", "compute switch-end transceiver").model == "800G twin-port (2 x 400G)"
    nics = {x.model: x.quantity for x in b.lines if x.category == "nics"}
    assert nics["BlueField-3-B3140H"] == 256 and nics["BlueField-3-B3220"] == 32  # SuperNIC per GPU, one DPU
    assert b.find("nics", "DPU").model == "BlueField-3-B3220"


@pytest.mark.parametrize("fmt", ["json", "csv", "text"])
def test_cli_formats(capsys, fmt):
    rc = run(["bom", str(SPOD), "--format", fmt])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    if fmt == "json":
        doc = json.loads(cap.out)
        lines = {(x["category"], x["item"]): x["quantity"] for x in doc["lines"]}
        assert lines[("compute fabric", "leaf switch")] == 8
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(cap.out)))
        assert {"category", "item", "model", "quantity", "unit", "basis"} <= set(rows[0])
        leaf = next(r for r in rows if r["category"] == "compute fabric" and r["item"] == "leaf switch")
        assert leaf["quantity"] == "8"
    else:
        assert "leaf switch" in cap.out and "QM9700" in cap.out


def test_cli_exit_codes(tmp_path, capsys):
    bad = tmp_path / "factory.yaml"
    bad.write_text("apiVersion: factoryctl/v1alpha1\nkind: Factory\n")
    assert run(["bom", str(bad)]) == 1
    assert run(["bom", str(SPOD), "--format", "xml"]) == 64
    capsys.readouterr()
