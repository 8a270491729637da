"""What the benchmark stage ran and how it was judged: the record the Slurm and Kubernetes stages
return, verify shows and the report plots."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BenchResult:
    """What the benchmark stage ran and how it was judged."""

    path: str  # nccl-tests | built-in (cpu, tcp) | built-in (gpu) | none
    scheduler: str = ""  # slurm | ""
    commands: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    nccl: list[dict[str, Any]] = field(default_factory=list)  # curves for the report's plot
    measurements: list[dict[str, Any]] = field(default_factory=list)  # judge.Measurement dicts
    documents: list[dict[str, Any]] = field(default_factory=list)  # built-in worker results
    errors: list[str] = field(default_factory=list)
    # bench/localise.py: suspects (host -> why), slow_pairs, bisect; empty when it did not run
    localisation: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""  # why nothing ran
    duration_s: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(m.get("verdict") == "fail" for m in self.measurements)

    @property
    def verdict(self) -> str:
        if self.errors:
            return "fail"
        for v in ("fail", "warn", "pass"):
            if any(m.get("verdict") == v for m in self.measurements):
                return v
        return "skip"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"verdict": self.verdict}
