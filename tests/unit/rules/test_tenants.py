"""TEN rules: each fires on a broken variant of the reference example (4 x 8 H100 = 32 GPUs,
one deployment `chat` of TP4 x 2 replicas = 8 GPUs), at the path the file declares it."""

from __future__ import annotations

from factoryctl.rules import REGISTRY
from tests.helpers import assert_clean, assert_finding, by_code, check_doc, reference_doc


def _doc(*tenants, **extra) -> dict:
    doc = reference_doc()
    doc["tenants"] = list(tenants)
    doc.update(extra)
    return doc


def test_rules_registered_with_docs():
    codes = [c for c in REGISTRY if c.startswith("TEN")]
    assert len(codes) >= 10
    assert all(REGISTRY[c].doc and REGISTRY[c].area == "tenancy" for c in codes)
    assert "K8S007" not in REGISTRY and "K8S008" not in REGISTRY  # moved here, retired


def test_well_formed_tenants_are_clean(tmp_path):
    c = check_doc(_doc({"name": "a", "gpu_quota": 16, "deployments": ["chat"], "fairshare": 3,
                        "members": {"users": ["alice"], "groups": ["team-a"]}},
                       {"name": "b", "gpu_quota": {"H100-SXM-80GB": 16}, "node_groups": ["gpu"]}), tmp_path)
    assert_clean(c)
    assert not [f for f in c.findings if f.code.startswith("TEN")]


def test_ten001_kubernetes_tenants_deprecated_and_moved(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["tenants"] = [{"name": "a", "gpu_quota": 8, "cpu_quota": 64}]
    c = check_doc(doc, tmp_path)
    f = assert_finding(c, "TEN001", "kubernetes.tenants", "warning")
    assert "move to top-level tenants:" in f.hint and f.line > 0
    assert [t.name for t in c.factory.tenants] == ["a"] and c.factory.tenants[0].cpu_quota == 64


def test_both_places_is_a_schema_error(tmp_path):
    doc = _doc({"name": "a"})
    doc["kubernetes"]["tenants"] = [{"name": "b"}]
    c = check_doc(doc, tmp_path)
    assert c.factory is None
    assert any("both at the top level and under kubernetes.tenants" in f.message for f in c.findings)


def test_ten002_total_over_gpus(tmp_path):
    c = check_doc(_doc({"name": "a", "gpu_quota": 16}, {"name": "b", "gpu_quota": 20}), tmp_path)
    f = assert_finding(c, "TEN002", "tenants[1].gpu_quota", "error")
    assert "36 GPUs but the site has 32" in f.message


def test_ten002_per_type_over(tmp_path):
    c = check_doc(_doc({"name": "a", "gpu_quota": {"H100-SXM-80GB": 40}}), tmp_path)
    f = assert_finding(c, "TEN002", "tenants[0].gpu_quota.H100-SXM-80GB", "error")
    assert "H100" in f.message and "32" in f.message


def test_ten002_oversubscription_declared(tmp_path):
    c = check_doc(_doc({"name": "a", "gpu_quota": 32}, {"name": "b", "gpu_quota": 32},
                       tenancy={"oversubscription": True}), tmp_path)
    assert "TEN002" not in by_code(c)


def test_ten002_at_the_deprecated_place(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["tenants"] = [{"name": "a", "gpu_quota": 16}, {"name": "b", "gpu_quota": 20}]
    assert_finding(check_doc(doc, tmp_path), "TEN002", "kubernetes.tenants[1].gpu_quota", "error")


def test_ten003_deployment_counts_against_owner(tmp_path):
    c = check_doc(_doc({"name": "a", "gpu_quota": 4, "deployments": ["chat"]}), tmp_path)
    f = assert_finding(c, "TEN003", "tenants[0].gpu_quota", "error")
    assert "needing 8 GPUs" in f.message and "quota is 4" in f.message


def test_ten004_unknown_deployment(tmp_path):
    f = assert_finding(check_doc(_doc({"name": "a", "gpu_quota": 8, "deployments": ["chta"]}), tmp_path),
                       "TEN004", "tenants[0].deployments[0]", "error")
    assert "chat" in f.hint


def test_ten005_unknown_node_group(tmp_path):
    assert_finding(check_doc(_doc({"name": "a", "node_groups": ["gpus"]}), tmp_path),
                   "TEN005", "tenants[0].node_groups[0]", "error")


def test_ten006_duplicate(tmp_path):
    assert_finding(check_doc(_doc({"name": "a"}, {"name": "a"}), tmp_path), "TEN006", "tenants[1].name", "error")


def test_ten007_two_owners(tmp_path):
    c = check_doc(_doc({"name": "a", "gpu_quota": 8, "deployments": ["chat"]},
                       {"name": "b", "gpu_quota": 8, "deployments": ["chat"]}), tmp_path)
    assert_finding(c, "TEN007", "tenants[1].deployments[0]", "error")


def test_ten008_unknown_gpu_type(tmp_path):
    assert_finding(check_doc(_doc({"name": "a", "gpu_quota": {"A100-SXM-80GB": 8}}), tmp_path),
                   "TEN008", "tenants[0].gpu_quota.A100-SXM-80GB", "error")


def test_ten009_deployment_outside_node_groups(tmp_path):
    c = check_doc(_doc({"name": "a", "gpu_quota": 8, "deployments": ["chat"], "node_groups": ["head"]}), tmp_path)
    assert_finding(c, "TEN009", "tenants[0].deployments[0]", "error")


def test_ten010_reserved_name(tmp_path):
    f = assert_finding(check_doc(_doc({"name": "root"}), tmp_path), "TEN010", "tenants[0].name", "error")
    assert "Slurm's root account" in f.message
    assert_finding(check_doc(_doc({"name": "inference"}), tmp_path), "TEN010", "tenants[0].name", "error")
