"""The site report: one self-contained HTML file (inline CSS and SVG, no scripts, no network).

Sections: site summary, fabric topology pictures, rack elevations with power against budget,
the BOM, cost and power-to-token tables, validation findings, and the last verify run (host
checks and benchmark plots) when the workspace has one. The template is
templates/report/report.html.j2; the file is written atomically (workspace.atomic_write).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from .. import __version__
from ..files import atomic_write
from ..findings import counts
from ..resolve import quota_use
from ..resources import templates_dir
from ..session import Checked
from . import plots
from .bom import bom
from .cost import cost
from .racks import racks_svg
from .runs import latest_run, measured
from .topology import topology_svg
from .usage import latest_usage

REPORT_FILE = "report.html"
VERDICT_ORDER = {"fail": 0, "warn": 1, "pass": 2, "skip": 3}


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir() / "report")),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = _num
    env.filters["money"] = _money
    return env


def _num(v, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}".rstrip("0").rstrip(".") if digits else f"{v:,.0f}"


def _money(v) -> str:
    return "n/a" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.4g}")


def context(c: Checked, workspace: Path) -> dict:
    site = c.site
    b = bom(site)
    found, problems = measured(workspace)
    co = cost(site, b, found)
    co.problems = problems
    run = latest_run(workspace)
    findings = c.sorted_findings
    fabrics = []
    for name in ("compute", "storage"):
        pic = topology_svg(site, name)
        if pic:
            fabrics.append({"name": name, "svg": Markup(pic), "size": site.fabric[name]})
    run_ctx = None
    if run is not None:
        checks = sorted(run.checks, key=lambda x: (x.status == "passed", x.host, x.check))
        status = {s: sum(1 for x in run.checks if x.status == s) for s in ("passed", "failed", "error", "skipped")}
        busbw = plots.busbw_plot(run.nccl)
        run_ctx = {"id": run.id, "path": str(run.path), "checks": checks, "status": status,
                   "busbw": Markup(busbw) if busbw else None, "nccl": run.nccl, "inference": run.inference,
                   "measurements": sorted(run.measurements, key=lambda m: (VERDICT_ORDER.get(m["verdict"], 9), m["name"])),
                   "problems": run.problems}
    gpu_plot = plots.gpu_hour_plot(co)
    use = latest_usage(Path(workspace) / "runs")
    use_plot = plots.usage_plot(use) if use else None
    source_text = c.loaded.text if c.loaded else ""
    return {
        "version": __version__,
        "name": site.factory.metadata.name,
        "description": site.factory.metadata.description or "",
        "file": c.path,
        "digest": hashlib.sha256(source_text.encode()).hexdigest()[:12],
        "factory": site.factory,
        "site": site,
        "totals": site.totals,
        "fabrics": fabrics,
        "racks_svg": Markup(racks_svg(site)),
        "rack_rows": rack_rows(site),
        "bom": b,
        "cost": co,
        "gpu_hour_plot": Markup(gpu_plot) if gpu_plot else None,
        "findings": findings,
        "counts": counts(findings),
        "run": run_ctx,
        "quotas": quota_use(site),
        "usage": use,
        "usage_plot": Markup(use_plot) if use_plot else None,
    }


RACK_ROWS = 40  # racks listed one by one up to this many; above, runs of identical racks share a row


def rack_rows(site) -> list[dict]:
    """Rows of the rack table: every rack, or runs of consecutive identical racks on large sites."""
    rows: list[dict] = []
    for r in site.racks:
        key = (r.hosts, r.gpus, r.it_kw, r.budget_kw, r.cooling, r.declared)
        if len(site.racks) > RACK_ROWS and rows and rows[-1]["key"] == key:
            rows[-1]["last"] = r.name
            rows[-1]["count"] += 1
            continue
        rows.append({"key": key, "rack": r, "first": r.name, "last": r.name, "count": 1})
    for row in rows:
        row["name"] = row["first"] if row["count"] == 1 else f"{row['first']}\u2013{row['last']} ({row['count']})"
    return rows


def render(c: Checked, workspace: Path) -> str:
    return _env().get_template("report.html.j2").render(**context(c, workspace))


def write_report(c: Checked, out_dir: Path, workspace: Path) -> Path:
    """Render the report of a checked factory into out_dir/report.html; returns its path."""
    path = Path(out_dir) / REPORT_FILE
    atomic_write(path, render(c, Path(workspace)))
    return path
