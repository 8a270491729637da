"""The benchmark stage with a fake site: what it runs through srun (CPU path on the lab,
nccl-tests on the pilot), how the results are judged, and how each failure is reported."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from factoryctl.bench import slurm_stage as bench
from factoryctl.bench.record import json_document
from factoryctl.bench.slurm_stage import Out
from factoryctl.cli import app
from factoryctl.session import check
from tests.helpers import write_doc

ROOT = Path(__file__).resolve().parents[3]
LAB = ROOT / "examples" / "lab.yaml"
PILOT = ROOT / "blueprints" / "enterprise-pilot-h100-4n" / "factory.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "nccl"


def cpu_doc(ranks: int = 2) -> dict:
    rows = [{"size_bytes": 32768 * 4 ** i, "count": 4096 * 4 ** i, "time_us": 300.0 * 4 ** i,
             "algbw_gbps": 0.1, "busbw_gbps": 0.1} for i in range(4)]
    return {"schema": "factoryctl.bench.fallback/v1", "mode": "cpu", "backend": "tcp", "launcher": "slurm",
            "world_size": ranks, "nodes": ranks, "hosts": [f"node0{i + 1}" for i in range(ranks)],
            "versions": {"python": "3.11.2", "torch": None},
            "ranks": [{"rank": i, "host": f"node0{i + 1}", "device": "cpu", "device_name": "vCPU",
                       "gemm": {}, "hbm": {"bytes": 1 << 26, "iters": 10, "gbps": 3.0}, "errors": []}
                      for i in range(ranks)],
            "all_reduce": {"dtype": "uint64", "ranks": ranks, "rows": rows,
                           "check": {"elements": 512, "expected_value": 3.0, "wrong": 0, "checksums": [1536.0] * ranks}},
            "errors": []}


class FakeSite:
    """Answers srun with `srun_out`; records every (host, command). A built-in worker's srun
    leaves the JSON of `srun_out` in its --out file on `rank0` (the first node unless told)
    and prints `srun_noise` instead, as srun's merged stream of every rank would."""

    def __init__(self, srun_out: Out, nccl_tests: bool = False, srun: bool = True, stage_rc: int = 0,
                 rank0: str | None = None, srun_noise: str = ""):
        self.srun_out, self.nccl_tests, self.srun, self.stage_rc = srun_out, nccl_tests, srun, stage_rc
        self.calls: list[tuple[str, str]] = []
        self.rank0, self.srun_noise, self.files = rank0, srun_noise, {}

    def __call__(self, host: str, command: str) -> Out:
        self.calls.append((host, command))
        if command == "command -v srun":
            return Out(0 if self.srun else 1, "/usr/bin/srun\n" if self.srun else "", "")
        if command.startswith("test -x /opt/nccl-tests"):
            return Out(0 if self.nccl_tests else 1, "", "")
        if "base64 -d" in command:
            return Out(self.stage_rc, "", "tar: write error" if self.stage_rc else "")
        if " srun " in command:
            m = re.search(r"--out (\S+)", command)
            if m and "fallback_worker" in command:
                nodes = re.search(r" -w (\S+) ", command).group(1).split(",")
                doc = json_document(self.srun_out.stdout)
                if doc is not None:
                    self.files[(self.rank0 or nodes[0], m.group(1))] = json.dumps(doc)
                return Out(self.srun_out.rc, self.srun_noise, self.srun_out.stderr)
            return self.srun_out
        if command.startswith("cat "):
            path = shlex.split(command)[1]
            text = self.files.pop((host, path), None)
            return Out(0, text, "") if text is not None else Out(1, "", "")
        return Out(127, "", "unexpected")

    def sruns(self) -> list[tuple[str, str]]:
        return [(h, c) for h, c in self.calls if " srun " in c]


def _stage(path: Path, site: FakeSite, **kw):
    c = check(path)
    return bench.run_stage(c.factory, c.site, site, **kw)


def test_lab_runs_the_stdlib_cpu_worker_through_srun() -> None:
    site = FakeSite(Out(0, "srun: job 12 queued\n" + json.dumps(cpu_doc(), indent=2), ""))
    res = _stage(LAB, site, timeout=600)
    assert res.errors == [] and res.path == "built-in (cpu, tcp)" and res.scheduler == "slurm"
    staged = sorted(h for h, c in site.calls if "base64 -d" in c)
    assert staged == ["head01", "node01", "node02"]
    [(host, cmd)] = site.sruns()
    assert host == "head01"
    assert "timeout --kill-after=10 600 srun -p batch -N 2 -w node01,node02 --ntasks-per-node=1" in cmd
    assert "--job-name=factoryctl-bench -t 10 python3 -m factoryctl.bench.fallback_worker --mode cpu" in cmd
    assert "PYTHONPATH=/var/tmp/factoryctl-bench/" in cmd and "--gpus-per-node" not in cmd
    assert res.nccl[0]["name"] == "built-in all_reduce (cpu, tcp)" and len(res.nccl[0]["rows"]) == 4
    verdicts = {m["name"]: m["verdict"] for m in res.measurements}
    assert verdicts == {"hbm.copy.gbps": "skip", "all_reduce.check": "pass", "all_reduce.busbw": "skip"}
    assert not res.failed and res.verdict == "pass" and res.documents[0]["backend"] == "tcp"


def test_fewer_nodes_and_another_partition() -> None:
    site = FakeSite(Out(0, json.dumps(cpu_doc(1)), ""))
    _stage(LAB, site, partition="debug", nodes=1)
    assert " -p debug -N 1 -w node01 " in site.sruns()[0][1]


@pytest.mark.parametrize(("kw", "why"), [
    ({"partition": "gpu"}, "no partition 'gpu' in slurm.partitions (batch, debug)"),
])
def test_stage_cannot_run(kw, why) -> None:
    res = _stage(LAB, FakeSite(Out(0, "", "")), **kw)
    assert res.skipped == why and res.path == "none" and not res.failed


def test_no_slurm_no_stage(tmp_path: Path) -> None:
    f = tmp_path / "factory.yaml"
    f.write_text(LAB.read_text().replace("slurm:\n  enabled: true", "slurm:\n  enabled: false"))
    res = _stage(f, FakeSite(Out(0, "", "")))
    assert res.skipped.startswith("no scheduler to run through: slurm.enabled is false")


def test_failures_are_errors_that_fail_the_stage() -> None:
    res = _stage(LAB, FakeSite(Out(0, "", ""), srun=False))
    assert res.errors == ["head01: srun not found (slurm-client missing?)"] and res.failed
    res = _stage(LAB, FakeSite(Out(0, "", ""), stage_rc=2))
    assert res.failed and "staging the worker failed (exit 2): tar: write error" in res.errors[0]
    res = _stage(LAB, FakeSite(Out(1, "", "srun: error: Unable to allocate resources: Invalid partition")))
    assert res.failed and "Invalid partition" in res.errors[0]
    wrong = cpu_doc()
    wrong["all_reduce"]["check"]["wrong"] = 5
    res = _stage(LAB, FakeSite(Out(0, json.dumps(wrong), "")))
    assert res.failed and {m["name"]: m["verdict"] for m in res.measurements}["all_reduce.check"] == "fail"


def test_pilot_runs_nccl_tests_per_collective_when_installed() -> None:
    log = (FIXTURES / "h100-2n-all_reduce-nvidia-i309.log").read_text()
    site = FakeSite(Out(0, log, ""), nccl_tests=True)
    res = _stage(PILOT, site)
    assert res.path == "nccl-tests" and res.errors == []
    cmds = [c for _, c in site.sruns() if "factoryctl-localise" not in c]
    assert len(cmds) == 2
    # then localisation: the 4 nodes alone at once, the ring of pairs in two rounds
    local = [c for _, c in site.sruns() if "factoryctl-localise" in c]
    assert len(local) == 3 and local[0].count("factoryctl-bench node=") == 4
    assert "srun -p gpu -N 4 -w gpu01,gpu02,gpu03,gpu04 --ntasks-per-node=8" in cmds[0]
    assert "--gpus-per-node=8 /opt/nccl-tests/build/all_reduce_perf -b 8M -e 8G -f 2 -g 1" in cmds[0]
    assert "/opt/nccl-tests/build/all_gather_perf" in cmds[1]
    assert not any("base64" in c for _, c in site.calls)  # nothing to stage
    judged = [m for m in res.measurements if m["name"] == "nccl.all_reduce.busbw"]
    assert judged and judged[0]["verdict"] in ("pass", "warn", "fail") and judged[0]["expected"]
    assert res.nccl[0]["rows"] and res.nccl[0]["expected_busbw_gbps"] > 0


def test_pilot_without_nccl_tests_runs_the_gpu_worker() -> None:
    site = FakeSite(Out(2, "", "error: PyTorch is not installed in this Python (python3)"))
    res = _stage(PILOT, site)
    assert res.path == "built-in (gpu)" and res.failed
    cmd = site.sruns()[0][1]
    assert "--ntasks-per-node=8 --job-name=factoryctl-bench -t 15 --gpus-per-node=8" in cmd
    assert ("fallback_worker --mode gpu --tests gemm,hbm,host,all_reduce --dtypes bf16 --gemm-size 8192 "
            "--min-bytes 8M --max-bytes 8G --step-factor 2 --out /var/tmp/factoryctl-bench/") in cmd
    assert "PyTorch is not installed" in res.errors[0]


def gpu_doc(hosts: list[str]) -> dict:
    doc = cpu_doc(len(hosts))
    doc.update(mode="gpu", backend="nccl", hosts=hosts)
    for r, h in zip(doc["ranks"], hosts, strict=True):
        r.update(host=h, device="cuda:0", device_name="NVIDIA H100 80GB HBM3")
    return doc


def test_verify_benchmarks_settings_reach_the_worker(tmp_path: Path) -> None:
    # the old command passed --min-bytes 1M whatever the file said, and no GEMM size
    doc = yaml.safe_load(PILOT.read_text())
    doc.setdefault("verify", {})["benchmarks"] = {
        "nccl": {"collectives": ["all_reduce"], "min_bytes": "64M", "max_bytes": "2G", "step_factor": 4},
        "gemm": {"dtype": "fp8", "size": 16384}, "hbm": False}
    f = write_doc(doc, tmp_path / "factory.yaml")
    site = FakeSite(Out(0, json.dumps(gpu_doc(["gpu01", "gpu02", "gpu03", "gpu04"])), ""))
    res = _stage(f, site)
    cmd = site.sruns()[0][1]
    argv = shlex.split(cmd.split(" python3 ", 1)[1])
    opts = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert opts["--tests"] == "gemm,host,all_reduce" and opts["--dtypes"] == "fp8"
    assert opts["--gemm-size"] == "16384" and opts["--min-bytes"] == "64M"
    assert opts["--max-bytes"] == "2G" and opts["--step-factor"] == "4"
    assert res.errors == [] and res.documents


def test_rank0_result_is_read_from_its_own_file_not_the_merged_stream() -> None:
    # srun's stdout carries every rank's output: another rank's NCCL warning cut into the JSON
    doc = cpu_doc()
    noise = '{"schema": "factoryctl.bench.fallback/v1", "mode"node02:1234:1234 [0] NCCL WARN x\n'
    site = FakeSite(Out(0, json.dumps(doc), ""), rank0="node02", srun_noise=noise)
    res = _stage(LAB, site)
    assert res.errors == [] and res.documents[0]["hosts"] == ["node01", "node02"]
    cats = [(h, c) for h, c in site.calls if c.startswith("cat ")]
    assert [h for h, _ in cats] == ["node01", "node02"]  # looked on node01 first, found on node02
    assert "rm -f" in cats[-1][1]
    site = FakeSite(Out(1, "", "srun: error: node02: task 1: Exited with exit code 1"))
    res = _stage(LAB, site)
    assert res.failed and "rank 0 wrote no" in res.errors[0] and "task 1" in res.errors[0]


def test_cli_verify_and_bench_run_help() -> None:
    runner = CliRunner()
    for args in (["verify", "--help"], ["bench", "run", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "srun" in res.output


class _BrokenConnection:
    """A connection whose host cannot even be asked (testinfra raising before any command ran,
    as it did when ansible-inventory was not on PATH)."""

    def testinfra_host(self, name: str):
        raise RuntimeError(f"ansible-inventory: not found while looking up {name}")


def test_an_exception_reaching_the_host_is_reported_as_itself_not_as_a_missing_srun() -> None:
    from factoryctl.verify.hostchecks import executor

    res = _stage(LAB, executor(_BrokenConnection()))
    assert res.failed and res.errors == [
        "head01: could not run `command -v srun`: RuntimeError: ansible-inventory: not found while looking up head01"]
    assert "slurm-client" not in res.errors[0]


def test_ssh_failing_is_not_read_as_srun_missing() -> None:
    def site(host: str, command: str) -> Out:
        return Out(255, "", "ssh: connect to host 10.77.0.10 port 22: Connection refused\n")

    res = _stage(LAB, site)
    assert res.errors == ["head01: `command -v srun` exited 255: ssh: connect to host 10.77.0.10 port 22: "
                          "Connection refused"]
