"""INF014 (CPU), INF019-INF021: the lab's CPU deployment and engine_install, right and broken."""

from __future__ import annotations

import copy

import yaml

from factoryctl.render.slurm_inference import jobs
from tests.helpers import ROOT, assert_clean, assert_finding, check_doc

LAB = yaml.safe_load((ROOT / "examples" / "lab.yaml").read_text())


def _lab(**changes) -> dict:
    doc = copy.deepcopy(LAB)
    doc["inference"][0].update(changes)
    return doc


def test_lab_example_serves_on_cpu_with_no_finding(tmp_path):
    checked = check_doc(_lab(), tmp_path)
    assert_clean(checked, "warning")
    fit = checked.site.inference[0]
    assert fit.groups == ("node",) and fit.gpus == 0  # a CPU deployment takes no GPU


def test_cpu_deployment_job_runs_the_venv_python_on_the_staged_model(tmp_path):
    job = jobs(check_doc(_lab(), tmp_path).site)[0]
    assert job["argv"][:3] == ["/opt/factoryctl/engines/tiny/bin/python3", "-m", "vllm.entrypoints.openai.api_server"]
    argv = job["argv"]
    assert argv[argv.index("--model") + 1] == "/var/lib/factoryctl/models/tiny"
    assert "--gpu-memory-utilization" not in argv  # the CPU build sizes its cache from the env
    assert job["env"] == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    assert job["gpus_per_node"] == 0 and job["nodes"] == 1


def test_inf014_cpu_deployment_without_slurm_compute_group(tmp_path):
    doc = _lab(nodes=["head"])
    assert_finding(check_doc(doc, tmp_path), "INF014", "inference[0].nodes")


def test_inf019_cpu_needs_vllm_slurm_and_one_device(tmp_path):
    assert_finding(check_doc(_lab(engine="sglang"), tmp_path, "a.yaml"), "INF019", "inference[0].engine")
    assert_finding(check_doc(_lab(tensor_parallel=2), tmp_path, "b.yaml"), "INF019", "inference[0].tensor_parallel")


def test_inf020_engine_install_with_an_image(tmp_path):
    doc = _lab(image="registry.example.internal/vllm/vllm-openai:v0.11.0")
    assert_finding(check_doc(doc, tmp_path), "INF020", "inference[0].engine_install")


def test_inf021_offline_site_without_a_python_mirror(tmp_path):
    doc = _lab()
    del doc["site"]["mirrors"]
    assert_finding(check_doc(doc, tmp_path), "INF021", "inference[0].engine_install")


def test_engine_install_wants_pinned_requirements(tmp_path):
    doc = _lab()
    doc["inference"][0]["engine_install"]["packages"] = ["vllm-cpu>=0.30"]
    checked = check_doc(doc, tmp_path)
    f = assert_finding(checked, checked.findings[0].code, "inference[0].engine_install.packages[0]")
    assert "NAME==VERSION" in f.message
