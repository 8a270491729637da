"""`factoryctl bom`, `cost` and `report`: load the site, build the BOM/cost/report, write it.

Each returns the exit code: 0, or 1 when validate would report errors: then nothing is built
or written, so no figure is ever derived from a site validate refuses. Findings go to stderr so
that json/csv on stdout stay machine-readable.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..findings import Severity, reaches
from ..findings.formats import text
from ..report.bom import Bom, bom
from ..report.cost import Cost, Figure, cost
from ..report.runs import measured_throughput, workspace_dir
from ..session import Checked, check
from .app import (
    EXIT_FAIL,
    EXIT_OK,
    BomFormat,
    FileArg,
    Format,
    WorkspaceOpt,
    _path,
    app,
    out,
    typer,
)


def _checked(file: Path) -> Checked | None:
    """The checked site, or None after printing validate's findings when any is an error."""
    c = check(file)
    if c.site is None or reaches(c.sorted_findings, Severity.error):
        sys.stderr.write(text(c.sorted_findings, c.loaded.text if c.loaded else None))
        return None
    return c


# --- bom -------------------------------------------------------------------------------------

BOM_COLUMNS = ("category", "item", "model", "quantity", "unit", "basis")


def bom_csv(b: Bom) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BOM_COLUMNS)
    for x in b.lines:
        w.writerow([x.category, x.item, x.model, x.quantity, x.unit, x.basis])
    for n in b.notes:
        w.writerow(["note", "", "", "", "", n])
    return buf.getvalue()


def bom_table(b: Bom, console: Console) -> None:
    t = Table(title=f"Bill of materials: {b.name}", title_justify="left")
    for col in ("category", "item", "model", "qty", "basis"):
        t.add_column(col, overflow="fold")
    for x in b.lines:
        t.add_row(x.category, x.item, escape(x.model), str(x.quantity), escape(x.basis))
    console.print(t)
    for n in b.notes:
        console.print(f"note: {escape(n)}")


def bom_cmd(file: Path, fmt: str, console: Console) -> int:
    c = _checked(file)
    if c is None:
        return EXIT_FAIL
    b = bom(c.site)
    if fmt == "json":
        sys.stdout.write(json.dumps(b.to_dict(), indent=2) + "\n")
    elif fmt == "csv":
        sys.stdout.write(bom_csv(b))
    else:
        bom_table(b, console)
    return EXIT_OK


# --- cost ------------------------------------------------------------------------------------


def fmt_value(f: Figure) -> str:
    if f.value is None:
        return "n/a"
    v = f.value
    if f.unit.endswith(("GPU-h", "tokens")) and abs(v) < 100:
        return f"{v:,.4g}" if abs(v) < 1 else f"{v:,.2f}"
    if f.unit == "" and v <= 10:  # fractions
        return f"{v:.1%}"
    return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"


class _Refs:
    """Numbers long origins (defaults and their sources, measured files) as [1], [2] ..."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def tag(self, origin: str) -> str:
        if origin.startswith(("default:", "measured:")) or len(origin) > 48:
            if origin not in self.items:
                self.items.append(origin)
            return f"[{self.items.index(origin) + 1}]"
        return f"[{origin}]"

    def inputs(self, f: Figure) -> str:
        return "; ".join(f"{i.name} = {_num(i.value)}{' ' + i.unit if i.unit else ''} {self.tag(i.origin)}"
                         for i in f.inputs)


def _num(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def cost_table(co: Cost, console: Console) -> None:
    refs = _Refs()
    for title, figs in (("Power", co.power), ("Capex", co.capex), ("Opex", co.opex), ("Per GPU-hour", co.unit_cost)):
        t = Table(title=f"{title} ({co.currency})", title_justify="left")
        for col in ("figure", "value", "unit", "formula; inputs"):
            t.add_column(col, overflow="fold")
        for f in figs:
            why = f.formula + (f"; {refs.inputs(f)}" if f.inputs else "") + (f" (note: {f.note})" if f.note else "")
            t.add_row(f.label, fmt_value(f), f.unit, escape(why))
        console.print(t)
    if co.inference:
        t = Table(title="Inference: cost and energy per token", title_justify="left")
        for col in ("deployment", "GPUs/replica", "tokens/s", "from", f"{co.currency}/1M tokens", "kWh/1M tokens", "note"):
            t.add_column(col, overflow="fold")
        for d in co.inference:
            note = d.cost_per_million_tokens.note or d.tokens_per_second.note
            src = refs.inputs(d.tokens_per_second)
            t.add_row(d.name, str(d.replica_gpus), fmt_value(d.tokens_per_second), d.source,
                      fmt_value(d.cost_per_million_tokens), fmt_value(d.energy_per_million_tokens),
                      escape("; ".join(x for x in (src, note) if x)))
        console.print(t)
    for i, origin in enumerate(refs.items, 1):
        console.print(f"[{i}] {escape(origin)}", highlight=False)


def site_cost(c: Checked, workspace: Path | None) -> Cost:
    ws = workspace or workspace_dir(c.site.factory.metadata.name)
    return cost(c.site, bom(c.site), measured_throughput(ws))


def cost_cmd(file: Path, fmt: str, workspace: Path | None, console: Console) -> int:
    c = _checked(file)
    if c is None:
        return EXIT_FAIL
    co = site_cost(c, workspace)
    if fmt == "json":
        sys.stdout.write(json.dumps(co.to_dict(), indent=2) + "\n")
    else:
        cost_table(co, console)
    return EXIT_OK


# --- report ----------------------------------------------------------------------------------


def report_cmd(file: Path, out_dir: Path | None, workspace: Path | None, console: Console) -> int:
    from ..report.html import write_report

    c = _checked(file)
    if c is None:
        return EXIT_FAIL
    ws = workspace or workspace_dir(c.site.factory.metadata.name)
    path = write_report(c, out_dir or ws / "report", ws)
    console.print(f"report written to {path}")
    return EXIT_OK


@app.command("bom")
def bom_command(file: Path = FileArg, fmt: BomFormat = typer.Option(BomFormat.text, "--format", "-f", help="text, json or csv.")) -> None:
    """Bill of materials: nodes, GPUs, NICs, switches by tier, cables, transceivers, racks, PDUs."""
    raise typer.Exit(bom_cmd(file, fmt.value, out))


@app.command("cost")
def cost_command(file: Path = FileArg, fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
         workspace: Path | None = WorkspaceOpt) -> None:
    """Power, capex, opex, cost per GPU-hour, break-even utilisation and cost per token, each with its inputs."""
    raise typer.Exit(cost_cmd(file, fmt.value, workspace, out))


@app.command("report")
def report_command(file: Path = FileArg,
           out_dir: Path | None = typer.Option(None, "--out", help="Folder for report.html (default .factory/<name>/report).",
                                               parser=_path),
           workspace: Path | None = WorkspaceOpt) -> None:
    """Write one self-contained HTML report: topology, racks, BOM, cost, findings, last verify run."""
    raise typer.Exit(report_cmd(file, out_dir, workspace, out))
