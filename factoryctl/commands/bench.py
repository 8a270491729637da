"""`factoryctl bench ...`: read benchmark outputs (nccl-tests logs and -J JSON reports)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factoryctl.bench.nccl_parse import Half, NcclResult, parse_file

app = typer.Typer(help="Parse and summarise benchmark outputs (nccl-tests / rccl-tests).",
                  no_args_is_help=True)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


@app.callback()
def _group() -> None:
    """Benchmark tools."""  # keeps `parse` a sub-command even while it is the only one


def _fmt(val: float | int | None) -> str:
    # Six significant digits reproduces what nccl-tests printed (80646.8, 17.49, 233).
    if val is None:
        return "N/A"
    return str(val) if isinstance(val, int) else f"{val:.6g}"


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def _half_cells(half: Half | None) -> list[str]:
    if half is None:
        return ["-"] * 4
    return [_fmt(half.time_us), _fmt(half.algbw_gbps), _fmt(half.busbw_gbps), _fmt(half.wrong)]


def _render(console: Console, res: NcclResult) -> None:
    colour = "green" if res.status == "ok" else "red"
    console.print(f"[bold]{escape(res.source)}[/bold]: collective={res.collective or '?'} "
                  f"ranks={res.ranks if res.ranks is not None else '?'} rows={len(res.rows)} "
                  f"status=[{colour}]{res.status}[/{colour}]")
    if res.rows:
        table = Table(show_edge=False, pad_edge=False)
        for name in ("size", "count", "type", "redop", "root"):
            table.add_column("size (B)" if name == "size" else name, justify="right" if name in ("size", "count", "root") else "left")
        for side in ("oop", "ip"):
            for name in ("time_us", "algbw", "busbw", "wrong"):
                table.add_column(f"{side} {name}", justify="right")
        for row in res.rows:
            table.add_row(str(row.size_bytes), str(row.count), row.type or "-",
                          row.redop or "-", "-" if row.root is None else str(row.root),
                          *_half_cells(row.out_of_place), *_half_cells(row.in_place))
        console.print(table)
    if res.largest is not None:
        console.print(f"avg busbw: {_fmt(res.avg_busbw_gbps)} GB/s   largest size "
                      f"{_human(res.largest.size_bytes)} busbw: {_fmt(res.peak_busbw_gbps)} GB/s")
    if res.out_of_bounds:
        console.print(f"[red]out of bounds values: {res.out_of_bounds}[/red]")
    if res.avg_busbw_check == "FAILED":
        console.print("[red]average bus bandwidth below NCCL_TESTS_MIN_BW[/red]")
    for line in res.errors[:10]:
        console.print(f"[red]error:[/red] {escape(line)}")
    if len(res.errors) > 10:
        console.print(f"... {len(res.errors) - 10} more error lines")
    for note in res.notes:
        console.print(f"note: {escape(note)}")


def _failed(res: NcclResult) -> bool:
    # The run's own MIN_BW check failing is a failed run too, though not a parse status.
    return res.status != "ok" or res.avg_busbw_check == "FAILED"


@app.command("parse")
def parse_cmd(
    logs: list[Path] = typer.Argument(..., metavar="LOG", help="nccl-tests stdout logs or -J JSON files."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text table or JSON list."),
) -> None:
    """Parse nccl-tests outputs; exit 1 on data errors, a crash, no rows or an unreadable file."""
    results: list[NcclResult] = []
    bad = False
    for path in logs:
        try:
            results.append(parse_file(path))
        except OSError as exc:
            typer.echo(f"error: cannot read {path}: {exc.strerror or exc}", err=True)
            bad = True
    if fmt is OutputFormat.json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        console = Console(width=None if Console().is_terminal else 200, highlight=False)
        for res in results:
            _render(console, res)
    if bad or any(_failed(r) for r in results):
        raise typer.Exit(code=1)
