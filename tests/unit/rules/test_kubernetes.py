"""K8S rules: each fires on a broken variant of the reference example, never on the example."""

from __future__ import annotations

import pytest

from factoryctl.rules import REGISTRY
from tests.helpers import assert_clean, assert_finding, by_code, check_doc, reference_doc

HEAD, GPU = 0, 1  # node group indexes in the reference example


def _k8s(checked):
    return [f for f in checked.findings if f.code.startswith("K8S")]


def test_reference_has_no_kubernetes_findings(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert_clean(checked)
    assert not _k8s(checked)


def test_rules_are_registered_with_docs():
    codes = [c for c in REGISTRY if c.startswith("K8S")]
    assert len(codes) >= 8
    assert all(REGISTRY[c].doc and REGISTRY[c].title for c in codes)


def test_disabled_kubernetes_is_not_checked(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["enabled"] = False
    doc["kubernetes"]["version"] = "latest"
    doc["nodes"][HEAD]["count"] = 2
    assert not _k8s(check_doc(doc, tmp_path))


def test_k8s001_no_control_plane(tmp_path):
    doc = reference_doc()
    doc["nodes"][HEAD]["roles"] = ["slurm-controller", "login"]
    assert_finding(check_doc(doc, tmp_path), "K8S001", "kubernetes.enabled", "error")


def test_k8s002_even_control_plane(tmp_path):
    doc = reference_doc()
    doc["nodes"][HEAD]["count"] = 2
    assert_finding(check_doc(doc, tmp_path), "K8S002", "nodes[0].count", "warning")


def test_k8s003_patch_version(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["version"] = "1.31.2"
    assert_finding(check_doc(doc, tmp_path), "K8S003", "kubernetes.version", "error")


def test_k8s003_too_old(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["version"] = "1.26"
    assert_finding(check_doc(doc, tmp_path), "K8S003", "kubernetes.version", "error")


def test_k8s003_minor_compare_is_numeric(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["version"] = "1.100"
    assert "K8S003" not in by_code(check_doc(doc, tmp_path))


def test_k8s004_gpu_operator_without_gpu_workers(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["roles"] = ["slurm-compute"]
    assert_finding(check_doc(doc, tmp_path), "K8S004", "kubernetes.gpu_operator", "warning")


def test_k8s005_mig_strategy_without_mig_nodes(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["gpu_operator"]["mig_strategy"] = "single"
    assert_finding(check_doc(doc, tmp_path), "K8S005", "kubernetes.gpu_operator.mig_strategy", "error")


def test_k8s005_mig_strategy_on_gpu_without_mig(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["gpu_operator"]["mig_strategy"] = "mixed"
    doc["nodes"][GPU]["hardware"]["gpu"] = {"model": "L40S-48GB", "count": 8, "mig": True}
    assert_finding(check_doc(doc, tmp_path), "K8S005", "kubernetes.gpu_operator.mig_strategy", "error")


def test_k8s005_mig_enabled_nodes_are_fine(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["gpu_operator"]["mig_strategy"] = "single"
    doc["nodes"][GPU]["hardware"]["gpu"]["mig"] = True
    assert "K8S005" not in by_code(check_doc(doc, tmp_path))


def test_k8s006_rdma_fabric_without_network_operator(tmp_path):
    doc = reference_doc()
    del doc["kubernetes"]["network_operator"]
    assert_finding(check_doc(doc, tmp_path), "K8S006", "kubernetes.network_operator", "warning")


def test_k8s006_network_operator_without_rdma_plugin(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["network_operator"] = {"enabled": True}
    assert_finding(check_doc(doc, tmp_path), "K8S006", "kubernetes.network_operator", "warning")


def test_k8s009_nvidia_operator_on_amd(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["gpu"] = {"model": "MI300X-192GB", "count": 8}
    assert_finding(check_doc(doc, tmp_path), "K8S009", "nodes[1].hardware.gpu.model", "warning")


def test_k8s010_mig_nodes_with_strategy_none(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["gpu"]["mig"] = True
    assert_finding(check_doc(doc, tmp_path), "K8S010", "kubernetes.gpu_operator.mig_strategy", "warning")


def test_k8s011_gpu_workers_without_operator(tmp_path):
    doc = reference_doc()
    del doc["kubernetes"]["gpu_operator"]
    assert_finding(check_doc(doc, tmp_path), "K8S011", "kubernetes", "warning")


# --- control-plane endpoint, DCGM, Helm mirror, default images (issue 16) -----------------


def test_k8s012_ha_control_plane_without_endpoint(tmp_path):
    doc = reference_doc()
    del doc["kubernetes"]["control_plane_endpoint"]
    f = assert_finding(check_doc(doc, tmp_path), "K8S012", "kubernetes", "error")
    assert "head01" in f.message and "control_plane_endpoint" in f.hint


def test_k8s012_one_control_plane_needs_no_endpoint(tmp_path):
    doc = reference_doc()
    del doc["kubernetes"]["control_plane_endpoint"]
    doc["nodes"][HEAD]["count"] = 1
    assert "K8S012" not in by_code(check_doc(doc, tmp_path))


@pytest.mark.parametrize(("address", "why"), [
    ("10.30.0.5", "not in the management network"),
    ("10.20.0.11", "management address of host head01"),
    ("10.20.0.1", "gateway"),
    ("10.20.0.255", "broadcast"),
])
def test_k8s013_endpoint_address(tmp_path, address, why):
    doc = reference_doc()
    doc["kubernetes"]["control_plane_endpoint"]["address"] = address
    f = assert_finding(check_doc(doc, tmp_path), "K8S013", "kubernetes.control_plane_endpoint.address", "error")
    assert why in f.message


def test_k8s013_free_reserved_address_is_fine(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["control_plane_endpoint"] = {"address": "10.20.0.9", "provider": "external"}
    assert "K8S013" not in by_code(check_doc(doc, tmp_path))


def test_k8s014_host_and_operator_dcgm_exporters(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["gpu_operator"]["dcgm_exporter"] = True
    f = assert_finding(check_doc(doc, tmp_path), "K8S014", "kubernetes.gpu_operator.dcgm_exporter", "warning")
    assert "gpu" in f.message
    doc["slurm"]["enabled"] = False  # no host exporter on Kubernetes-only GPU nodes
    assert "K8S014" not in by_code(check_doc(doc, tmp_path))


def test_k8s015_air_gapped_without_helm_mirror(tmp_path):
    doc = reference_doc()
    del doc["kubernetes"]["helm_mirror"]
    assert_finding(check_doc(doc, tmp_path), "K8S015", "kubernetes", "warning")
    doc["sovereignty"]["air_gapped"] = False
    assert "K8S015" not in by_code(check_doc(doc, tmp_path))


def _grace(doc: dict) -> dict:
    gpu = doc["nodes"][GPU]["hardware"]
    gpu["cpu"] = {"model": "Grace", "sockets": 2}
    gpu["gpu"]["model"] = "GB300"
    return doc


def test_k8s016_default_vllm_image_on_arm64(tmp_path):
    doc = _grace(reference_doc())
    f = assert_finding(check_doc(doc, tmp_path), "K8S016", "inference[0].engine", "error")
    assert "arm64" in f.message and "vllm/vllm-openai" in f.message
    doc["inference"][0]["image"] = "registry.fra1.example.internal/nvidia/vllm:25.11-py3"
    assert "K8S016" not in by_code(check_doc(doc, tmp_path))


def test_k8s017_default_image_without_blackwell(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["gpu"]["model"] = "B200-SXM-180GB"
    f = assert_finding(check_doc(doc, tmp_path), "K8S017", "inference[0].engine", "error")
    assert "blackwell" in f.message
    assert "K8S017" not in by_code(check_doc(reference_doc(), tmp_path))  # H100 is Hopper


def test_blueprints_with_several_control_planes_declare_the_endpoint():
    from pathlib import Path

    from factoryctl.session import check

    root = Path(__file__).resolve().parents[3] / "blueprints"
    for path in sorted(root.glob("*/factory.yaml")):
        c = check(path)
        cps = [h for h in c.site.hosts if "kube-control-plane" in h.roles]
        if c.factory.kubernetes.enabled and len(cps) > 1:
            assert c.factory.kubernetes.control_plane_endpoint is not None, path.parent.name
        assert not [f for f in c.findings if f.code.startswith("K8S") and f.severity.value == "error"], path
