"""Built-in benchmark for nodes without nccl-tests: GEMM, memory copy, host<->device copy and
a torch.distributed all_reduce sweep. One process per GPU (or per CPU rank in --mode cpu).

    python -m factoryctl.bench.fallback_worker --mode gpu --out result.json

Launch it like any PyTorch job: ``torchrun --nproc_per_node=8 -m factoryctl.bench.fallback_worker``,
``srun --ntasks-per-node=8 --gpus-per-node=8 python -m factoryctl.bench.fallback_worker`` or a
Kubernetes Job that sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT. Rank 0 writes one JSON
document (schema ``factoryctl.bench.fallback/v1``, see factoryctl/bench/fallback.py) to stdout
or ``--out``. Methods follow stas00/ml-engineering network/benchmarks/all_reduce_bench.py and
compute/accelerator/benchmarks/mamf-finder.py: warm-up, timed repeats, median; CUDA events on GPU, perf_counter on CPU; busbw = algbw x 2(n-1)/n; GB/s = 1e9 B/s.

On GPUs: each GEMM is sustained for --gemm-seconds (10) while SM clocks and throttle reasons are
sampled (NVML, else nvidia-smi), so power and thermal limits show; host<->device copies run one
local rank at a time, bound to the GPU's NUMA node; each rank needs a GPU of its own (counted
by torch, so CUDA_VISIBLE_DEVICES counts); all_reduce is out of place, one barrier per size.

Only the standard library and PyTorch are used, so the file also runs on its own
(``python fallback_worker.py``) on a node where factoryctl is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

SCHEMA = "factoryctl.bench.fallback/v1"
TESTS = ("gemm", "hbm", "host", "all_reduce")
EXIT_OK, EXIT_FAIL, EXIT_NO_TORCH = 0, 1, 2
NO_TORCH = ("error: PyTorch is not installed in this Python ({exe}); the built-in benchmark "
            "needs it: pip install 'factoryctl[bench]' (or any torch build for this node)")
L2_FLUSH_BYTES = 256 << 20  # zeroed before each GEMM iteration so no operand sits in L2

DEFAULTS = {  # mode -> option defaults
    "gpu": {"dtypes": "bf16,fp16,fp8", "gemm_size": 8192, "gemm_seconds": 10.0, "hbm_bytes": "1G",
            "host_bytes": "1G", "min_bytes": "1M", "max_bytes": "4G"},
    "cpu": {"dtypes": "fp32", "gemm_size": 1024, "gemm_seconds": 0.0, "hbm_bytes": "64M",
            "host_bytes": "0", "min_bytes": "32K", "max_bytes": "16M"},
}
# NVML clock throttle (event) reason bits, nvml.h nvmlClocksThrottleReasons
# (https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksThrottleReasons.html); the same
# mask nvidia-smi prints for clocks_throttle_reasons.active.
THROTTLE_BITS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
                 0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
                 0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown",
                 0x100: "display_clock_setting"}
SAMPLE_INTERVAL_S = 0.5


def parse_size(text: str | int) -> int:
    """'4G' -> 4 GiB (binary suffixes, as nccl-tests reads -b/-e)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 64M, 4G)")
    return int(m.group(1)) * 1024 ** "_KMGT".index(m.group(2).upper() or "_")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m factoryctl.bench.fallback_worker",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("gpu", "cpu"), default="gpu",
                   help="gpu: CUDA/ROCm devices and NCCL; cpu: CPU tensors and gloo (lab runs)")
    p.add_argument("--tests", default=",".join(TESTS), help=f"comma list of {', '.join(TESTS)}")
    p.add_argument("--dtypes", help="GEMM dtypes: bf16, fp16, fp8, fp32 (gpu: bf16,fp16,fp8)")
    p.add_argument("--gemm-size", type=int, help="M = N = K of the GEMM (gpu 8192, cpu 1024)")
    p.add_argument("--gemm-seconds", type=float,
                   help="run each GEMM for this long after warm-up, sampling SM clocks and throttle "
                        "reasons, so power and thermal limits show (gpu 10, cpu 0: --iters only)")
    p.add_argument("--hbm-bytes", type=parse_size, help="copy buffer size (gpu 1G, cpu 64M)")
    p.add_argument("--host-bytes", type=parse_size, help="pinned host buffer for H2D/D2H (1G)")
    p.add_argument("--min-bytes", type=parse_size, help="all_reduce sweep start (gpu 1M, cpu 32K)")
    p.add_argument("--max-bytes", type=parse_size, help="all_reduce sweep end (gpu 4G, cpu 16M)")
    p.add_argument("--step-factor", type=int, default=2, help="sweep size multiplier (2)")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first (5)")
    p.add_argument("--iters", type=int, default=20, help="timed iterations; the median is reported (20)")
    p.add_argument("--backend", choices=("nccl", "gloo", "tcp"),
                   help="override: nccl on gpu, gloo on cpu; tcp: the standard-library CPU path "
                        "(cpu_worker.py), also taken on --mode cpu when torch is missing")
    p.add_argument("--timeout", type=int, default=600, help="seconds for rendezvous and collectives")
    p.add_argument("--out", help="write the JSON here instead of stdout (rank 0)")
    args = p.parse_args(argv)
    for key, val in DEFAULTS[args.mode].items():
        if getattr(args, key) is None:
            setattr(args, key, parse_size(val) if key.endswith("bytes") else val)
    args.tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    unknown = sorted(set(args.tests) - set(TESTS))
    if unknown:
        p.error(f"unknown test(s) {', '.join(unknown)}; known: {', '.join(TESTS)}")
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if args.step_factor < 2 or args.iters < 1 or args.warmup < 0 or args.gemm_seconds < 0:
        p.error("--step-factor must be >= 2, --iters >= 1, --warmup >= 0, --gemm-seconds >= 0")
    if args.min_bytes > args.max_bytes:
        p.error("--min-bytes is larger than --max-bytes")
    return args


# --- where this rank sits: torchrun / Kubernetes, Slurm, Open MPI ------------------------------


def slurm_first_host(nodelist: str) -> str:
    """First host of a Slurm node list as Slurm expands it: `scontrol show hostnames` (the
    documented way to expand a hostlist, slurm.schedmd.com/scontrol.html), so
    'rack[1-2]-n[01-04]' gives 'rack1-n01'. Without scontrol (or when it fails), first_host()."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return first_host(nodelist)
    lines = out.stdout.split()
    return lines[0] if out.returncode == 0 and lines else first_host(nodelist)


def first_host(nodelist: str) -> str:
    """First host of a Slurm node list without scontrol: 'gpu[07-09,12],cpu01' -> 'gpu07',
    'rack[1-2]-n[01-04]' -> 'rack1-n01' (each bracket's first value)."""
    depth, head = 0, ""
    for ch in nodelist.strip():
        if ch == "," and depth == 0:
            break
        depth += {"[": 1, "]": -1}.get(ch, 0)
        head += ch
    return re.sub(r"\[([^\],-]+)[^\]]*\]", lambda m: m.group(1), head)


def _lead_int(val: str | None) -> int | None:
    m = re.match(r"\s*(\d+)", val or "")  # SLURM_TASKS_PER_NODE reads '8(x2)'
    return int(m.group(1)) if m else None


def dist_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """rank, world size, local rank, rendezvous address from the launcher's variables."""
    env = dict(os.environ if env is None else env)
    if "RANK" in env and "WORLD_SIZE" in env:
        launcher, rank, world = "env", int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", rank))
        local_world = _lead_int(env.get("LOCAL_WORLD_SIZE")) or world
    elif "SLURM_PROCID" in env:
        launcher, rank = "slurm", int(env["SLURM_PROCID"])
        world = int(env.get("SLURM_NTASKS") or env.get("SLURM_NPROCS") or 1)
        local = int(env.get("SLURM_LOCALID", 0))
        local_world = (_lead_int(env.get("SLURM_NTASKS_PER_NODE"))
                       or _lead_int(env.get("SLURM_TASKS_PER_NODE")) or world)
    elif "OMPI_COMM_WORLD_RANK" in env:
        launcher, rank = "mpi", int(env["OMPI_COMM_WORLD_RANK"])
        world = int(env.get("OMPI_COMM_WORLD_SIZE", 1))
        local = int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", 0))
        local_world = int(env.get("OMPI_COMM_WORLD_LOCAL_SIZE", world))
    else:
        launcher, rank, world, local, local_world = "single", 0, 1, 0, 1
    addr = env.get("MASTER_ADDR")
    if not addr and env.get("SLURM_JOB_NODELIST" if "SLURM_JOB_NODELIST" in env else "SLURM_NODELIST"):
        addr = slurm_first_host(env.get("SLURM_JOB_NODELIST") or env["SLURM_NODELIST"])
    port = env.get("MASTER_PORT")
    if not port:  # one port per Slurm job, so two jobs sharing a node do not collide
        job = _lead_int(env.get("SLURM_JOB_ID"))
        port = str(20000 + job % 20000) if job is not None else "29500"
    return {"launcher": launcher, "rank": rank, "world_size": world, "local_rank": local,
            "local_world_size": max(1, local_world), "master_addr": addr or "127.0.0.1",
            "master_port": int(port)}


# --- timing -----------------------------------------------------------------------------------


class Timer:
    """Times `fn` per iteration: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, torch, device) -> None:
        self.torch, self.gpu = torch, device.type == "cuda"

    def run(self, fn, warmup: int, iters: int, before=None) -> list[float]:
        torch = self.torch
        for _ in range(warmup):
            if before:
                before()
            fn()
        if not self.gpu:
            out = []
            for _ in range(iters):
                if before:
                    before()
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
            return out
        torch.cuda.synchronize()
        pairs = []
        for _ in range(iters):
            if before:
                before()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            pairs.append((start, end))
        torch.cuda.synchronize()
        return [s.elapsed_time(e) / 1000 for s, e in pairs]

    def run_for(self, fn, warmup: int, seconds: float, before=None, batch: int = 10,
                clock=time.monotonic) -> list[float]:
        """Times `fn` per iteration for at least `seconds` of wall time after the warm-up (a
        sustained run, past the boost-clock burst of the first iterations), `batch` iterations
        between looks at the clock."""
        self.run(fn, warmup, 0, before)
        out: list[float] = []
        t0 = clock()
        while not out or clock() - t0 < seconds:
            out += self.run(fn, 0, batch, before)
        return out


# --- what the GPU does while it runs: SM clocks and throttle reasons ---------------------------


def throttle_names(mask: int) -> list[str]:
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


def parse_smi_sample(line: str) -> tuple[float, int] | None:
    """One line of `nvidia-smi --query-gpu=clocks.sm,clocks_throttle_reasons.active
    --format=csv,noheader,nounits`: '1980, 0x0000000000000004' -> (1980.0, 4)."""
    parts = [x.strip() for x in line.split(",")]
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), int(parts[1], 16)
    except ValueError:
        return None


def nvml_reader(bus_id: str):
    """A () -> (SM MHz, throttle mask) reader through NVML (pynvml), or None without it."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus_id)
    except Exception:  # noqa: BLE001 - NVML missing or the GPU not found: try nvidia-smi
        return None
    reasons = (getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
               or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons)
    return lambda: (float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)), int(reasons(handle)))


def smi_reader(bus_id: str):
    """A () -> (SM MHz, throttle mask) reader through nvidia-smi (-i takes a PCI bus id, so
    CUDA_VISIBLE_DEVICES does not matter), or None when nvidia-smi does not answer."""
    argv = ["nvidia-smi", "-i", bus_id, "--query-gpu=clocks.sm,clocks_throttle_reasons.active",
            "--format=csv,noheader,nounits"]

    def read():
        out = _cmd(argv)
        return parse_smi_sample(out.splitlines()[0]) if out else None
    return read if read() is not None else None


class ClockSampler:
    """Samples one GPU's SM clock and throttle reasons in a thread while a test runs."""

    def __init__(self, bus_id: str | None, interval: float = SAMPLE_INTERVAL_S, readers=None) -> None:
        self.interval, self.samples, self.source, self.why = interval, [], None, ""
        self.read = None
        if bus_id is None:
            self.why = "no PCI bus id for this GPU (torch too old to report it)"
            return
        for name, make in readers or (("nvml", nvml_reader), ("nvidia-smi", smi_reader)):
            self.read = make(bus_id)
            if self.read is not None:
                self.source = name
                break
        if self.read is None:
            self.why = "neither NVML (pynvml) nor nvidia-smi answered"

    def __enter__(self) -> ClockSampler:
        import threading

        self._stop = threading.Event()
        self._thread = None
        if self.read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                break

    def sample(self) -> None:
        try:
            got = self.read()
        except Exception:  # noqa: BLE001 - one failed read is a missing sample, not a failed test
            got = None
        if got is not None:
            self.samples.append(got)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"source": self.source, "samples": 0, "skipped": self.why or "no sample taken"}
        mhz = [m for m, _ in self.samples]
        seen: dict[str, int] = {}
        for _, mask in self.samples:
            for name in throttle_names(mask):
                seen[name] = seen.get(name, 0) + 1
        return {"source": self.source, "samples": len(self.samples), "interval_s": self.interval,
                "sm_clock_mhz": {"min": min(mhz), "median": statistics.median(mhz), "max": max(mhz)},
                "throttle_reasons": seen}


# --- where a GPU sits: PCI bus id, NUMA node, CPUs --------------------------------------------


def pci_bus_id(props) -> str | None:
    """'0000:19:00.0' from torch's device properties (pci_domain_id/pci_bus_id/pci_device_id)."""
    dom, bus, dev = (getattr(props, a, None) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id"))
    if not all(isinstance(x, int) for x in (dom, bus, dev)):
        return None
    return f"{dom:04x}:{bus:02x}:{dev:02x}.0"


def parse_cpulist(text: str) -> set[int]:
    """'0-3,8,10-11' (the kernel's cpulist format) -> {0, 1, 2, 3, 8, 10, 11}."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def numa_cpus(bus_id: str | None, sysfs: str = "/sys") -> tuple[int | None, set[int]]:
    """(NUMA node, its CPUs) of a PCI device: /sys/bus/pci/devices/<bus>/numa_node (-1: none)
    and /sys/devices/system/node/node<N>/cpulist (kernel ABI, Documentation/ABI/testing/sysfs-bus-pci)."""
    if bus_id is None:
        return None, set()
    try:
        with open(f"{sysfs}/bus/pci/devices/{bus_id.lower()}/numa_node", encoding="ascii") as fh:
            node = int(fh.read().strip())
        if node < 0:
            return None, set()
        with open(f"{sysfs}/devices/system/node/node{node}/cpulist", encoding="ascii") as fh:
            return node, parse_cpulist(fh.read())
    except (OSError, ValueError):
        return None, set()


class bound_to:  # noqa: N801 - used as a context manager, like a function
    """Run the calling thread on `cpus` (os.sched_setaffinity), then restore its affinity."""

    def __init__(self, cpus: set[int]) -> None:
        self.cpus, self.old = cpus, None

    def __enter__(self) -> bool:
        if not self.cpus or not hasattr(os, "sched_setaffinity"):
            return False
        self.old = os.sched_getaffinity(0)
        usable = self.cpus & self.old or self.cpus
        try:
            os.sched_setaffinity(0, usable)
        except OSError:
            self.old = None
            return False
        return True

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            os.sched_setaffinity(0, self.old)


# --- the measurements -------------------------------------------------------------------------

_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _fp8_dtype(torch):
    # MI300 (gfx942) uses the "fnuz" variant; NVIDIA and newer AMD parts the OCP e4m3fn.
    if getattr(torch.version, "hip", None):
        arch = torch.cuda.get_device_properties(0).gcnArchName
        if "gfx94" in arch:
            return torch.float8_e4m3fnuz
    return torch.float8_e4m3fn


def fp8_unsupported(torch, device) -> str | None:
    """Why FP8 GEMM cannot run here, or None."""
    if device.type != "cuda":
        return "fp8 GEMM needs a GPU"
    if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
        return f"torch {torch.__version__} has no torch._scaled_mm / float8 types"
    if getattr(torch.version, "hip", None):
        # FP8 matrix cores: CDNA3 (gfx942, MI300) and CDNA4 (gfx950, MI350) only (AMD ROCm
        # "Data types and precision support" table); MI200 (gfx90a) and older have none.
        arch = torch.cuda.get_device_properties(device).gcnArchName
        if not re.match(r"gfx9[45]", arch):
            return f"fp8 on ROCm needs gfx94x/gfx95x (MI300/MI350); this GPU is {arch.split(':')[0]}"
        return None
    if torch.cuda.get_device_capability(device) < (8, 9):
        return "fp8 tensor cores need compute capability 8.9+ (Ada/Hopper/Blackwell)"
    return None


def bench_gemm(torch, device, timer: Timer, dtype: str, n: int, warmup: int, iters: int,
               seconds: float = 0.0, sampler: ClockSampler | None = None) -> dict:
    """Dense n x n x n GEMM; TFLOPS = 2 n^3 / median time. With `seconds`, it runs that long
    (sustained, not a boost-clock burst) while `sampler` records SM clocks and throttle
    reasons; tflops_first/tflops_last (median of the first and last tenth) show a decline."""
    rec: dict[str, Any] = {"dtype": dtype, "m": n, "n": n, "k": n, "warmup": warmup, "iters": iters}
    if dtype == "fp8":
        why = fp8_unsupported(torch, device)
        if why:
            return rec | {"skipped": why}
        f8 = _fp8_dtype(torch)
        a = torch.randn(n, n, device=device, dtype=torch.bfloat16).to(f8)
        b = torch.randn(n, n, device=device, dtype=torch.bfloat16).to(f8)  # stored N x K
        scale = torch.tensor(1.0, device=device)

        def fn():
            return torch._scaled_mm(a, b.t(), scale_a=scale, scale_b=scale, out_dtype=torch.bfloat16)
    elif dtype in _DTYPES:
        dt = getattr(torch, _DTYPES[dtype])
        a = torch.randn(n, n, device=device, dtype=dt)
        b = torch.randn(n, n, device=device, dtype=dt).t()  # B as (N x K).T, as MAMF does
        c = torch.empty(n, n, device=device, dtype=dt)

        def fn():
            return torch.mm(a, b, out=c)
    else:
        return rec | {"skipped": f"unknown dtype {dtype}"}
    flush = None
    if device.type == "cuda":
        buf = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device=device)
        flush = buf.zero_
    flops = 2.0 * n * n * n
    if seconds > 0:
        began = time.monotonic()
        if sampler is None:  # the CPU: no clocks to sample
            times = timer.run_for(fn, warmup, seconds, before=flush)
        else:
            with sampler:
                times = timer.run_for(fn, warmup, seconds, before=flush)
            rec["clocks"] = sampler.summary()
        tenth = max(1, len(times) // 10)
        # seconds: how long the sustained run lasted (wall time, cache flushes included: what
        # heats the GPU); gemm_seconds: the GEMMs' own time, which the TFLOPS come from.
        rec |= {"iters": len(times), "seconds": round(time.monotonic() - began, 3),
                "gemm_seconds": round(sum(times), 3),
                "tflops_first": flops / statistics.median(times[:tenth]) / 1e12,
                "tflops_last": flops / statistics.median(times[-tenth:]) / 1e12}
    else:
        times = timer.run(fn, warmup, iters, before=flush)
    med = statistics.median(times)
    return rec | {"time_ms_median": med * 1e3, "tflops": flops / med / 1e12,
                  "tflops_max": flops / min(times) / 1e12}


def bench_copy(torch, device, timer: Timer, nbytes: int, warmup: int, iters: int) -> dict:
    """Device memory copy dst <- src: bytes read + written (2 x size) / median time."""
    elems = max(1, nbytes // 4)
    src = torch.ones(elems, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    times = timer.run(lambda: dst.copy_(src), warmup, iters)
    med = statistics.median(times)
    return {"bytes": elems * 4, "moved_bytes": 2 * elems * 4, "iters": iters,
            "time_ms_median": med * 1e3, "gbps": 2 * elems * 4 / med / 1e9}


def bench_host(torch, device, timer: Timer, nbytes: int, warmup: int, iters: int,
               bus_id: str | None = None, sysfs: str = "/sys") -> dict:
    """Pinned host <-> device copies (non_blocking), one direction at a time, from the CPUs
    and memory of the GPU's own NUMA node: the thread is bound to that node's CPUs before the
    pinned buffer is allocated, so its pages land there (first touch). The caller lets one
    local rank at a time run this (the catalog figure is for one GPU's link, not a shared one)."""
    node, cpus = numa_cpus(bus_id, sysfs)
    with bound_to(cpus) as bound:
        host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        dev = torch.empty(nbytes, dtype=torch.uint8, device=device)
        out = {}
        for name, fn in (("h2d", lambda: dev.copy_(host, non_blocking=True)),
                         ("d2h", lambda: host.copy_(dev, non_blocking=True))):
            med = statistics.median(timer.run(fn, warmup, iters))
            out[name] = {"bytes": nbytes, "iters": iters, "time_ms_median": med * 1e3,
                         "gbps": nbytes / med / 1e9, "numa_node": node,
                         "bound": bool(bound), "exclusive": True}
    return out


def sweep(lo: int, hi: int, factor: int) -> list[int]:
    sizes, size = [], max(4, lo)
    while size <= hi:
        sizes.append(size - size % 4)
        size *= factor
    return sizes


def bench_all_reduce(torch, dist, device, timer: Timer, args, world: int, rank: int) -> dict:
    """all_reduce(SUM) of float32 buffers over a size sweep, then a correctness check.

    Out of place, as nccl-tests reports: the input buffer is never written; torch.distributed's
    all_reduce is in-place only, so each iteration first copies the input into the output
    buffer, outside the timed window (the CUDA start event is recorded after the copy on the
    same stream), then reduces the output. One barrier per size, none per iteration: the
    iterations run back to back and the time is their mean (nccl-tests: total / iters)."""
    sizes = sweep(args.min_bytes, args.max_bytes, args.step_factor)
    src = torch.ones(sizes[-1] // 4, dtype=torch.float32, device=device)
    buf = torch.empty_like(src)
    factor = 2 * (world - 1) / world
    barrier = _barrier(torch, dist, device)
    rows = []
    for size in sizes:
        view, inp = buf[: size // 4], src[: size // 4]
        barrier()
        times = timer.run(lambda v=view: dist.all_reduce(v), args.warmup, args.iters,
                          before=lambda v=view, i=inp: v.copy_(i))
        # Mean over ranks of each rank's mean time (nccl-tests -a 1 averages across ranks).
        t = torch.tensor([statistics.fmean(times)], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        sec = float(t.item()) / world
        algbw = size / sec / 1e9
        rows.append({"size_bytes": size, "count": size // 4, "time_us": sec * 1e6,
                     "algbw_gbps": algbw, "busbw_gbps": algbw * factor})
    # Correctness: every rank contributes rank+1, so each element must read n(n+1)/2.
    check = buf[: min(sizes[-1], 64 << 20) // 4]
    check.fill_(float(rank + 1))
    dist.all_reduce(check)
    want = world * (world + 1) / 2
    wrong = int((check != want).sum().item())
    checksum = float(check.double().sum().item())
    del buf, src
    return {"dtype": "float32", "op": "sum", "ranks": world, "busbw_factor": factor,
            "out_of_place": True, "timing": "mean of back-to-back iterations, one barrier per size",
            "warmup": args.warmup, "iters": args.iters, "rows": rows,
            "check": {"elements": check.numel(), "expected_value": want, "wrong": wrong,
                      "checksum": checksum}}


def _barrier(torch, dist, device):
    if device.type == "cuda" and dist.get_backend() == "nccl":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return lambda: dist.barrier(device_ids=[idx])
    return dist.barrier


# --- facts about the node ---------------------------------------------------------------------


def _cmd(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def driver_version() -> str | None:
    out = _cmd(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    if out:
        return out.splitlines()[0].strip()
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
            m = re.search(r"Kernel Module\s+(\S+)", fh.read())
            return m.group(1) if m else None
    except OSError:
        return None


def versions(torch, mode: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None),
        "nccl": None, "driver": None,
    }
    if mode == "gpu":
        try:
            ver = torch.cuda.nccl.version()
            out["nccl"] = ".".join(str(v) for v in ver) if isinstance(ver, tuple) else str(ver)
        except Exception:  # noqa: BLE001 - a build without NCCL: leave it None
            pass
        out["driver"] = driver_version()
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(torch, device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"device": "cpu", "device_name": _cpu_name(), "threads": torch.get_num_threads()}
    props = torch.cuda.get_device_properties(device)
    info = {"device": f"cuda:{device.index}", "device_name": props.name,
            "memory_gb": round(props.total_memory / 1e9, 1),
            "capability": f"{props.major}.{props.minor}"}
    if getattr(props, "uuid", None) is not None:
        info["uuid"] = str(props.uuid)
    bus = pci_bus_id(props)
    if bus:
        info["pci_bus_id"] = bus
    return info


def tf32_settings(torch) -> dict[str, Any]:
    """Whether FP32 matmuls may run as TF32 (changes what an fp32 GEMM measures)."""
    out: dict[str, Any] = {}
    for key, get in (("cuda_matmul_allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
                     ("cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
                     ("float32_matmul_precision", torch.get_float32_matmul_precision)):
        try:
            out[key] = get()
        except (AttributeError, RuntimeError):
            out[key] = None
    return out


# --- one rank's run ---------------------------------------------------------------------------


def _guard(errors: list[str], what: str, fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - record and go on: one broken test must not hide the others
        errors.append(f"{what}: {type(exc).__name__}: {exc}")
        return None


def pick_gpu(torch, env: dict[str, Any]) -> int:
    """This rank's CUDA device index. GPUs are counted by torch (torch.cuda.device_count()
    honours CUDA_VISIBLE_DEVICES, which nvidia-smi -L ignores). One visible GPU per rank (Slurm
    --gpus-per-task, --gpu-bind) is device 0; otherwise local rank i takes GPU i, and more local
    ranks than GPUs is refused: ranks sharing a GPU would each report half of it."""
    if not torch.cuda.is_available():
        raise RuntimeError("--mode gpu but torch sees no GPU (torch.cuda.is_available() is False)")
    count, local, per_node = torch.cuda.device_count(), env["local_rank"], env["local_world_size"]
    if count == 1:
        return 0
    if per_node > count or local >= count:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
        raise RuntimeError(
            f"{per_node} ranks on this node (local rank {local}) but torch sees {count} GPUs "
            f"(CUDA_VISIBLE_DEVICES={visible}): ranks would share a GPU and halve each other's "
            f"figures; start at most {count} ranks per node (e.g. srun --ntasks-per-node={count})")
    return local


def shared_gpus(ranks: list[dict[str, Any]]) -> list[str]:
    """Ranks that ended up on the same GPU of the same host (by PCI bus id or UUID)."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for r in ranks:
        gid = r.get("pci_bus_id") or r.get("uuid")
        if not gid:
            continue
        key = (r["host"], gid)
        if key in seen:
            out.append(f"ranks {seen[key]} and {r['rank']} share GPU {gid} on {r['host']}")
        else:
            seen[key] = r["rank"]
    return out


def run(torch, args, env: dict[str, Any]) -> dict[str, Any]:
    """Everything one rank measures; rank 0 returns the whole document."""
    started = datetime.now(UTC)
    rank, world = env["rank"], env["world_size"]
    if args.mode == "gpu":
        device = torch.device("cuda", pick_gpu(torch, env))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // env["local_world_size"]))
    backend = args.backend or ("nccl" if args.mode == "gpu" else "gloo")
    dist = None
    if world > 1:
        import datetime as _dt

        import torch.distributed as dist

        os.environ.setdefault("MASTER_ADDR", env["master_addr"])
        os.environ.setdefault("MASTER_PORT", str(env["master_port"]))
        kwargs = {"backend": backend, "init_method": "env://", "rank": rank, "world_size": world,
                  "timeout": _dt.timedelta(seconds=args.timeout)}
        try:  # binding the device up front (torch >= 2.3) lets NCCL set up eagerly
            dist.init_process_group(**kwargs, **({"device_id": device} if backend == "nccl" else {}))
        except TypeError:
            dist.init_process_group(**kwargs)
    timer = Timer(torch, device)
    errors: list[str] = []
    rec: dict[str, Any] = {"rank": rank, "local_rank": env["local_rank"], "host": socket.gethostname(),
                           **device_info(torch, device), "gemm": {}, "hbm": None, "h2d": None,
                           "d2h": None, "errors": errors}
    sync = (lambda: dist.barrier()) if dist else (lambda: None)
    if dist is not None and device.type == "cuda":  # one GPU per rank, checked across the job
        ids = [None] * world
        dist.all_gather_object(ids, {k: rec.get(k) for k in ("rank", "host", "pci_bus_id", "uuid")})
        shared = shared_gpus(ids)
        if shared:
            raise RuntimeError(f"{'; '.join(shared)}: each rank needs its own GPU")
    sync()
    bus = rec.get("pci_bus_id")
    if "gemm" in args.tests:
        for dt in args.dtypes:
            sampler = ClockSampler(bus) if device.type == "cuda" and args.gemm_seconds > 0 else None
            rec["gemm"][dt] = _guard(errors, f"gemm {dt}", lambda dt=dt, smp=sampler: bench_gemm(
                torch, device, timer, dt, args.gemm_size, args.warmup, args.iters,
                seconds=args.gemm_seconds, sampler=smp))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    sync()
    if "hbm" in args.tests:
        rec["hbm"] = _guard(errors, "hbm copy", lambda: bench_copy(
            torch, device, timer, args.hbm_bytes, args.warmup, args.iters))
    if "host" in args.tests and device.type == "cuda" and args.host_bytes > 0:
        host: dict[str, Any] = {}
        for turn in range(env["local_world_size"]):  # one local rank at a time per node
            sync()
            if env["local_rank"] == turn:
                host = _guard(errors, "host copy", lambda: bench_host(
                    torch, device, timer, args.host_bytes, args.warmup, args.iters, bus)) or {}
        rec["h2d"], rec["d2h"] = host.get("h2d"), host.get("d2h")
    if device.type == "cuda":
        torch.cuda.empty_cache()
    sync()
    all_reduce: dict[str, Any] | None = None
    if "all_reduce" in args.tests:
        if dist is None:
            all_reduce = {"skipped": "world size 1: no collective to measure"}
        else:
            all_reduce = bench_all_reduce(torch, dist, device, timer, args, world, rank)
    if all_reduce and "check" in all_reduce:
        rec["_check"] = all_reduce.pop("check")
    ranks = [rec]
    if dist is not None:
        ranks = [None] * world
        dist.all_gather_object(ranks, rec)
        dist.barrier()
        dist.destroy_process_group()
    if rank != 0:
        return {}
    checks = [r.pop("_check") for r in ranks if "_check" in r]
    if checks:
        all_reduce["check"] = {  # type: ignore[index]
            "elements": checks[0]["elements"], "expected_value": checks[0]["expected_value"],
            "wrong": sum(c["wrong"] for c in checks), "checksums": [c["checksum"] for c in checks]}
    return _document(torch, args, env, backend, started, ranks, all_reduce)


def _document(torch, args, env, backend, started, ranks, all_reduce) -> dict[str, Any]:
    finished = datetime.now(UTC)
    hosts = sorted({r["host"] for r in ranks})
    return {
        "schema": SCHEMA,
        "mode": args.mode,
        "backend": backend,
        "launcher": env["launcher"],
        "world_size": env["world_size"],
        "nodes": len(hosts),
        "hosts": hosts,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 3),
        "versions": versions(torch, args.mode),
        "settings": tf32_settings(torch),
        "config": {"tests": args.tests, "dtypes": args.dtypes, "gemm_size": args.gemm_size,
                   "gemm_seconds": args.gemm_seconds,
                   "hbm_bytes": args.hbm_bytes, "host_bytes": args.host_bytes,
                   "min_bytes": args.min_bytes, "max_bytes": args.max_bytes,
                   "step_factor": args.step_factor, "warmup": args.warmup, "iters": args.iters},
        "env": {k: v for k, v in sorted(os.environ.items())
                if k.startswith(("NCCL_", "CUDA_VISIBLE", "HIP_VISIBLE", "TORCH_NCCL"))},
        "ranks": ranks,
        "all_reduce": all_reduce,
        "errors": [f"rank {r['rank']}: {e}" for r in ranks for e in r.get("errors", [])],
    }


def _cpu_worker():
    """cpu_worker beside this file: as part of the package, or copied next to it."""
    try:
        from . import cpu_worker
    except ImportError:
        import cpu_worker  # run as a plain file: its folder is on sys.path
    return cpu_worker


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch = None
    if args.backend != "tcp":
        try:
            import torch
        except ImportError:
            if args.mode != "cpu":
                print(NO_TORCH.format(exe=sys.executable), file=sys.stderr)
                return EXIT_NO_TORCH
    if args.backend == "tcp" and args.mode != "cpu":
        print("error: --backend tcp is the CPU path; use it with --mode cpu", file=sys.stderr)
        return EXIT_FAIL
    env = dist_env()
    try:
        if torch is None:  # --mode cpu without torch: the standard-library path
            doc = _cpu_worker().run(args, env, SCHEMA)
        else:
            doc = run(torch, args, env)
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback, in the job log
        print(f"error: rank {env['rank']}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if env["rank"] != 0:
        return EXIT_OK
    text = json.dumps(doc, indent=2) + "\n"
    if args.out:
        tmp = f"{args.out}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, args.out)
    else:
        sys.stdout.write(text)
    return EXIT_FAIL if doc.get("errors") else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
