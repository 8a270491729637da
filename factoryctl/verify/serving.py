"""The serving part of the benchmark stage (`verify --bench`): every declared inference
deployment that answers is load-tested with bench.serve from this machine, with the lengths,
concurrency sweep and SLOs of `verify.benchmarks.serving` and `verify.thresholds`; each
result is recorded as runs/<id>/serve-<deployment>.json, which cost and the report read.

A deployment that is declared but not answering is a failure here too (the host check names
it first); a level whose every request failed, or a missed SLO, fails the stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..ui import UI
from ..workspace import Workspace
from .results import write_serve_run


@dataclass
class ServingOutcome:
    deployment: str
    url: str | None
    result: Any = None  # bench.serve.ServeResult
    reason: str = ""  # why it did not run

    @property
    def failed(self) -> bool:
        return self.result is None or self.result.failed

    def to_dict(self) -> dict:
        top = self.result.levels[-1] if self.result is not None and self.result.levels else None
        return {"deployment": self.deployment, "url": self.url, "failed": self.failed, "reason": self.reason,
                "output_tok_per_s": getattr(top, "output_tok_per_s", None)}


@dataclass
class ServingStage:
    outcomes: list[ServingOutcome] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(o.failed for o in self.outcomes)


def config_for(checked, url: str):
    """The load generator's settings from verify.benchmarks.serving and verify.thresholds."""
    from ..bench import serve

    spec = checked.factory.verify.benchmarks.serving
    th = checked.factory.verify.thresholds
    slo = {k: float(v) for k, v in (("ttft_p99_ms", th.ttft_p99_ms), ("tpot_p99_ms", th.tpot_p99_ms)) if v is not None}
    return serve.ServeConfig(url=serve.completions_url(url), concurrency=tuple(spec.concurrency),
                             prompts=spec.prompts, input_len=serve.Span(spec.input_len, spec.input_len),
                             output_len=serve.Span(spec.output_len, spec.output_len), warmup=spec.warmup,
                             slo=slo)


def run_serving_stage(checked, ws: Workspace, folder: Path, ui: UI) -> ServingStage:
    from ..bench import serve
    from .status import wait_for_endpoints

    stage = ServingStage()
    if not checked.factory.inference:
        return stage
    for e in wait_for_endpoints(checked, ws, timeout=0):
        if not e.ready or not e.url:
            stage.outcomes.append(ServingOutcome(e.name, e.url, reason=e.reason or "not ready"))
            ui.info(f"serving {e.name}: not measured: {e.reason or 'not ready'}")
            continue
        ui.info(f"serving {e.name}: load test of {e.url}")
        res = serve.run(config_for(checked, e.url), ui)
        write_serve_run(res, e.name, folder, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        name=f"serve-{e.name}.json")
        stage.outcomes.append(ServingOutcome(e.name, e.url, res))
        for lv in res.levels:
            ui.info(f"  c={lv.concurrency}: {lv.output_tok_per_s:,.0f} output tok/s, {lv.req_per_s:.1f} req/s, "
                    f"TTFT p99 {_ms(lv.ttft_ms.p99)}, TPOT p99 {_ms(lv.tpot_ms.p99)}, errors {lv.errors}")
    return stage


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"
