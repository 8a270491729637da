"""NOD rules: each fires on a broken variant of the reference example, never on the example."""

from __future__ import annotations

from factoryctl.rules import REGISTRY
from tests.helpers import assert_clean, assert_finding, by_code, check_doc, reference_doc

GPU = 1  # index of the GPU group in the reference example


def test_reference_is_clean_of_node_findings(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert_clean(checked)
    assert not [f for f in checked.findings if f.code.startswith("NOD")]


def test_rules_are_registered_with_docs():
    codes = [c for c in REGISTRY if c.startswith("NOD")]
    assert len(codes) >= 10
    assert all(REGISTRY[c].doc for c in codes)


def test_nod001_unknown_gpu_suggests(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["gpu"]["model"] = "H100-SXM-80G"
    f = assert_finding(check_doc(doc, tmp_path), "NOD001", "nodes[1].hardware.gpu.model", "error")
    assert "H100-SXM-80GB" in f.hint


def test_nod002_unknown_nic(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["nics"][1]["model"] = "ConnectX-99"
    assert_finding(check_doc(doc, tmp_path), "NOD002", "nodes[1].hardware.nics[1].model", "error")


def test_nod003_unknown_cpu_warns(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["hardware"]["cpu"]["model"] = "Pentium-4"
    assert_finding(check_doc(doc, tmp_path), "NOD003", "nodes[0].hardware.cpu.model", "warning")


def test_nod003_is_info_with_declared_cores(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["hardware"]["cpu"] = {"model": "Pentium-4", "sockets": 2, "cores_per_socket": 32}
    assert_finding(check_doc(doc, tmp_path), "NOD003", "nodes[0].hardware.cpu.model", "info")


def test_nod004_hostnames_collide_across_groups(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["hostname"] = "gpu{index:02d}"
    assert_finding(check_doc(doc, tmp_path), "NOD004", "nodes[1].hostname", "error")


def test_nod004_template_without_index(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hostname"] = "gpu"
    assert_finding(check_doc(doc, tmp_path), "NOD004", "nodes[1].hostname", "error")


def test_nod005_undeclared_rack(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["rack"] = ["r01", "r03"]
    assert_finding(check_doc(doc, tmp_path), "NOD005", "nodes[1].rack[1]", "error")


def test_nod005_single_rack(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["rack"] = "r9"
    assert_finding(check_doc(doc, tmp_path), "NOD005", "nodes[0].rack", "error")


def test_nod006_few_cores_per_gpu(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["cpu"] = {"model": "Xeon-8468", "sockets": 1}  # 48 cores / 8 GPUs = 6
    assert_finding(check_doc(doc, tmp_path), "NOD006", "nodes[1].hardware.cpu", "warning")


def test_nod006_seven_cores_per_gpu_is_enough(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["cpu"] = {"model": "Xeon-8480C", "sockets": 1}  # 56 / 8 = 7
    assert "NOD006" not in by_code(check_doc(doc, tmp_path))


def test_nod007_little_ram_per_gpu(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["memory_gb"] = 512
    assert_finding(check_doc(doc, tmp_path), "NOD007", "nodes[1].hardware.memory_gb", "warning")


def test_nod008_power_below_tdp(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["power_kw"] = 5.0  # 8 x 700 W = 5.6 kW
    assert_finding(check_doc(doc, tmp_path), "NOD008", "nodes[1].hardware.power_kw", "error")


def test_nod008_estimate_is_info(tmp_path):
    doc = reference_doc()
    del doc["nodes"][GPU]["hardware"]["power_kw"]
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "NOD008", "nodes[1].hardware", "info")
    assert checked.site.groups["gpu"].power_kw == 10.08  # 1.8 x 5.6 kW


def test_nod009_duplicate_group(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["group"] = "gpu"
    assert_finding(check_doc(doc, tmp_path), "NOD009", "nodes[1].group", "error")


def test_nod010_hostname_not_a_label(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hostname"] = "GPU_{index}"
    assert_finding(check_doc(doc, tmp_path), "NOD010", "nodes[1].hostname", "error")


def test_nod010_template_that_cannot_expand_is_a_finding_not_a_crash(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hostname"] = "gpu{index:q}"
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "NOD010", "nodes[1].hostname", "error")
    assert "NOD004" not in by_code(checked)


# --- GPUs shared by Slurm and Kubernetes (gpu_split) ---------------------------------------


def test_nod011_gpu_group_in_both_schedulers_needs_a_split(tmp_path):
    doc = reference_doc()
    del doc["nodes"][GPU]["gpu_split"]
    f = assert_finding(check_doc(doc, tmp_path), "NOD011", f"nodes[{GPU}].roles", "error")
    assert "all 8 GPUs" in f.message and "gpu_split: {slurm: 4, kubernetes: 4}" in f.hint


def test_nod011_quiet_with_one_scheduler(tmp_path):
    doc = reference_doc()
    del doc["nodes"][GPU]["gpu_split"]
    doc["nodes"][GPU]["roles"] = ["slurm-compute"]
    assert "NOD011" not in by_code(check_doc(doc, tmp_path))


def test_nod012_split_must_add_up_to_the_gpus(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["gpu_split"] = {"slurm": 4, "kubernetes": 2}
    f = assert_finding(check_doc(doc, tmp_path), "NOD012", f"nodes[{GPU}].gpu_split", "error")
    assert "(6)" in f.message and "each node has 8" in f.message
    doc["nodes"][GPU]["gpu_split"] = {"slurm": 8, "kubernetes": 8}
    assert_finding(check_doc(doc, tmp_path), "NOD012", f"nodes[{GPU}].gpu_split", "error")


def test_nod012_split_needs_gpus_and_both_roles(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["gpu_split"] = {"slurm": 1, "kubernetes": 1}  # head nodes: no GPU
    f = assert_finding(check_doc(doc, tmp_path), "NOD012", "nodes[0].gpu_split", "error")
    assert "no GPUs" in f.message
    doc = reference_doc()
    doc["nodes"][GPU]["roles"] = ["slurm-compute"]
    f = assert_finding(check_doc(doc, tmp_path), "NOD012", f"nodes[{GPU}].gpu_split", "error")
    assert "kube-worker" in f.message


def test_gpu_split_is_schema_checked(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["gpu_split"] = {"slurm": 4, "kubernets": 4}
    assert "SCH002" in by_code(check_doc(doc, tmp_path))
    doc["nodes"][GPU]["gpu_split"] = {"slurm": -1, "kubernetes": 9}
    assert any(c.startswith("SCH") for c in by_code(check_doc(doc, tmp_path)))
