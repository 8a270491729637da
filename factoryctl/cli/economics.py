"""`factoryctl bom`, `cost` and `report`: check the site, build its BOM / cost / report (the
stages in report/), and show the result.

A file validate reports errors in is refused (exit 1, the findings on stderr so that json/csv
on stdout stay machine-readable): nothing is built or written, so no figure is ever derived
from a site validate refuses. cost and report read the measured results of the site's
workspace (`.factory/<name>/` beside FILE, read without creating it; --workspace overrides).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..report.bom import Bom, bom
from ..report.cost import Cost, Figure
from ..report.runs import site_cost
from ..session import Checked, check, refuse_on_errors
from ..workspace import Workspace
from .app import BomFormat, FileArg, Format, WorkspaceOpt, app, out, path_arg


def workspace_read(c: Checked, workspace: Path | None) -> Path:
    """The workspace cost and report read: --workspace, else the site's own (not created)."""
    return workspace or Workspace.find(Path(c.path), c.factory.metadata.name).root


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


def _headline(f: Figure) -> str:
    """The value, marked as a lower bound with what it covers when it leaves something out."""
    if f.value is None or not f.left_out:
        return fmt_value(f)
    return f">= {fmt_value(f)} ({f.basis})"


def cost_table(co: Cost, console: Console) -> None:
    refs = _Refs()
    for title, figs in (("Power", co.power), ("Capex", co.capex), ("Opex", co.opex), ("Per GPU-hour", co.unit_cost)):
        t = Table(title=f"{title} ({co.currency})", title_justify="left")
        for col in ("figure", "value", "unit", "formula; inputs"):
            t.add_column(col, overflow="fold")
        for f in figs:
            why = (f.formula + (f"; {refs.inputs(f)}" if f.inputs else "") + (f" (note: {f.note})" if f.note else "")
                   + (f" ({f.basis}, leaves out: {'; '.join(f.left_out)})" if f.left_out else ""))
            t.add_row(f.label, _headline(f), f.unit, escape(why))
        console.print(t)
    if co.inference:
        t = Table(title="Inference: cost and energy per token", title_justify="left")
        for col in ("deployment", "GPUs/replica", "tokens/s", "from", f"{co.currency}/1M tokens", "kWh/1M tokens", "note"):
            t.add_column(col, overflow="fold")
        for d in co.inference:
            note = d.cost_per_million_tokens.note or d.tokens_per_second.note
            src = refs.inputs(d.tokens_per_second)
            # the per-token figures' basis: the run they were measured in, or the stated assumption
            t.add_row(d.name, str(d.replica_gpus), fmt_value(d.tokens_per_second),
                      escape(d.cost_per_million_tokens.throughput_from or d.source),
                      _headline(d.cost_per_million_tokens), _headline(d.energy_per_million_tokens),
                      escape("; ".join(x for x in (src, note) if x)))
        console.print(t)
    for i, origin in enumerate(refs.items, 1):
        console.print(f"[{i}] {escape(origin)}", highlight=False)
    for p in co.problems:  # a run record cost could not read: said, not silently skipped
        console.print(f"problem: {escape(p)}", style="yellow", highlight=False)
    owned = co.get("gpu_hour_cost")
    if owned.left_out:  # the headline, said once more where it cannot be missed
        console.print(f"owned cost per GPU-hour: {escape(owned.caveat())}", highlight=False)



@app.command("bom")
def bom_command(file: Path = FileArg, fmt: BomFormat = typer.Option(BomFormat.text, "--format", "-f", help="text, json or csv.")) -> None:
    """Bill of materials: nodes, GPUs, NICs, switches by tier, cables, transceivers, racks, PDUs.

    Example: factoryctl bom blueprints/superpod-h100-1su/factory.yaml --format csv > bom.csv"""
    b = bom(refuse_on_errors(check(file), "no bill of materials built").site)
    if fmt is BomFormat.json:
        sys.stdout.write(json.dumps(b.to_dict(), indent=2) + "\n")
    elif fmt is BomFormat.csv:
        sys.stdout.write(bom_csv(b))
    else:
        bom_table(b, out)


@app.command("cost")
def cost_command(file: Path = FileArg, fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
                 workspace: Path | None = WorkspaceOpt) -> None:
    """Power, capex, opex, cost per GPU-hour, break-even utilisation and cost per token, each with its inputs.

    Example: factoryctl cost blueprints/gb300-nvl72-neocloud/factory.yaml --format json"""
    c = refuse_on_errors(check(file), "no cost figures computed")
    co = site_cost(c.site, workspace_read(c, workspace))
    if fmt is Format.json:
        sys.stdout.write(json.dumps(co.to_dict(), indent=2) + "\n")
    else:
        cost_table(co, out)


@app.command("report")
def report_command(file: Path = FileArg,
                   out_dir: Path | None = typer.Option(None, "--out", help="Folder for report.html (default .factory/<name>/report).",
                                                       parser=path_arg),
                   workspace: Path | None = WorkspaceOpt) -> None:
    """Write one self-contained HTML report: topology, racks, BOM, cost, findings, last verify run.

    Example: factoryctl report examples/reference/factory.yaml --out report/"""
    from ..report.html import write_report

    c = refuse_on_errors(check(file), "no report written")
    ws = workspace_read(c, workspace)
    out.print(f"report written to {write_report(c, out_dir or ws / 'report', ws)}")
