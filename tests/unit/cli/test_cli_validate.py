"""`factoryctl validate` as a user meets it: exit codes, positions, hints, formats, no tracebacks."""

from __future__ import annotations

import json

import pytest

from tests.helpers import REFERENCE, cli, reference_doc, write_doc


def test_reference_example_validates():
    rc, out, _ = cli("validate", str(REFERENCE))
    assert rc == 0
    assert "0 error(s)" in out


def _set(path):
    def apply(doc, value):
        cur = doc
        for p in path[:-1]:
            cur = cur[p]
        cur[path[-1]] = value
    return apply


# (id, mutation, expected code prefix, accepted YAML paths of the finding)
DEFECTS = [
    ("unknown-gpu", lambda d: _set(["nodes", 1, "hardware", "gpu", "model"])(d, "H1000"), "NOD", {"nodes[1].hardware.gpu.model"}),
    ("node-country-outside", lambda d: d["nodes"][1].update(location={"country": "US"}), "SOV", {"nodes[1].location.country", "nodes[1].location"}),
    ("public-model-source-airgapped", lambda d: _set(["inference", 0, "model_source"])(d, "https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct"), "SOV", {"inference[0].model_source"}),
    ("rack-over-budget", lambda d: _set(["facility", "racks", 0, "power_kw"])(d, 20), "PWR", {"facility.racks[0].power_kw"}),
    ("fewer-nics-than-rails", lambda d: _set(["nodes", 1, "hardware", "nics", 0, "count"])(d, 4), "FAB", {"nodes[1].hardware.nics[0].count", "nodes[1].hardware.nics", "fabric.compute.rails"}),
    ("tp-not-dividing-heads", lambda d: _set(["inference", 0, "tensor_parallel"])(d, 3), "INF", {"inference[0].tensor_parallel"}),
    ("model-does-not-fit", lambda d: d["inference"][0].update(precision="bf16", tensor_parallel=1, max_context=131072), "INF", {"inference[0].tensor_parallel", "inference[0].precision", "inference[0].max_context", "inference[0]"}),
    ("partition-unknown-group", lambda d: _set(["slurm", "partitions", 0, "nodes"])(d, "gpux"), "SLM", {"slurm.partitions[0].nodes"}),
    ("management-cidr-too-small", lambda d: _set(["fabric", "management", "cidr"])(d, "10.20.0.0/29"), "NET", {"fabric.management.cidr"}),
    ("replicas-x-tp-over-gpus", lambda d: _set(["inference", 0, "replicas"])(d, 9), "INF", {"inference[0].replicas"}),
    ("duplicate-mount", lambda d: _set(["storage", 1, "mount"])(d, "/lustre"), "STO", {"storage[1].mount"}),
    ("pod-cidr-overlaps-management", lambda d: _set(["kubernetes", "pod_cidr"])(d, "10.20.0.0/16"), "NET", {"kubernetes.pod_cidr"}),
    ("operator-outside-jurisdiction", lambda d: _set(["sovereignty", "operator_access"])(d, ["DE", "US"]), "SOV", {"sovereignty.operator_access[1]", "sovereignty.operator_access"}),
    ("unknown-key-typo", lambda d: d["nodes"][0].update(hardwre={}), "SCH002", {"nodes[0].hardwre"}),
    ("hostile-name", lambda d: _set(["nodes", 0, "group"])(d, "$(rm -rf /)"), "SCH005", {"nodes[0].group"}),
    ("wrong-type", lambda d: _set(["nodes", 1, "count"])(d, "four"), "SCH003", {"nodes[1].count"}),
    ("unknown-provider", lambda d: _set(["site", "provider"])(d, "vmware"), "SCH003", {"site.provider"}),
    ("export-controlled-site", lambda d: d["site"].update(country="CN") or d["sovereignty"].update(allowed_countries=["CN"], operator_access=["CN"], jurisdiction="CN"), "SOV", {"site.country", "nodes[1].hardware.gpu.model", "sovereignty.export_license_ref"}),
    ("nvl72-air-cooled", lambda d: _set(["nodes", 1, "hardware", "gpu", "model"])(d, "GB200"), "PWR", {"nodes[1].hardware.gpu.model", "facility.racks[0].cooling", "facility.racks[1].cooling", "nodes[1].rack"}),
]


@pytest.mark.parametrize("name,mutate,code,paths", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_single_defect_is_reported_with_position_and_hint(tmp_path, name, mutate, code, paths):
    doc = reference_doc()
    mutate(doc)
    f = write_doc(doc, tmp_path / "factory.yaml")
    rc, out, _ = cli("validate", str(f), "--format", "json")
    assert rc == 1, out
    findings = json.loads(out)["findings"]
    hits = [x for x in findings if x["code"].startswith(code) and x["path"] in paths and x["severity"] == "error"]
    assert hits, f"{name}: expected {code} at one of {paths}, got {[(x['code'], x['path']) for x in findings]}"
    hit = hits[0]
    assert hit["line"] and hit["column"] and hit["hint"] and hit["file"].endswith("factory.yaml")
    # The text form names the same place as file:line:col with the path and the hint.
    rc, text, _ = cli("validate", str(f))
    assert rc == 1
    assert f"factory.yaml:{hit['line']}:{hit['column']}: error[{hit['code']}] {hit['path']}:" in text
    assert "hint:" in text


def test_broken_yaml_points_at_the_line(tmp_path):
    text = REFERENCE.read_text().replace("  country: DE", "  country: [DE", 1)
    f = tmp_path / "factory.yaml"
    f.write_text(text)
    rc, out, _ = cli("validate", str(f))
    assert rc == 1
    assert "error[SCH001]" in out and "hint:" in out
    assert "factory.yaml:" in out.splitlines()[0]


def test_every_finding_is_collected_not_only_the_first(tmp_path):
    doc = reference_doc()
    doc["nodes"][1]["hardware"]["gpu"]["model"] = "H1000"
    doc["inference"][0]["tensor_parallel"] = 3
    doc["storage"][1]["mount"] = "/lustre"
    rc, out, _ = cli("validate", str(write_doc(doc, tmp_path / "f.yaml")), "--format", "json")
    codes = {x["code"][:3] for x in json.loads(out)["findings"] if x["severity"] == "error"}
    assert {"NOD", "INF", "STO"} <= codes


def test_several_schema_errors_are_all_reported(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["hardwre"] = {}
    doc["site"]["provider"] = "vmware"
    doc["metadata"]["name"] = "Fra1"
    rc, out, _ = cli("validate", str(write_doc(doc, tmp_path / "f.yaml")), "--format", "json")
    assert rc == 1
    assert {x["code"] for x in json.loads(out)["findings"]} >= {"SCH002", "SCH003", "SCH005"}


def test_did_you_mean_for_unknown_key_and_gpu(tmp_path):
    doc = reference_doc()
    doc["nodes"][1]["hardware"]["gpuu"] = doc["nodes"][1]["hardware"].pop("gpu")
    rc, out, _ = cli("validate", str(write_doc(doc, tmp_path / "f.yaml")))
    assert "did you mean 'gpu'?" in out
    doc = reference_doc()
    doc["nodes"][1]["hardware"]["gpu"]["model"] = "H100-SXM-80G"
    rc, out, _ = cli("validate", str(write_doc(doc, tmp_path / "g.yaml")))
    assert "H100-SXM-80GB" in out


def test_fail_level_warning_fails_on_warnings(tmp_path):
    rc, out, _ = cli("validate", str(REFERENCE), "--format", "json")
    assert rc == 0
    warnings = [x for x in json.loads(out)["findings"] if x["severity"] == "warning"]
    rc2, _, _ = cli("validate", str(REFERENCE), "--fail-level", "warning")
    assert rc2 == (1 if warnings else 0)


def test_skip_rule(tmp_path):
    doc = reference_doc()
    doc["facility"]["racks"][0]["power_kw"] = 20
    f = str(write_doc(doc, tmp_path / "f.yaml"))
    rc, out, _ = cli("validate", f, "--format", "json")
    codes = {x["code"] for x in json.loads(out)["findings"] if x["severity"] == "error"}
    args = ["validate", f]
    for c in codes:
        args += ["--skip-rule", c]
    rc, out, _ = cli(*args)
    assert rc == 0


def test_sarif_output_is_sarif_2_1_0(tmp_path):
    doc = reference_doc()
    doc["inference"][0]["tensor_parallel"] = 3
    rc, out, _ = cli("validate", str(write_doc(doc, tmp_path / "f.yaml")), "--format", "sarif")
    assert rc == 1
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    run_ = sarif["runs"][0]
    assert run_["tool"]["driver"]["name"] == "factoryctl"
    res = [r for r in run_["results"] if r["ruleId"].startswith("INF")]
    assert res and res[0]["level"] == "error"
    region = res[0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] > 0 and region["startColumn"] > 0
    ids = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert res[0]["ruleId"] in ids and ids[res[0]["ruleIndex"]] == res[0]["ruleId"]


@pytest.mark.parametrize("args", [["validate"], ["validate", "--format", "xml", "f"], ["nosuch"], ["validate", "a", "b"]])
def test_usage_errors_exit_64(args):
    rc, _, _ = cli(*args)
    assert rc == 64


@pytest.mark.parametrize("content", ["", "- a\n- b\n", "just text\n", "a: [1,\n", "\x00\x01", "apiVersion: 3\n"])
def test_bad_files_exit_1_without_traceback(tmp_path, content):
    f = tmp_path / "f.yaml"
    f.write_text(content)
    rc, out, _ = cli("validate", str(f))
    assert rc == 1
    assert "error[SCH" in out


def test_missing_file_and_directory(tmp_path):
    rc, out, _ = cli("validate", str(tmp_path / "nope.yaml"))
    assert rc == 1 and "SCH000" in out
    rc, out, _ = cli("validate", str(tmp_path))
    assert rc == 1 and "SCH000" in out


def test_norway_stays_a_country(tmp_path):
    """YAML 1.1 would read NO as false; factory.yaml is read as YAML 1.2."""
    text = REFERENCE.read_text().replace("allowed_countries: [DE, FR, NL]", "allowed_countries: [DE, FR, NL, NO]")
    f = tmp_path / "f.yaml"
    f.write_text(text)
    rc, out, _ = cli("validate", str(f), "--format", "json")
    at = [x for x in json.loads(out)["findings"] if x["path"].startswith("sovereignty.allowed_countries")]
    assert not [x for x in at if x["code"].startswith("SCH")]  # read as the country, not as false
    assert [x for x in at if x["code"] == "SOV004"]  # and Norway is outside the EU jurisdiction
