"""`factoryctl verify` on a real lab site (root): one plan + apply for the module, then the
generated host checks pass over SSH; the CPU benchmark runs as a real Slurm job (srun across
both nodes) and lands in bench.json and the HTML report; stopping slurmd on one host makes
verify fail naming that host and its checks. Torn down with destroy, even on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from factoryctl.engines.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]

NAME, SUBNET, BRIDGE = "verifylab", "10.78.0.0/24", "fcvl0"
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def fctl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    # Terraform's local-exec calls `factoryctl lab up` by name: the venv's bin goes first.
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "200"}
    return subprocess.run([str(BIN / "factoryctl"), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def ws(site: Path) -> Path:
    return site.parent / ".factory" / NAME


@pytest.fixture(scope="module")
def site(lab_image, tmp_path_factory):
    doc = yaml.safe_load((ROOT / "blueprints" / "lab" / "factory.yaml").read_text())
    doc["metadata"]["name"] = NAME  # the Slurm site; tests/lab/test_serving_lab.py serves
    doc["site"]["lab"] = {"subnet": SUBNET, "bridge": BRIDGE}
    doc["fabric"]["management"] = {"cidr": SUBNET, "gateway": "10.78.0.1"}
    path = tmp_path_factory.mktemp("verifylab") / "factory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        r = fctl("plan", str(path))
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        r = fctl("apply", str(path), "--auto-approve", "--plain", timeout=900)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        yield path
    finally:
        r = fctl("destroy", str(path), "--auto-approve")
        lab = Lab(ws(path) / "lab", bridge=BRIDGE)
        if r.returncode != 0 or lab.status():
            lab.down()  # whatever destroy could not remove


def latest(site: Path) -> Path:
    runs = sorted(p for p in (ws(site) / "runs").iterdir() if (p / "verify.json").is_file())
    return runs[-1]


def test_verify_passes_and_the_cpu_benchmark_runs_through_slurm(site, tmp_path):
    junit = tmp_path / "verify.xml"
    r = fctl("verify", str(site), "--bench", "--report", "--junit", str(junit), "--format", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0, json.dumps([c for c in doc["checks"] if c["status"] != "passed"], indent=1) + r.stderr
    assert doc["result"] == "passed" and doc["connection"] == "ssh"
    status = {(c["host"], c["check"]): (c["status"], c["detail"]) for c in doc["checks"]}
    assert len(status) == 28  # + disk-space and time-sync per host
    skipped = {k: v for k, v in status.items() if v[0] != "passed"}
    assert skipped == {(h, "gpu-count"): ("skipped", "no GPU declared") for h in ("head01", "node01", "node02")}
    assert status[("head01", "slurm-partition:batch")][1] == "partition batch up with 2 nodes (default)"
    assert status[("node02", "slurm-node")][1] == "idle in batch, debug"
    assert status[("node01", "port:6818")][0] == "passed"

    b = doc["bench"]
    assert (b["path"], b["scheduler"], b["hosts"], b["errors"]) == ("built-in (cpu, tcp)", "slurm", ["node01", "node02"], [])
    assert "srun -p batch -N 2 -w node01,node02 --ntasks-per-node=1" in b["commands"][0]
    run = b["documents"][0]
    assert run["launcher"] == "slurm" and run["world_size"] == 2 and run["hosts"] == ["node01", "node02"]
    assert run["all_reduce"]["check"]["wrong"] == 0
    verdicts = {m["name"]: (m["verdict"], m["reason"]) for m in b["measurements"]}
    assert verdicts["all_reduce.check"][0] == "pass"
    assert verdicts["all_reduce.busbw"][0] == "skip" and "no expectation for CPUs" in verdicts["all_reduce.busbw"][1]

    folder = latest(site)
    bench = json.loads((folder / "bench.json").read_text())
    rows = bench["nccl"][0]["rows"]
    assert len(rows) == 8 and all(row["busbw_gbps"] > 0 for row in rows)
    html = (ws(site) / "report" / "report.html").read_text()
    verify = html[html.index('id="verify"'):]
    assert folder.name in verify and "<svg" in verify[verify.index('id="busbw"'):][:300]
    assert "slurm-partition:batch" in verify and "all_reduce.busbw" in verify
    root = ET.parse(junit).getroot()
    assert (root.get("failures"), root.get("errors")) == ("0", "0") and int(root.get("tests")) == 31


def test_verify_fails_naming_the_host_when_slurmd_stops(site):
    stop = fctl("lab", "ssh", "--file", str(site), "node02", "--", "/etc/init.d/slurmd", "stop")
    assert stop.returncode == 0, stop.stderr
    try:
        r = fctl("verify", str(site), "--jobs", "2")  # the same checks through pytest-xdist
        assert r.returncode == 1, r.stdout + r.stderr
        failed = [line for line in r.stdout.splitlines() if " failed " in f" {line} "]
        assert any("node02" in ln and "service:slurmd" in ln and "slurmd not running" in ln for ln in failed), r.stdout
        assert "FAILED: 23 passed, 2 failed, 0 errors, 3 skipped" in r.stdout
        doc = json.loads((latest(site) / "verify.json").read_text())
        bad = sorted((c["host"], c["check"], c["detail"]) for c in doc["checks"] if c["status"] != "passed"
                     and c["check"] != "gpu-count")
        assert bad == [("node02", "port:6818", "nothing listens on TCP port 6818 (slurmd)"),
                       ("node02", "service:slurmd", "slurmd not running (no slurmd process)")]
    finally:
        start = fctl("lab", "ssh", "--file", str(site), "node02", "--", "/etc/init.d/slurmd", "start")
        assert start.returncode == 0, start.stderr
    r = fctl("verify", str(site), "--host", "node02", "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["summary"]["failed"] == 0, r.stdout[-2000:]
