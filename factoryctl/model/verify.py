"""`verify:`: what the benchmark stage runs and how strictly it judges."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, field_validator

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


class ServingBench(Strict):
    """The serving load test of every inference deployment (`verify --bench`): synthetic
    prompts of input_len tokens, output_len tokens each (ignore_eos), `prompts` requests at each
    concurrency level, closed loop, after `warmup` requests."""

    concurrency: list[limits.whole(limits.SEQUENCES)] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1, max_length=16)
    prompts: limits.whole(limits.SEQUENCES) = 64
    input_len: limits.whole(limits.CONTEXT) = 32
    output_len: limits.whole(limits.CONTEXT) = 64
    warmup: limits.whole(limits.SEQUENCES, ge=0) = 2


class Benchmarks(Strict):
    nccl: NcclBench | None = None
    gemm: GemmBench | None = None
    hbm: bool = True
    serving: ServingBench = Field(default_factory=ServingBench)


class Thresholds(Strict):
    # Fractions of what healthy hardware of the same shape reaches (bench/expect.py), not of
    # the peak: below 0.92 fails, so a GPU 10 % slow or one rail of 8 down (7/8) fails; the
    # warn band up to 0.96 is where Azure's HPC health checks put their floors (NCCL 460 of a
    # typical ~479 GB/s on H100, Azure/azurehpc-health-checks conf/nd96isr_h100_v5.conf).
    nccl_busbw_fraction: Fraction = 0.92
    gemm_fraction: Fraction = 0.92
    hbm_fraction: Fraction = 0.92
    warn_margin: Fraction = 0.04  # at or above the threshold but within this margin of it: warn
    # Serving SLOs judged by the load test (goodput: requests inside every limit); none: measure only.
    ttft_p99_ms: limits.amount(limits.LATENCY_MS, gt=0) | None = None
    tpot_p99_ms: limits.amount(limits.LATENCY_MS, gt=0) | None = None
    # Host health (verify's disk-space and time-sync checks, the Slurm HealthCheckProgram).
    disk_free_fraction: Fraction = 0.05
    clock_offset_ms: Annotated[float, Field(gt=0, le=60_000)] = 100.0


class Verify(Strict):
    benchmarks: Benchmarks = Field(default_factory=Benchmarks)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    # slurm.conf(5) HealthCheckInterval: seconds between runs of HealthCheckProgram; 0 disables it.
    health_check_interval: Annotated[int, Field(ge=0, le=86_400)] = 300
    # GPU/NIC health thresholds of the gpu-health check and `verify --diag`, by the names of
    # factoryctl/health/thresholds.yaml (read as data: the health package comes later in the pipeline).
    health: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)

    @field_validator("health")
    @classmethod
    def _known_health_thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        known = health_threshold_names()
        for key in v:
            if key not in known:
                near = difflib.get_close_matches(key, sorted(known), n=1)
                raise ValueError(f"{key!r} is no health threshold"
                                 + (f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(known))}"))
        return v


@cache
def health_threshold_names() -> frozenset[str]:
    path = Path(__file__).resolve().parents[1] / "health" / "thresholds.yaml"
    return frozenset(yaml.safe_load(path.read_text(encoding="utf-8"))["thresholds"])
