"""STO rules: names, mounts, server declarations, the parallel-filesystem tier, throughput."""

from __future__ import annotations

from ruamel.yaml import YAML

from tests.helpers import ROOT, assert_finding, by_code, check_doc, reference_doc

S3 = {"name": "models", "type": "s3", "capacity_tb": 100, "endpoint": "https://s3.fra1.example.internal"}


def test_reference_is_clean_of_storage_findings(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert not [f for f in checked.findings if f.code.startswith("STO")]


def test_sto001_duplicate_mount(tmp_path):
    doc = reference_doc()
    doc["storage"][1]["mount"] = "/lustre/"
    assert_finding(check_doc(doc, tmp_path), "STO001", "storage[1].mount", "error")


def test_sto002_duplicate_name(tmp_path):
    doc = reference_doc()
    doc["storage"][1]["name"] = "scratch"
    assert_finding(check_doc(doc, tmp_path), "STO002", "storage[1].name", "error")


def test_sto003_lustre_without_servers(tmp_path):
    doc = reference_doc()
    del doc["storage"][0]["servers"]
    assert_finding(check_doc(doc, tmp_path), "STO003", "storage[0].servers", "error")


def test_sto003_nfs_without_server(tmp_path):
    doc = reference_doc()
    del doc["storage"][1]["server"]
    assert_finding(check_doc(doc, tmp_path), "STO003", "storage[1].server", "error")


def test_sto003_nfs_server_not_host_export(tmp_path):
    doc = reference_doc()
    doc["storage"][1]["server"] = "10.20.0.210"
    assert_finding(check_doc(doc, tmp_path), "STO003", "storage[1].server", "error")


def test_sto003_s3_endpoint(tmp_path):
    doc = reference_doc()
    doc["storage"].append({k: v for k, v in S3.items() if k != "endpoint"})
    assert_finding(check_doc(doc, tmp_path), "STO003", "storage[2].endpoint", "error")
    doc["storage"][2]["endpoint"] = "s3.fra1.example.internal"
    assert_finding(check_doc(doc, tmp_path), "STO003", "storage[2].endpoint", "error")


def test_sto003_s3_with_endpoint_is_clean(tmp_path):
    doc = reference_doc()
    doc["storage"].append(dict(S3))
    assert not [f for f in check_doc(doc, tmp_path).findings if f.code.startswith("STO")]


def test_sto004_relative_mount(tmp_path):
    doc = reference_doc()
    doc["storage"][1]["mount"] = "home"
    assert_finding(check_doc(doc, tmp_path), "STO004", "storage[1].mount", "error")


def test_sto004_mount_with_dotdot(tmp_path):
    doc = reference_doc()
    doc["storage"][1]["mount"] = "/srv/../home"
    assert_finding(check_doc(doc, tmp_path), "STO004", "storage[1].mount", "error")


def test_sto004_object_store_with_mount(tmp_path):
    doc = reference_doc()
    doc["storage"].append(dict(S3, mount="/models"))
    assert_finding(check_doc(doc, tmp_path), "STO004", "storage[2].mount", "error")


def test_sto004_filesystem_without_mount(tmp_path):
    doc = reference_doc()
    del doc["storage"][1]["mount"]
    assert_finding(check_doc(doc, tmp_path), "STO004", "storage[1].mount", "error")


def test_sto005_training_site_without_parallel_fs(tmp_path):
    doc = reference_doc()
    del doc["storage"][0]
    assert_finding(check_doc(doc, tmp_path), "STO005", "storage", "warning")


def test_sto005_inference_only_site_is_not_checked(tmp_path):
    doc = reference_doc()
    del doc["storage"][0]
    doc["slurm"] = {"enabled": False}
    assert "STO005" not in by_code(check_doc(doc, tmp_path))


def test_sto006_read_below_good_level(tmp_path):
    doc = reference_doc()
    doc["nodes"][1]["count"] = 64  # 2 SU: Good = 30 GB/s read, 14 write
    doc["storage"][0].update(read_gbps=20, write_gbps=10)
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "STO006", "storage[0].read_gbps", "warning")
    assert_finding(checked, "STO006", "storage[0].write_gbps", "warning")


def test_sto006_small_site_needs_single_node_level(tmp_path):
    doc = reference_doc()
    doc["storage"][0].update(read_gbps=3, write_gbps=2)  # 4 nodes: max(4, 15 x 4/32) read
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "STO006", "storage[0].read_gbps", "warning")
    assert [f.path for f in by_code(checked)["STO006"]] == ["storage[0].read_gbps"]


def test_sto007_unknown_client_group(tmp_path):
    doc = reference_doc()
    doc["storage"][0]["clients"] = ["gpu", "cpu"]
    assert_finding(check_doc(doc, tmp_path), "STO007", "storage[0].clients[1]", "error")


# --- transports: RDMA, LNet --------------------------------------------------------------

def _blueprint(name: str) -> dict:
    return YAML(typ="safe").load((ROOT / "blueprints" / name / "factory.yaml").read_text())


def _codes(doc, tmp_path) -> set[str]:
    return {f.code for f in check_doc(doc, tmp_path).findings if f.code in ("STO008", "STO009", "STO010")}


def test_shipped_rdma_blueprints_are_clean(tmp_path):
    for name in ("superpod-h100-1su", "hybrid-slurm-research", "enterprise-h100-32n", "gb300-nvl72-neocloud"):
        assert _codes(_blueprint(name), tmp_path) == set(), name


def test_sto008_o2ib_lustre_on_an_ethernet_storage_fabric(tmp_path):
    doc = reference_doc()
    doc["storage"][0]["servers"] = ["10.20.0.200@o2ib"]  # the reference's storage fabric is ethernet
    f = assert_finding(check_doc(doc, tmp_path), "STO008", "storage[0].servers", "error")
    assert "o2ib0" in f.message and "ethernet" in f.message


def test_sto008_rdma_weka_without_a_storage_fabric(tmp_path):
    doc = _blueprint("enterprise-h100-32n")
    doc["storage"][0]["rdma"] = True
    del doc["fabric"]["storage"]
    f = assert_finding(check_doc(doc, tmp_path), "STO008", "storage[0].rdma", "error")
    assert "no storage fabric" in f.message


def test_sto008_superpod_lustre_without_its_ib_storage_fabric(tmp_path):
    doc = _blueprint("superpod-h100-1su")
    doc["fabric"]["storage"]["type"] = "ethernet"
    assert_finding(check_doc(doc, tmp_path), "STO008", "storage[0].servers", "error")


def test_sto009_rdma_on_gpfs_and_against_lustre_nids(tmp_path):
    doc = reference_doc()
    doc["storage"][0]["rdma"] = True  # servers are @tcp
    assert_finding(check_doc(doc, tmp_path), "STO009", "storage[0].rdma", "error")
    doc = reference_doc()
    doc["storage"].append({"name": "gpfs", "type": "gpfs", "mount": "/gpfs", "capacity_tb": 10,
                           "servers": ["gpfs01.fra1.example.internal"], "rdma": True})
    assert_finding(check_doc(doc, tmp_path), "STO009", "storage[2].rdma", "error")


def test_sto010_rdma_lustre_without_client_interfaces(tmp_path):
    doc = _blueprint("superpod-h100-1su")
    del doc["fabric"]["storage"]["interfaces"]
    assert_finding(check_doc(doc, tmp_path), "STO010", "fabric.storage", "warning")
