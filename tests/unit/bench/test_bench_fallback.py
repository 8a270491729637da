"""The built-in benchmark: launcher environment, worker arguments, and real CPU runs
(GEMM, copy, gloo all_reduce across two processes)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factoryctl.bench import fallback
from factoryctl.bench import fallback_worker as w
from factoryctl.cli.bench import app

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (pip install 'factoryctl[bench]')")
SMALL = ["--dtypes=fp32", "--gemm-size=256", "--hbm-bytes=8M", "--min-bytes=4K",
         "--max-bytes=1M", "--step-factor=4", "--warmup=1", "--iters=3"]


# --- without torch ----------------------------------------------------------------------------


def test_package_imports_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "import factoryctl.bench.fallback, factoryctl.bench.judge, factoryctl.cli.bench\n"
            "import factoryctl.bench.fallback_worker as w\n"
            "sys.exit(w.main(['--mode', 'gpu']))")  # --mode cpu falls back to the stdlib path
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == w.EXIT_NO_TORCH, res.stderr
    assert "PyTorch is not installed" in res.stderr and "factoryctl[bench]" in res.stderr
    assert res.stdout == ""


def test_first_host_of_a_slurm_nodelist() -> None:
    assert w.first_host("gpu[07-09,12],cpu01") == "gpu07"
    assert w.first_host("node3,node4") == "node3"
    assert w.first_host("a[1,3]") == "a1"
    assert w.first_host("solo") == "solo"


def test_dist_env_torchrun_and_kubernetes() -> None:
    env = w.dist_env({"RANK": "3", "WORLD_SIZE": "16", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "8",
                      "MASTER_ADDR": "gpu01", "MASTER_PORT": "29501"})
    assert env == {"launcher": "env", "rank": 3, "world_size": 16, "local_rank": 3,
                   "local_world_size": 8, "master_addr": "gpu01", "master_port": 29501}


def test_dist_env_slurm() -> None:
    env = w.dist_env({"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1",
                      "SLURM_TASKS_PER_NODE": "8(x2)", "SLURM_JOB_NODELIST": "gpu[07-08]",
                      "SLURM_JOB_ID": "4321"})
    assert (env["launcher"], env["rank"], env["world_size"], env["local_rank"]) == ("slurm", 9, 16, 1)
    assert env["local_world_size"] == 8 and env["master_addr"] == "gpu07"
    assert env["master_port"] == 20000 + 4321


def test_dist_env_mpi_and_single() -> None:
    env = w.dist_env({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2",
                      "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"})
    assert (env["launcher"], env["rank"], env["world_size"]) == ("mpi", 1, 2)
    one = w.dist_env({})
    assert (one["launcher"], one["world_size"], one["master_addr"], one["master_port"]) == (
        "single", 1, "127.0.0.1", 29500)


def test_worker_arguments() -> None:
    gpu = w.parse_args(["--mode", "gpu"])
    assert gpu.dtypes == ["bf16", "fp16", "fp8"] and gpu.max_bytes == 4 << 30 and gpu.gemm_size == 8192
    cpu = w.parse_args(["--mode", "cpu", "--tests", "gemm,all_reduce", "--max-bytes", "2M"])
    assert cpu.dtypes == ["fp32"] and cpu.tests == ["gemm", "all_reduce"] and cpu.max_bytes == 2 << 20
    assert w.parse_size("64M") == 64 << 20 and w.parse_size("1GiB") == 1 << 30
    assert w.sweep(1 << 20, 8 << 20, 2) == [1 << 20, 2 << 20, 4 << 20, 8 << 20]
    for bad in (["--tests", "gemm,burn"], ["--min-bytes", "2G", "--max-bytes", "1G"], ["--max-bytes", "lots"]):
        with pytest.raises(SystemExit):
            w.parse_args(bad)


def test_cli_run_local_without_torch(monkeypatch) -> None:
    monkeypatch.setattr(fallback, "torch_available", lambda: False)
    res = CliRunner().invoke(app, ["run-local"])
    assert res.exit_code == 1 and "factoryctl[bench]" in res.output


# --- real runs on the CPU ---------------------------------------------------------------------


@needs_torch
def test_cpu_gemm_and_copy_measure_something() -> None:
    import torch

    dev = torch.device("cpu")
    timer = w.Timer(torch, dev)
    gemm = w.bench_gemm(torch, dev, timer, "fp32", 256, warmup=1, iters=3)
    assert gemm["tflops"] > 0 and gemm["tflops_max"] >= gemm["tflops"] and gemm["m"] == 256
    assert w.bench_gemm(torch, dev, timer, "fp8", 256, 1, 3)["skipped"] == "fp8 GEMM needs a GPU"
    copy = w.bench_copy(torch, dev, timer, 4 << 20, warmup=1, iters=3)
    assert copy["gbps"] > 0 and copy["moved_bytes"] == 8 << 20


@needs_torch
def test_single_process_worker_writes_the_document(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = subprocess.run([sys.executable, "-m", "factoryctl.bench.fallback_worker", "--mode", "cpu",
                          "--out", str(out), *SMALL], capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    doc = fallback.load(out.read_text(), str(out))
    assert doc.world_size == 1 and doc.mode == "cpu" and doc.versions["torch"]
    assert doc.all_reduce.skipped.startswith("world size 1")
    assert doc.ranks[0].gemm["fp32"].tflops > 0


@pytest.fixture(scope="module")
def two_ranks() -> fallback.LocalRun:
    if not HAS_TORCH:
        pytest.skip("torch not installed (pip install 'factoryctl[bench]')")
    return fallback.run_local("cpu", 2, SMALL, timeout=300)


@needs_torch
def test_gloo_all_reduce_two_processes(two_ranks: fallback.LocalRun) -> None:
    assert two_ranks.returncode == 0, two_ranks.stderr
    doc = two_ranks.result
    assert doc.world_size == 2 and doc.backend == "gloo" and doc.errors == []
    assert [r.rank for r in doc.ranks] == [0, 1]
    rows = doc.all_reduce.rows
    assert [r.size_bytes for r in rows] == [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20]
    for r in rows:  # busbw = algbw x 2(n-1)/n = algbw for n = 2
        assert r.busbw_gbps > 0 and r.busbw_gbps == pytest.approx(r.algbw_gbps)
        assert r.algbw_gbps == pytest.approx(r.size_bytes / (r.time_us * 1e-6) / 1e9)
    chk = doc.all_reduce.check
    assert chk.wrong == 0 and chk.expected_value == 3.0
    assert len(chk.checksums) == 2 and chk.checksums[0] == chk.checksums[1] == 3.0 * chk.elements
    assert all(r.gemm["fp32"].tflops > 0 and r.hbm.gbps > 0 for r in doc.ranks)


@needs_torch
def test_cli_run_local_cpu(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    res = CliRunner().invoke(app, ["run-local", "--mode", "cpu", "-n", "2", "--dtypes", "fp32",
                                   "--max-bytes", "256K", "--iters", "2", "--tests", "gemm,all_reduce",
                                   "--format", "json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["run"]["world_size"] == 2 and data["verdict"] == "pass"
    names = {m["name"]: m["verdict"] for m in data["results"][0]["measurements"]}
    assert names == {"gemm.fp32.tflops": "skip", "all_reduce.check": "pass", "all_reduce.busbw": "skip"}
    assert json.loads(out.read_text())["schema"] == fallback.SCHEMA


@needs_torch
def test_fp8_gemm_call_runs_where_scaled_mm_exists(monkeypatch) -> None:
    """The fp8 branch (torch._scaled_mm with a column-major B and unit scales), on the CPU
    kernels of recent torch, with the GPU-only gate lifted."""
    import torch

    dev = torch.device("cpu")
    monkeypatch.setattr(w, "fp8_unsupported", lambda torch, device: None)
    try:
        rec = w.bench_gemm(torch, dev, w.Timer(torch, dev), "fp8", 64, warmup=1, iters=2)
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"this torch has no CPU fp8 GEMM: {exc}")
    assert rec["tflops"] > 0 and "skipped" not in rec


class _FakeEvent:
    clock = 0.0

    def __init__(self, enable_timing: bool) -> None:
        assert enable_timing
        self.at = None

    def record(self) -> None:
        _FakeEvent.clock += 2.5  # ms
        self.at = _FakeEvent.clock

    def elapsed_time(self, end: _FakeEvent) -> float:
        return end.at - self.at


class _FakeCuda:
    Event = _FakeEvent
    syncs = 0

    @classmethod
    def synchronize(cls) -> None:
        cls.syncs += 1


def test_gpu_timer_uses_cuda_events() -> None:
    fake_torch = type("T", (), {"cuda": _FakeCuda})
    timer = w.Timer(fake_torch, type("D", (), {"type": "cuda"})())
    calls = []
    times = timer.run(lambda: calls.append("op"), warmup=2, iters=3, before=lambda: calls.append("flush"))
    assert times == [0.0025] * 3  # event milliseconds -> seconds
    assert calls == ["flush", "op"] * 5 and _FakeCuda.syncs == 2
