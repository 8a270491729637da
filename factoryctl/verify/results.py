"""The result model of a verify run: host checks and the benchmark stage, read from what
pytest and the schedulers left behind; the one writer of a run folder (verify.json,
bench.json) and the one reader of run folders (read_run, runs, latest_run: what report and
cost show). writers.py only shows this model (console, JSON, JUnit).

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
`runs/<id>/serve.json` (`factoryctl bench serve URL --file FILE --deployment NAME`)
    {"schema": "factoryctl.serve/v1", "deployment": "chat", "recorded": "2026-05-01T12:00:00Z",
     "model": ..., "url": ..., "config": {...},
     "levels": [{"concurrency": 8, "output_tok_per_s": 812.5, "requests": 64, "errors": 0, ...}]}
    The deployment's tokens/s is the output tokens/s of the highest concurrency level that
    produced tokens: the most the server sustained in the sweep, the figure vLLM's
    `bench serve` reports as output token throughput (vLLM docs, "Benchmark CLI").
`runs/<id>/verify*.json`
    {"checks": [{"host": "gpu01", "check": "gpu-count",
                 "status": "passed" | "failed" | "skipped" | "error", "detail": "8 of 8"}],
     "quarantine": [{"scheduler": "slurm", "node": "gpu03", "action": "drained",  # with --quarantine
                     "reason": "factoryctl: disk-space", "detail": "was idle", "commands": [...]}]}

Either key may be absent. A file that is not valid JSON, or an entry of the wrong shape, is
skipped and named in `problems`; reading never raises on bad content.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..bench.results import BenchResult
from ..errors import ExitCode
from ..files import ReadRefused, read_bytes, read_text
from ..workspace import write_json

# One JSON line of ~1 kB per check and host: 256 MiB holds 100,000 hosts x 2,500 checks.
MAX_RESULTS_BYTES = 256 * 1024 * 1024
STATUSES = ("passed", "failed", "error", "skipped")
VERDICTS = ("pass", "warn", "fail", "skip")
# A run record is a few kB per host; anything larger is not one of ours.
MAX_RUN_BYTES = 64 * 1024 * 1024
_RANK = {"error": 0, "failed": 1, "skipped": 2, "passed": 3}


@dataclass
class CheckResult:
    host: str
    check: str
    status: str  # passed | failed | error | skipped
    detail: str = ""
    on: str = ""  # where its commands ran (a controller for scheduler views)
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyResult:
    """One verify run: the host checks (when they ran) and the benchmark figures (when the
    stage ran), and the runs/<id>/ folder they were written to."""

    site: str
    run_id: str
    connection: str
    checks: list[CheckResult] = field(default_factory=list)
    bench: BenchResult | None = None
    serving: Any = None  # verify.serving.ServingStage, when the benchmark stage load-tested deployments
    problems: list[str] = field(default_factory=list)  # the run itself went wrong somewhere
    started: str = ""
    finished: str = ""
    duration_s: float = 0.0
    host_checks: bool = True  # False: a benchmark-only run (`bench run`), no verify.json
    quarantine: list[dict] | None = None  # verify --quarantine: what was drained, resumed, left (quarantine.py)
    folder: Path | None = None  # runs/<id>/, once written

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    @property
    def failed(self) -> bool:
        return (any(c.status in ("failed", "error") for c in self.checks) or bool(self.problems)
                or bool(self.bench and self.bench.failed) or bool(self.serving and self.serving.failed))

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.FAILED if self.failed else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "run": self.run_id, "connection": self.connection,
                "started": self.started, "finished": self.finished, "duration_s": self.duration_s,
                "result": "failed" if self.failed else "passed", "summary": self.counts(),
                "checks": [c.to_dict() for c in self.checks],
                "bench": self.bench.to_dict() if self.bench else None,
                "serving": [o.to_dict() for o in self.serving.outcomes] if self.serving else [],
                "problems": self.problems,
                **({"quarantine": self.quarantine} if self.quarantine is not None else {})}


def write_run_folder(run: VerifyResult, folder: Path) -> list[Path]:
    """The one writer of a run's records, the shapes read_run reads (the module docstring
    defines them): verify.json (the host checks, when they ran) and bench.json (when
    the benchmark stage ran) into runs/<id>/."""
    doc = run.to_dict()
    bench = doc.pop("bench")
    paths = []
    if run.host_checks:
        paths.append(write_json(folder / "verify.json", doc))
    if run.bench is not None:
        paths.append(write_json(folder / "bench.json", bench))
    run.folder = folder
    return paths


def read_pytest_results(path: Path, expected: list[dict]) -> tuple[list[CheckResult], list[str]]:
    """One CheckResult per expected check, from the plugin's JSON lines; a check without any
    line (pytest stopped early, a host never answered) is an error saying so."""
    problems: list[str] = []
    by_key: dict[tuple[str, str], CheckResult] = {}
    try:
        lines = read_text(path, MAX_RESULTS_BYTES).splitlines() if path.exists() else []
    except ReadRefused as e:
        problems.append(str(e))
        lines = []
    for n, line in enumerate(lines, 1):
        try:
            d = json.loads(line)
        except ValueError:
            problems.append(f"{path.name}:{n}: not JSON")
            continue
        key = (d.get("host", ""), d.get("check", ""))
        res = CheckResult(key[0], key[1], d.get("status", "error"), d.get("detail", ""), d.get("on", ""),
                          float(d.get("duration") or 0.0))
        old = by_key.get(key)
        if old is None or _RANK[res.status] < _RANK[old.status]:  # a teardown error beats a pass
            if old is not None:
                res.duration_s += old.duration_s
            by_key[key] = res
    out = []
    for c in expected:
        key = (c["host"], c["check"])
        out.append(by_key.pop(key, None) or CheckResult(c["host"], c["check"], "error",
                                                       "no result: pytest ended before this check ran",
                                                       c["on"]))
    for (host, check), res in by_key.items():  # reported but not expected: keep, flagged
        problems.append(f"unexpected result for {host} {check}")
        out.append(res)
    return out, problems


@dataclass(frozen=True)
class Measured:
    """Tokens/s of one inference deployment read from a benchmark result in the workspace."""

    deployment: str
    tokens_per_second: float
    gpus: int | None  # GPUs the measured replica ran on, when the result says
    file: str
    run: str
    concurrency: int | None = None  # the load level it was measured at, when the result says
    recorded: str = ""  # when (ISO 8601 UTC), when the result says; else the run id is the time
    tool: str = ""  # what measured it, e.g. "factoryctl bench serve"

    def label(self) -> str:
        """One line naming the run behind the figure: id, date, concurrency, tokens/s."""
        parts = [f"run {self.run}"]
        if self.recorded:
            parts.append(self.recorded)
        if self.concurrency is not None:
            parts.append(f"concurrency {self.concurrency}")
        parts.append(f"{self.tokens_per_second:,.1f} output tokens/s")
        return ", ".join(parts) + (f" ({self.tool})" if self.tool else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Run:
    """What one runs/<id>/ folder holds, as read back (bad entries named in `problems`)."""

    id: str
    path: Path
    checks: list[CheckResult] = field(default_factory=list)
    nccl: list[dict[str, Any]] = field(default_factory=list)
    inference: list[Measured] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.checks or self.nccl or self.inference or self.measurements)

    @property
    def serve_only(self) -> bool:
        """A `bench serve` run: serving measurements and nothing verify ran."""
        return (bool(self.inference) and not (self.checks or self.nccl or self.measurements)
                and all(m.tool == SERVE_TOOL for m in self.inference))


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


SERVE_TOOL = "factoryctl bench serve"


def _serve(path: Path, run: Run, doc: dict) -> None:
    """A `bench serve` record: the output tokens/s at its highest concurrency that made tokens."""
    dep = doc.get("deployment")
    if not isinstance(dep, str) or not dep:
        run.problems.append(f"{path.name}: no 'deployment' (text): which inference[].name it measured")
        return
    levels = doc.get("levels")
    if not isinstance(levels, list):
        run.problems.append(f"{path.name}: 'levels' is not a list")
        return
    good = []
    for i, lv in enumerate(levels):
        if not (isinstance(lv, dict) and isinstance(lv.get("concurrency"), int) and not isinstance(lv["concurrency"], bool)
                and lv["concurrency"] > 0 and isinstance(lv.get("output_tok_per_s"), int | float)
                and not isinstance(lv["output_tok_per_s"], bool) and math.isfinite(lv["output_tok_per_s"])
                and lv["output_tok_per_s"] >= 0):
            run.problems.append(f"{path.name}: levels[{i}] needs concurrency (integer > 0) and output_tok_per_s (>= 0)")
            return
        if lv["output_tok_per_s"] > 0:
            good.append(lv)
    if not good:
        run.problems.append(f"{path.name}: no level produced output tokens; nothing measured for {dep}")
        return
    top = max(good, key=lambda lv: lv["concurrency"])
    recorded = doc.get("recorded")
    run.inference.append(Measured(dep, float(top["output_tok_per_s"]), None, str(path), run.id,
                                  concurrency=top["concurrency"],
                                  recorded=recorded if isinstance(recorded, str) else "", tool=SERVE_TOOL))


def write_serve_run(result: Any, deployment: str, folder: Path, recorded: str, name: str = "serve.json") -> Path:
    """The one writer of a serving measurement: runs/<id>/serve.json (serve-<deployment>.json
    from verify --bench), the result of `bench serve` (bench.serve.ServeResult, its
    `factoryctl.serve/v1` document) with the inference deployment it measured and when, as
    _serve reads it back."""
    doc = result.to_dict() | {"deployment": deployment, "recorded": recorded}
    return write_json(folder / name, doc)


def _checks(path: Path, run: Run, items: Any) -> None:
    if not isinstance(items, list):
        run.problems.append(f"{path.name}: 'checks' is not a list")
        return
    for i, it in enumerate(items):
        if not (isinstance(it, dict) and isinstance(it.get("host"), str) and isinstance(it.get("check"), str)
                and it.get("status") in STATUSES):
            run.problems.append(f"{path.name}: checks[{i}] needs host, check and status ({', '.join(STATUSES)})")
            continue
        run.checks.append(CheckResult(it["host"], it["check"], it["status"], str(it.get("detail", ""))))


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
    # After bench*.json: in one run, the serving measurement is the newer word. serve.json is
    # `bench serve --file`'s; verify --bench writes serve-<deployment>.json, one per deployment.
    for serve in sorted(path.glob("serve*.json")):
        doc = _load(serve, run.problems)
        if doc is not None:
            _serve(serve, run, doc)
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
    """The newest verify run that holds anything readable (a `bench serve` run is not one:
    its figures reach the report through cost, named there)."""
    for run in reversed(runs(workspace)):
        if not run.empty and not run.serve_only:
            return run
    return None
