"""`verify:`: what the benchmark stage runs and how strictly it judges."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from . import limits
from .common import Fraction, Size, Strict

Collective = Literal["all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv", "broadcast", "reduce"]


class NcclBench(Strict):
    collectives: list[Collective] = Field(default_factory=lambda: ["all_reduce"])
    min_bytes: Size = "8M"
    max_bytes: Size = "8G"
    step_factor: limits.whole(limits.STEP_FACTOR, ge=2) = 2


class GemmBench(Strict):
    dtype: Literal["bf16", "fp16", "fp8", "fp32"] = "bf16"
    size: limits.whole(limits.GEMM_SIZE, ge=256) = 8192


class Benchmarks(Strict):
    nccl: NcclBench | None = None
    gemm: GemmBench | None = None
    hbm: bool = True


class Thresholds(Strict):
    nccl_busbw_fraction: Fraction = 0.8
    gemm_fraction: Fraction = 0.7
    hbm_fraction: Fraction = 0.8
    warn_margin: Fraction = 0.1  # at or above the threshold but within this margin of it: warn
    # Host health (verify's disk-space and time-sync checks, the Slurm HealthCheckProgram).
    disk_free_fraction: Fraction = 0.05
    clock_offset_ms: Annotated[float, Field(gt=0, le=60_000)] = 100.0


class Verify(Strict):
    benchmarks: Benchmarks = Field(default_factory=Benchmarks)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    # slurm.conf(5) HealthCheckInterval: seconds between runs of HealthCheckProgram; 0 disables it.
    health_check_interval: Annotated[int, Field(ge=0, le=86_400)] = 300
