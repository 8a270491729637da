"""Prometheus: the rendered rules (monitoring/rules.yml) pass `promtool check rules`, and the
monitoring role's prometheus.yml, templated by real Ansible from a rendered build's
inventory, passes `promtool check config` (which checks the rule file it names too). promtool
comes from Debian's prometheus package; without it these tests skip with the reason."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from factoryctl.render import render
from factoryctl.render.monitoring import inference_jobs, rules
from factoryctl.session import check
from tests.helpers import ROOT, reference_doc, write_doc
from tests.unit.render.test_render_ansible import ansible_env

BIN = Path(sys.executable).parent
ROLE = ROOT / "templates" / "ansible" / "project" / "roles" / "monitoring"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is missing (apt-get install prometheus)")
CASES = ["hybrid-slurm-research", "gb300-nvl72-neocloud", "lab"]


def _site(tmp_path: Path, doc: dict | None = None, blueprint: str | None = None):
    path = ROOT / "blueprints" / blueprint / "factory.yaml" if blueprint else write_doc(doc, tmp_path / "factory.yaml")
    c = check(path)
    assert c.site is not None, [f.message for f in c.findings]
    return c


def _tenant_doc() -> dict:
    doc = reference_doc()
    doc["inference"][0]["platform"] = "slurm"
    doc["tenants"] = [{"name": "team-a", "gpu_quota": 8, "deployments": ["chat"]}]
    return doc


def test_inference_jobs_label_and_keep_their_model(tmp_path):
    c = _site(tmp_path, _tenant_doc())
    [job] = inference_jobs(c.site)
    gpu_hosts = [h for h in c.site.hosts if "slurm-compute" in h.roles]
    assert job["job"] == "inference-chat"
    assert job["targets"] == [f"{h.address}:8000" for h in gpu_hosts]
    assert job["labels"] == {"deployment": "chat", "tenant": "team-a"}
    keep = job["keep_model"]
    # Prometheus anchors relabel regexes; python's fullmatch does the same
    assert re.fullmatch(keep, "meta-llama/Llama-3.1-70B-Instruct") and re.fullmatch(keep, "")
    assert not re.fullmatch(keep, "meta-llama/Llama-3.1-8B-Instruct")


def test_rules_per_deployment_and_gpu_site(tmp_path):
    c = _site(tmp_path, _tenant_doc())
    groups = rules(c.site)["groups"]
    records = {r["record"]: r["expr"] for r in groups[0]["rules"]}
    assert records["tenant:generation_tokens:rate5m"] == "sum by (tenant) (rate(vllm:generation_tokens_total[5m]))"
    assert "sum by (deployment, tenant)" in records["deployment_tenant:prompt_tokens:rate5m"]
    alerts = {(a["alert"], a["labels"].get("deployment")): a for a in groups[1]["rules"]}
    assert alerts[("TargetDown", None)]["expr"] == 'up{job!~"inference-.*"} == 0'
    assert alerts[("InferenceRequestsWaiting", "chat")]["expr"] == 'sum(vllm:num_requests_waiting{job="inference-chat"}) > 2'
    assert alerts[("InferenceReplicasDown", "chat")]["expr"] == 'sum(up{job="inference-chat"}) < 2'
    assert alerts[("GpuXidError", None)]["expr"] == "DCGM_FI_DEV_XID_ERRORS > 0"
    lab = _site(tmp_path, blueprint="lab")
    assert "GpuXidError" not in {a["alert"] for a in rules(lab.site)["groups"][1]["rules"]}  # no GPUs


@needs_promtool
@pytest.mark.parametrize("blueprint", CASES)
def test_promtool_accepts_rules(blueprint, tmp_path):
    c = _site(tmp_path, blueprint=blueprint)
    render(c.site, tmp_path / "build")
    r = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "build" / "monitoring" / "rules.yml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
@pytest.mark.ansible
@pytest.mark.parametrize("blueprint", ["hybrid-slurm-research", "lab"])
def test_promtool_accepts_the_templated_prometheus_config(blueprint, tmp_path):
    c = _site(tmp_path, blueprint=blueprint)
    build = tmp_path / "build"
    render(c.site, build)
    # a throwaway role with the monitoring role's defaults and template, so that variable
    # precedence is the real one (role defaults under the rendered inventory's group_vars)
    role = tmp_path / "roles" / "promcheck"
    (role / "tasks").mkdir(parents=True)
    shutil.copytree(ROLE / "defaults", role / "defaults")
    shutil.copytree(ROLE / "templates", role / "templates")
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(build / "monitoring" / "rules.yml", out / "rules.yml")
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump([{"ansible.builtin.template": {
        "src": "prometheus.yml.j2", "dest": str(out / "prometheus.yml")},
        "vars": {"_monitoring_rules_file": str(out / "rules.yml")}}]))
    (tmp_path / "pb.yml").write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local",
                                                       "gather_facts": False, "roles": ["promcheck"]}]))
    r = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(build / "ansible" / "inventory"), "pb.yml"],
                       cwd=tmp_path, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run([PROMTOOL, "check", "config", str(out / "prometheus.yml")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    conf = yaml.safe_load((out / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    if blueprint == "lab":  # node exporters on lab hosts too: one target each
        assert sorted(t["labels"]["instance"] for t in jobs["node"]["static_configs"]) == ["head01", "node01", "node02"]
    else:
        inf = jobs["inference-llama-405b"]
        assert inf["static_configs"][0]["labels"] == {"deployment": "llama-405b", "tenant": "research-it"}
        assert inf["metric_relabel_configs"][0]["action"] == "keep"
        assert len(jobs["node"]["static_configs"]) == len(c.site.hosts)
