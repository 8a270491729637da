"""`verify --diag N`: dcgmi diag on every GPU node, through one srun step where Slurm runs the
nodes (each node's JSON in its own file, read back per node) and over SSH elsewhere; judged by
the health package. The hosts are fakes: a shell on this machine per node, with stand-ins for
`hostname`, `dcgmi` and `srun` on PATH, so the commands verify sends really run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from factoryctl.bench.slurm_stage import Out
from factoryctl.verify import diag

PASS = {"DCGM GPU Diagnostic": {"test_categories": [
    {"category": "Deployment", "tests": [{"name": "Denylist", "results": [{"status": "Pass"}]}]},
    {"category": "Hardware", "tests": [{"name": "GPU Memory", "results": [
        {"gpu_id": "0", "status": "Pass"}, {"gpu_id": "1", "status": "Pass"}]}]}]},
    "Driver Version Detected": "550.54.15"}
FAIL = json.loads(json.dumps(PASS))
FAIL["DCGM GPU Diagnostic"]["test_categories"][1]["tests"][0]["results"][1] = {
    "gpu_id": "1", "status": "Fail", "warnings": [{"warning": "GPU 1 DBE detected", "error_id": 1}]}


def site(slurm: bool = True):
    hosts = [SimpleNamespace(name="head", gpus=0, roles=("slurm-controller",)),
             SimpleNamespace(name="gpu01", gpus=2, roles=("slurm-compute",)),
             SimpleNamespace(name="gpu02", gpus=2, roles=("slurm-compute",)),
             SimpleNamespace(name="cpu01", gpus=0, roles=("slurm-compute",))]
    parts = [SimpleNamespace(name="cpu", nodes="cpu"), SimpleNamespace(name="gpu", nodes=["hgx"])]
    groups = {"cpu": SimpleNamespace(hostnames=["cpu01"]), "hgx": SimpleNamespace(hostnames=["gpu01", "gpu02"])}
    return SimpleNamespace(hosts=hosts, groups=groups,
                           factory=SimpleNamespace(slurm=SimpleNamespace(enabled=slurm, partitions=parts)))


class Nodes:
    """Each node a shell with its own `hostname`; `dcgmi` prints that node's recorded JSON
    (exit 0, or 226 as dcgmi does when a test fails) or is absent; `srun -w a,b bash -c X` runs
    X once per listed node."""

    def __init__(self, tmp: Path, docs: dict[str, dict | None]):
        self.tmp, self.docs, self.seen = tmp, docs, []
        for name, doc in docs.items():
            b = tmp / "bin" / name
            b.mkdir(parents=True)
            (b / "hostname").write_text(f"#!/bin/sh\necho {name}\n")
            if doc is not None:
                (tmp / f"{name}.json").write_text(json.dumps(doc))
                rc = 226 if "Fail" in json.dumps(doc) else 0
                (b / "dcgmi").write_text(f"#!/bin/sh\ncat {tmp}/{name}.json\nexit {rc}\n")
        srun = tmp / "bin" / "srun"
        srun.write_text("#!/bin/bash\nwhile [ $# -gt 0 ]; do case $1 in -w) nodes=$2; shift 2;; bash) break;; "
                        "*) shift;; esac; done\nshift 2\nfor n in ${nodes//,/ }; do "
                        f"PATH={tmp}/bin/$n:/usr/bin:/bin bash -c \"$1\"; done\n")
        for f in (tmp / "bin").rglob("*"):
            if f.is_file():
                f.chmod(0o755)

    def run(self, host: str, command: str) -> Out:
        self.seen.append((host, command))
        env = {"PATH": f"{self.tmp}/bin/{host}:{self.tmp}/bin:/usr/bin:/bin"}
        p = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30, check=False)
        return Out(p.returncode, p.stdout, p.stderr)


def run(nodes: Nodes, s, level: int = 1):
    return diag.run_diag(s, nodes.run, level, "r1", base=str(nodes.tmp / "diag"))


def test_one_srun_step_every_gpu_node_judged_from_its_own_file(tmp_path) -> None:
    nodes = Nodes(tmp_path, {"head": None, "gpu01": PASS, "gpu02": FAIL})
    results, problems = run(nodes, site())
    assert problems == []
    steps = [c for h, c in nodes.seen if c.startswith("srun")]
    assert len(steps) == 1 and [h for h, c in nodes.seen if c.startswith("srun")] == ["head"]
    assert "srun -p gpu -N2 -w gpu01,gpu02 --ntasks-per-node=1 --exclusive --immediate=300" in steps[0]
    assert "dcgmi diag -r 1 -j" in steps[0] and "timeout 120" in steps[0]
    got = {(r.host, r.check): r for r in results}
    assert got[("gpu01", "dcgm-diag:GPU Memory")].status == "passed"
    bad = got[("gpu02", "dcgm-diag:GPU Memory")]
    assert bad.status == "failed" and "GPU 1" in bad.detail and "DBE" in bad.detail
    assert got[("gpu02", "dcgm-diag:Denylist")].status == "passed"
    assert got[("cpu01", "dcgm-diag")].status == "skipped"  # declared without GPUs
    # each node's result read back from that node
    assert {h for h, c in nodes.seen if "RC $(cat" in c} == {"gpu01", "gpu02"}


def test_over_ssh_without_slurm_in_parallel_and_absent_dcgmi_skipped(tmp_path) -> None:
    nodes = Nodes(tmp_path, {"gpu01": PASS, "gpu02": None, "cpu01": None, "head": None})
    results, problems = run(nodes, site(slurm=False), level=2)
    assert problems == [] and not any(c.startswith("srun") for _, c in nodes.seen)
    got = {(r.host, r.check): r for r in results}
    assert got[("gpu02", "dcgm-diag")].status == "skipped"
    assert got[("gpu02", "dcgm-diag")].detail == "dcgmi absent here"
    assert got[("gpu01", "dcgm-diag:GPU Memory")].status == "passed"
    assert any("timeout 600 dcgmi diag -r 2 -j" in c for h, c in nodes.seen if h == "gpu01")


def test_garbage_and_timeouts_are_errors_naming_the_node() -> None:
    t = diag.load_thresholds()
    r = diag.judge_node("gpu07", 3, "Error: unable to connect to host engine", 255, "hostengine down", t)
    assert [(x.host, x.check, x.status) for x in r] == [("gpu07", "dcgm-diag", "error")]
    assert "exited 255" in r[0].detail and "hostengine down" in r[0].detail
    r = diag.judge_node("gpu07", 3, "", 124, "", t)
    assert r[0].status == "error" and "3600 s" in r[0].detail and "~30 minutes" in r[0].detail


def test_levels_documented_and_out_of_range_refused() -> None:
    assert sorted(diag.LEVELS) == [1, 2, 3, 4]
    assert [diag.LEVELS[n].timeout_s for n in (1, 2, 3, 4)] == sorted(diag.LEVELS[n].timeout_s for n in (1, 2, 3, 4))
    with pytest.raises(ValueError, match="use 1, 2, 3 or 4"):
        diag.run_diag(site(), lambda h, c: Out(0, "", ""), 5, "r")


def test_srun_failure_is_a_problem_and_missing_results_errors(tmp_path) -> None:
    def broken(host: str, command: str) -> Out:
        if command.startswith("srun"):
            return Out(1, "", "srun: error: Unable to allocate resources: Requested node configuration is not available")
        return Out(0, "MISSING\n", "")

    results, problems = diag.run_diag(site(), broken, 1, "r", base=str(tmp_path))
    assert problems and "Unable to allocate resources" in problems[0]
    assert {(r.host, r.status) for r in results if r.check == "dcgm-diag"} >= {("gpu01", "error"), ("gpu02", "error")}




def test_the_odd_driver_out_is_a_warning_naming_the_node(tmp_path) -> None:
    other = json.loads(json.dumps(PASS)) | {"Driver Version Detected": "535.104.05"}
    hosts = site(slurm=False)
    hosts.hosts.append(SimpleNamespace(name="gpu03", gpus=2, roles=("slurm-compute",)))
    nodes = Nodes(tmp_path, {"gpu01": PASS, "gpu02": PASS, "gpu03": other, "cpu01": None, "head": None})
    results, _ = run(nodes, hosts)
    odd = [r for r in results if r.check == "consistency-driver"]
    assert [(r.host, r.status) for r in odd] == [("gpu03", "passed")]
    assert odd[0].detail.startswith("warning: 535.104.05 where 550.54.15 expected")


def test_local_connection_runs_only_this_machine_s_diag_without_srun(tmp_path) -> None:
    nodes = Nodes(tmp_path, {"gpu01": PASS, "gpu02": FAIL, "cpu01": None, "head": None})
    results, _ = diag.run_diag(site(), nodes.run, 1, "r", limit=["gpu01"], base=str(tmp_path / "d"), scheduler=False)
    assert {r.host for r in results} == {"gpu01"} and not any(c.startswith("srun") for _, c in nodes.seen)


def test_a_failing_diag_feeds_quarantine_naming_the_test(tmp_path) -> None:
    from factoryctl.verify import quarantine

    nodes = Nodes(tmp_path, {"head": None, "gpu01": PASS, "gpu02": FAIL})
    results, _ = run(nodes, site())
    bad, healthy = quarantine.failing_nodes(results)
    assert bad == {"gpu02": ["dcgm-diag:GPU Memory"]} and "gpu01" in healthy
    assert "'factoryctl: dcgm-diag:GPU Memory'" in quarantine.drain_command("gpu02", quarantine.reason(bad["gpu02"]))


def test_one_step_per_partition_holding_the_nodes() -> None:
    s = site()
    s.groups["hgx"].hostnames = ["gpu01"]
    s.factory.slurm.partitions.append(SimpleNamespace(name="old", nodes=["other"]))
    s.groups["other"] = SimpleNamespace(hostnames=["gpu02"])
    assert diag.partitions(s, ["gpu01", "gpu02", "gpu09"]) == {"gpu": ["gpu01"], "old": ["gpu02"], None: ["gpu09"]}
    assert diag.srun_command(["gpu09"], 2, "/tmp/x").startswith("srun -N1 -w gpu09 ")
