"""The built-in benchmark's result document, and a local multi-process launcher for it.

The measuring happens in :mod:`factoryctl.bench.fallback_worker` (PyTorch, one process per
rank). This module needs no torch: it reads and checks the worker's JSON and starts workers on
this machine the way torchrun would (RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT).

Schema ``factoryctl.bench.fallback/v1`` (units: GB/s = 1e9 B/s, TFLOPS = 1e12 FLOP/s)::

    schema, mode (gpu|cpu), backend (nccl|gloo), launcher (env|slurm|mpi|single),
    world_size, nodes, hosts [..], started, finished (ISO 8601 UTC), duration_s,
    versions {python, torch, cuda, hip, nccl, driver}   (null where absent)
    settings {cuda_matmul_allow_tf32, cudnn_allow_tf32, float32_matmul_precision}
    config {tests, dtypes, gemm_size, gemm_seconds, hbm_bytes, host_bytes, min_bytes, max_bytes,
            step_factor, warmup, iters}
    env {NCCL_*, CUDA_VISIBLE_DEVICES, ...}             (as the ranks saw them)
    ranks [{rank, local_rank, host, device, device_name, [memory_gb, capability, uuid, pci_bus_id],
            gemm {dtype: {dtype, m, n, k, warmup, iters, time_ms_median, tflops, tflops_max,
                          [seconds, tflops_first, tflops_last,
                           clocks {source, samples, interval_s, sm_clock_mhz {min, median, max},
                                   throttle_reasons {name: samples}} | {source, samples, skipped}]}
                         | {..., skipped}},
            hbm {bytes, moved_bytes, iters, time_ms_median, gbps} | null,
            h2d / d2h {bytes, iters, time_ms_median, gbps, numa_node, bound, exclusive} | null,
            errors [..]}]
    all_reduce {dtype, op, ranks, busbw_factor, out_of_place, timing, warmup, iters,
                rows [{size_bytes, count, time_us, algbw_gbps, busbw_gbps}],
                check {elements, expected_value, wrong, checksums [per rank]}}
               | {skipped} | null
    errors [..]                                          (every rank's, prefixed "rank N:")
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engines.toolpath import child_env
from .fallback_worker import SCHEMA

__all__ = ["SCHEMA", "FallbackResult", "LocalRun", "is_fallback", "load", "run_local", "torch_available"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Gemm(_Open):
    dtype: str
    m: int = 0
    n: int = 0
    k: int = 0
    iters: int = 0
    time_ms_median: float | None = None
    tflops: float | None = None
    tflops_max: float | None = None
    seconds: float | None = None  # a sustained run's length
    tflops_first: float | None = None
    tflops_last: float | None = None
    clocks: dict[str, Any] | None = None  # SM clocks and throttle reasons sampled while it ran
    skipped: str | None = None


class Copy(_Open):
    bytes: int = 0
    iters: int = 0
    time_ms_median: float | None = None
    gbps: float


class RankRecord(_Open):
    rank: int
    local_rank: int = 0
    host: str = ""
    device: str = ""
    device_name: str = ""
    gemm: dict[str, Gemm | None] = Field(default_factory=dict)
    hbm: Copy | None = None
    h2d: Copy | None = None
    d2h: Copy | None = None
    errors: list[str] = Field(default_factory=list)


class SweepRow(_Open):
    size_bytes: int
    count: int = 0
    time_us: float
    algbw_gbps: float
    busbw_gbps: float


class Check(_Open):
    elements: int = 0
    expected_value: float = 0.0
    wrong: int = 0
    checksums: list[float] = Field(default_factory=list)


class AllReduce(_Open):
    dtype: str = "float32"
    ranks: int = 0
    rows: list[SweepRow] = Field(default_factory=list)
    check: Check | None = None
    skipped: str | None = None


class FallbackResult(_Open):
    schema_: str = Field(alias="schema")
    mode: Literal["gpu", "cpu"]
    backend: str = ""
    world_size: int = 1
    nodes: int = 1
    hosts: list[str] = Field(default_factory=list)
    versions: dict[str, str | None] = Field(default_factory=dict)
    ranks: list[RankRecord] = Field(default_factory=list)
    all_reduce: AllReduce | None = None
    errors: list[str] = Field(default_factory=list)
    source: str = ""  # the file it was read from (not part of the worker's output)

    @property
    def device_name(self) -> str | None:
        return next((r.device_name for r in self.ranks if r.device_name), None)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude={"source"})


def is_fallback(data: Any) -> bool:
    return isinstance(data, dict) and str(data.get("schema", "")).startswith("factoryctl.bench.fallback/")


def load(data: str | dict, source: str = "<json>") -> FallbackResult:
    """Validate a worker document; raises ValueError with the reason when it is not one."""
    if isinstance(data, str):
        data = json.loads(data)
    if not is_fallback(data):
        raise ValueError(f"{source}: not a {SCHEMA} document")
    if data["schema"] != SCHEMA:
        raise ValueError(f"{source}: schema {data['schema']!r} is not {SCHEMA!r}")
    try:
        return FallbackResult.model_validate(data | {"source": source})
    except ValidationError as exc:
        raise ValueError(f"{source}: malformed result: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


# --- local launcher ---------------------------------------------------------------------------


@dataclass
class LocalRun:
    returncode: int  # the worst rank's exit status (124 on timeout)
    result: FallbackResult | None
    stderr: str  # every rank's stderr, each line prefixed "N: "
    command: list[str]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_local(mode: str = "cpu", world_size: int = 2, worker_args: list[str] | None = None,
              timeout: float = 600, python: str | None = None) -> LocalRun:
    """Start `world_size` worker processes on this machine (the torchrun environment contract)
    and return rank 0's document. Each process is its own session so a timeout ends all of it."""
    world_size = max(1, world_size)
    with tempfile.TemporaryDirectory(prefix="factoryctl-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [python or sys.executable, "-m", "factoryctl.bench.fallback_worker", "--mode", mode,
               *(worker_args or [])]
        port = _free_port()
        procs, logs = [], []
        for rank in range(world_size):
            env = child_env() | {  # factoryctl's bin first, as for every child (engines/toolpath.py)
                "RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            }
            log = open(Path(tmp) / f"rank{rank}.err", "w+", encoding="utf-8")  # noqa: SIM115
            logs.append(log)
            argv = cmd + (["--out", str(out)] if rank == 0 else [])
            procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log,
                                          start_new_session=True))
        codes = _wait(procs, timeout)
        stderr = []
        for rank, log in enumerate(logs):
            log.seek(0)
            stderr += [f"{rank}: {line.rstrip()}" for line in log if line.strip()]
            log.close()
        result = None
        if out.exists():
            try:
                result = load(out.read_text(encoding="utf-8"), source=f"run-local ({mode}, {world_size} ranks)")
            except ValueError as exc:
                stderr.append(f"error: {exc}")
        return LocalRun(max(codes), result, "\n".join(stderr), cmd)


def _wait(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    codes: list[int | None] = [None] * len(procs)
    while any(c is None for c in codes):
        for i, p in enumerate(procs):
            if codes[i] is None:
                codes[i] = p.poll()
                if codes[i] not in (None, 0):  # one rank failed: the others would wait on it
                    deadline = min(deadline, time.monotonic() + 10)
        if time.monotonic() > deadline:
            for i, p in enumerate(procs):
                if codes[i] is None:
                    _kill(p)
                    codes[i] = 124
            break
        time.sleep(0.05)
    return [c if c is not None else 124 for c in codes]


def _kill(proc: subprocess.Popen) -> None:
    try:  # the worker's own session: the process and anything it started
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
