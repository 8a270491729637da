"""`factoryctl health parse FILE...`: judge recorded outputs of nvidia-smi, dcgmi, ibstat,
perfquery, the kernel log, lspci, Azure's health checks and nccl-tests."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import ExitCode
from ..files import ReadRefused
from .app import Format, app, err, out
from .console import ConsoleUI

health_app = typer.Typer(help="GPU, NVLink, InfiniBand and node health from recorded tool outputs.",
                         no_args_is_help=True)
app.add_typer(health_app, name="health")

_COLOURS = {"pass": "green", "warn": "yellow", "fail": "red"}


@health_app.command("parse")
def parse_cmd(
    files: list[Path] = typer.Argument(..., metavar="FILE", help="Recorded tool outputs, one tool per file."),
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text table or JSON (factoryctl.health/v1)."),
    host: str = typer.Option(None, "--host", help="The node the files come from (default: the host name"
                             " the output gives, else the file name)."),
    expect_ib_rate: float = typer.Option(None, "--expect-ib-rate", min=1,
                                         help="InfiniBand link speed every IB port should run at, Gb/s (e.g. 400)."),
    show_all: bool = typer.Option(False, "--all", help="Text: list passing checks too, not only their count."),
) -> None:
    """Judge recorded health outputs; the format of each file is detected from its content.

    Formats: nvidia-smi -q -x (XML), nvidia-smi -q (text, also -d PAGE_RETIREMENT excerpts), the
    nvidia-smi table, nvidia-smi --query-gpu CSV (with its header), nvidia-smi nvlink -s / -e,
    dcgmi diag (table and -j JSON), dcgmi nvlink --link-status, ibstat, ibstatus, perfquery,
    ibqueryerrors, kernel log lines (Xid, SXid, fallen off the bus, PCIe "limited by", carrier
    lost), lspci -vvv, Azure HPC health check logs, nccl-tests logs. Several files from
    several hosts are also compared: the odd host out in driver, CUDA, VBIOS or NIC firmware
    is a warning.

    Exit 1 when a finding fails or a file cannot be judged (empty, binary, truncated,
    unrecognised, or several tools' outputs in one file), with a message naming the file.
    """
    from ..health import HealthInputError, consistency, judge, load_thresholds, parse_file, report

    thresholds = load_thresholds()
    ui = ConsoleUI(out, err)
    parsed, findings, bad = [], [], False
    for path in files:
        try:
            src = parse_file(path, host)
        except (HealthInputError, ReadRefused) as exc:
            ui.error(str(exc))
            bad = True
            continue
        if src.host is None:
            src.host = path.name
        parsed.append(src)
        findings += judge(src, thresholds, expect_ib_rate=expect_ib_rate)
    if len(parsed) > 1:
        findings += consistency(parsed)
    doc = report(parsed, findings)
    if fmt is Format.json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _text(ui, doc, show_all)
    if bad or doc["summary"]["fail"]:
        raise typer.Exit(ExitCode.FAILED)


def _text(ui: ConsoleUI, doc: dict, show_all: bool) -> None:
    for i in doc["inputs"]:
        ui.info(f"{i['file']}: {i['format']} (host {i['host']})")
    rows = [f for f in doc["findings"] if show_all or f["status"] != "pass"]
    if rows:
        table = Table(show_header=True, header_style="bold")
        for col in ("status", "host", "device", "check", "value", "expected", "detail"):
            table.add_column(col, overflow="fold")
        for f in rows:
            c = _COLOURS[f["status"]]
            table.add_row(f"[{c}]{f['status']}[/{c}]", *(escape(str(f[k] if f[k] is not None else ""))
                                                         for k in ("host", "device", "check", "value", "expected", "detail")))
        ui.show(table)
    s = doc["summary"]
    ui.info(f"{s['pass']} pass, {s['warn']} warn, {s['fail']} fail"
            + ("" if show_all or not s["pass"] else " (--all lists the passing checks)"))
