"""The built-in worker's GPU path, checked with fakes for torch, NVML and sysfs (no GPU here):
sustained GEMM with clock sampling, host copies bound to the GPU's NUMA node, one GPU per
rank, fp8 only where the architecture has it, out-of-place all_reduce without a barrier per
iteration, and Slurm node lists expanded by scontrol."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from factoryctl.bench import fallback_worker as w

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (pip install 'factoryctl[bench]')")


# --- Slurm node lists -------------------------------------------------------------------------


def test_first_host_expands_every_bracket() -> None:
    # the old parser kept the second bracket: 'rack1-n[01-04]'
    assert w.first_host("rack[1-2]-n[01-04]") == "rack1-n01"
    assert w.first_host("rack[1-2]-n[01-04],login01") == "rack1-n01"


def test_first_host_comes_from_scontrol_when_it_is_there(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "scontrol"
    fake.write_text("#!/bin/sh\n[ \"$1 $2\" = 'show hostnames' ] || exit 2\n"
                    "echo \"$3\" > " + str(tmp_path / "asked") + "\nprintf 'rack1-n01\\nrack1-n02\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    env = w.dist_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "16", "SLURM_LOCALID": "0",
                      "SLURM_JOB_NODELIST": "rack[1-2]-n[01-04]", "SLURM_JOB_ID": "7"})
    assert env["master_addr"] == "rack1-n01"
    assert (tmp_path / "asked").read_text().strip() == "rack[1-2]-n[01-04]"


def test_first_host_without_scontrol(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert w.slurm_first_host("gpu[07-09]") == "gpu07"


# --- one GPU per rank ------------------------------------------------------------------------


def fake_torch(count: int, hip: str | None = None, arch: str = "", capability=(9, 0)):
    cuda = SimpleNamespace(is_available=lambda: count > 0, device_count=lambda: count,
                           get_device_properties=lambda d: SimpleNamespace(gcnArchName=arch),
                           get_device_capability=lambda d: capability)
    return SimpleNamespace(cuda=cuda, version=SimpleNamespace(hip=hip, cuda=None if hip else "12.4"),
                           __version__="2.5.1", _scaled_mm=object(), float8_e4m3fn=object(),
                           float8_e4m3fnuz=object())


def env(local: int, per_node: int) -> dict:
    return {"local_rank": local, "local_world_size": per_node}


def test_local_rank_takes_its_own_gpu() -> None:
    assert w.pick_gpu(fake_torch(8), env(3, 8)) == 3
    assert w.pick_gpu(fake_torch(1), env(5, 8)) == 0  # Slurm bound one GPU to each task


def test_more_ranks_than_gpus_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    with pytest.raises(RuntimeError, match=r"8 ranks on this node .* torch sees 4 GPUs "
                                           r"\(CUDA_VISIBLE_DEVICES=0,1,2,3\).*share a GPU"):
        w.pick_gpu(fake_torch(4), env(5, 8))  # the old code ran rank 5 on GPU 1 beside rank 1
    with pytest.raises(RuntimeError, match="no GPU"):
        w.pick_gpu(fake_torch(0), env(0, 1))


def test_ranks_sharing_a_gpu_are_found() -> None:
    ranks = [{"rank": 0, "host": "n1", "pci_bus_id": "0000:19:00.0"},
             {"rank": 1, "host": "n1", "pci_bus_id": "0000:3b:00.0"},
             {"rank": 2, "host": "n1", "pci_bus_id": "0000:19:00.0"},
             {"rank": 3, "host": "n2", "pci_bus_id": "0000:19:00.0"}]
    assert w.shared_gpus(ranks) == ["ranks 0 and 2 share GPU 0000:19:00.0 on n1"]


def test_pci_bus_id_from_device_properties() -> None:
    props = SimpleNamespace(pci_domain_id=0, pci_bus_id=0x19, pci_device_id=0)
    assert w.pci_bus_id(props) == "0000:19:00.0"
    assert w.pci_bus_id(SimpleNamespace()) is None


# --- fp8 only where the architecture has it --------------------------------------------------


def test_fp8_on_rocm_only_on_gfx94x_and_gfx95x() -> None:
    dev = SimpleNamespace(type="cuda")
    why = w.fp8_unsupported(fake_torch(8, hip="6.2", arch="gfx90a:sramecc+:xnack-"), dev)
    assert why == "fp8 on ROCm needs gfx94x/gfx95x (MI300/MI350); this GPU is gfx90a"
    assert w.fp8_unsupported(fake_torch(8, hip="6.2", arch="gfx942:sramecc+:xnack-"), dev) is None
    assert w.fp8_unsupported(fake_torch(8, hip="7.0", arch="gfx950"), dev) is None
    assert "8.9" in w.fp8_unsupported(fake_torch(8, capability=(8, 0)), dev)
    assert w.fp8_unsupported(fake_torch(8, capability=(9, 0)), dev) is None


# --- clocks and throttle reasons --------------------------------------------------------------


def test_nvidia_smi_sample_and_throttle_bits() -> None:
    assert w.parse_smi_sample("1980, 0x0000000000000000") == (1980.0, 0)
    assert w.parse_smi_sample("1410, 0x0000000000000088") == (1410.0, 0x88)
    assert w.parse_smi_sample("[N/A], [N/A]") is None
    assert w.throttle_names(0x88) == ["hw_slowdown", "hw_power_brake_slowdown"]
    assert w.throttle_names(0x4) == ["sw_power_cap"]


def test_clock_sampler_summarises_what_it_read() -> None:
    reads = iter([(1980.0, 0), (1755.0, 0x4), (1410.0, 0x8)])
    smp = w.ClockSampler("0000:19:00.0", readers=[("nvml", lambda bus: lambda: next(reads))])
    assert smp.source == "nvml"
    for _ in range(3):
        smp.sample()
    s = smp.summary()
    assert s["samples"] == 3 and s["sm_clock_mhz"] == {"min": 1410.0, "median": 1755.0, "max": 1980.0}
    assert s["throttle_reasons"] == {"sw_power_cap": 1, "hw_slowdown": 1}


def test_clock_sampler_falls_back_and_says_why() -> None:
    smp = w.ClockSampler("0000:19:00.0", readers=[("nvml", lambda bus: None),
                                                  ("nvidia-smi", lambda bus: lambda: (1500.0, 0))])
    assert smp.source == "nvidia-smi"
    none = w.ClockSampler("0000:19:00.0", readers=[("nvml", lambda bus: None)])
    with none:
        pass
    assert none.summary() == {"source": None, "samples": 0, "skipped": "neither NVML (pynvml) nor nvidia-smi answered"}
    assert "PCI bus id" in w.ClockSampler(None).summary()["skipped"]


def test_sampler_thread_samples_while_the_test_runs() -> None:
    import time

    smp = w.ClockSampler("x", interval=0.01, readers=[("nvml", lambda bus: lambda: (1700.0, 0))])
    with smp:
        time.sleep(0.1)
    assert smp.summary()["samples"] >= 3


def test_run_for_is_sustained_not_a_burst() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    class T(w.Timer):
        def run(self, fn, warmup, iters, before=None):
            for _ in range(warmup + iters):
                fn()
            now[0] += iters * 0.5  # each iteration 0.5 s of wall time
            return [0.5] * iters

    calls = []
    times = T(None, SimpleNamespace(type="cpu")).run_for(lambda: calls.append(1), 3, 10.0, clock=clock)
    assert len(times) == 20 and sum(times) >= 10.0 and len(calls) == 23


@needs_torch
def test_sustained_gemm_records_clocks_and_decline() -> None:
    import torch

    dev = torch.device("cpu")
    smp = w.ClockSampler("x", interval=0.01, readers=[("nvml", lambda bus: lambda: (1650.0, 0x4))])
    rec = w.bench_gemm(torch, dev, w.Timer(torch, dev), "fp32", 128, warmup=1, iters=3,
                       seconds=0.2, sampler=smp)
    assert rec["seconds"] >= 0.2 and rec["iters"] > 3
    assert rec["tflops_first"] > 0 and rec["tflops_last"] > 0
    assert rec["clocks"]["source"] == "nvml" and rec["clocks"]["throttle_reasons"]["sw_power_cap"] >= 1


# --- host copies on the GPU's NUMA node -------------------------------------------------------


def sysfs(tmp_path: Path, bus: str, node: int, cpulist: str) -> str:
    dev = tmp_path / "bus" / "pci" / "devices" / bus
    dev.mkdir(parents=True)
    (dev / "numa_node").write_text(f"{node}\n")
    if node >= 0:
        nd = tmp_path / "devices" / "system" / "node" / f"node{node}"
        nd.mkdir(parents=True)
        (nd / "cpulist").write_text(cpulist + "\n")
    return str(tmp_path)


def test_numa_node_and_cpus_of_a_gpu(tmp_path: Path) -> None:
    root = sysfs(tmp_path, "0000:9b:00.0", 1, "56-111,168-223")
    node, cpus = w.numa_cpus("0000:9B:00.0", root)
    assert node == 1 and len(cpus) == 112 and 56 in cpus and 223 in cpus and 0 not in cpus
    assert w.numa_cpus("0000:19:00.0", root) == (None, set())
    assert w.parse_cpulist("0-3,8,10-11") == {0, 1, 2, 3, 8, 10, 11}


def test_no_numa_node_means_no_binding(tmp_path: Path) -> None:
    root = sysfs(tmp_path, "0000:19:00.0", -1, "")
    assert w.numa_cpus("0000:19:00.0", root) == (None, set())


def test_host_copy_allocates_and_copies_bound_to_the_gpu_node(tmp_path: Path) -> None:
    mine = sorted(os.sched_getaffinity(0))
    one = mine[-1]
    root = sysfs(tmp_path, "0000:19:00.0", 0, str(one))
    seen = []

    class FakeTensor:
        def copy_(self, other, non_blocking=False):
            seen.append(("copy", os.sched_getaffinity(0)))

    fake = SimpleNamespace(uint8="u8", empty=lambda n, dtype, pin_memory=False, device=None: (
        seen.append(("alloc", pin_memory, os.sched_getaffinity(0))) or FakeTensor()))

    class T:
        def run(self, fn, warmup, iters, before=None):
            fn()
            return [0.02]

    out = w.bench_host(fake, "cuda:0", T(), 1 << 30, 1, 3, "0000:19:00.0", root)
    assert out["h2d"]["numa_node"] == 0 and out["h2d"]["bound"] is True
    assert out["h2d"]["gbps"] == pytest.approx((1 << 30) / 0.02 / 1e9)
    assert seen[0] == ("alloc", True, {one})  # the pinned buffer is allocated on the node's CPUs
    assert all(s[-1] == {one} for s in seen)
    assert os.sched_getaffinity(0) == set(mine)  # restored


# --- all_reduce: out of place, no barrier per iteration ---------------------------------------


@needs_torch
def test_all_reduce_out_of_place_without_a_barrier_per_iteration() -> None:
    import torch

    calls = {"barrier": 0, "all_reduce": 0}
    reduced = []

    class Dist:
        @staticmethod
        def barrier():
            calls["barrier"] += 1

        @staticmethod
        def all_reduce(t):
            calls["all_reduce"] += 1
            reduced.append(float(t[0]))
            t.mul_(2)  # two ranks of equal tensors

        @staticmethod
        def get_backend():
            return "gloo"

    args = SimpleNamespace(min_bytes=4 << 10, max_bytes=16 << 10, step_factor=2, warmup=2, iters=5)
    dev = torch.device("cpu")
    rec = w.bench_all_reduce(torch, Dist, dev, w.Timer(torch, dev), args, 2, 0)
    assert [r["size_bytes"] for r in rec["rows"]] == [4 << 10, 8 << 10, 16 << 10]
    assert calls["barrier"] == 3  # one per size, none per iteration (the old code: 7 per size)
    # out of place: every iteration (2 warm-up + 5 timed, then the time average) reduces a fresh
    # copy of the input (ones), so it never grows (in place it read 2, 4, 8, ...: inf on long runs)
    sweep_calls = [v for i, v in enumerate(reduced) if i % 8 != 7]
    assert sweep_calls[:21] == [1.0] * 21 and rec["out_of_place"] is True


@needs_torch
def test_the_document_records_tf32_settings(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = subprocess.run([sys.executable, "-m", "factoryctl.bench.fallback_worker", "--mode", "cpu",
                          "--out", str(out), "--tests", "gemm", "--dtypes", "fp32", "--gemm-size", "64",
                          "--iters", "2", "--warmup", "1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert set(doc["settings"]) == {"cuda_matmul_allow_tf32", "cudnn_allow_tf32", "float32_matmul_precision"}
    assert doc["settings"]["float32_matmul_precision"] in ("highest", "high", "medium")
    assert doc["config"]["gemm_seconds"] == 0.0  # cpu: --iters only, the lab's path unchanged


@needs_torch
def test_run_local_passes_gemm_seconds(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from factoryctl.cli.bench import app

    out = tmp_path / "run.json"
    res = CliRunner().invoke(app, ["run-local", "--mode", "cpu", "-n", "1", "--tests", "gemm", "--dtypes", "fp32",
                                   "--iters", "2", "--gemm-seconds", "0.3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["config"]["gemm_seconds"] == 0.3
    gemm = doc["ranks"][0]["gemm"]["fp32"]
    assert gemm["seconds"] >= 0.3 and gemm["iters"] > 2 and gemm.get("clocks") is None  # CPU: no clocks
