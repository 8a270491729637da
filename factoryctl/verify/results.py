"""The result model of a verify run: host checks and the benchmark stage, read from what
pytest and the schedulers left behind, and the one writer of a run folder (verify.json,
bench.json). writers.py only shows this model (console, JSON, JUnit)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..bench.results import BenchResult
from ..errors import ExitCode
from ..files import ReadRefused, read_text
from ..workspace import write_json

# One JSON line of ~1 kB per check and host: 256 MiB holds 100,000 hosts x 2,500 checks.
MAX_RESULTS_BYTES = 256 * 1024 * 1024
STATUSES = ("passed", "failed", "error", "skipped")  # factoryctl/report/runs.py reads the same four
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
    problems: list[str] = field(default_factory=list)  # the run itself went wrong somewhere
    started: str = ""
    finished: str = ""
    duration_s: float = 0.0
    host_checks: bool = True  # False: a benchmark-only run (`bench run`), no verify.json
    folder: Path | None = None  # runs/<id>/, once written

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    @property
    def failed(self) -> bool:
        return (any(c.status in ("failed", "error") for c in self.checks) or bool(self.problems)
                or bool(self.bench and self.bench.failed))

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.FAILED if self.failed else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "run": self.run_id, "connection": self.connection,
                "started": self.started, "finished": self.finished, "duration_s": self.duration_s,
                "result": "failed" if self.failed else "passed", "summary": self.counts(),
                "checks": [c.to_dict() for c in self.checks],
                "bench": self.bench.to_dict() if self.bench else None, "problems": self.problems}


def write_run_folder(run: VerifyResult, folder: Path) -> list[Path]:
    """The one writer of a run's records, the shapes factoryctl/report/runs.py reads (its
    docstring defines them): verify.json (the host checks, when they ran) and bench.json (when
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
