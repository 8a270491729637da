"""Output that is not a terminal is complete: every table a command prints through a pipe (or
into a CI log) shows every header and every cell whole, at whatever width that takes, with
COLUMNS unset. Each table's headers and cells are recorded as they are added (Table.add_column,
Table.add_row) and must each appear, on one line, in what the command printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.table import Table
from rich.text import Text

from factoryctl.cli import run
from factoryctl.cli.app import out
from factoryctl.resources import blueprints_dir
from tests.helpers import REFERENCE

ROOT = Path(__file__).resolve().parents[3]
GB300 = blueprints_dir() / "gb300-nvl72-neocloud" / "factory.yaml"
NCCL = ROOT / "tests" / "fixtures" / "nccl"
H100_LOG = NCCL / "h100-2n-all_reduce-nvidia-i309.log"


@pytest.fixture
def cells(monkeypatch):
    """Every header and cell any table is given while the test runs, as plain text."""
    seen: list[str] = []
    add_column, add_row = Table.add_column, Table.add_row

    def plain(v) -> list[str]:
        s = v.plain if isinstance(v, Text) else Text.from_markup(v).plain if isinstance(v, str) else ""
        return [line for line in s.splitlines() if line.strip()]

    def column(self, header="", *a, **kw):
        seen.extend(plain(header))
        return add_column(self, header, *a, **kw)

    def row(self, *renderables, **kw):
        for r in renderables:
            seen.extend(plain(r))
        return add_row(self, *renderables, **kw)

    monkeypatch.setattr(Table, "add_column", column)
    monkeypatch.setattr(Table, "add_row", row)
    monkeypatch.delenv("COLUMNS", raising=False)
    return seen


def _assert_whole(printed: str, seen: list[str]) -> None:
    assert not out.is_terminal  # pytest's captured stdout: the piped case
    assert "…" not in printed, printed
    cut = [c for c in seen if c not in printed]
    assert not cut, f"cut or folded: {cut[:10]}\n{printed}"


@pytest.mark.parametrize("argv", [
    ["inspect", str(GB300)],
    ["inspect", str(REFERENCE), "--all-hosts"],
    ["bom", str(GB300)],
    ["cost", str(GB300)],
    ["cost", str(REFERENCE)],
    ["bench", "parse", str(H100_LOG)],
    ["bench", "expect", str(GB300)],
    ["bench", "judge", str(REFERENCE), str(H100_LOG)],
    ["rules", "list"],
    ["blueprint", "list"],
], ids=lambda a: " ".join(a[:2]) if a[0] in ("bench", "rules", "blueprint") else f"{a[0]} {Path(a[1]).parent.name}")
def test_piped_tables_are_whole(argv, cells, capsys):
    rc = run(argv)
    cap = capsys.readouterr()
    assert rc in (0, 1), cap.err  # bench judge fails the figures it judges; the table still prints
    assert "Traceback" not in cap.out + cap.err
    if argv[0] in ("inspect", "bom", "cost", "bench"):
        assert cells, "the command printed no table"
    _assert_whole(cap.out, cells)


def test_inspect_headers_that_80_columns_cut(cells, capsys):
    assert run(["inspect", str(GB300)]) == 0
    printed = capsys.readouterr().out
    for header in ("fabric", "endpoints", "leaves", "leaf-spine", "weights GB/GPU", "available",
                   "meta-llama/Llama-3.1-405B-Instruct", "llama-405b-long"):
        assert header in printed
    assert max(len(line) for line in printed.splitlines()) > 80  # wider than the old cut, on purpose


def test_columns_is_a_floor_never_a_cut(cells, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    assert run(["inspect", str(GB300)]) == 0
    _assert_whole(capsys.readouterr().out, cells)


def test_verify_and_recap_tables_are_whole(cells, capsys):
    from factoryctl.cli.app import err
    from factoryctl.cli.console import ConsoleUI
    from factoryctl.cli.progress import recap_table
    from factoryctl.engines.ansible import HostStats
    from factoryctl.verify import writers
    from factoryctl.verify.results import BenchResult, CheckResult, VerifyResult
    from factoryctl.verify.smoke import Check, show_checks

    detail = "slurmd not running: systemctl reports inactive (dead) since the last apply of this site"
    res = VerifyResult("gb300-neocloud-north", "20260501T120000Z", "ssh",
                       [CheckResult("tray-rack01-node18", "service:slurmd", "failed", detail, "tray-rack01-node18"),
                        CheckResult("ctl01", "slurm-partition:inference-long", "passed", "idle", "ctl01")],
                       BenchResult(path="nccl-tests", scheduler="slurm", hosts=["tray01", "tray02"],
                                   measurements=[{"name": "all_reduce.busbw.all-nodes", "value": 312.5,
                                                  "unit": "GB/s", "expected": 380.0, "verdict": "warn",
                                                  "reason": "82% of the expected bus bandwidth (warn below 90%)"}]))
    writers.show_text(res, ConsoleUI(out, err))
    out.print(recap_table({"tray-rack01-node18": HostStats(ok=41, changed=3, failed=1,
                                                            last_error="apt: unable to fetch slurm-client")}))
    show_checks([Check("srun", "tray-rack01-node18", False, "srun -N2 hostname timed out after 60 s")], ConsoleUI(out, err))
    _assert_whole(capsys.readouterr().out, cells)
