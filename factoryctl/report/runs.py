"""Read what the verify stage left in the workspace: host checks and benchmark results.

The workspace of a factory is `.factory/<metadata.name>/` beside it (Workspace.find, which
reads without creating it); each verify run writes one folder
`runs/<run-id>/`, and run ids sort by time (UTC timestamps such as 20260501T120000Z), so
the last folder in name order is the latest run. The files read here, all JSON objects:

`runs/<id>/bench*.json`
    {"inference": [{"deployment": "chat",          # inference[].name
                    "tokens_per_second": 2450.0,   # generated tokens/s of ONE replica
                    "gpus": 4,                     # optional: GPUs that replica used (TP x PP)
                    "tool": "vllm bench serve",    # optional, free text
                    "concurrency": 64}],           # optional
     "nccl": [<one result as `factoryctl bench parse --format json` prints it, or any object
               with "rows": [{"size_bytes": int, "busbw_gbps": float}] (the built-in sweep)>],
     "measurements": [<judged results as `factoryctl bench judge --format json` gives them:
                       name, value, unit, expected, fraction, verdict, reason>]}
`runs/<id>/verify*.json`
    {"checks": [{"host": "gpu01", "check": "gpu-count",
                 "status": "passed" | "failed" | "skipped" | "error", "detail": "8 of 8"}]}

Either key may be absent. A file that is not valid JSON, or an entry of the wrong shape, is
skipped and named in `problems`; reading never raises on bad content.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import ReadRefused, read_bytes
from .bom import bom
from .cost import Cost, Measured, cost

STATUSES = ("passed", "failed", "skipped", "error")
VERDICTS = ("pass", "warn", "fail", "skip")
# A run record is a few kB per host; anything larger is not one of ours.
MAX_RUN_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class HostCheck:
    host: str
    check: str
    status: str
    detail: str = ""


@dataclass
class Run:
    id: str
    path: Path
    checks: list[HostCheck] = field(default_factory=list)
    nccl: list[dict[str, Any]] = field(default_factory=list)
    inference: list[Measured] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.checks or self.nccl or self.inference or self.measurements)


def _load(path: Path, problems: list[str]) -> dict | None:
    try:
        doc = json.loads(read_bytes(path, MAX_RUN_BYTES))
    except ReadRefused as e:
        problems.append(str(e))
        return None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: nesting
        problems.append(f"{path.name}: not readable JSON ({type(e).__name__})")
        return None
    if not isinstance(doc, dict):
        problems.append(f"{path.name}: expected a JSON object")
        return None
    return doc


def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _inference(path: Path, run: Run, items: Any) -> None:
    if not isinstance(items, list):
        run.problems.append(f"{path.name}: 'inference' is not a list")
        return
    for i, it in enumerate(items):
        ok = isinstance(it, dict) and isinstance(it.get("deployment"), str) and _positive(it.get("tokens_per_second"))
        gpus = it.get("gpus") if isinstance(it, dict) else None
        if not ok or (gpus is not None and not (isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > 0)):
            run.problems.append(f"{path.name}: inference[{i}] needs deployment (text), tokens_per_second (> 0), "
                                "optional gpus (integer > 0)")
            continue
        run.inference.append(Measured(it["deployment"], float(it["tokens_per_second"]), gpus, str(path), run.id))


def _checks(path: Path, run: Run, items: Any) -> None:
    if not isinstance(items, list):
        run.problems.append(f"{path.name}: 'checks' is not a list")
        return
    for i, it in enumerate(items):
        if not (isinstance(it, dict) and isinstance(it.get("host"), str) and isinstance(it.get("check"), str)
                and it.get("status") in STATUSES):
            run.problems.append(f"{path.name}: checks[{i}] needs host, check and status ({', '.join(STATUSES)})")
            continue
        run.checks.append(HostCheck(it["host"], it["check"], it["status"], str(it.get("detail", ""))))


def read_run(path: Path) -> Run:
    run = Run(path.name, path)
    for f in sorted(path.glob("bench*.json")):
        doc = _load(f, run.problems)
        if doc is None:
            continue
        if "inference" in doc:
            _inference(f, run, doc["inference"])
        nccl = doc.get("nccl", [])
        if isinstance(nccl, list):
            run.nccl.extend(x for x in nccl if isinstance(x, dict) and isinstance(x.get("rows"), list))
        else:
            run.problems.append(f"{f.name}: 'nccl' is not a list")
        ms = doc.get("measurements", [])
        if isinstance(ms, list):
            run.measurements.extend(m for m in ms if isinstance(m, dict) and isinstance(m.get("name"), str)
                                    and m.get("verdict") in VERDICTS)
        else:
            run.problems.append(f"{f.name}: 'measurements' is not a list")
    for f in sorted(path.glob("verify*.json")):
        doc = _load(f, run.problems)
        if doc is not None and "checks" in doc:
            _checks(f, run, doc["checks"])
    return run


def runs(workspace: Path) -> list[Run]:
    """Every run folder, oldest first."""
    d = workspace / "runs"
    if not d.is_dir():
        return []
    return [read_run(p) for p in sorted(d.iterdir()) if p.is_dir()]


def latest_run(workspace: Path) -> Run | None:
    """The newest run that holds anything readable."""
    for run in reversed(runs(workspace)):
        if not run.empty:
            return run
    return None


def measured_throughput(workspace: Path) -> dict[str, Measured]:
    """Deployment name -> its newest measured tokens/s across all runs."""
    out: dict[str, Measured] = {}
    for run in runs(workspace):  # oldest first: newer runs overwrite
        for m in run.inference:
            out[m.deployment] = m
    return out


def site_cost(site, workspace: Path) -> Cost:
    """The cost of a site (`factoryctl cost`), with the newest tokens/s verify measured in
    `workspace` in place of the stated figures."""
    return cost(site, bom(site), measured_throughput(workspace))
