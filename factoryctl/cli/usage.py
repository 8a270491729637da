"""`factoryctl usage`: metered use and chargeback per tenant, deployment or job."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..report.usage import Usage
from .app import FileArg, app, out

COLUMNS = ("name", "tenant", "jobs", "cpu_seconds", "gpu_seconds", "gpu_hours", "prompt_tokens", "generation_tokens",
           "energy_kwh", "cost", "cost_per_million_tokens")


class UsageFormat(str, Enum):
    text = "text"
    json = "json"
    csv = "csv"


class By(str, Enum):
    tenant = "tenant"
    deployment = "deployment"
    job = "job"


def usage_csv(u: Usage) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["since", "until", *COLUMNS])
    window = [u.to_dict()["window"]["since"], u.to_dict()["window"]["until"]]
    for r in u.rows:
        d = r.to_dict()
        w.writerow([*window, *("" if d.get(c) is None else d.get(c) for c in COLUMNS)])
    return buf.getvalue()


def _n(v: float | int | None, nd: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def usage_table(u: Usage, console: Console) -> None:
    d = u.to_dict()
    t = Table(title=f"Usage of {u.site} by {u.by}, {d['window']['since']} to {d['window']['until']} ({u.currency})",
              title_justify="left")
    first = {"tenant": "tenant", "deployment": "deployment", "job": "job"}[u.by]
    cols = [first, *(["tenant"] if u.by != "tenant" else []), "jobs", "CPU-h", "GPU-h", "prompt tokens",
            "generation tokens", "kWh", "cost", "cost/1M tokens"]
    for c in cols:
        t.add_column(c, justify="left" if c in (first, "tenant") else "right")
    for r in u.rows:
        t.add_row(escape(r.name), *([escape(r.tenant or "")] if u.by != "tenant" else []), _n(r.jobs),
                  _n(r.cpu_seconds / 3600, 2), _n(r.gpu_hours, 2), _n(r.prompt_tokens), _n(r.generation_tokens),
                  _n(r.energy_kwh, 2), _n(r.cost, 2), _n(r.cost_per_million_tokens, 2))
    console.print(t)
    console.print(f"GPU capacity {u.capacity_gpu_seconds / 3600:,.1f} GPU-h x {_n(u.gpu_hour_cost, 4)} "
                  f"{u.currency}/GPU-h = {_n(u.bill, 2)} {u.currency} (the tenant rows and idle add up to it)",
                  highlight=False)
    for n in u.notes:
        console.print(f"note: {escape(n)}", highlight=False)


@app.command("usage")
def usage_command(
    file: Path = FileArg,
    since: str | None = typer.Option(None, "--since", help="Window start: ISO 8601 (2026-12-01, 2026-12-01T08:00:00Z) or now-24h, now-7d (default: 24 hours before --until)."),
    until: str | None = typer.Option(None, "--until", help="Window end, same forms (default: now)."),
    by: By = typer.Option(By.tenant, "--by", help="Rows per tenant (with the idle row), deployment or job."),
    fmt: UsageFormat = typer.Option(UsageFormat.text, "--format", "-f", help="text, json (factoryctl.usage/v1) or csv."),
) -> None:
    """Who used which GPUs and tokens in a window, and what it cost: per tenant (Slurm
    account), jobs, CPU- and GPU-seconds and billing from sacct on the controller, prompt and
    generation tokens per deployment from Prometheus (vLLM's counters) charged to the owning
    tenant, energy from declared power x PUE, cost at the owned cost per GPU-hour of `cost`,
    and the idle capacity as its own row so the rows add up to the bill. Records the result
    as runs/<id>/usage.json, which `report` shows. Exit 1 when accounting or Prometheus is
    missing or does not answer, 64 on usage errors (an empty window).

    Example: factoryctl usage examples/lab.yaml --since now-7d --by tenant --format json"""
    from ..report.usage import collect, window, write_usage_run
    from ..session import check, refuse_on_errors
    from ..workspace import Workspace

    start, end = window(since, until)
    c = refuse_on_errors(check(file), "usage not read")
    ws = Workspace.find(file, c.factory.metadata.name)
    u = collect(c, ws, start, end, by.value)
    write_usage_run(u, ws.new_run("usage"))
    if fmt is UsageFormat.json:
        sys.stdout.write(json.dumps(u.to_dict(), indent=2) + "\n")
    elif fmt is UsageFormat.csv:
        sys.stdout.write(usage_csv(u))
    else:
        usage_table(u, out)
