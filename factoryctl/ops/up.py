"""`factoryctl up`: plan, apply and verify in one go, under one hold of the site's lock. Verify
is the generated host checks of `factoryctl verify` (results in runs/<id>/verify.json, read
by the report) plus the Slurm checks only a running cluster answers: munge across hosts,
every partition idle in sinfo, srun on every compute node."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..session import Checked
from ..ui import UI
from ..verify.hostchecks import HostCheckOptions, VerifyResult, run_host_checks
from ..verify.status import wait_for_endpoints
from ..workspace import Workspace
from .apply import ApplyOptions, ApplyResult, apply
from .plan import PlanDocument, record, run_plan

# An engine's job starts, then loads its model: vLLM's CPU build serves the lab's tiny model
# ~45 s after its job starts; a GPU site's large model takes minutes to load.
ENDPOINT_WAIT = 600.0


@dataclass
class UpResult:
    plan: PlanDocument
    apply: ApplyResult | None = None  # None when the plan failed
    host_checks: VerifyResult | None = None  # the generated host checks, when verify ran
    checks: list = field(default_factory=list)  # the Slurm checks (verify.smoke.Check)
    results: Path | None = None  # runs/<id>/ of the verify step
    endpoints: list = field(default_factory=list)  # verify.status.Endpoint, after waiting for them
    seconds: float = 0.0

    @property
    def verified(self) -> bool:
        """Whether the verify step ran (it needs the ansible phase)."""
        return self.results is not None

    @property
    def ok(self) -> bool:
        if self.apply is None or not self.apply.ok:
            return False
        if not self.verified:
            return True
        return all(ch.ok for ch in self.checks) and not self.host_checks.failed


def up(checked: Checked, ws: Workspace, opts: ApplyOptions, ui: UI,
       show: Callable[[Any], None], started: float | None = None) -> UpResult:
    """Plan, apply, verify, with the site's lock held; `show` presents the plan document and
    the apply result as each step ends (the steps after it build on them)."""
    from ..verify.smoke import run_checks, write_results

    t0 = started if started is not None else time.perf_counter()
    doc = run_plan(checked, ws, binary=opts.terraform_bin, jobs=opts.jobs)
    doc.run = str(record(ws, doc))
    show(doc)
    result = UpResult(doc)
    if doc.exit_code(False):
        result.seconds = time.perf_counter() - t0
        return result
    ui.info("")
    ui.info("2/3 apply")
    result.apply = apply(checked, ws, opts, ui)
    show(result.apply)
    if not opts.runs("ansible"):
        ui.info("3/3 verify: skipped (the ansible phase did not run)")
        result.seconds = time.perf_counter() - t0
        return result
    if checked.factory.inference:
        ui.info("")
        ui.info(f"waiting for the inference endpoints to answer (up to {ENDPOINT_WAIT:.0f} s)")
        result.endpoints = wait_for_endpoints(checked, ws, ENDPOINT_WAIT, note=lambda m: ui.info(f"  {m}"))
    ui.info("")
    ui.info("3/3 verify: the host checks factory.yaml implies (as `factoryctl verify`), "
            "then munge across hosts, sinfo and srun over SSH")
    result.host_checks = run_host_checks(checked, ws, HostCheckOptions(), ui)
    result.results = result.host_checks.folder
    result.checks = run_checks(checked, ws)
    write_results(result.checks, result.results / "checks.json")
    result.seconds = time.perf_counter() - t0
    return result
