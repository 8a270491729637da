"""SLM rules: each fires on a broken variant of the reference example, never on the example."""

from __future__ import annotations

import copy

from factoryctl.rules import REGISTRY
from tests.helpers import assert_clean, assert_finding, by_code, check_doc, reference_doc

HEAD, GPU = 0, 1  # node group indexes in the reference example


def _slm(checked):
    return [f for f in checked.findings if f.code.startswith("SLM")]


def test_reference_has_no_slurm_problems(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert_clean(checked)
    assert [(f.code, f.severity.value) for f in _slm(checked)] == [("SLM010", "info"), ("SLM021", "warning")]


def test_rules_are_registered_with_docs():
    codes = [c for c in REGISTRY if c.startswith("SLM")]
    assert len(codes) >= 10
    assert all(REGISTRY[c].doc and REGISTRY[c].title for c in codes)


def test_disabled_slurm_is_not_checked(tmp_path):
    doc = reference_doc()
    doc["slurm"]["enabled"] = False
    doc["slurm"]["partitions"][0]["nodes"] = "nope"
    doc["slurm"]["containers"] = {"pyxis": True, "enroot": False}
    assert not _slm(check_doc(doc, tmp_path))


def test_slm001_unknown_group_suggests(tmp_path):
    doc = reference_doc()
    doc["slurm"]["partitions"][0]["nodes"] = "gpus"
    f = assert_finding(check_doc(doc, tmp_path), "SLM001", "slurm.partitions[0].nodes", "error")
    assert "'gpu'" in f.message


def test_slm001_unknown_group_in_list(tmp_path):
    doc = reference_doc()
    doc["slurm"]["partitions"][1]["nodes"] = ["gpu", "cpu"]
    assert_finding(check_doc(doc, tmp_path), "SLM001", "slurm.partitions[1].nodes[1]", "error")


def test_slm002_duplicate_partition(tmp_path):
    doc = reference_doc()
    doc["slurm"]["partitions"][1]["name"] = "gpu"
    assert_finding(check_doc(doc, tmp_path), "SLM002", "slurm.partitions[1].name", "error")


def test_slm003_two_defaults(tmp_path):
    doc = reference_doc()
    doc["slurm"]["partitions"][1]["default"] = True
    assert_finding(check_doc(doc, tmp_path), "SLM003", "slurm.partitions[1].default", "error")


def test_slm003_no_default_is_info(tmp_path):
    doc = reference_doc()
    del doc["slurm"]["partitions"][0]["default"]
    assert_finding(check_doc(doc, tmp_path), "SLM003", "slurm.partitions", "info")


def test_slm004_no_controller(tmp_path):
    doc = reference_doc()
    doc["nodes"][HEAD]["roles"] = ["kube-control-plane", "login"]
    assert_finding(check_doc(doc, tmp_path), "SLM004", "slurm.enabled", "error")


def test_slm005_partition_group_without_compute_role(tmp_path):
    doc = reference_doc()
    doc["slurm"]["partitions"][1]["nodes"] = "head"
    assert_finding(check_doc(doc, tmp_path), "SLM005", "slurm.partitions[1].nodes", "error")


def test_slm006_pyxis_without_enroot(tmp_path):
    doc = reference_doc()
    doc["slurm"]["containers"] = {"pyxis": True, "enroot": False}
    assert_finding(check_doc(doc, tmp_path), "SLM006", "slurm.containers.enroot", "error")


def test_slm007_multinode_without_pmi(tmp_path):
    doc = reference_doc()
    doc["slurm"]["mpi_default"] = "none"
    assert_finding(check_doc(doc, tmp_path), "SLM007", "slurm.mpi_default", "warning")


def test_slm007_single_gpu_node_is_fine(tmp_path):
    doc = reference_doc()
    doc["slurm"]["mpi_default"] = "none"
    doc["nodes"][GPU]["count"] = 1
    doc["nodes"][GPU]["rack"] = "r01"
    assert "SLM007" not in by_code(check_doc(doc, tmp_path))


def test_slm008_block_on_an_hgx_tree(tmp_path):
    doc = reference_doc()
    doc["slurm"]["topology"] = "block"
    f = assert_finding(check_doc(doc, tmp_path), "SLM008", "slurm.topology", "warning")
    assert "tree" in f.hint


def test_slm008_tree_on_nvl72(tmp_path):
    doc = reference_doc()
    doc["slurm"]["topology"] = "tree"
    doc["nodes"][GPU]["hardware"]["gpu"] = {"model": "GB200", "count": 4}
    f = assert_finding(check_doc(doc, tmp_path), "SLM008", "slurm.topology", "warning")
    assert "block" in f.hint


def test_slm008_matching_or_auto_is_quiet(tmp_path):
    doc = reference_doc()
    doc["slurm"]["topology"] = "tree"
    assert "SLM008" not in by_code(check_doc(doc, tmp_path))


def test_slm009_no_compute_nodes(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["roles"] = ["kube-worker"]
    assert_finding(check_doc(doc, tmp_path), "SLM009", "slurm.enabled", "error")


def test_slm010_accounting_without_dbd_is_info(tmp_path):
    assert_finding(check_doc(reference_doc(), tmp_path), "SLM010", "slurm.accounting", "info")


def test_slm010_quiet_with_dbd_role(tmp_path):
    doc = reference_doc()
    doc["nodes"][HEAD]["roles"].append("slurm-dbd")
    assert "SLM010" not in by_code(check_doc(doc, tmp_path))


def test_slm011_images_without_pyxis(tmp_path):
    doc = reference_doc()
    doc["slurm"]["containers"] = {"pyxis": False, "enroot": True,
                                  "images": ["registry.fra1.example.internal#nvidia/pytorch:24.05-py3"]}
    assert_finding(check_doc(doc, tmp_path), "SLM011", "slurm.containers.pyxis", "warning")


def test_slm012_no_partitions(tmp_path):
    doc = reference_doc()
    doc["slurm"]["partitions"] = []
    assert_finding(check_doc(doc, tmp_path), "SLM012", "slurm.partitions", "warning")


def test_slm013_compute_group_in_no_partition(tmp_path):
    doc = reference_doc()
    extra = copy.deepcopy(doc["nodes"][GPU])
    extra.update(group="gpub", hostname="gpub{index:02d}", count=1, rack="r02")
    doc["nodes"].append(extra)
    assert_finding(check_doc(doc, tmp_path), "SLM013", "nodes[2].roles", "info")


# --- HA controllers, pyxis source, Slurm version ------------------------------------------


def test_slm020_ha_controllers_need_state_save_location(tmp_path):
    doc = reference_doc()
    del doc["slurm"]["state_save_location"]
    f = assert_finding(check_doc(doc, tmp_path), "SLM020", "slurm", "error")
    assert "3 hosts" in f.message and "/lustre/slurm/statesave" in f.hint


def test_slm020_state_save_location_on_local_disk(tmp_path):
    doc = reference_doc()
    doc["slurm"]["state_save_location"] = "/var/spool/slurmctld"
    f = assert_finding(check_doc(doc, tmp_path), "SLM020", "slurm.state_save_location", "error")
    assert "/lustre (scratch), /home (home)" in f.message
    doc["slurm"]["state_save_location"] = "/homework/state"  # a prefix of no mount
    assert_finding(check_doc(doc, tmp_path), "SLM020", "slurm.state_save_location", "error")


def test_slm020_storage_the_controllers_do_not_mount(tmp_path):
    doc = reference_doc()
    home = next(s for s in doc["storage"] if s["name"] == "home")
    home["clients"] = ["gpu"]
    f = assert_finding(check_doc(doc, tmp_path), "SLM020", "slurm.state_save_location", "error")
    assert "head" in f.message and "clients" in f.hint


def test_slm020_quiet_with_one_controller(tmp_path):
    doc = reference_doc()
    doc["nodes"][HEAD]["count"] = 1
    del doc["slurm"]["state_save_location"]
    assert "SLM020" not in by_code(check_doc(doc, tmp_path))


def test_slm021_accounting_database_on_a_failover_controller(tmp_path):
    doc = reference_doc()
    f = assert_finding(check_doc(doc, tmp_path), "SLM021", "slurm.accounting", "warning")
    assert "head01" in f.message
    doc["nodes"].append({**copy.deepcopy(doc["nodes"][HEAD]), "group": "db", "count": 1,
                         "hostname": "db{index:02d}", "roles": ["slurm-dbd"]})
    assert "SLM021" not in by_code(check_doc(doc, tmp_path))


def test_slm022_air_gapped_pyxis_without_a_source_is_left_out(tmp_path):
    doc = reference_doc()
    del doc["slurm"]["containers"]["pyxis_repo"]
    f = assert_finding(check_doc(doc, tmp_path), "SLM022", "slurm.containers.pyxis", "warning")
    assert "pyxis_repo" in f.hint
    doc["sovereignty"]["air_gapped"] = False  # github.com is reachable
    assert "SLM022" not in by_code(check_doc(doc, tmp_path))
    doc = reference_doc()
    doc["slurm"]["containers"]["pyxis_repo"] = "https://github.com/NVIDIA/pyxis.git"  # not a mirror
    f = assert_finding(check_doc(doc, tmp_path), "SOV006", "slurm.containers.pyxis_repo", "error")
    assert "github.com" in f.message


def test_slm023_block_topology_needs_slurm_23_11(tmp_path):
    doc = reference_doc()
    doc["slurm"]["topology"] = "block"
    doc["slurm"]["version"] = "22.05"
    f = assert_finding(check_doc(doc, tmp_path), "SLM023", "slurm.version", "error")
    assert "23.11" in f.message and "topology: tree" in f.hint
    doc["slurm"]["version"] = "23.11.4"
    assert "SLM023" not in by_code(check_doc(doc, tmp_path))


def test_reference_example_follows_the_spec_for_state_save_and_gpu_split():
    """examples/reference/factory.yaml carries the spec's slurm.state_save_location and
    gpu_split values (../shared/spec/factory.example.yaml, the contract), and both validate."""
    from pathlib import Path

    import pytest
    import yaml

    spec_path = Path(__file__).resolve().parents[3].parent / "shared" / "spec" / "factory.example.yaml"
    if not spec_path.is_file():
        pytest.skip(f"the spec is not beside the repository ({spec_path})")
    spec = yaml.safe_load(spec_path.read_text())
    ref = reference_doc()
    assert ref["slurm"]["state_save_location"] == spec["slurm"]["state_save_location"]
    assert [ng.get("gpu_split") for ng in ref["nodes"]] == [ng.get("gpu_split") for ng in spec["nodes"]]
