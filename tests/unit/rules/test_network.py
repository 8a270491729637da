"""NET rules: address plans of the management and OOB networks, Kubernetes CIDRs."""

from __future__ import annotations

from tests.helpers import assert_finding, by_code, check_doc, reference_doc


def test_reference_is_clean_of_network_findings(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert not [f for f in checked.findings if f.code.startswith("NET")]


def test_net001_management_cidr_too_small(tmp_path):
    doc = reference_doc()
    doc["fabric"]["management"] = {"cidr": "10.20.0.0/28", "gateway": "10.20.0.1"}  # 14 - 10 reserved
    assert_finding(check_doc(doc, tmp_path), "NET001", "fabric.management.cidr", "error")


def test_net001_reserved_counts(tmp_path):
    doc = reference_doc()
    doc["fabric"]["management"].update(cidr="10.20.0.0/27", reserved=25)  # 30 - 25 = 5 < 7 hosts
    assert_finding(check_doc(doc, tmp_path), "NET001", "fabric.management.cidr", "error")
    doc["fabric"]["management"]["reserved"] = 23  # exactly 7
    assert "NET001" not in by_code(check_doc(doc, tmp_path))


def test_net002_oob_cidr_too_small(tmp_path):
    doc = reference_doc()
    doc["fabric"]["oob"]["cidr"] = "10.21.0.0/29"
    assert_finding(check_doc(doc, tmp_path), "NET002", "fabric.oob.cidr", "error")


def test_net003_pod_cidr_overlaps_management(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["pod_cidr"] = "10.0.0.0/8"
    assert_finding(check_doc(doc, tmp_path), "NET003", "kubernetes.pod_cidr", "error")


def test_net003_oob_overlaps_management(tmp_path):
    doc = reference_doc()
    doc["fabric"]["oob"]["cidr"] = "10.20.0.0/23"
    assert_finding(check_doc(doc, tmp_path), "NET003", "fabric.oob.cidr", "error")


def test_net003_kubernetes_disabled_is_not_checked(tmp_path):
    doc = reference_doc()
    doc["kubernetes"] = {"enabled": False, "pod_cidr": "10.20.0.0/16"}
    doc["inference"] = []
    assert "NET003" not in by_code(check_doc(doc, tmp_path))


def test_net003_lab_subnet(tmp_path):
    doc = reference_doc()
    doc["site"]["lab"] = {"subnet": "10.21.0.128/25"}
    assert_finding(check_doc(doc, tmp_path), "NET003", "site.lab.subnet", "error")


def test_net003_lab_management_on_the_lab_subnet_is_fine(tmp_path):
    doc = reference_doc()
    doc["site"]["lab"] = {"subnet": "10.20.0.0/23"}  # contains the management /24
    assert "NET003" not in by_code(check_doc(doc, tmp_path))


def test_net004_gateway_outside_cidr(tmp_path):
    doc = reference_doc()
    doc["fabric"]["management"]["gateway"] = "10.30.0.1"
    assert_finding(check_doc(doc, tmp_path), "NET004", "fabric.management.gateway", "error")


def test_net004_gateway_is_network_or_broadcast(tmp_path):
    for gw in ("10.20.0.0", "10.20.0.255"):
        doc = reference_doc()
        doc["fabric"]["management"]["gateway"] = gw
        assert_finding(check_doc(doc, tmp_path), "NET004", "fabric.management.gateway", "error")


def test_net004_gateway_is_a_host_address(tmp_path):
    doc = reference_doc()
    doc["fabric"]["oob"]["gateway"] = "10.21.0.11"  # first derived address (after 10 reserved)
    assert_finding(check_doc(doc, tmp_path), "NET004", "fabric.oob.gateway", "error")


def test_net005_pod_cidr_too_small(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["pod_cidr"] = "10.244.0.0/22"  # four /24s for 7 Kubernetes nodes
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "NET005", "kubernetes.pod_cidr", "error")


def test_net005_node_prefix_larger_than_cidr(tmp_path):
    doc = reference_doc()
    doc["kubernetes"].update(pod_cidr="10.244.0.0/24", node_pod_prefix=20)
    assert_finding(check_doc(doc, tmp_path), "NET005", "kubernetes.pod_cidr", "error")


def test_net006_explicit_address_outside_cidr(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["network"]["management"]["addresses"] = ["10.20.0.5", "10.20.1.6", "10.20.0.7"]
    assert_finding(check_doc(doc, tmp_path), "NET006", "nodes[0].network.management.addresses[1]", "error")


def test_net006_explicit_address_duplicated(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["network"]["management"]["addresses"] = ["10.20.0.5", "10.20.0.5", "10.20.0.7"]
    assert_finding(check_doc(doc, tmp_path), "NET006", "nodes[0].network.management.addresses[1]", "error")


def test_net006_explicit_address_collides_with_derived(tmp_path):
    doc = reference_doc()
    # derived addresses start at .11 (10 reserved); the GPU group's first host gets .14
    doc["nodes"][0]["network"]["management"]["addresses"] = ["10.20.0.5", "10.20.0.14", "10.20.0.7"]
    assert_finding(check_doc(doc, tmp_path), "NET006", "nodes[0].network.management.addresses[1]", "error")


def test_net006_more_addresses_than_nodes_warns(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["network"]["management"]["addresses"] = [f"10.20.0.{i}" for i in (2, 3, 4, 5)]
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "NET006", "nodes[0].network.management.addresses[3]", "warning")
    assert [f.severity.value for f in by_code(checked)["NET006"]] == ["warning"]


def test_net007_service_cidr_too_large(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["service_cidr"] = "10.96.0.0/11"
    assert_finding(check_doc(doc, tmp_path), "NET007", "kubernetes.service_cidr", "error")


def test_net008_lab_hosts_must_sit_on_the_lab_subnet(tmp_path):
    import yaml

    from tests.helpers import ROOT

    doc = yaml.safe_load((ROOT / "examples" / "lab.yaml").read_text())
    assert "NET008" not in by_code(check_doc(doc, tmp_path))
    doc["fabric"]["management"] = {"cidr": "10.66.0.0/24", "gateway": "10.66.0.1"}
    assert_finding(check_doc(doc, tmp_path), "NET008", "site.lab.subnet", "error")
