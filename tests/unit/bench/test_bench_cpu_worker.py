"""The built-in benchmark's standard-library CPU path: the TCP ring all_reduce (2 and 3 real
processes), the fallback when torch is missing, and the staged copy running on the system
python3 with nothing but the standard library."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from factoryctl.bench import cpu_worker, fallback
from factoryctl.bench.judge import judge_fallback
from factoryctl.bench.slurm_stage import worker_tar
from factoryctl.model.verify import Thresholds

SMALL = ["--backend", "tcp", "--tests", "hbm,all_reduce", "--hbm-bytes", "1M", "--min-bytes", "8K",
         "--max-bytes", "256K", "--step-factor", "4", "--warmup", "1", "--iters", "3"]


def test_chunks_cover_the_buffer_lane_aligned() -> None:
    for nbytes, parts in ((64, 3), (8, 4), (8 * 1001, 7), (0, 2)):
        chunks = cpu_worker._chunks(nbytes, parts)
        assert len(chunks) == parts
        assert chunks[0][0] == 0 and chunks[-1][1] == nbytes
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
        assert all(s % 8 == 0 and e % 8 == 0 for s, e in chunks)


@pytest.mark.parametrize("ranks", [2, 3])
def test_tcp_all_reduce_across_processes_is_correct(ranks: int) -> None:
    run = fallback.run_local("cpu", ranks, SMALL, timeout=120)
    assert run.returncode == 0, run.stderr
    doc = run.result
    assert doc.backend == "tcp" and doc.mode == "cpu" and doc.world_size == ranks
    ar = doc.all_reduce
    assert [r.size_bytes for r in ar.rows] == [8192, 32768, 131072]
    assert all(r.busbw_gbps > 0 and r.time_us > 0 for r in ar.rows)
    assert ar.check.wrong == 0 and ar.check.expected_value == ranks * (ranks + 1) / 2
    assert len(set(ar.check.checksums)) == 1 and len(ar.check.checksums) == ranks
    assert all(r.hbm.gbps > 0 for r in doc.ranks)
    assert doc.versions["torch"] is None


def test_judge_skips_cpu_figures_naming_the_backend() -> None:
    run = fallback.run_local("cpu", 2, SMALL + ["--tests", "gemm,hbm,all_reduce"], timeout=120)
    ms = {m.name: m for m in judge_fallback(run.result, [], Thresholds())}
    assert ms["all_reduce.check"].verdict == "pass"
    assert ms["all_reduce.busbw"].verdict == "skip" and "CPU mode (tcp)" in ms["all_reduce.busbw"].reason
    assert ms["hbm.copy.gbps"].verdict == "skip"
    assert ms["gemm.fp32.tflops"].verdict == "skip" and "PyTorch is not installed" in ms["gemm.fp32.tflops"].reason


def test_mode_cpu_without_torch_takes_the_stdlib_path(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "import factoryctl.bench.fallback_worker as w\n"
            "sys.exit(w.main(['--mode', 'cpu', '--tests', 'hbm,all_reduce', '--hbm-bytes', '1M']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["backend"] == "tcp" and doc["all_reduce"] == {"skipped": "world size 1: no collective to measure"}


def test_tcp_backend_refuses_gpu_mode() -> None:
    from factoryctl.bench import fallback_worker as w

    assert w.main(["--mode", "gpu", "--backend", "tcp"]) == w.EXIT_FAIL


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no system python3")
def test_staged_worker_runs_on_the_system_python_alone(tmp_path: Path) -> None:
    # What verify copies onto nodes: a tar of a two-file package, run with the node's python3.
    digest, b64 = worker_tar()
    assert digest == worker_tar()[0]  # deterministic: the staging folder is reused
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(b64))) as tar:
        names = sorted(tar.getnames())
        tar.extractall(tmp_path, filter="data")
    assert names == ["factoryctl/__init__.py", "factoryctl/bench/__init__.py",
                     "factoryctl/bench/cpu_worker.py", "factoryctl/bench/fallback_worker.py"]
    env = {"PATH": os.defpath, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run(["/usr/bin/python3", "-s", "-m", "factoryctl.bench.fallback_worker", "--mode", "cpu",
                          "--backend", "tcp", "--tests", "hbm", "--hbm-bytes", "1M"], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = fallback.load(res.stdout)
    assert doc.backend == "tcp" and doc.ranks[0].hbm.gbps > 0
    shutil.rmtree(tmp_path / "factoryctl")
