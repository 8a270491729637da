"""What report and cost take from the verify runs in the workspace: the newest measured
tokens/s per deployment. The run folders are read by verify.results (the one reader; its
docstring defines the files)."""

from __future__ import annotations

from pathlib import Path

from ..verify.results import Measured, Run, latest_run, read_run, runs
from .bom import bom
from .cost import Cost, cost

__all__ = ["Measured", "Run", "latest_run", "measured", "measured_throughput", "read_run", "runs", "site_cost"]


def measured(workspace: Path) -> tuple[dict[str, Measured], list[str]]:
    """Deployment name -> its newest measured tokens/s across all runs (a verify benchmark's
    bench.json or a `bench serve` run's serve.json), and what could not be read on the way
    ("run <id>: <problem>"), so that a corrupt record is reported, not silently dropped."""
    out: dict[str, Measured] = {}
    problems: list[str] = []
    for run in runs(workspace):  # oldest first: newer runs overwrite
        for m in run.inference:
            out[m.deployment] = m
        problems += [f"run {run.id}: {p}" for p in run.problems]
    return out, problems


def measured_throughput(workspace: Path) -> dict[str, Measured]:
    """Deployment name -> its newest measured tokens/s across all runs."""
    return measured(workspace)[0]


def site_cost(site, workspace: Path) -> Cost:
    """The cost of a site (`factoryctl cost`), with the newest tokens/s measured in
    `workspace` in place of the stated figures, and the problems met reading the runs."""
    found, problems = measured(workspace)
    co = cost(site, bom(site), found)
    co.problems = problems
    return co
