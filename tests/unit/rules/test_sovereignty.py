"""SOV rules: each fires on a broken variant of the reference example; the example (EU,
air-gapped) stays free of errors."""

from __future__ import annotations

import pytest

from factoryctl.rules import REGISTRY
from tests.helpers import assert_clean, assert_finding, by_code, check_doc, reference_doc

GPU = 1  # index of the GPU group in the reference example
SRC = "s3://models.fra1.example.internal/llama-3.1-70b-instruct"


def _sov(checked):
    return [f for f in checked.findings if f.code.startswith("SOV")]


def test_reference_has_no_sovereignty_errors(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert_clean(checked)
    # what the reference leaves open, by design: undeclared storage encryption, HSM place, mirrors, NTP
    assert {f.code for f in _sov(checked)} <= {"SOV007", "SOV008", "SOV012", "SOV014"}


def test_rules_are_registered_with_docs():
    codes = [c for c in REGISTRY if c.startswith("SOV")]
    assert len(codes) >= 13
    assert all(REGISTRY[c].doc and REGISTRY[c].title for c in codes)


def test_sov001_site_outside(tmp_path):
    doc = reference_doc()
    doc["site"]["country"] = "US"
    assert_finding(check_doc(doc, tmp_path), "SOV001", "site.country", "error")


def test_sov001_jurisdiction_alone_constrains(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["allowed_countries"] = []
    doc["site"]["country"] = "CH"
    assert_finding(check_doc(doc, tmp_path), "SOV001", "site.country", "error")
    doc["site"]["country"] = "IT"
    assert "SOV001" not in by_code(check_doc(doc, tmp_path))


def test_sov002_node_group_outside(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["location"] = {"country": "US"}
    assert_finding(check_doc(doc, tmp_path), "SOV002", "nodes[1].location.country", "error")


def test_sov002_rack_outside(tmp_path):
    doc = reference_doc()
    doc["facility"]["racks"][1]["location"] = {"country": "GB"}
    assert_finding(check_doc(doc, tmp_path), "SOV002", "facility.racks[1].location.country", "error")


def test_sov003_storage_outside(tmp_path):
    doc = reference_doc()
    doc["storage"][0]["location"] = {"country": "US"}
    assert_finding(check_doc(doc, tmp_path), "SOV003", "storage[0].location.country", "error")


def test_sov003_backup_outside(tmp_path):
    doc = reference_doc()
    doc["storage"][1]["backup"] = {"target": "tape-lib-2", "location": {"country": "CH"}}
    assert_finding(check_doc(doc, tmp_path), "SOV003", "storage[1].backup.location.country", "error")


def test_sov004_allowed_country_outside_jurisdiction(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["allowed_countries"] = ["DE", "US"]
    assert_finding(check_doc(doc, tmp_path), "SOV004", "sovereignty.allowed_countries[1]", "warning")


def test_sov004_unknown_jurisdiction(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["jurisdiction"] = "Schengen"
    assert_finding(check_doc(doc, tmp_path), "SOV004", "sovereignty.jurisdiction", "warning")


def test_sov005_model_outside_stores_air_gapped(tmp_path):
    doc = reference_doc()
    doc["inference"][0]["model_source"] = "s3://models.fra1.example.internal.evil.example/llama"
    assert_finding(check_doc(doc, tmp_path), "SOV005", "inference[0].model_source", "error")


def test_sov005_is_warning_when_connected(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["air_gapped"] = False
    doc["inference"][0]["model_source"] = "s3://scratch-bucket/llama"
    assert_finding(check_doc(doc, tmp_path), "SOV005", "inference[0].model_source", "warning")


def test_sov005_air_gapped_without_model_stores(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["model_sources"] = []
    assert_finding(check_doc(doc, tmp_path), "SOV005", "inference[0].model_source", "error")


@pytest.mark.parametrize(("where", "value", "path"), [
    (("inference", 0, "image"), "vllm/vllm-openai:v0.6.3", "inference[0].image"),
    (("inference", 0, "image"), "nvcr.io/nim/meta/llama-3.1-70b-instruct:1.3", "inference[0].image"),
    (("inference", 0, "model_source"), "https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct",
     "inference[0].model_source"),
    (("inference", 0, "model_source"), "hf://meta-llama/Llama-3.1-70B-Instruct", "inference[0].model_source"),
    (("site", "ntp_servers"), ["ntp1.fra1.example.internal", "0.de.pool.ntp.org"], "site.ntp_servers[1]"),
    (("site", "dns_servers"), ["10.20.0.2", "9.9.9.9"], "site.dns_servers[1]"),
    (("site", "mirrors"), {"apt": ["http://deb.debian.org/debian"]}, "site.mirrors.apt[0]"),
    (("storage", 0, "options"), ["flock", "x-source=https://downloads.whamcloud.com/public/lustre/"],
     "storage[0].options[1]"),
    (("sovereignty", "registries"), ["registry.fra1.example.internal", "ghcr.io"], "sovereignty.registries[1]"),
])
def test_sov006_air_gapped_public_endpoint(tmp_path, where, value, path):
    doc = reference_doc()
    node = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    assert_finding(check_doc(doc, tmp_path), "SOV006", path, "error")


def test_sov006_enroot_image_reference(tmp_path):
    doc = reference_doc()
    doc["slurm"]["containers"]["images"] = ["registry.fra1.example.internal#nvidia/pytorch:24.05-py3",
                                            "nvcr.io#nvidia/pytorch:24.05-py3"]
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "SOV006", "slurm.containers.images[1]", "error")
    assert [f.path for f in checked.findings if f.code == "SOV006"] == ["slurm.containers.images[1]"]


def test_sov006_internal_endpoints_pass(tmp_path):
    doc = reference_doc()
    doc["metadata"]["description"] = "weights mirrored from huggingface.co"
    doc["inference"][0]["image"] = "registry.fra1.example.internal/vllm/vllm-openai:v0.6.3"
    doc["site"]["ntp_servers"] = ["10.20.0.5", "ntp.fra1.example.internal"]
    doc["site"]["mirrors"] = {"apt": ["https://apt.mirror.example-corp.de/debian"],
                              "pypi": ["https://pypi.mirror.example-corp.de/simple"]}
    doc["storage"][0]["options"] = ["x-source=https://apt.mirror.example-corp.de/lustre"]
    assert "SOV006" not in by_code(check_doc(doc, tmp_path))


def test_sov006_only_when_air_gapped(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["air_gapped"] = False
    doc["inference"][0]["image"] = "vllm/vllm-openai:latest"
    assert "SOV006" not in by_code(check_doc(doc, tmp_path))


def test_sov007_storage_declared_unencrypted(tmp_path):
    doc = reference_doc()
    doc["storage"][0]["encryption"] = {"at_rest": False}
    assert_finding(check_doc(doc, tmp_path), "SOV007", "storage[0].encryption.at_rest", "error")


def test_sov007_storage_undeclared_warns(tmp_path):
    assert_finding(check_doc(reference_doc(), tmp_path), "SOV007", "storage[1]", "warning")


def test_sov007_unencrypted_backup(tmp_path):
    doc = reference_doc()
    doc["storage"][1]["encryption"] = {"at_rest": True}
    doc["storage"][1]["backup"] = {"target": "tape", "location": {"country": "DE"}, "encrypted": False}
    assert_finding(check_doc(doc, tmp_path), "SOV007", "storage[1].backup.encrypted", "error")


def test_sov008_hsm_outside(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["encryption"]["hsm_location"] = {"country": "US"}
    assert_finding(check_doc(doc, tmp_path), "SOV008", "sovereignty.encryption.hsm_location.country", "error")


def test_sov008_hsm_location_missing_warns(tmp_path):
    assert_finding(check_doc(reference_doc(), tmp_path), "SOV008", "sovereignty.encryption.key_custody", "warning")


def test_sov009_operator_access_outside(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["operator_access"] = ["DE", "IN"]
    assert_finding(check_doc(doc, tmp_path), "SOV009", "sovereignty.operator_access[1]", "error")


def test_sov010_export_licence(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["location"] = {"country": "RU"}
    doc["sovereignty"] = {"air_gapped": False}
    assert_finding(check_doc(doc, tmp_path), "SOV010", "nodes[1].hardware.gpu.model", "error")
    doc["sovereignty"]["export_license_ref"] = "BIS D123456"
    assert "SOV010" not in by_code(check_doc(doc, tmp_path))


def test_sov011_telemetry_outside(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["observability"] = [
        {"kind": "logs", "endpoint": "https://logs.fra1.example.internal", "location": {"country": "US"}}]
    assert_finding(check_doc(doc, tmp_path), "SOV011", "sovereignty.observability[0].location.country", "error")


def test_sov012_air_gapped_without_mirrors_and_ntp(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert_finding(checked, "SOV012", "site.mirrors", "warning")
    assert_finding(checked, "SOV012", "site.ntp_servers", "warning")


def test_sov013_parent_outside(tmp_path):
    doc = reference_doc()
    doc["sovereignty"]["operator_parent_country"] = "US"
    assert_finding(check_doc(doc, tmp_path), "SOV013", "sovereignty.operator_parent_country", "warning")


def test_sov014_declared_unencrypted_in_transit(tmp_path):
    doc = reference_doc()
    doc["storage"][1]["encryption"] = {"at_rest": True, "in_transit": False}
    assert_finding(check_doc(doc, tmp_path), "SOV014", "storage[1].encryption.in_transit", "error")


def test_sov014_undeclared_is_info(tmp_path):
    assert_finding(check_doc(reference_doc(), tmp_path), "SOV014", "storage[0]", "info")


def test_sov015_us_hyperscaler_on_eu_profile(tmp_path):
    doc = reference_doc()
    doc["site"]["provider"] = "aws"
    doc["site"]["aws"] = {"region": "eu-central-1"}
    assert_finding(check_doc(doc, tmp_path), "SOV015", "site.provider", "warning")


def test_no_constraint_no_residency_findings(tmp_path):
    doc = reference_doc()
    doc["sovereignty"] = {}
    doc["site"]["country"] = "US"
    doc["storage"][0]["location"] = {"country": "SG"}
    assert not _sov(check_doc(doc, tmp_path))
