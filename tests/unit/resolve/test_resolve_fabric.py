"""Compute-fabric sizing reproduces NVIDIA's published SuperPOD tables (DGX SuperPOD H100 RA
RA-11333-001 Table 4; SuperPOD B200 RA)."""

from __future__ import annotations

import pytest

from factoryctl.resolve import size_fabric, switch_radix
from tests.helpers import check_doc, reference_doc

UFM_PORTS = 4  # SuperPOD H100: the UFM appliance takes the 32nd node slot of SU 1 (252 = 31 x 8 + 4)


# DGX SuperPOD H100, RA-11333-001 Table 4: SU, nodes, leaves, spines, node+UFM->leaf, leaf-spine
H100_TABLE = [
    (1, 31, 8, 4, 252, 256),
    (2, 63, 16, 8, 508, 512),
    (3, 95, 24, 16, 764, 768),
    (4, 127, 32, 16, 1020, 1024),
]


@pytest.mark.parametrize(("sus", "nodes", "leaves", "spines", "node_cables", "leaf_spine"), H100_TABLE)
def test_superpod_h100_qm9700(sus, nodes, leaves, spines, node_cables, leaf_spine):
    fab = size_fabric("compute", nodes * 8 + UFM_PORTS, 400, "QM9700", 1.0, rails=8, gpu_nodes=nodes)
    assert fab.radix == 64
    assert (fab.scalable_units, fab.nodes_per_su) == (sus, 32)
    assert (fab.leaves, fab.spines, fab.cores, fab.tiers) == (leaves, spines, 0, 2)
    assert (fab.node_leaf_cables, fab.leaf_spine_cables) == (node_cables, leaf_spine)


# DGX SuperPOD B200 RA: SU, nodes, leaves, spines, cores (0: two tiers)
B200_TABLE = [
    (2, 64, 16, 8, 0),
    (4, 128, 32, 16, 0),
    (8, 256, 64, 32, 0),
    (16, 512, 128, 128, 64),
    (32, 1024, 256, 256, 128),
    (64, 2048, 512, 512, 256),
]


@pytest.mark.parametrize(("sus", "nodes", "leaves", "spines", "cores"), B200_TABLE)
def test_superpod_b200_qm9700(sus, nodes, leaves, spines, cores):
    fab = size_fabric("compute", nodes * 8, 400, "QM9700", 1.0, rails=8, gpu_nodes=nodes)
    assert fab.scalable_units == sus
    assert (fab.leaves, fab.spines, fab.cores) == (leaves, spines, cores)
    assert fab.tiers == (3 if cores else 2)
    assert fab.endpoints <= fab.max_endpoints


def test_qm9700_tier_limits():
    """k = 64 at 400G: two tiers end at k^2/2 = 2,048 ports, three at k^3/4 = 65,536."""
    two = size_fabric("compute", 2048, 400, "QM9700", 1.0)
    assert (two.tiers, two.max_endpoints) == (2, 2048)
    three = size_fabric("compute", 2056, 400, "QM9700", 1.0)
    assert (three.tiers, three.max_endpoints) == (3, 65536)


# DGX SuperPOD B300 (Spectrum-X, SN5600 at 400G, 2 planes x 8 rails per node): SU, leaves, spines
B300_SPECTRUM_TABLE = [(1, 16, 8), (4, 64, 32), (16, 256, 128)]


@pytest.mark.parametrize(("sus", "leaves", "spines"), B300_SPECTRUM_TABLE)
def test_superpod_b300_sn5600_two_planes(sus, leaves, spines):
    nodes = 64 * sus
    fab = size_fabric("compute", nodes * 16, 400, "SN5600", 1.0, planes=2, rails=8, gpu_nodes=nodes)
    assert fab.radix == 128
    assert (fab.scalable_units, fab.nodes_per_su) == (sus, 64)
    assert (fab.leaves, fab.spines, fab.cores, fab.tiers) == (leaves, spines, 0, 2)


# DGX SuperPOD B300-XDR (Q3400 at 800G, 72 nodes per SU): SU, leaves, spines
B300_XDR_TABLE = [(1, 8, 4), (8, 64, 36), (18, 144, 72)]


@pytest.mark.parametrize(("sus", "leaves", "spines"), B300_XDR_TABLE)
def test_superpod_b300_xdr_q3400(sus, leaves, spines):
    nodes = 72 * sus
    fab = size_fabric("compute", nodes * 8, 800, "Q3400", 1.0, rails=8, gpu_nodes=nodes)
    assert fab.radix == 144
    assert (fab.scalable_units, fab.nodes_per_su) == (sus, 72)
    assert (fab.leaves, fab.spines, fab.tiers) == (leaves, spines, 2)
    if sus == 18:  # 10,368 node-leaf cables: exactly the two-tier limit k^2/2
        assert fab.node_leaf_cables == fab.max_endpoints == 10368


def test_switch_radix_reads_the_breakout_table():
    assert switch_radix("QM9700", 400) == 64
    assert switch_radix("QM9700", 200) == 128
    assert switch_radix("SN5600", 400) == 128
    assert switch_radix("SN5600", 100) == 256  # the catalog's breakout, not 64 x 8
    assert switch_radix("QM9700", 800) == 0
    assert switch_radix("NOPE", 400) == 0


def test_superpod_h100_one_su_from_a_factory(tmp_path):
    """The same figures come out of resolve for a factory.yaml: 31 DGX H100 and a UFM node."""
    doc = reference_doc()
    gpu = doc["nodes"][1]
    gpu["count"] = 31
    gpu["rack"] = [f"r{i:02d}" for i in range(1, 9)]
    doc["nodes"].append({
        "group": "ufm", "count": 1, "hostname": "ufm{index:02d}", "rack": "r01", "roles": ["ufm"],
        "hardware": {"cpu": {"model": "Xeon-8480C", "sockets": 2}, "memory_gb": 256,
                     "nics": [{"name": "compute", "model": "ConnectX-7", "count": UFM_PORTS,
                               "speed_gbps": 400}]},
    })
    doc["facility"]["racks"] = [{"name": f"r{i:02d}", "power_kw": 50, "cooling": "liquid"} for i in range(1, 9)]
    checked = check_doc(doc, tmp_path)
    fab = checked.site.fabric["compute"]
    assert (fab.endpoints, fab.leaves, fab.spines, fab.leaf_spine_cables) == (252, 8, 4, 256)
    assert fab.scalable_units == 1


def test_recommended_topology_is_a_derived_fact_rules_and_render_share(tmp_path):
    """resolve computes the Slurm topology recommendation; SLM008 and `topology: auto` read it."""
    from factoryctl.render.slurm import topology_plugin
    from factoryctl.resolve import recommended_topology

    (tmp_path / "hgx").mkdir()
    (tmp_path / "nvl").mkdir()
    hgx = check_doc(reference_doc(), tmp_path / "hgx")
    assert recommended_topology(hgx.factory, hgx.site)[0] == "tree"
    nvl = reference_doc()
    nvl["nodes"][1]["hardware"]["gpu"] = {"model": "GB200", "count": 4}
    nvl["slurm"]["topology"] = "auto"
    c = check_doc(nvl, tmp_path / "nvl")
    want, why = recommended_topology(c.factory, c.site)
    assert want == "block" and "NVLink" in why
    assert topology_plugin(c.site) == "block"
