"""What report and cost take from the verify runs in the workspace: the newest measured
tokens/s per deployment. The run folders are read by verify.results (the one reader; its
docstring defines the files)."""

from __future__ import annotations

from pathlib import Path

from ..verify.results import Measured, Run, latest_run, read_run, runs
from .bom import bom
from .cost import Cost, cost

__all__ = ["Measured", "Run", "latest_run", "measured_throughput", "read_run", "runs", "site_cost"]


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
